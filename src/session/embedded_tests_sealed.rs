//! The embedded store's sealed rows on disk: a session seen again with
//! the same private fields is updated without sealing again (clear and
//! sealed alike), a changed field is sealed again; rows of the earlier
//! per-value format (a version 2 file) and blobs of format 2
//! (ChaCha20-Poly1305) read and are re-sealed in format 3 at the start; a
//! tampered or moved blob fails the start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::OptionalExtension;

use super::*;
use crate::config::EncryptionSettings;
use crate::pipeline::metrics::Metrics;
use crate::session::conformance::{issued, live, settings, sighting, T0};
use crate::session::seal::{self, Private};

fn open(dir: &Path, now: i64, key: Option<&Path>) -> Result<EmbeddedStore, StoreError> {
    let metrics = Metrics::new("test").unwrap();
    let embedded = EmbeddedSettings {
        data_dir: dir.to_path_buf(),
        // Flushed by the tests themselves.
        flush_interval: Duration::from_secs(3600),
        encryption: key.map(|file| EncryptionSettings {
            key_files: vec![file.to_path_buf()],
        }),
    };
    EmbeddedStore::open(
        settings(),
        embedded,
        StoreMetrics {
            errors: metrics.store_errors_total.clone(),
            duration: metrics.store_duration_seconds.clone(),
        },
        IntCounter::new("evicted", "test").unwrap(),
        Arc::new(move || now),
    )
}

fn key_file(dir: &Path) -> PathBuf {
    let key = dir.join("storage.key");
    std::fs::write(&key, seal::new_key_text().unwrap()).unwrap();
    key
}

/// A sealed store's file (in `dir`, key `key` in `keys`) holding one
/// signed session, `s1` from 192.0.2.1, written by a flush.
fn sealed_with_one_sighting() -> (tempfile::TempDir, PathBuf, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(keys.path());
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), T0, Some(&key)).unwrap();
    store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
    store.flush().unwrap();
    (keys, key, dir)
}

fn db(dir: &Path) -> Connection {
    Connection::open(dir.join(schema::FILE)).unwrap()
}

/// `id`'s row: (client_ip column, sealed blob, requests).
fn row(dir: &Path, id: &str) -> (Option<String>, Option<Vec<u8>>, i64) {
    db(dir)
        .query_row(
            "SELECT client_ip, sealed, requests FROM sessions WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .unwrap()
        .expect("the row is on disk")
}

#[tokio::test]
async fn a_session_seen_again_keeps_its_sealed_value_until_a_private_field_changes() {
    for sealed in [false, true] {
        let keys = tempfile::tempdir().unwrap();
        let key = sealed.then(|| key_file(keys.path()));
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), T0, key.as_deref()).unwrap();
        store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
        store.flush().unwrap();
        let (ip, blob, requests) = row(dir.path(), "s1");
        assert_eq!(requests, 1);
        assert_eq!(blob.is_some(), sealed);
        assert_eq!(ip.as_deref(), (!sealed).then_some("192.0.2.1"));
        // Seen again from the same client: counters only, the same blob.
        store.observe(&sighting("s1", "192.0.2.1", T0 + 5)).unwrap();
        store.flush().unwrap();
        assert_eq!(row(dir.path(), "s1"), (ip.clone(), blob.clone(), 2));
        // From another address: written in full (sealed anew).
        store.observe(&sighting("s1", "192.0.2.2", T0 + 6)).unwrap();
        store.flush().unwrap();
        let (ip, again, requests) = row(dir.path(), "s1");
        assert_eq!(requests, 3);
        if sealed {
            assert!(ip.is_none() && again.is_some() && again != blob);
        } else {
            assert_eq!(ip.as_deref(), Some("192.0.2.2"));
        }
        // A row deleted behind the store's back is written in full again.
        db(dir.path())
            .execute("DELETE FROM sessions WHERE id = 's1'", [])
            .unwrap();
        store.observe(&sighting("s1", "192.0.2.2", T0 + 7)).unwrap();
        store.flush().unwrap();
        assert_eq!(row(dir.path(), "s1").2, 4);
        drop(store);
        let store = open(dir.path(), T0 + 8, key.as_deref()).unwrap();
        let record = live(&store, "s1", T0 + 8).await;
        assert_eq!(record.client_ip.as_deref(), Some("192.0.2.2"));
        assert_eq!(record.requests, 4);
    }
}

/// Rewrites `id`'s row (a signed session from `sighting("..",
/// "192.0.2.1", ..)`) in the earlier per-value format: each private field
/// `KEYID:base64` in its own column, no blob.
fn earlier_format(dir: &Path, key: &Path, id: &str) {
    let sealer = seal::Sealer::load(&EncryptionSettings {
        key_files: vec![key.to_path_buf()],
    })
    .unwrap();
    let private = Private {
        client_ip: Some("192.0.2.1".into()),
        user_agent: Some("OpenTelemetry .NET".into()),
        ..Private::default()
    };
    let (seal, columns) = seal::to_row(Some(&sealer), id, private);
    db(dir)
        .execute(
            "UPDATE sessions SET client_ip = ?2, user_agent = ?3, sealed = NULL, seal = ?4
             WHERE id = ?1",
            rusqlite::params![id, columns.client_ip, columns.user_agent, seal],
        )
        .unwrap();
}

