//! Encryption at rest of the PostgreSQL store (`[sessions.encryption]`)
//! against a real PostgreSQL: the rows (read back raw, every column as
//! text) hold no client address, user agent, user id or metadata in clear,
//! a token's touch included; a restart with the same key reads them; a
//! rotated list reads them and the background pass seals them again under
//! the new key; with a wrong key (or sealed rows and no key) the start
//! fails with the reason named.
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it store_sealed_pg`.

use std::time::Duration;

use crate::store_sealed::{
    assert_readable, assert_start_fails, workdir, write_sessions, ADDRESS, ADMIN, AGENT, BASE,
    META, USER,
};
use crate::support::postgres::Postgres;
use crate::support::stack::Telegate;
use crate::support::*;

fn config(postgres: &Postgres, key_files: &[&str]) -> String {
    let files: Vec<String> = key_files.iter().map(|f| format!("\"{f}\"")).collect();
    format!(
        r#"{BASE}
[policies.app]
methods = ["session"]
[sessions]
store = "postgres"
postgres_url = "{url}"
postgres_password_file = "{file}"
flush_interval_ms = 50
store_metadata = true
[sessions.encryption]
key_files = [{files}]
"#,
        url = postgres.url(),
        file = postgres.password_file().display(),
        files = files.join(", ")
    )
}

/// Every row of `sessions` and `statics` as text, and the `seal` ids seen.
async fn raw_rows(postgres: &Postgres) -> (String, Vec<Option<String>>) {
    let password = std::fs::read_to_string(postgres.password_file()).unwrap();
    let mut config: tokio_postgres::Config = postgres.url().parse().unwrap();
    config.password(password.trim());
    config.connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let mut text = String::new();
    for query in [
        "SELECT t::text FROM sessions t",
        "SELECT t::text FROM statics t",
    ] {
        for row in client.query(query, &[]).await.unwrap() {
            text.push_str(&row.get::<_, String>(0));
            text.push('\n');
        }
    }
    let seals = client
        .query("SELECT DISTINCT seal FROM sessions ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    (text, seals)
}

fn assert_no_clear(text: &str) {
    assert!(text.lines().count() >= 3, "rows were read: {text}");
    for value in [ADDRESS, AGENT, USER, META] {
        assert!(!text.contains(value), "{value} in clear in: {text}");
    }
}

/// Waits until every session row names one storage key, other than `not`.
async fn one_seal(postgres: &Postgres, not: Option<&str>) -> String {
    poll_until(
        "every row sealed under one key",
        Duration::from_secs(10),
        || async {
            match raw_rows(postgres).await.1.as_slice() {
                [Some(id)] if Some(id.as_str()) != not => Ok(id.clone()),
                seals => Err(format!("{seals:?}")),
            }
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn postgres_rows_are_sealed_rotate_and_refuse_a_wrong_key() {
    let Some(tools) = require_tools("store_sealed_pg", &["initdb", "postgres"]) else {
        return;
    };
    let work = workdir("sealed-pg");
    let postgres = Postgres::start(&tools, &work).await;
    let first = Telegate::start(&work, &config(&postgres, &["old.key"])).await;
    let issued = write_sessions(&first).await;
    // A token check writes the client too (sealed after the check).
    let created = http_client()
        .post(first.url("/sessions"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "user_id": USER }))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = created.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    let checked = http_client()
        .get(first.url("/auth?policy=app"))
        .bearer_auth(&token)
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Uri", "/app")
        .header("X-Forwarded-For", ADDRESS)
        .header("User-Agent", AGENT)
        .send()
        .await
        .unwrap();
    assert_eq!(checked.status(), 200);
    assert_readable(&first, &issued).await;
    let old_id = one_seal(&postgres, None).await;
    let (text, _) = raw_rows(&postgres).await;
    assert_no_clear(&text);
    drop(first);

    let again = Telegate::start(&work, &config(&postgres, &["old.key"])).await;
    assert_readable(&again, &issued).await;
    drop(again);

    let rotated = Telegate::start(&work, &config(&postgres, &["new.key", "old.key"])).await;
    assert_readable(&rotated, &issued).await;
    // The background pass seals every row again under the new key.
    one_seal(&postgres, Some(&old_id)).await;
    let (text, _) = raw_rows(&postgres).await;
    assert_no_clear(&text);
    assert!(
        !text.contains(&format!("{old_id}:")),
        "a value under the old key: {text}"
    );
    drop(rotated);
    let new_only = Telegate::start(&work, &config(&postgres, &["new.key"])).await;
    assert_readable(&new_only, &issued).await;
    drop(new_only);

    // The old key alone does not open the rows: the start fails, naming
    // the reason (PostgreSQL is up, so the check runs before serving).
    assert_start_fails(
        &work,
        &config(&postgres, &["old.key"]),
        "which is not in sessions.encryption.key_files",
    )
    .await;
    // Sealed rows and no key at all: refused too, never read in clear.
    let unsealed = config(&postgres, &[]).replace("[sessions.encryption]\nkey_files = []\n", "");
    assert!(!unsealed.contains("encryption"), "{unsealed}");
    assert_start_fails(
        &work,
        &unsealed,
        "but sessions.encryption is not configured",
    )
    .await;
}
