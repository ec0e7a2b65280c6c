//! The conformance suite against the embedded store (each check on a fresh
//! temp dir), plus what only it has: state that survives a reopen of the
//! same directory, the write-behind thread, pruning on open, and the
//! refusal of a file it cannot use.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::pipeline::metrics::Metrics;
use crate::session::conformance::{self, issued, live, settings, sighting, IDLE, T0};
use crate::session::Grants;

fn metrics() -> StoreMetrics {
    let metrics = Metrics::new("test").unwrap();
    StoreMetrics {
        errors: metrics.store_errors_total.clone(),
        duration: metrics.store_duration_seconds.clone(),
    }
}

fn open_with(dir: &Path, settings: SessionSettings, now: i64) -> EmbeddedStore {
    try_open(dir, settings, now).unwrap()
}

fn try_open(dir: &Path, settings: SessionSettings, now: i64) -> Result<EmbeddedStore, StoreError> {
    open_keyed(dir, settings, now, None)
}

/// Opens with `[sessions.encryption]` when `key_file` is given.
fn open_keyed(
    dir: &Path,
    settings: SessionSettings,
    now: i64,
    key_file: Option<&Path>,
) -> Result<EmbeddedStore, StoreError> {
    let embedded = EmbeddedSettings {
        data_dir: dir.to_path_buf(),
        flush_interval: Duration::from_millis(20),
        encryption: key_file.map(|file| crate::config::EncryptionSettings {
            key_files: vec![file.to_path_buf()],
        }),
    };
    EmbeddedStore::open(
        settings,
        embedded,
        metrics(),
        IntCounter::new("evicted", "test").unwrap(),
        Arc::new(move || now),
    )
}

/// A fresh store in its own temp dir (kept alive beside it).
fn fresh(settings: SessionSettings) -> (EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (open_with(dir.path(), settings, T0), dir)
}

#[tokio::test]
async fn conformance() {
    conformance::records_and_counts(&fresh(settings()).0).await;
    conformance::idle_sessions_expire_and_start_over(&fresh(settings()).0).await;
    conformance::revocation_refuses_until_it_expires(&fresh(settings()).0).await;
    conformance::one_address_holds_at_most_max_per_ip(&fresh(settings()).0).await;
    conformance::list_pages_and_filters(&fresh(settings()).0).await;
    conformance::stats_count_by_kind_and_version(&fresh(settings()).0).await;
}

#[tokio::test]
async fn conformance_issued() {
    issued::issue_and_find_by_token_hash(&fresh(settings()).0).await;
    issued::the_absolute_ttl_ends_a_busy_session(&fresh(settings()).0).await;
    issued::refresh_kills_the_old_token_at_once(&fresh(settings()).0).await;
    issued::extend_is_bounded_by_the_max_lifetime(&fresh(settings()).0).await;
    issued::a_user_over_the_limit_loses_the_oldest(&fresh(settings()).0).await;
    issued::a_user_over_the_limit_is_refused(&fresh(issued::refusing()).0).await;
    issued::a_signed_client_issues_within_its_address_cap(&fresh(settings()).0).await;
    issued::logout_revoke_user_delete_and_wipe(&fresh(settings()).0).await;
    issued::grants_and_ttl_are_kept(&fresh(settings()).0).await;
}

async fn token(store: &EmbeddedStore, token: &str, now: i64) -> TokenCheck {
    store.find_token(&TokenHash::of(token), now).await.unwrap()
}

fn header_set() -> HeaderSet<'static> {
    HeaderSet {
        key_id: "k1",
        session_id: "s1",
        signed_path: "/v1/traces",
        timestamp: T0,
        signature: &[7; 32],
    }
}

