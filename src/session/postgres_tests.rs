//! The conformance suite against a real PostgreSQL (a throwaway cluster,
//! [`server`]), plus what only a shared store has: two stores on one
//! database. Each store gets a database of its own. Without
//! `initdb`/`postgres` in the tools dir the tests skip loudly, or fail with
//! `E2E_REQUIRE_TOOLS=1`.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::pipeline::metrics::Metrics;
use crate::session::conformance::{self, eventually, issued, settings, sighting, T0};

#[path = "postgres_tests_server.rs"]
mod server;
use server::{PgServer, PASSWORD};

fn metrics() -> StoreMetrics {
    let metrics = Metrics::new("test").unwrap();
    StoreMetrics {
        errors: metrics.store_errors_total.clone(),
        duration: metrics.store_duration_seconds.clone(),
    }
}

fn open(server: &PgServer, db: &str, settings: SessionSettings) -> PostgresStore {
    let postgres = PostgresSettings {
        url: server.url(db),
        password_file: Some(server.password_file()),
        flush_interval: Duration::from_millis(50),
        encryption: None,
    };
    PostgresStore::new(settings, postgres, metrics(), Arc::new(|| T0)).unwrap()
}

async fn store(server: &PgServer) -> PostgresStore {
    let db = server.database().await;
    open(server, &db, settings())
}

/// A store whose private fields are sealed (`[sessions.encryption]`).
async fn sealed(server: &PgServer, settings: SessionSettings) -> PostgresStore {
    let key = server.dir.path().join("storage.key");
    if !key.exists() {
        std::fs::write(&key, crate::session::seal::new_key_text().unwrap()).unwrap();
    }
    let postgres = PostgresSettings {
        url: server.url(&server.database().await),
        password_file: Some(server.password_file()),
        flush_interval: Duration::from_millis(50),
        encryption: Some(crate::config::EncryptionSettings {
            key_files: vec![key],
        }),
    };
    PostgresStore::new(settings, postgres, metrics(), Arc::new(|| T0)).unwrap()
}

/// The same suite with every private field sealed: each read opens what
/// the database holds (limits by user and address included).
#[tokio::test]
async fn conformance_sealed() {
    let Some(server) = PgServer::start("postgres conformance_sealed") else {
        return;
    };
    conformance::records_and_counts(&sealed(&server, settings()).await).await;
    conformance::list_pages_and_filters(&sealed(&server, settings()).await).await;
    conformance::stats_count_by_kind_and_version(&sealed(&server, settings()).await).await;
    issued::issue_and_find_by_token_hash(&sealed(&server, settings()).await).await;
    issued::refresh_kills_the_old_token_at_once(&sealed(&server, settings()).await).await;
    issued::a_user_over_the_limit_loses_the_oldest(&sealed(&server, settings()).await).await;
    issued::a_user_over_the_limit_is_refused(&sealed(&server, issued::refusing()).await).await;
    let store = sealed(&server, settings()).await;
    issued::a_signed_client_issues_within_its_address_cap(&store).await;
    issued::logout_revoke_user_delete_and_wipe(&sealed(&server, settings()).await).await;
}

#[tokio::test]
async fn conformance() {
    let Some(server) = PgServer::start("postgres conformance") else {
        return;
    };
    conformance::records_and_counts(&store(&server).await).await;
    conformance::idle_sessions_expire_and_start_over(&store(&server).await).await;
    conformance::revocation_refuses_until_it_expires(&store(&server).await).await;
    conformance::one_address_holds_at_most_max_per_ip(&store(&server).await).await;
    conformance::list_pages_and_filters(&store(&server).await).await;
    conformance::stats_count_by_kind_and_version(&store(&server).await).await;

    let refusing = open(&server, &server.database().await, issued::refusing());
    issued::issue_and_find_by_token_hash(&store(&server).await).await;
    issued::the_absolute_ttl_ends_a_busy_session(&store(&server).await).await;
    issued::refresh_kills_the_old_token_at_once(&store(&server).await).await;
    issued::extend_is_bounded_by_the_max_lifetime(&store(&server).await).await;
    issued::a_user_over_the_limit_loses_the_oldest(&store(&server).await).await;
    issued::a_user_over_the_limit_is_refused(&refusing).await;
    issued::a_signed_client_issues_within_its_address_cap(&store(&server).await).await;
    issued::logout_revoke_user_delete_and_wipe(&store(&server).await).await;
    issued::grants_and_ttl_are_kept(&store(&server).await).await;
}

