//! The PostgreSQL session store end to end: two real telegate binaries on
//! one real PostgreSQL database, behind real Traefik (the topology of
//! `e2e_redis`, whose client and Traefik config it reuses).
//!
//! A token issued through Traefik opens `/auth` on both replicas, and a
//! logout through one kills it on both at once; a signed session seen by
//! both adds up; a revocation through one replica's admin API is refused
//! by the other within 2 s (measured, bounded poll).
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_postgres:: -- --nocapture`.

use std::time::{Duration, Instant};

use crate::e2e_redis::{auth_successes, setup, traefik_in_front};
use crate::support::postgres::Postgres;
use crate::support::stack::{keygen, Rotel, Telegate};
use crate::support::{poll_until, require_tools, Workdir, POLL_INTERVAL};
use serde_json::json;

/// How long a revocation may take to reach another replica.
const PROPAGATION: Duration = Duration::from_secs(2);

fn config(postgres: &Postgres) -> String {
    format!(
        r#"
trusted_proxies = ["127.0.0.1/32"]
[[auth.keys]]
id = "e2e"
file = "e2e.key"
[rate_limit]
per_second = 100000
burst = 100000
[policies.app]
methods = ["hmac", "session"]
[sessions]
store = "postgres"
postgres_url = "{url}"
postgres_password_file = "{file}"
flush_interval_ms = 1000
[admin]
token_file = "admin.token"
[log]
level = "info"
"#,
        url = postgres.url(),
        file = postgres.password_file().display()
    )
}

#[tokio::test]
async fn two_replicas_on_one_postgres_behind_traefik() {
    let Some(tools) = require_tools(
        "e2e_postgres",
        &["traefik", "rotel-agent", "initdb", "postgres"],
    ) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-postgres");
    let client = setup(&work);
    let postgres = Postgres::start(&tools, &work).await;
    let rotel = Rotel::start(&tools, &work).await;
    let config = config(&postgres);
    let a = Telegate::start_named(&work, "tg-a", &config).await;
    let b = Telegate::start_named(&work, "tg-b", &config).await;
    let traefik = traefik_in_front(&tools, &work, [&a, &b], &rotel).await;

    // A token issued through Traefik opens /auth on both; a logout through
    // one replica kills it on both at once (one query per token check).
    let (status, issued) = client
        .admin(
            reqwest::Method::POST,
            traefik.url("/sessions"),
            Some(json!({"user_id": "alice"})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().expect("token").to_owned();
    let session_id = issued["session_id"].as_str().expect("id").to_owned();
    for gate in [&a, &b] {
        assert_eq!(
            client.auth(gate, Some(&token), None).await,
            (200, String::new())
        );
    }
    assert_eq!(client.export(&traefik, Some(&token), None).await, 200);
    let logout = client
        .http
        .delete(a.url(&format!("/sessions/{session_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 200);
    for gate in [&a, &b] {
        assert_eq!(
            client.auth(gate, Some(&token), None).await,
            (401, "invalid_session".into())
        );
    }

    // A signed session seen by both replicas (Traefik balances /auth).
    let signed = format!("e2e-signed-{}", &keygen()[..12]);
    let before = (auth_successes(&a).await, auth_successes(&b).await);
    for _ in 0..10 {
        assert_eq!(client.export(&traefik, None, Some(&signed)).await, 200);
    }
    let after = (auth_successes(&a).await, auth_successes(&b).await);
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "both replicas should have seen {signed}: {before:?} -> {after:?}"
    );
    let read = a.url(&format!("/sessions/{signed}"));
    poll_until(
        "10 requests summed over both replicas",
        Duration::from_secs(5),
        || async {
            let (status, record) = client.admin(reqwest::Method::GET, read.clone(), None).await;
            match (status, record["requests"].as_u64()) {
                (200, Some(10)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|err| panic!("{err}"));

    // Revoked through a's admin API: b refuses it within 2 s.
    assert_eq!(
        client.auth(&b, None, Some(&signed)).await,
        (200, String::new())
    );
    let (status, revoked) = client.admin(reqwest::Method::DELETE, read, None).await;
    assert_eq!(
        (status, &revoked["revoked"]),
        (200, &json!(true)),
        "{revoked}"
    );
    let revoked_at = Instant::now();
    let took = loop {
        if client.auth(&b, None, Some(&signed)).await == (403, "session_revoked".into()) {
            break revoked_at.elapsed();
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "tg-b never refused the session revoked through tg-a"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    eprintln!("e2e_postgres: revocation through tg-a enforced by tg-b after {took:?}");
    assert!(
        took <= PROPAGATION,
        "tg-b took {took:?} to enforce the revocation"
    );
    assert_eq!(
        client.export(&traefik, None, Some(&signed)).await,
        403,
        "refused through Traefik, whichever replica answers"
    );
}
