//! The conformance suite against the memory store, plus what only it has
//! (capacity eviction, IP privacy).

use super::*;
use crate::session::conformance::{self, issued, settings, sighting, T0};
use crate::session::StoreIp;

fn store() -> MemoryStore {
    MemoryStore::new(settings(), IntCounter::new("evicted", "test").unwrap())
}

fn refusing_store() -> MemoryStore {
    MemoryStore::new(
        issued::refusing(),
        IntCounter::new("evicted", "test").unwrap(),
    )
}

#[tokio::test]
async fn conformance() {
    conformance::records_and_counts(&store()).await;
    conformance::idle_sessions_expire_and_start_over(&store()).await;
    conformance::revocation_refuses_until_it_expires(&store()).await;
    conformance::one_address_holds_at_most_max_per_ip(&store()).await;
    conformance::list_pages_and_filters(&store()).await;
    conformance::stats_count_by_kind_and_version(&store()).await;
}

#[tokio::test]
async fn conformance_issued() {
    issued::issue_and_find_by_token_hash(&store()).await;
    issued::the_absolute_ttl_ends_a_busy_session(&store()).await;
    issued::refresh_kills_the_old_token_at_once(&store()).await;
    issued::extend_is_bounded_by_the_max_lifetime(&store()).await;
    issued::a_user_over_the_limit_loses_the_oldest(&store()).await;
    issued::a_user_over_the_limit_is_refused(&refusing_store()).await;
    issued::a_signed_client_issues_within_its_address_cap(&store()).await;
    issued::logout_revoke_user_delete_and_wipe(&store()).await;
    issued::grants_and_ttl_are_kept(&store()).await;
}

#[tokio::test]
async fn the_store_keeps_only_the_token_hash() {
    let store = store();
    issued::issue(&store, "i1", "the-token-text", Some("alice"), T0).await;
    let entry = store.sessions.get("i1").unwrap();
    let entry = lock(&entry);
    assert_eq!(entry.token, Some(TokenHash::of("the-token-text")));
    let shown = serde_json::to_string(&entry.record).unwrap();
    assert!(!shown.contains("the-token-text"), "{shown}");
    assert!(!shown.contains(&hex::encode(TokenHash::of("the-token-text").as_bytes())));
}

/// A revoked session's token is kept as long as its revocation, not for
/// `max_lifetime` (a week by default): each issue-and-revoke once left an
/// index entry behind for that long, which the soak saw as steady growth.
#[tokio::test]
async fn a_revoked_tokens_index_entry_ends_with_its_revocation() {
    let mut short = settings();
    short.revocation_ttl = std::time::Duration::from_secs(1);
    let store = MemoryStore::new(short, IntCounter::new("evicted", "test").unwrap());
    issued::issue(&store, "gone", "token-gone", Some("alice"), T0).await;
    issued::issue(&store, "kept", "token-kept", Some("alice"), T0).await;
    assert_eq!(
        store.revoke("gone", T0).await.unwrap(),
        Some(SessionKind::Issued)
    );
    let gone = TokenHash::of("token-gone");
    assert!(matches!(
        store.check_token(&gone, T0, None),
        TokenCheck::Revoked { .. }
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        store.tokens.run_pending_tasks();
        if store.tokens.get(&gone).is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked token's entry outlived its 1 s revocation by 9 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A live session's token stays (its lifetime is the settings' ttl).
    assert!(store.tokens.get(&TokenHash::of("token-kept")).is_some());
    assert!(matches!(
        store.check_token(&TokenHash::of("token-kept"), T0 + 1, None),
        TokenCheck::Live(_)
    ));
}

#[tokio::test]
async fn a_full_store_evicts_the_least_recent_and_admits_the_new() {
    let evicted = IntCounter::new("evicted", "test").unwrap();
    let mut small = settings();
    small.max_sessions = 100;
    small.max_per_ip = 1_000;
    let store = MemoryStore::new(small, evicted.clone());
    for n in 0..300 {
        store
            .observe(&sighting(&format!("s{n:03}"), "192.0.2.1", T0 + n))
            .unwrap();
    }
    assert_eq!(store.signed.len(), 100);
    assert_eq!(evicted.get(), 200);
    conformance::live(&store, "s299", T0 + 300).await;
    // The least recently seen go first (of a sample): most survivors are
    // among the newest.
    let page = ListFilter {
        limit: 1000,
        ..ListFilter::default()
    };
    let kept = store.list(&page, T0 + 300).await.unwrap().sessions;
    let recent = kept
        .iter()
        .filter(|r| r.session_id.as_str() >= "s150")
        .count();
    assert!(
        recent >= 80,
        "only {recent} of the kept 100 are among the newest 150"
    );
}

#[tokio::test]
async fn the_ip_is_kept_as_configured() {
    for (level, expected) in [
        (StoreIp::Truncated, Some("192.0.2.0/24")),
        (StoreIp::None, None),
    ] {
        let mut config = settings();
        config.store_ip = level;
        let store = MemoryStore::new(config, IntCounter::new("e", "t").unwrap());
        store.observe(&sighting("s", "192.0.2.77", T0)).unwrap();
        let record = conformance::live(&store, "s", T0).await;
        assert_eq!(record.client_ip.as_deref(), expected);
    }
}