#[tokio::test]
async fn a_reopen_keeps_sessions_revocations_tokens_and_sightings() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_with(dir.path(), settings(), T0);
        store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
        store.observe(&sighting("s1", "192.0.2.9", T0 + 5)).unwrap();
        store.observe(&sighting("s2", "192.0.2.2", T0)).unwrap();
        store.revoke("s2", T0 + 1).await.unwrap();
        issued::issue(&store, "i1", "t1", Some("u1"), T0).await;
        issued::issue(&store, "i2", "t2", Some("u1"), T0).await;
        store.revoke("i2", T0 + 1).await.unwrap();
        issued::issue(&store, "i3", "t3", None, T0).await;
        let fresh_token = TokenHash::of("t3-new");
        store
            .change("i3", Change::Refresh(fresh_token), T0 + 2)
            .await
            .unwrap();
        store.remember_static(&header_set(), ip("192.0.2.1"), T0, Duration::from_secs(600));
        // Dropped: the last flush writes the signed sessions and the sighting.
    }
    let store = open_with(dir.path(), settings(), T0 + 10);
    let s1 = live(&store, "s1", T0 + 10).await;
    assert_eq!((s1.first_seen, s1.last_seen, s1.requests), (T0, T0 + 5, 2));
    assert_eq!(s1.client_ip.as_deref(), Some("192.0.2.9"));
    assert!(store.is_revoked("s2", T0 + 10));
    assert_eq!(
        store.observe(&sighting("s2", "192.0.2.2", T0 + 10)),
        Err(Refusal::Revoked)
    );
    assert_eq!(live(&store, "s2", T0 + 10).await.revoked_at, Some(T0 + 1));
    assert!(
        matches!(token(&store, "t1", T0 + 10).await, TokenCheck::Live(o) if o.session_id == "i1")
    );
    assert_eq!(
        token(&store, "t2", T0 + 10).await,
        TokenCheck::Revoked {
            session_id: "i2".into()
        }
    );
    assert_eq!(token(&store, "t3", T0 + 10).await, TokenCheck::Unknown);
    assert!(matches!(
        token(&store, "t3-new", T0 + 10).await,
        TokenCheck::Live(_)
    ));
    let seen = store.static_sighting(&header_set(), T0 + 10).await;
    assert_eq!(
        seen.map(|s| (s.client_ip, s.first_seen)),
        Some((ip("192.0.2.1"), T0))
    );
    // The user's list came back too: the per-user limit still counts i1.
    let user = ListFilter {
        user: Some("u1".into()),
        limit: 10,
        ..ListFilter::default()
    };
    assert_eq!(store.list(&user, T0 + 10).await.unwrap().sessions.len(), 1);
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[tokio::test]
async fn deletes_and_wipes_stay_done_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_with(dir.path(), settings(), T0);
        issued::issue(&store, "i1", "t1", Some("u1"), T0).await;
        issued::issue(&store, "i2", "t2", Some("u2"), T0).await;
        store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
        store.flush().unwrap();
        assert!(store.delete("i1").await.unwrap());
        assert_eq!(store.delete_user("u2").await.unwrap(), 1);
    }
    {
        let store = open_with(dir.path(), settings(), T0 + 1);
        assert_eq!(token(&store, "t1", T0 + 1).await, TokenCheck::Unknown);
        assert_eq!(token(&store, "t2", T0 + 1).await, TokenCheck::Unknown);
        live(&store, "s1", T0 + 1).await;
        assert_eq!(store.wipe().await.unwrap(), 1);
    }
    let store = open_with(dir.path(), settings(), T0 + 2);
    assert_eq!(store.lookup("s1", T0 + 2).await.unwrap(), Lookup::Unknown);
}

fn rows(dir: &Path, table: &str) -> i64 {
    let conn = Connection::open(dir.join(schema::FILE)).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn signed_sessions_are_written_behind_without_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), settings(), T0);
    store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
    let started = Instant::now();
    while rows(dir.path(), "sessions") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not flushed within 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn rows_past_their_end_are_pruned_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_with(dir.path(), settings(), T0);
        store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
    }
    assert_eq!(rows(dir.path(), "sessions"), 1);
    let retention = settings().expired_retention.as_secs() as i64;
    let later = T0 + IDLE + retention + 1;
    let store = open_with(dir.path(), settings(), later);
    assert_eq!(store.lookup("s1", later).await.unwrap(), Lookup::Unknown);
    assert_eq!(rows(dir.path(), "sessions"), 0);
}

#[test]
fn a_file_it_cannot_use_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(schema::FILE);
    std::fs::write(&file, b"this is not a database, just some bytes........").unwrap();
    let err = try_open(dir.path(), settings(), T0).err().expect("refused");
    assert!(err.0.contains(&file.display().to_string()), "{err}");
    // A newer schema: refused, not overwritten.
    std::fs::remove_file(&file).unwrap();
    Connection::open(&file)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = try_open(dir.path(), settings(), T0).err().expect("refused");
    assert!(err.0.contains("schema version 99"), "{err}");
    // A data dir that is a file.
    let err = try_open(&file, settings(), T0).err().expect("refused");
    assert!(err.0.contains(&file.display().to_string()), "{err}");
}