/// An issued session's token row ends with its session (plus the
/// retention), follows an extension, and once revoked is kept as long as
/// its revocation, then pruned (it was once kept for `max_lifetime` from
/// issue whatever the session's own end).
#[tokio::test]
async fn a_tokens_row_ends_with_its_session_then_with_its_revocation() {
    let Some(server) = PgServer::start("postgres a_tokens_row_ends_with_its_session") else {
        return;
    };
    let db = server.database().await;
    let mut short = settings();
    short.revocation_ttl = Duration::from_secs(30);
    (short.ttl, short.max_lifetime) = (Duration::from_secs(60), Duration::from_secs(3600));
    let retention = short.expired_retention.as_secs() as i64;
    let store = open(&server, &db, short);
    issued::issue(&store, "i1", "token-1", Some("alice"), T0).await;
    let url = format!("{}?password={PASSWORD}", server.url(&db));
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let keep = || async {
        client
            .query_one("SELECT keep_until FROM tokens", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(
        keep().await,
        T0 + 60 + retention,
        "a live session's token row"
    );
    let extended = store.change("i1", Change::Extend(120), T0 + 1).await;
    assert!(matches!(extended.unwrap(), Changed::Done(_)));
    assert_eq!(keep().await, T0 + 180 + retention, "after the extension");
    assert_eq!(
        store.revoke("i1", T0 + 2).await.unwrap(),
        Some(SessionKind::Issued)
    );
    assert_eq!(keep().await, T0 + 2 + 30);
    assert!(matches!(
        store
            .find_token(&TokenHash::of("token-1"), T0 + 2)
            .await
            .unwrap(),
        TokenCheck::Revoked { .. }
    ));
}

#[tokio::test]
async fn two_stores_on_one_database_agree() {
    let Some(server) = PgServer::start("postgres two_stores_on_one_database_agree") else {
        return;
    };
    let db = server.database().await;
    let a = open(&server, &db, settings());
    let b = open(&server, &db, settings());
    for n in 0..3 {
        a.observe(&sighting("s1", "192.0.2.1", T0 + n)).unwrap();
        b.observe(&sighting("s1", "192.0.2.2", T0 + 10 + n))
            .unwrap();
    }
    a.inner.flush().await.unwrap();
    let record = conformance::live(&b, "s1", T0 + 20).await;
    assert_eq!((record.requests, record.bytes), (6, 600));
    assert_eq!((record.first_seen, record.last_seen), (T0, T0 + 12));
    assert_eq!(
        record.client_ip.as_deref(),
        Some("192.0.2.2"),
        "latest wins"
    );

    // A token issued through one opens the session through the other; a
    // refresh through one kills the old token for the other at once.
    issued::issue(&a, "i1", "tok-a", Some("alice"), T0).await;
    let hash = TokenHash::of("tok-a");
    assert!(matches!(
        b.find_token(&hash, T0).await.unwrap(),
        TokenCheck::Live(_)
    ));
    let refresh = Change::Refresh(TokenHash::of("tok-b"));
    assert!(matches!(
        a.change("i1", refresh, T0 + 1).await.unwrap(),
        Changed::Done(_)
    ));
    assert_eq!(
        b.find_token(&hash, T0 + 1).await.unwrap(),
        TokenCheck::Unknown
    );

    // A revocation through one is refused by the other within 2 s.
    assert!(!b.is_revoked("s1", T0 + 30));
    a.revoke("s1", T0 + 30).await.unwrap();
    eventually("b learns the revocation", Duration::from_secs(2), || {
        b.is_revoked("s1", T0 + 31)
    })
    .await;
    assert_eq!(
        b.observe(&sighting("s1", "192.0.2.2", T0 + 31)),
        Err(Refusal::Revoked)
    );
    eventually(
        "b counts a's issued session",
        Duration::from_secs(2),
        || b.active(T0)[1] == (SessionKind::Issued, 1),
    )
    .await;
    assert!(a.healthy() && b.healthy());

    // A wipe through one clears the other's local state too.
    b.observe(&sighting("s2", "192.0.2.2", T0 + 40)).unwrap();
    a.wipe().await.unwrap();
    eventually("b forgets after a's wipe", Duration::from_secs(3), || {
        !b.is_revoked("s1", T0 + 41) && b.active(T0 + 41)[0] == (SessionKind::Signed, 0)
    })
    .await;
    assert_eq!(b.lookup("s1", T0 + 41).await.unwrap(), Lookup::Unknown);
}

#[tokio::test]
async fn a_missing_password_file_is_named_and_an_outage_answers_503() {
    let postgres = PostgresSettings {
        url: "postgres://telegate@127.0.0.1:1/none".into(),
        password_file: Some("/nonexistent/pg-password".into()),
        flush_interval: Duration::from_millis(50),
        encryption: None,
    };
    let err = PostgresStore::new(settings(), postgres.clone(), metrics(), Arc::new(|| T0))
        .err()
        .unwrap();
    assert!(err.0.contains("/nonexistent/pg-password"), "{err}");
    // Nothing listens on port 1: token checks fail, signed sessions go on.
    let store = PostgresStore::new(
        settings(),
        PostgresSettings {
            password_file: None,
            ..postgres
        },
        metrics(),
        Arc::new(|| T0),
    )
    .unwrap();
    assert!(store.find_token(&TokenHash::of("t"), T0).await.is_err());
    assert!(store.observe(&sighting("s1", "192.0.2.1", T0)).is_ok());
    assert!(!store.healthy());
}

#[tokio::test]
async fn an_outage_answers_503_and_the_store_reconnects() {
    let Some(mut server) =
        PgServer::start("postgres an_outage_answers_503_and_the_store_reconnects")
    else {
        return;
    };
    let store = store(&server).await;
    issued::issue(&store, "i1", "tok-1", None, T0).await;
    let hash = TokenHash::of("tok-1");
    server.stop();
    // Token checks fail (503 upstream), signed sessions go on locally.
    assert!(store.find_token(&hash, T0).await.is_err());
    store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
    eventually("unhealthy while down", Duration::from_secs(5), || {
        !store.healthy()
    })
    .await;
    server.restart();
    eventually("healthy again", Duration::from_secs(10), || store.healthy()).await;
    assert!(matches!(
        store.find_token(&hash, T0).await.unwrap(),
        TokenCheck::Live(_)
    ));
    // The sighting made during the outage was written behind after it.
    conformance::live(&store, "s1", T0).await;
}

#[path = "postgres_tests_upgrade.rs"]
mod upgrade;
