//! Encryption at rest of the embedded store (`[sessions.encryption]`),
//! through the real binary: the file and its WAL hold no client address,
//! user agent, user id or metadata in clear; a restart with the same key
//! reads them; a rotated list (new key first) reads the old rows and seals
//! them again; a wrong or missing key fails the start naming the reason;
//! rows written in clear before encryption was turned on are sealed at the
//! first start with a key. The same holds for a ban's subject (a client
//! address): sealed, read back, re-sealed at a rotation, lifted on disk.

use std::path::Path;
use std::time::Duration;

use crate::support::otlp::unix_now;
use crate::support::stack::Telegate;
use crate::support::*;

pub(crate) const ADMIN: &str = "admin-token-0123456789abcdef";
/// The private values the rows must not show in clear.
pub(crate) const ADDRESS: &str = "198.51.100.77";
pub(crate) const AGENT: &str = "SealProbeAgent/7.3";
pub(crate) const USER: &str = "user-seal-probe";
pub(crate) const META: &str = "meta-seal-probe";

/// The signing key and the admin token every sealed-store test serves with.
pub(crate) const BASE: &str = r#"
[[auth.keys]]
id = "a"
file = "a.key"
[admin]
token_file = "admin.token"
"#;

fn config(key_files: &[&str]) -> String {
    let files: Vec<String> = key_files.iter().map(|f| format!("\"{f}\"")).collect();
    let encryption = if key_files.is_empty() {
        String::new()
    } else {
        format!(
            "[sessions.encryption]\nkey_files = [{}]\n",
            files.join(", ")
        )
    };
    format!(
        r#"{BASE}
[sessions]
store = "embedded"
data_dir = "data"
flush_interval_ms = 50
store_metadata = true
[bans]
refusals = 2
within_secs = 60
ban_secs = 600
max_ban_secs = 600
{encryption}"#
    )
}