#[tokio::test]
async fn a_delivered_v2_nonce_is_answered_from_its_first_outcome_after_a_restart() {
    use crate::ingest::forward::Accepted;
    use crate::ingest::replay::{Begin, ReplayCache, RequestPrint};
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_secs(601);
    let wait = Duration::from_secs(1);
    let (same, other) = (
        RequestPrint::of_signature(b"the export"),
        RequestPrint::of_signature(b"another export"),
    );
    {
        let store = open_with(dir.path(), settings(), T0);
        let cache = ReplayCache::new(100, ttl).with_persisted(store.nonces());
        let Begin::Owner(ticket) = cache.begin("k", "AB12", same, wait).await else {
            panic!("a new nonce is owned")
        };
        ticket.delivered(Arc::new(Accepted {
            content_type: Some(http::HeaderValue::from_static("application/json")),
            body: bytes::Bytes::from_static(b"{\"first\":1}"),
        }));
        let Begin::Owner(failed) = cache.begin("k", "cd34", same, wait).await else {
            panic!()
        };
        failed.failed();
        store.flush().unwrap();
    }
    let store = open_with(dir.path(), settings(), T0 + 60);
    let cache = ReplayCache::new(100, ttl).with_persisted(store.nonces());
    match cache.begin("k", "ab12", same, wait).await {
        Begin::Delivered(reply) => {
            assert_eq!(&reply.body[..], b"{\"first\":1}");
            assert_eq!(reply.content_type.as_ref().unwrap(), "application/json");
        }
        other => panic!("the first outcome after a restart: {other:?}"),
    }
    assert!(matches!(
        cache.begin("k", "ab12", other, wait).await,
        Begin::Reused
    ));
    assert!(
        matches!(cache.begin("k", "cd34", same, wait).await, Begin::Owner(_)),
        "a failed nonce is not kept"
    );
    drop((cache, store));
    // Past its window the nonce is gone.
    let store = open_with(dir.path(), settings(), T0 + 700);
    let cache = ReplayCache::new(100, ttl).with_persisted(store.nonces());
    assert!(matches!(
        cache.begin("k", "ab12", same, wait).await,
        Begin::Owner(_)
    ));
}

#[tokio::test]
async fn quota_windows_and_bans_survive_a_restart_and_a_lift_is_written_through() {
    let dir = tempfile::tempdir().unwrap();
    abuse_state_survives(dir.path(), None).await;
}

/// Sealed: the same, and the file holds neither the banned address nor
/// the plain scope hash (an address's plain hash is reversible).
#[tokio::test]
async fn sealed_quota_windows_and_bans_survive_without_the_address_on_disk() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("storage.key");
    std::fs::write(&key, crate::session::seal::new_key_text().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    abuse_state_survives(dir.path(), Some(&key)).await;
}

/// How many of the probe values the file and its WAL show (the banned
/// address and session, the plain scope hash of the test's window).
fn clear_probes(dir: &Path) -> usize {
    let mut bytes = std::fs::read(dir.join(schema::FILE)).unwrap();
    bytes.extend(std::fs::read(dir.join("sessions.sqlite3-wal")).unwrap_or_default());
    let shown = ["192.0.2.1", "session:s-1"]
        .iter()
        .filter(|value| bytes.windows(value.len()).any(|w| w == value.as_bytes()))
        .count();
    let conn = Connection::open(dir.join(schema::FILE)).unwrap();
    let plain: i64 = conn
        .query_row(
            "SELECT count(*) FROM quota_windows WHERE value = ?1",
            [(u64::MAX - 7) as i64],
            |r| r.get(0),
        )
        .unwrap();
    shown + plain as usize
}

