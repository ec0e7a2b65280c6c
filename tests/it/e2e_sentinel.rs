//! The Redis store through Redis Sentinel, end to end: the real telegate
//! binary with `sessions.redis_sentinels` (a dead sentinel listed first,
//! then the real one) and `sessions.redis_master_name`, in front of a real
//! master, its replica and Debian's `redis-sentinel`.
//!
//! A session revoked through the master is refused; the master is killed;
//! `/ready` says 503 `store_unavailable` while no master answers and 200
//! again once the sentinel has promoted the replica and telegate has
//! followed it; then a new revocation works, the old one still holds, and a
//! second replica started on the sentinels sees both (so they are in the
//! new master, not only in the first replica's cache).
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_sentinel:: -- --nocapture`

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::e2e_redis::{gate_config, setup, Client};
use crate::support::sentinel::SentinelGroup;
use crate::support::stack::{keygen, Telegate};
use crate::support::{free_port, poll_until, require_tools, Reply, Workdir};

/// Down-after (0.4 s), the sentinel's own random delay (up to 1 s), the
/// promotion and its confirmation take a few seconds; this bounds them.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(15);
const MASTER_NAME: &str = "telegate-e2e";

fn config(group: &SentinelGroup) -> String {
    gate_config(&format!(
        "redis_sentinels = [\"127.0.0.1:{dead}\", \"127.0.0.1:{sentinel}\"]\n\
         redis_master_name = \"{MASTER_NAME}\"\nredis_prefix = \"sentinel:\"\nflush_interval_ms = 100",
        dead = free_port(),
        sentinel = group.sentinel_port,
    ))
}

#[tokio::test]
async fn telegate_follows_a_sentinel_failover() {
    let Some(tools) = require_tools("e2e_sentinel", &["redis-server", "redis-sentinel"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-sentinel");
    let client = setup(&work);
    let mut group = SentinelGroup::start(&tools, &work, MASTER_NAME).await;
    let config = config(&group);
    let gate = Telegate::start(&work, &config).await;
    let run = keygen()[..12].to_owned();

    // Before: a revocation through the master holds.
    let first = format!("e2e-first-{run}");
    assert_eq!(
        client.auth(&gate, None, Some(&first)).await,
        (200, String::new())
    );
    revoke(&client, &gate, &first).await;
    let refused = (403, "session_revoked".to_string());
    assert_eq!(client.auth(&gate, None, Some(&first)).await, refused);
    group.replicated().await;

    // The master dies: 503 while none answers, 200 once the replica is
    // promoted and telegate follows it.
    group.kill_master();
    let killed = Instant::now();
    wait_ready(&client, &gate, 503, Duration::from_secs(5)).await;
    let unready_after = killed.elapsed();
    group.wait_promoted(FAILOVER_TIMEOUT).await;
    let promoted_after = killed.elapsed();
    wait_ready(&client, &gate, 200, FAILOVER_TIMEOUT).await;
    let ready_after = killed.elapsed();

    // After: revocations keep working, old and new.
    let second = format!("e2e-second-{run}");
    assert_eq!(
        client.auth(&gate, None, Some(&second)).await,
        (200, String::new())
    );
    revoke(&client, &gate, &second).await;
    assert_eq!(client.auth(&gate, None, Some(&second)).await, refused);
    assert_eq!(client.auth(&gate, None, Some(&first)).await, refused);

    // Both are in the new master: a fresh replica loads them from it.
    let other = Telegate::start_named(&work, "telegate-2", &config).await;
    for session in [&first, &second] {
        let probe = || async {
            match client.auth(&other, None, Some(session)).await {
                answer if answer == refused => Ok(()),
                answer => Err(format!("{answer:?}")),
            }
        };
        poll_until(
            "the second replica to refuse the revoked session",
            Duration::from_secs(5),
            probe,
        )
        .await
        .unwrap_or_else(|err| panic!("{session}: {err}"));
    }
    eprintln!(
        "e2e_sentinel: master killed; /ready 503 after {unready_after:?}, replica promoted after \
         {promoted_after:?}, /ready 200 after {ready_after:?}"
    );
}

/// Revokes `session` with the admin token.
async fn revoke(client: &Client, gate: &Telegate, session: &str) {
    let url = gate.url(&format!("/sessions/{session}"));
    let (status, body) = client.admin(reqwest::Method::DELETE, url, None).await;
    assert_eq!((status, &body["revoked"]), (200, &json!(true)), "{body}");
}

/// Polls `/ready` until it answers `status` (503 with `store_unavailable`).
async fn wait_ready(client: &Client, gate: &Telegate, status: u16, timeout: Duration) {
    let url = gate.url("/ready");
    let what = format!("/ready = {status}");
    poll_until(&what, timeout, || async {
        let response = client
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let reply = Reply::of(response).await;
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        match (reply.status, body["reason"].as_str()) {
            (200, _) if status == 200 => Ok(()),
            (503, Some("store_unavailable")) if status == 503 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
}
