//! The store conformance suite: every [`SessionStore`] must pass it. Each
//! check takes a fresh store built with [`settings`] and uses the injected
//! Unix time in its sightings, never a sleep. Issued sessions have their
//! own checks in [`issued`].

pub mod issued;

use std::net::IpAddr;
use std::time::Duration;

use super::*;

pub const T0: i64 = 1_800_000_000;
pub const IDLE: i64 = 3600;
pub const TTL: i64 = 86400;
pub const MAX_LIFETIME: i64 = 7 * 86400;
pub const MAX_PER_USER: usize = 3;

pub fn settings() -> SessionSettings {
    SessionSettings {
        backend: StoreBackend::Memory,
        track: true,
        idle: Duration::from_secs(IDLE as u64),
        ttl: Duration::from_secs(TTL as u64),
        max_lifetime: Duration::from_secs(MAX_LIFETIME as u64),
        max_per_user: MAX_PER_USER,
        per_user_limit: PerUserLimit::EvictOldest,
        store_metadata: true,
        max_body_bytes: 8192,
        max_metadata_bytes: 4096,
        cookie_name: "telegate_session".into(),
        max_per_ip: 3,
        max_sessions: 10_000,
        revocation_ttl: Duration::from_secs(7 * 86400),
        expired_retention: Duration::from_secs(3600),
        store_ip: StoreIp::Full,
    }
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub fn sighting<'a>(id: &'a str, client: &str, now: i64) -> Sighting<'a> {
    Sighting {
        session_id: id,
        client_ip: ip(client),
        user_agent: Some("OpenTelemetry .NET"),
        client_version: Some("2.0.0.0"),
        key_id: "k1",
        bytes: 100,
        now,
    }
}

pub async fn live(store: &dyn SessionStore, id: &str, now: i64) -> SessionRecord {
    match store.lookup(id, now).await.unwrap() {
        Lookup::Live(record) => record,
        other => panic!("{id} should be live at {now}: {other:?}"),
    }
}

pub async fn records_and_counts(store: &dyn SessionStore) {
    store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
    store.observe(&sighting("s1", "192.0.2.9", T0 + 5)).unwrap();
    let record = live(store, "s1", T0 + 5).await;
    assert_eq!(record.kind, SessionKind::Signed);
    assert_eq!((record.first_seen, record.last_seen), (T0, T0 + 5));
    assert_eq!((record.requests, record.bytes), (2, 200));
    assert_eq!(record.client_ip.as_deref(), Some("192.0.2.9"));
    assert_eq!(record.user_agent.as_deref(), Some("OpenTelemetry .NET"));
    assert_eq!(record.client_version.as_deref(), Some("2.0.0.0"));
    assert_eq!(record.key_id.as_deref(), Some("k1"));
    assert_eq!(record.pet_name, petname::pet_name("s1"));
    assert_eq!(store.lookup("nope", T0).await.unwrap(), Lookup::Unknown);
}

pub async fn idle_sessions_expire_and_start_over(store: &dyn SessionStore) {
    store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
    live(store, "s1", T0 + IDLE).await;
    assert!(matches!(
        store.lookup("s1", T0 + IDLE + 1).await.unwrap(),
        Lookup::Expired(_)
    ));
    store
        .observe(&sighting("s1", "192.0.2.1", T0 + IDLE + 1))
        .unwrap();
    let record = live(store, "s1", T0 + IDLE + 1).await;
    assert_eq!((record.first_seen, record.requests), (T0 + IDLE + 1, 1));
}

pub async fn revocation_refuses_until_it_expires(store: &dyn SessionStore) {
    store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
    assert_eq!(store.revoke("unknown", T0).await.unwrap(), None);
    assert_eq!(
        store.revoke("s1", T0 + 1).await.unwrap(),
        Some(SessionKind::Signed)
    );
    assert!(store.is_revoked("s1", T0 + 2));
    assert_eq!(
        store.observe(&sighting("s1", "192.0.2.1", T0 + 2)),
        Err(Refusal::Revoked)
    );
    let record = live(store, "s1", T0 + 2).await;
    assert_eq!(record.revoked_at, Some(T0 + 1));
    let after = T0 + 1 + 7 * 86400 + 1;
    assert!(!store.is_revoked("s1", after));
}

