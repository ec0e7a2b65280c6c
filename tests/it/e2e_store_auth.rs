//! Password-protected session stores (issue 13, item 5: the Redis and
//! PostgreSQL passwords from files). Redis: the real `redis-server` with `requirepass` and an ACL user limited
//! to telegate's key prefix; telegate gets each password only through
//! `TELEGATE_SESSIONS__REDIS_PASSWORD_FILE` (the Docker secrets convention;
//! `sessions.redis_url` itself holds none).
//!
//! 1. The default user's password from a file: `/ready` 200, a token issued
//!    is stored in Redis (read back with `redis-cli` and the password) and
//!    opens `/auth`; revoked, it is refused.
//! 2. The ACL user (`redis://telegate@…` plus its password file) on the same
//!    prefix: ready, and it honours the token the first gate issued.
//! 3. A wrong password in the file: `/ready` 503 `store_unavailable`, a log
//!    line that says the store refused the credentials, and neither the
//!    wrong nor the right password anywhere in the log.
//!
//! 4. PostgreSQL (whose right password from `sessions.postgres_password_file`
//!    `e2e_postgres` runs on): a wrong one in the file is `/ready` 503 with
//!    the same kind of line, and no password in the log.
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_store_auth -- --nocapture`.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::e2e_redis::{gate_config, setup, Client};
use crate::support::postgres::Postgres;
use crate::support::stack::{keygen, redis_command, Telegate};
use crate::support::tools::Tools;
use crate::support::{free_port, poll_until, require_tools, Proc, Reply, Workdir};

/// The key prefix, and the only keys the ACL user may touch.
const PREFIX: &str = "authtest:";
const ACL_USER: &str = "telegate";

fn gate(port: u16, user: &str) -> String {
    gate_config(&format!(
        "redis_url = \"redis://{user}127.0.0.1:{port}/0\"\nredis_prefix = \"{PREFIX}\"\nflush_interval_ms = 1000"
    ))
}

/// `redis-cli` as the default user, one command; its stdout.
fn redis_cli(tools: &Tools, port: u16, password: &str, args: &[&str]) -> String {
    let output = Command::new(tools.path("redis-cli"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--no-auth-warning",
        ])
        .args(["-a", password])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_password_protected_redis_through_password_files() {
    let Some(tools) = require_tools("e2e_store_auth", &["redis-server", "redis-cli"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-redis-auth");
    let client = setup(&work);
    // Characters a URL must escape: the file's password is encoded into it.
    let password = format!("p@ss:w/rd?#{}", &keygen()[..16]);
    let acl_password = format!("acl%pw {}", &keygen()[..16]);
    let port = free_port();
    let mut redis = redis_command(&tools, &work, port);
    redis.args(["--requirepass", &password]);
    redis.args(["--user", ACL_USER, "on", &format!(">{acl_password}")]);
    redis.args([&format!("~{PREFIX}*"), "&*", "+@all"]);
    let mut redis = Proc::spawn("redis-server", redis, work.path().join("redis.log"));
    redis
        .wait_for_log("Ready to accept connections", Duration::from_secs(20))
        .await;
    let unauthenticated = Command::new(tools.path("redis-cli"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "PING"])
        .output()
        .expect("run redis-cli");
    assert!(
        String::from_utf8_lossy(&unauthenticated.stdout).contains("NOAUTH"),
        "Redis must refuse a client without the password: {unauthenticated:?}"
    );

    // 1. The default user, its password from a file only.
    let file = work.write("redis_password", &format!("{password}\n"));
    let env = [(
        "TELEGATE_SESSIONS__REDIS_PASSWORD_FILE",
        file.to_str().unwrap(),
    )];
    let a = Telegate::start_named_with_env(&work, "tg-a", &gate(port, ""), &env).await;
    let (status, issued) = client
        .admin(
            reqwest::Method::POST,
            a.url("/sessions"),
            Some(json!({"user_id": "alice"})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().expect("token").to_owned();
    let session_id = issued["session_id"].as_str().expect("id").to_owned();
    let keys = redis_cli(
        &tools,
        port,
        &password,
        &["--scan", "--pattern", "authtest:*"],
    );
    assert!(
        !keys.trim().is_empty(),
        "the issued session is in the protected Redis"
    );
    assert_eq!(client.auth(&a, Some(&token), None).await.0, 200);

    // 2. The ACL user on the same prefix honours that token.
    let acl_file = work.write("acl_password", &format!("{acl_password}\n"));
    let env = [(
        "TELEGATE_SESSIONS__REDIS_PASSWORD_FILE",
        acl_file.to_str().unwrap(),
    )];
    let b = Telegate::start_named_with_env(&work, "tg-b", &gate(port, "telegate@"), &env).await;
    assert_eq!(client.auth(&b, Some(&token), None).await.0, 200);

    // Revoked through one, refused by both.
    let revoke = a.url(&format!("/sessions/{session_id}"));
    let (status, revoked) = client.admin(reqwest::Method::DELETE, revoke, None).await;
    assert_eq!(status, 200, "{revoked}");
    // The other replica learns it through Redis (within its 2 s sync).
    for gate in [&a, &b] {
        poll_until(
            "the revoked token refused",
            Duration::from_secs(5),
            || async {
                match client.auth(gate, Some(&token), None).await {
                    (403, reason) if reason == "session_revoked" => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    }

    // 3. A wrong password: not ready, said clearly, never logged.
    let wrong_password = format!("wrong-{}", &keygen()[..16]);
    let wrong = work.write("wrong_password", &format!("{wrong_password}\n"));
    let env = [(
        "TELEGATE_SESSIONS__REDIS_PASSWORD_FILE",
        wrong.to_str().unwrap(),
    )];
    let c = Telegate::start_unready(&work, "tg-c", &gate(port, ""), &env).await;
    let line = refused(&client, &c, "redis").await;
    assert!(line.contains("authentication failed"), "{line}");
    for (name, gate) in [("tg-a", &a), ("tg-b", &b), ("tg-c", &c)] {
        let text = gate.proc.log_text();
        for secret in [&password, &acl_password, &wrong_password] {
            assert!(!text.contains(secret.as_str()), "{name} logged a password");
        }
        // Nor percent-encoded, as it stands in the URL.
        assert!(
            !text.contains("p%40ss"),
            "{name} logged the encoded password"
        );
    }
    drop((a, b, c, redis));
}

/// `/ready` of `gate`: status and `reason`.
async fn ready(client: &Client, gate: &Telegate) -> (u16, String) {
    let reply = Reply::of(
        client
            .http
            .get(gate.url("/ready"))
            .send()
            .await
            .expect("GET /ready"),
    )
    .await;
    (reply.status, reply.reason().unwrap_or_default())
}

/// A gate whose store refuses its password: `/ready` 503
/// `store_unavailable`, and one error line saying so; that line.
async fn refused(client: &Client, gate: &Telegate, store: &str) -> String {
    poll_until(
        "/ready = 503 store_unavailable",
        Duration::from_secs(10),
        || async {
            match ready(client, gate).await {
                (503, reason) if reason == "store_unavailable" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|err| panic!("{err}\n{}", gate.proc.log_text()));
    let needle = "refused telegate's credentials";
    let line = poll_until(
        "the refused credentials logged",
        Duration::from_secs(5),
        || async {
            let log = gate.proc.log_text();
            match log.lines().find(|l| l.contains(needle)) {
                Some(line) => Ok(line.to_string()),
                None => Err(log),
            }
        },
    )
    .await
    .unwrap_or_else(|log| panic!("no line says the credentials were refused:\n{log}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains(&format!("session store ({store})")), "{line}");
    line
}

#[tokio::test]
async fn a_wrong_postgres_password_file_is_not_ready_and_said_so() {
    let Some(tools) = require_tools("e2e_store_auth", &["initdb", "postgres"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-postgres-auth");
    let client = setup(&work);
    let postgres = Postgres::start(&tools, &work).await;
    let right = std::fs::read_to_string(postgres.password_file()).unwrap();
    let wrong_password = format!("wrong-{}", &keygen()[..16]);
    let wrong = work.write("wrong_password", &format!("{wrong_password}\n"));
    let config = format!(
        "[[auth.keys]]\nid = \"e2e\"\nfile = \"e2e.key\"\n[sessions]\nstore = \"postgres\"\n\
         postgres_url = \"{}\"\npostgres_password_file = \"{}\"\n[admin]\ntoken_file = \"admin.token\"\n",
        postgres.url(),
        wrong.display()
    );
    let gate = Telegate::start_unready(&work, "tg-pg", &config, &[]).await;
    let line = refused(&client, &gate, "postgres").await;
    assert!(line.contains("28P01"), "the server's SQLSTATE: {line}");
    let text = gate.proc.log_text();
    for secret in [right.trim(), wrong_password.as_str()] {
        assert!(!text.contains(secret), "the log holds a password");
    }
    drop((gate, postgres));
}
