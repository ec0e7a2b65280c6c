//! The embedded session store across restarts of the real binary: each
//! test serves `sessions.store = "embedded"` from its own workdir (the data
//! dir is relative to it), stops telegate (SIGKILL where the state must
//! already be on disk, SIGTERM where it is written behind) and starts it
//! again on the same data dir.

use std::time::Duration;

use crate::support::otlp::unix_now;
use crate::support::stack::Telegate;
use crate::support::*;

const ADMIN: &str = "admin-token-0123456789abcdef";

/// Signed sessions, the admin API, static headers (a 2 s window so a set
/// leaves it within the test) and the embedded store under `./data`.
const CONFIG: &str = r#"
[auth]
max_skew_secs = 2
[auth.static_headers]
max_age_secs = 600
pin_ip = false
[[auth.keys]]
id = "a"
file = "a.key"
[admin]
token_file = "admin.token"
[sessions]
store = "embedded"
data_dir = "data"
flush_interval_ms = 50
"#;

fn workdir(name: &str) -> Workdir {
    let work = Workdir::new(name);
    work.write("a.key", &format!("{SECRET_A}\n"));
    work.write("admin.token", &format!("{ADMIN}\n"));
    work
}

/// `GET /auth` as Traefik sends it for a client's export signed at `timestamp`.
async fn auth(telegate: &Telegate, session: &str, timestamp: i64) -> reqwest::Response {
    let headers = signed(SECRET_A, "POST", "/v1/traces", timestamp, session);
    add_headers(http_client().get(telegate.url("/auth")), &headers)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_revoked_session_stays_refused_after_a_kill() {
    let work = workdir("store-revoke");
    let first = Telegate::start(&work, CONFIG).await;
    assert_eq!(auth(&first, SESSION, unix_now()).await.status(), 200);
    let revoked = http_client()
        .delete(first.url(&format!("/sessions/{SESSION}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200, "{:?}", revoked.text().await);
    // SIGKILL: nothing is flushed on the way out; the revocation was
    // committed before the API answered.
    drop(first);
    let second = Telegate::start(&work, CONFIG).await;
    let response = auth(&second, SESSION, unix_now()).await;
    assert_eq!(reason_of(response).await, (403, "session_revoked".into()));
}

#[tokio::test]
async fn an_issued_token_opens_its_session_after_a_kill() {
    let work = workdir("store-token");
    let config = format!("{CONFIG}\n[policies.app]\nmethods = [\"session\"]\n");
    let first = Telegate::start(&work, &config).await;
    let created = http_client()
        .post(first.url("/sessions"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "user_id": "u1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let body: serde_json::Value = created.json().await.unwrap();
    let token = body["token"].as_str().expect("a token").to_string();
    let session_id = body["session_id"].as_str().unwrap().to_string();
    drop(first);
    let second = Telegate::start(&work, &config).await;
    let response = http_client()
        .get(second.url("/auth?policy=app"))
        .bearer_auth(&token)
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Uri", "/app")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let opened = response.headers().get("x-auth-session-id").cloned();
    assert_eq!(opened.unwrap().to_str().unwrap(), session_id);
}

#[tokio::test]
async fn a_static_header_first_sighting_survives_a_restart() {
    let work = workdir("store-static");
    let first = Telegate::start(&work, CONFIG).await;
    let signed_at = unix_now();
    assert_eq!(auth(&first, SESSION, signed_at).await.status(), 200);
    let mut first = first;
    // SIGTERM: the sighting is written behind, and the last flush runs.
    let status = first.proc.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    let second = Telegate::start(&work, CONFIG).await;
    // Wait until the set's timestamp has left the 2 s window.
    poll_until("the timestamp to go stale", Duration::from_secs(10), || {
        let stale = unix_now() > signed_at + 2;
        std::future::ready(if stale { Ok(()) } else { Err("fresh".into()) })
    })
    .await
    .unwrap();
    assert_eq!(
        auth(&second, SESSION, signed_at).await.status(),
        200,
        "the remembered set passes after the window"
    );
    let metrics = second.metrics().await;
    assert_eq!(
        sample(&metrics, "telegate_auth_static_accepted_total"),
        Some(1.0)
    );
    // A set signed at the same second but never seen is refused: the pass
    // above came from the sighting on disk.
    let other = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
    let response = auth(&second, other, signed_at).await;
    assert_eq!(reason_of(response).await, (401, "stale_timestamp".into()));
}

#[tokio::test]
async fn a_corrupt_store_file_fails_the_start_naming_it() {
    let work = workdir("store-corrupt");
    std::fs::create_dir(work.path().join("data")).unwrap();
    let file = work.path().join("data/sessions.sqlite3");
    std::fs::write(&file, vec![0x5a; 8192]).unwrap();
    let config = work.write(
        "telegate.toml",
        &format!("listen = \"127.0.0.1:0\"\n{CONFIG}"),
    );
    let mut command = telegate_command();
    command
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(work.path());
    let mut proc = Proc::spawn("telegate", command, work.path().join("telegate.log"));
    let status = proc.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1), "{}", proc.log_text());
    let log = proc.log_text();
    assert!(log.contains("data/sessions.sqlite3"), "{log}");
    assert!(!log.contains("telegate serving"), "{log}");
}

/// A quota of three requests per hour per session, and bans after three
/// refusals: both must hold across restarts (issue 11, for issue 10's state).
const ABUSE: &str = r#"
[[quotas]]
scope = "session"
unit = "requests"
rate = 3
period_secs = 3600
[bans]
refusals = 3
within_secs = 60
ban_secs = 600
"#;

#[tokio::test]
async fn a_spent_quota_and_a_ban_hold_after_a_restart_and_a_lift_after_a_kill() {
    let work = workdir("store-abuse");
    let config = format!("{CONFIG}{ABUSE}");
    let mut first = Telegate::start(&work, &config).await;
    for _ in 0..3 {
        assert_eq!(auth(&first, SESSION, unix_now()).await.status(), 200);
    }
    let response = auth(&first, SESSION, unix_now()).await;
    assert_eq!(reason_of(response).await, (429, "quota_exceeded".into()));
    // SIGTERM: the windows are written behind, and the last flush runs.
    assert!(first
        .proc
        .terminate(Duration::from_secs(10))
        .await
        .success());

    let mut second = Telegate::start(&work, &config).await;
    let response = auth(&second, SESSION, unix_now()).await;
    assert_eq!(
        reason_of(response).await,
        (429, "quota_exceeded".into()),
        "the hour's quota was spent before the restart"
    );
    let other = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
    assert_eq!(auth(&second, other, unix_now()).await.status(), 200);
    // Forged signatures from this address until it is banned (bounded).
    let forged = "00".repeat(32);
    let mut banned = false;
    for _ in 0..10 {
        let headers = signed(&forged, "POST", "/v1/traces", unix_now(), other);
        let response = add_headers(http_client().get(second.url("/auth")), &headers)
            .send()
            .await
            .unwrap();
        if reason_of(response).await == (403, "banned".into()) {
            banned = true;
            break;
        }
    }
    assert!(banned, "three refusals ban the address");
    assert!(second
        .proc
        .terminate(Duration::from_secs(10))
        .await
        .success());

    let third = Telegate::start(&work, &config).await;
    let response = auth(&third, other, unix_now()).await;
    assert_eq!(
        reason_of(response).await.0,
        403,
        "the ban holds after a restart"
    );
    let lifted = http_client()
        .delete(third.url("/bans/address:127.0.0.1"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(lifted.status(), 200, "{:?}", lifted.text().await);
    // SIGKILL: the lift was committed before the API answered.
    drop(third);
    let fourth = Telegate::start(&work, &config).await;
    assert_eq!(auth(&fourth, other, unix_now()).await.status(), 200);
}