pub async fn one_address_holds_at_most_max_per_ip(store: &dyn SessionStore) {
    for id in ["a", "b", "c"] {
        store.observe(&sighting(id, "192.0.2.1", T0)).unwrap();
    }
    assert_eq!(
        store.observe(&sighting("d", "192.0.2.1", T0)),
        Err(Refusal::TooManyForIp)
    );
    store
        .observe(&sighting("a", "192.0.2.1", T0 + 1))
        .expect("known sessions go on");
    store
        .observe(&sighting("d", "192.0.2.2", T0))
        .expect("another address is not affected");
    // IPv6 addresses of one /64 are one client.
    for (id, address) in [
        ("v1", "2001:db8::1"),
        ("v2", "2001:db8::2"),
        ("v3", "2001:db8::3"),
    ] {
        store.observe(&sighting(id, address, T0)).unwrap();
    }
    assert_eq!(
        store.observe(&sighting("v4", "2001:db8::ffff", T0)),
        Err(Refusal::TooManyForIp)
    );
    // Once b and c idle out, new sessions are admitted again.
    let later = T0 + IDLE + 2;
    store.observe(&sighting("e", "192.0.2.1", later)).unwrap();
}

pub async fn list_pages_and_filters(store: &dyn SessionStore) {
    for (n, id) in ["s3", "s1", "s2", "s4"].iter().enumerate() {
        store
            .observe(&sighting(id, &format!("192.0.2.{n}"), T0))
            .unwrap();
    }
    store.revoke("s4", T0).await.unwrap();
    let mut filter = ListFilter {
        limit: 2,
        ..ListFilter::default()
    };
    let first = store.list(&filter, T0).await.unwrap();
    let ids: Vec<_> = first
        .sessions
        .iter()
        .map(|r| r.session_id.as_str())
        .collect();
    assert_eq!(ids, ["s1", "s2"]);
    filter.cursor = first.next_cursor.clone();
    let second = store.list(&filter, T0).await.unwrap();
    let ids: Vec<_> = second
        .sessions
        .iter()
        .map(|r| r.session_id.as_str())
        .collect();
    assert_eq!(ids, ["s3", "s4"]);
    assert_eq!(second.next_cursor, None);
    let active = ListFilter {
        active: Some(true),
        limit: 10,
        ..ListFilter::default()
    };
    assert_eq!(store.list(&active, T0).await.unwrap().sessions.len(), 3);
    let issued = ListFilter {
        kind: Some(SessionKind::Issued),
        limit: 10,
        ..ListFilter::default()
    };
    assert!(store.list(&issued, T0).await.unwrap().sessions.is_empty());
}

pub async fn stats_count_by_kind_and_version(store: &dyn SessionStore) {
    // s1 opened 5000 s ago and kept alive: not created in the last hour.
    for at in [T0 - 5000, T0 - 2000, T0] {
        store.observe(&sighting("s1", "192.0.2.1", at)).unwrap();
    }
    let mut newer = sighting("s2", "192.0.2.2", T0);
    newer.client_version = Some("2.1.0.0");
    store.observe(&newer).unwrap();
    store.observe(&sighting("s3", "192.0.2.3", T0)).unwrap();
    store.revoke("s3", T0).await.unwrap();
    let stats = store.stats(T0).await.unwrap();
    assert_eq!(stats.active["signed"], 2);
    assert_eq!(stats.active["issued"], 0);
    assert_eq!(stats.by_client_version["2.0.0.0"], 1);
    assert_eq!(stats.by_client_version["2.1.0.0"], 1);
    assert_eq!(stats.created_last_hour, 2);
    assert_eq!(stats.revoked, 1);
    assert_eq!(
        store.active(T0),
        vec![(SessionKind::Signed, 2), (SessionKind::Issued, 0)]
    );
}

/// Waits (bounded) until `check` holds: what a shared store's replicas
/// learn at their next poll.
pub async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(
            started.elapsed() < timeout,
            "not within {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