#[tokio::test]
async fn rows_of_the_earlier_format_read_and_are_sealed_as_one_value_at_the_start() {
    let (_keys, key, dir) = sealed_with_one_sighting();
    // Back to a version 2 file with a per-value row, as the last release
    // wrote it.
    earlier_format(dir.path(), &key, "s1");
    db(dir.path())
        .execute_batch("ALTER TABLE sessions DROP COLUMN sealed; PRAGMA user_version = 2;")
        .unwrap();
    let ip: Option<String> = db(dir.path())
        .query_row("SELECT client_ip FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert!(ip.as_deref().is_some_and(|v| v.contains(':')), "{ip:?}");
    let store = open(dir.path(), T0 + 1, Some(&key)).unwrap();
    let record = live(&store, "s1", T0 + 1).await;
    assert_eq!(record.client_ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(record.user_agent.as_deref(), Some("OpenTelemetry .NET"));
    // Re-sealed before the load returned: one value, no per-value column.
    let (ip, blob, _) = row(dir.path(), "s1");
    assert!(ip.is_none() && blob.is_some(), "{ip:?}");
    let version: i64 = db(dir.path())
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::VERSION);
}

#[tokio::test]
async fn a_tampered_or_moved_blob_fails_the_start() {
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(keys.path());
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), T0, Some(&key)).unwrap();
        store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
        let mut new = issued::new_session("s2", "tok-2", Some("alice"), T0);
        new.client_ip = Some("192.0.2.9".parse().unwrap());
        store.issue(new).await.unwrap();
        store.flush().unwrap();
    }
    let (_, blob, _) = row(dir.path(), "s1");
    let blob = blob.unwrap();
    let set = |id: &str, value: &[u8]| {
        db(dir.path())
            .execute(
                "UPDATE sessions SET sealed = ?2 WHERE id = ?1",
                rusqlite::params![id, value],
            )
            .unwrap();
    };
    let mut flipped = blob.clone();
    flipped[20] ^= 0x01;
    set("s1", &flipped);
    let err = open(dir.path(), T0 + 1, Some(&key)).err().expect("refused");
    assert!(err.0.contains("does not open"), "{err}");
    // Intact again: it opens; moved onto s2: it does not.
    set("s1", &blob);
    let store = open(dir.path(), T0 + 1, Some(&key)).unwrap();
    assert_eq!(
        live(&store, "s2", T0 + 1).await.user_id.as_deref(),
        Some("alice")
    );
    drop(store);
    set("s2", &blob);
    let err = open(dir.path(), T0 + 2, Some(&key)).err().expect("refused");
    assert!(err.0.contains("does not open"), "{err}");
}

/// A format 2 blob (the release before: ChaCha20-Poly1305) for row `id`
/// under the key in `key`, built here from the crates, not by the sealer.
fn format_2_blob(key: &Path, id: &str, ip: &str, agent: &str) -> Vec<u8> {
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    use hmac::Mac;
    let text = std::fs::read_to_string(key).unwrap();
    let master = hex::decode(text.trim().strip_prefix(seal::KEY_PREFIX).unwrap()).unwrap();
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&master).unwrap();
    mac.update(b"telegate/seal/v1/encrypt");
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(&mac.finalize().into_bytes());
    let nonce = [0x5a; 12];
    // Lengths under 127: one varint byte each, plus one; 0 for no metadata.
    let mut blob = vec![2];
    blob.extend_from_slice(&nonce);
    for field in [ip, agent] {
        blob.push(field.len() as u8 + 1);
        blob.extend_from_slice(field.as_bytes());
    }
    blob.push(0);
    let aad = [b"telegate/seal/v1\0row_private\0".as_slice(), id.as_bytes()].concat();
    let tag = cipher
        .encrypt_in_place_detached(&nonce.into(), &aad, &mut blob[13..])
        .unwrap();
    blob.extend_from_slice(&tag);
    blob
}

#[tokio::test]
async fn a_blob_of_format_2_reads_and_is_sealed_again_in_format_3_at_the_start() {
    let (_keys, key, dir) = sealed_with_one_sighting();
    let (_, blob, _) = row(dir.path(), "s1");
    assert_eq!(blob.unwrap()[0], 3, "written in format 3");
    let old = format_2_blob(&key, "s1", "192.0.2.7", "OpenTelemetry .NET");
    db(dir.path())
        .execute(
            "UPDATE sessions SET sealed = ?1 WHERE id = 's1'",
            rusqlite::params![old],
        )
        .unwrap();
    let store = open(dir.path(), T0 + 1, Some(&key)).unwrap();
    let record = live(&store, "s1", T0 + 1).await;
    assert_eq!(record.client_ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(record.user_agent.as_deref(), Some("OpenTelemetry .NET"));
    // Re-sealed before the load returned, in format 3, and it opens.
    let (ip, blob, _) = row(dir.path(), "s1");
    let blob = blob.unwrap();
    assert!(ip.is_none());
    assert_eq!(blob[0], 3);
    assert_ne!(blob[1..13], old[1..13], "a fresh nonce");
    drop(store);
    let store = open(dir.path(), T0 + 2, Some(&key)).unwrap();
    assert_eq!(
        live(&store, "s1", T0 + 2).await.client_ip.as_deref(),
        Some("192.0.2.7")
    );
}