async fn abuse_state_survives(dir: &Path, key_file: Option<&Path>) {
    use crate::pipeline::abuse::shared::LeaseKey;
    let open_with = |dir: &Path, settings, now| open_keyed(dir, settings, now, key_file).unwrap();
    let key = LeaseKey {
        quota: 0,
        value: u64::MAX - 7,
        window: T0 / 3600,
    };
    let other = LeaseKey { quota: 1, ..key };
    {
        let store = open_with(dir, settings(), T0);
        let abuse = store.abuse();
        assert_eq!(abuse.lease(key, 4, 10, 3660).await.unwrap(), 4);
        assert_eq!(abuse.lease(key, 4, 10, 3660).await.unwrap(), 4);
        assert_eq!(abuse.lease(other, 3, 10, 3660).await.unwrap(), 3);
        abuse
            .ban("address:192.0.2.1".into(), T0 + 600)
            .await
            .unwrap();
        abuse.ban("session:s-1".into(), T0 + 600).await.unwrap();
        // A shorter ban never shortens the one in force.
        abuse.ban("session:s-1".into(), T0 + 5).await.unwrap();
        store.flush().unwrap();
        assert_eq!(rows(dir, "quota_windows"), 2);
        assert_eq!(rows(dir, "bans"), 2);
        // In clear every probe shows (two subjects, two windows of the
        // plain hash), so the sealed check can fail.
        let expected = if key_file.is_some() { 0 } else { 4 };
        assert_eq!(clear_probes(dir), expected);
    }
    {
        let store = open_with(dir, settings(), T0 + 60);
        let abuse = store.abuse();
        // 8 of 10 were spent before the restart: 2 are left, then none.
        assert_eq!(abuse.lease(key, 4, 10, 3660).await.unwrap(), 2);
        assert_eq!(abuse.lease(key, 4, 10, 3660).await.unwrap(), 0);
        assert_eq!(abuse.lease(other, 10, 10, 3660).await.unwrap(), 7);
        let mut bans = abuse.bans(T0 + 60, 10).await.unwrap();
        bans.sort();
        assert_eq!(
            bans,
            [
                ("address:192.0.2.1".to_string(), T0 + 600),
                ("session:s-1".to_string(), T0 + 600)
            ]
        );
        // Lifted without a flush: on disk before the call returns.
        abuse.lift("address:192.0.2.1".into()).await.unwrap();
        assert_eq!(rows(dir, "bans"), 1);
    }
    let store = open_with(dir, settings(), T0 + 700);
    let abuse = store.abuse();
    assert!(
        abuse.bans(T0 + 700, 10).await.unwrap().is_empty(),
        "the lift held and the other ban ended"
    );
    // A new window starts from nothing.
    let next = LeaseKey {
        window: key.window + 1,
        ..key
    };
    assert_eq!(abuse.lease(next, 4, 10, 3660).await.unwrap(), 4);
}

#[tokio::test]
async fn grants_survive_a_reopen_and_an_older_file_gains_their_columns() {
    let dir = tempfile::tempdir().unwrap();
    let grants = Grants {
        roles: vec!["admin".into()],
        permissions: vec!["write".into(), "read".into()],
    };
    {
        let store = open_with(dir.path(), settings(), T0);
        let mut new = issued::new_session("g1", "tok-g", None, T0);
        new.grants = grants.clone();
        assert!(matches!(
            store.issue(new).await.unwrap(),
            Issue::Created { .. }
        ));
    }
    let store = open_with(dir.path(), settings(), T0 + 10);
    assert_eq!(live(&store, "g1", T0 + 10).await.grants, grants);
    assert!(matches!(token(&store, "tok-g", T0 + 10).await,
        TokenCheck::Live(owner) if owner.grants == grants));
    drop(store);
    // A file written before the two columns existed (version 1 as shipped).
    let conn = rusqlite::Connection::open(dir.path().join("sessions.sqlite3")).unwrap();
    conn.execute_batch(
        "ALTER TABLE sessions DROP COLUMN roles; ALTER TABLE sessions DROP COLUMN permissions;",
    )
    .unwrap();
    drop(conn);
    let store = open_with(dir.path(), settings(), T0 + 20);
    assert!(live(&store, "g1", T0 + 20).await.grants.is_empty());
    let mut new = issued::new_session("g2", "tok-2", None, T0 + 20);
    new.grants = grants.clone();
    store.issue(new).await.unwrap();
    drop(store);
    let store = open_with(dir.path(), settings(), T0 + 30);
    assert_eq!(live(&store, "g2", T0 + 30).await.grants, grants);
}