/// A workdir with two storage keys from `telegate keygen --purpose storage`.
pub(crate) fn workdir(name: &str) -> Workdir {
    let work = Workdir::new(name);
    work.write("a.key", &format!("{SECRET_A}\n"));
    work.write("admin.token", &format!("{ADMIN}\n"));
    for key in ["old.key", "new.key"] {
        let output = telegate_command()
            .args(["keygen", "--purpose", "storage"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.starts_with("telegate-storage-key-v1:"), "{text}");
        work.write(key, &text);
    }
    work
}

/// A signed session seen from ADDRESS with AGENT, and an issued session
/// for USER with META; returns the issued session's id.
pub(crate) async fn write_sessions(telegate: &Telegate) -> String {
    let headers = signed(SECRET_A, "POST", "/v1/traces", unix_now(), SESSION);
    let seen = add_headers(telegate_get(telegate, "/auth"), &headers)
        .header("X-Forwarded-For", ADDRESS)
        .header("User-Agent", AGENT)
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), 200);
    let created = http_client()
        .post(telegate.url("/sessions"))
        .bearer_auth(ADMIN)
        .header("X-Forwarded-For", ADDRESS)
        .header("User-Agent", AGENT)
        .json(&serde_json::json!({ "user_id": USER, "metadata": { "probe": META } }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let body: serde_json::Value = created.json().await.unwrap();
    body["session_id"].as_str().unwrap().to_string()
}

pub(crate) fn telegate_get(telegate: &Telegate, path: &str) -> reqwest::RequestBuilder {
    http_client().get(telegate.url(path))
}

/// Both sessions read back with their private fields.
pub(crate) async fn assert_readable(telegate: &Telegate, issued: &str) {
    for id in [SESSION, issued] {
        let response = telegate_get(telegate, &format!("/sessions/{id}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(text.contains(AGENT), "{text}");
        if id == issued {
            // An admin-issued session keeps no client address.
            assert!(text.contains(USER) && text.contains(META), "{text}");
        } else {
            assert!(text.contains(ADDRESS), "{text}");
        }
    }
    let users = telegate_get(telegate, &format!("/sessions?user={USER}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let text = users.text().await.unwrap();
    assert!(text.contains(issued), "a user's sessions are found: {text}");
}

/// Forged signatures from ADDRESS until it is banned (bounded): the ban's
/// subject is a client address the file must not show either.
async fn ban_address(telegate: &Telegate) {
    let forged = "00".repeat(32);
    for _ in 0..5 {
        let headers = signed(&forged, "POST", "/v1/traces", unix_now(), SESSION);
        let response = add_headers(telegate_get(telegate, "/auth"), &headers)
            .header("X-Forwarded-For", ADDRESS)
            .send()
            .await
            .unwrap();
        if reason_of(response).await == (403, "banned".into()) {
            return;
        }
    }
    panic!("two refusals did not ban {ADDRESS}");
}

/// The ban on ADDRESS is in force (read back from the file at the start).
async fn assert_banned(telegate: &Telegate) {
    let response = telegate_get(telegate, "/bans")
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains(&format!("address:{ADDRESS}")), "{text}");
}

/// `DELETE path` with the admin token must answer 200.
async fn admin_delete(telegate: &Telegate, path: &str) {
    let response = http_client()
        .delete(telegate.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

/// SIGTERM (the last write-behind runs), then the raw bytes of the file
/// and its WAL must not show any private value.
async fn stop_and_assert_sealed(telegate: Telegate, data: &Path) {
    let mut telegate = telegate;
    let status = telegate.proc.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    let mut bytes = std::fs::read(data.join("sessions.sqlite3")).unwrap();
    bytes.extend(std::fs::read(data.join("sessions.sqlite3-wal")).unwrap_or_default());
    for value in [ADDRESS, AGENT, USER, META] {
        let found = bytes.windows(value.len()).any(|w| w == value.as_bytes());
        assert!(!found, "{value} is in the store's file in clear");
    }
}

/// `telegate serve` must exit 1 with `reason` in its log.
pub(crate) async fn assert_start_fails(work: &Workdir, config: &str, reason: &str) {
    let path = work.write("bad.toml", &format!("listen = \"127.0.0.1:0\"\n{config}"));
    let mut command = telegate_command();
    command
        .args(["serve", "--config"])
        .arg(&path)
        .current_dir(work.path());
    let mut proc = Proc::spawn("telegate", command, work.path().join("bad.log"));
    let status = proc.wait_exit(Duration::from_secs(10)).await;
    let log = proc.log_text();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains(reason), "{reason:?} not in: {log}");
}

#[tokio::test]
async fn sealed_rows_read_back_rotate_and_refuse_a_wrong_key() {
    let work = workdir("sealed-rotate");
    let data = work.path().join("data");
    let first = Telegate::start(&work, &config(&["old.key"])).await;
    let issued = write_sessions(&first).await;
    ban_address(&first).await;
    assert_readable(&first, &issued).await;
    stop_and_assert_sealed(first, &data).await;

    let again = Telegate::start(&work, &config(&["old.key"])).await;
    assert_readable(&again, &issued).await;
    assert_banned(&again).await;
    stop_and_assert_sealed(again, &data).await;

    // Rotation: the new key seals, the old one still opens (and the rows
    // are sealed again under the new key at this start).
    let rotated = Telegate::start(&work, &config(&["new.key", "old.key"])).await;
    assert_readable(&rotated, &issued).await;
    assert_banned(&rotated).await;
    stop_and_assert_sealed(rotated, &data).await;
    let new_only = Telegate::start(&work, &config(&["new.key"])).await;
    assert_readable(&new_only, &issued).await;
    assert_banned(&new_only).await;
    // A lift deletes the sealed row: the next start has no ban.
    admin_delete(&new_only, &format!("/bans/address:{ADDRESS}")).await;
    // A user's sessions are found on disk by the sealed user id: deleted
    // there too, so the next start does not load them back.
    admin_delete(&new_only, &format!("/users/{USER}/sessions")).await;
    drop(new_only);
    let after = Telegate::start(&work, &config(&["new.key"])).await;
    let gone = telegate_get(&after, &format!("/sessions/{issued}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let bans = telegate_get(&after, "/bans")
        .bearer_auth(ADMIN)
        .send()
        .await;
    let bans = bans.unwrap().text().await.unwrap();
    assert!(
        !bans.contains(ADDRESS),
        "the lift held across a restart: {bans}"
    );
    drop(after);

    assert_start_fails(
        &work,
        &config(&["old.key"]),
        "which is not in sessions.encryption.key_files",
    )
    .await;
    assert_start_fails(&work, &config(&[]), "sessions.encryption is not configured").await;
}

#[tokio::test]
async fn rows_written_in_clear_are_sealed_at_the_first_start_with_a_key() {
    let work = workdir("sealed-upgrade");
    let data = work.path().join("data");
    let clear = Telegate::start(&work, &config(&[])).await;
    let issued = write_sessions(&clear).await;
    ban_address(&clear).await;
    let mut clear = clear;
    assert!(clear
        .proc
        .terminate(Duration::from_secs(10))
        .await
        .success());
    let bytes = std::fs::read(data.join("sessions.sqlite3")).unwrap();
    let wal = std::fs::read(data.join("sessions.sqlite3-wal")).unwrap_or_default();
    let shows = |value: &str| {
        [&bytes, &wal]
            .iter()
            .any(|b| b.windows(value.len()).any(|w| w == value.as_bytes()))
    };
    assert!(
        shows(AGENT),
        "the clear store shows the agent (the probe works)"
    );

    let sealed = Telegate::start(&work, &config(&["old.key"])).await;
    assert_readable(&sealed, &issued).await;
    assert_banned(&sealed).await;
    stop_and_assert_sealed(sealed, &data).await;
}
