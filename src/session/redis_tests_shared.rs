//! What only a shared store has, against a real `redis-server`: two stores
//! on one Redis, revocations that travel, TTLs that Redis owns, an outage,
//! shared static sightings and a shared replay cache.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn two_stores_on_one_redis_agree() {
    let Some(server) = RedisServer::start("redis two_stores_on_one_redis_agree") else {
        return;
    };
    let shared = prefix();
    let a = open(&server.url(), &shared, settings(), at_t0());
    let b = open(&server.url(), &shared, settings(), at_t0());
    // Counters from both add up once each has flushed.
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

    // A revocation through one is refused by the other within its interval.
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
    // The other's live issued count follows its polls.
    eventually(
        "b counts a's issued session",
        Duration::from_secs(2),
        || b.active(T0)[1] == (SessionKind::Issued, 1),
    )
    .await;

    // A wipe through one clears the other's local state too.
    b.observe(&sighting("s2", "192.0.2.2", T0 + 40)).unwrap();
    a.wipe().await.unwrap();
    eventually("b forgets after a's wipe", Duration::from_secs(2), || {
        !b.is_revoked("s1", T0 + 41) && b.active(T0 + 41)[0] == (SessionKind::Signed, 0)
    })
    .await;
    assert_eq!(b.lookup("s1", T0 + 41).await.unwrap(), Lookup::Unknown);
}

/// A long write-behind interval does not slow revocations down: replicas
/// poll at least every second.
#[tokio::test]
async fn revocations_travel_within_a_second_whatever_the_flush_interval() {
    let Some(server) = RedisServer::start("redis revocations_travel") else {
        return;
    };
    let shared = prefix();
    let minute = Duration::from_secs(60);
    let a = open_every(&server.url(), &shared, settings(), at_t0(), minute);
    let b = open_every(&server.url(), &shared, settings(), at_t0(), minute);
    a.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
    a.revoke("s1", T0).await.unwrap();
    eventually(
        "b learns the revocation",
        Duration::from_millis(1500),
        || b.is_revoked("s1", T0 + 1),
    )
    .await;
}

/// Only here does Redis own the clock: records expire from Redis by real
/// TTLs (idle + retention after the last sighting), bounding memory.
#[tokio::test]
async fn redis_ttls_bound_memory() {
    let Some(server) = RedisServer::start("redis redis_ttls_bound_memory") else {
        return;
    };
    let mut short = settings();
    short.idle = Duration::from_secs(1);
    short.expired_retention = Duration::from_secs(1);
    let store = open(
        &server.url(),
        &prefix(),
        short,
        crate::clock::system_clock(),
    );
    let now = (store.inner.clock)();
    store.observe(&sighting("s1", "192.0.2.1", now)).unwrap();
    conformance::live(&store, "s1", now).await;
    let key = store.inner.key("s:s1");
    let mut conn = store.inner.conn.clone();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=2).contains(&ttl), "ttl {ttl}");
    let started = Instant::now();
    loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if exists == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{key} still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.lookup("s1", now).await.unwrap(), Lookup::Unknown);
    // The flush task's sweep drops the index entry of the expired record.
    let ids = store.inner.key("ids");
    let started = Instant::now();
    loop {
        let indexed: Option<f64> = redis::cmd("ZSCORE")
            .arg(&ids)
            .arg("s1")
            .query_async(&mut conn)
            .await
            .unwrap();
        if indexed.is_none() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "s1 still indexed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An issued session's token key ends with its session (plus the
/// retention), follows an extension and a refresh, and once revoked is kept
/// as long as its revocation (it was once kept for `max_lifetime` from
/// issue, and each issue-and-revoke left a key behind for a week).
#[tokio::test]
async fn a_tokens_key_ends_with_its_session_then_with_its_revocation() {
    let Some(server) = RedisServer::start("redis a_tokens_key_ends_with_its_session") else {
        return;
    };
    let mut short = settings();
    short.revocation_ttl = Duration::from_secs(30);
    (short.ttl, short.max_lifetime) = (Duration::from_secs(60), Duration::from_secs(3600));
    let retention = short.expired_retention.as_secs() as i64;
    let store = open(&server.url(), &prefix(), short, at_t0());
    conformance::issued::issue(&store, "i1", "token-1", Some("alice"), T0).await;
    let ttl = |token: &str| {
        let key = store.inner.key(&format!(
            "t:{}",
            hex::encode(TokenHash::of(token).as_bytes())
        ));
        let mut conn = store.inner.conn.clone();
        async move {
            redis::cmd("TTL")
                .arg(&key)
                .query_async::<i64>(&mut conn)
                .await
                .unwrap()
        }
    };
    // TTL counts down in real time: allow a second or two of it.
    let near = |got: i64, want: i64| (want - 2..=want).contains(&got);
    let live = ttl("token-1").await;
    assert!(near(live, 60 + retention), "a live token key: ttl {live}");
    let extended = store.change("i1", Change::Extend(120), T0).await;
    assert!(matches!(extended.unwrap(), Changed::Done(_)));
    let longer = ttl("token-1").await;
    assert!(near(longer, 180 + retention), "extended: ttl {longer}");
    let refresh = Change::Refresh(TokenHash::of("token-2"));
    assert!(matches!(
        store.change("i1", refresh, T0).await.unwrap(),
        Changed::Done(_)
    ));
    let fresh = ttl("token-2").await;
    assert!(near(fresh, 180 + retention), "refreshed: ttl {fresh}");
    assert_eq!(
        store.revoke("i1", T0).await.unwrap(),
        Some(SessionKind::Issued)
    );
    let revoked = ttl("token-2").await;
    assert!(near(revoked, 30), "revoked token key ttl {revoked}");
    assert!(matches!(
        store
            .find_token(&TokenHash::of("token-2"), T0)
            .await
            .unwrap(),
        TokenCheck::Revoked { .. }
    ));
}

/// Redis down: signed sessions go on locally, everything else fails fast
/// with a StoreError; when it comes back the waiting deltas are written.
#[tokio::test]
async fn an_outage_degrades_to_the_local_cache() {
    let Some(server) = RedisServer::start("redis an_outage_degrades_to_the_local_cache") else {
        return;
    };
    let bin = tools_dir().join("redis-server");
    let port = server.port;
    drop(server);
    let store = open(
        &format!("redis://127.0.0.1:{port}"),
        &prefix(),
        settings(),
        at_t0(),
    );
    eventually("the first poll fails", Duration::from_secs(5), || {
        store.inner.health.is_down()
    })
    .await;
    assert!(!store.healthy());
    for n in 0..3 {
        assert_eq!(
            store.observe(&sighting("s1", "192.0.2.1", T0 + n)),
            Ok(n == 0)
        );
    }
    let started = Instant::now();
    assert!(store.lookup("s1", T0).await.is_err());
    assert!(store.find_token(&TokenHash::of("t"), T0).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let _back = RedisServer::on_port(&bin, port);
    eventually("healthy again", Duration::from_secs(10), || store.healthy()).await;
    let record = conformance::live(&store, "s1", T0 + 2).await;
    assert_eq!(record.requests, 3, "the deltas waited for Redis");
}

/// Static-header sightings are shared: one remembered through store A is
/// found by store B and by a new store after a "restart", with the first
/// address; a revoked session's sighting is refused.
#[tokio::test]
async fn static_sightings_are_shared_and_survive_a_restart() {
    let Some(server) = RedisServer::start("redis static_sightings_are_shared") else {
        return;
    };
    let shared = prefix();
    // A long flush interval: the test flushes by hand.
    let every = Duration::from_secs(3600);
    let a = open_every(&server.url(), &shared, settings(), at_t0(), every);
    let b = open_every(&server.url(), &shared, settings(), at_t0(), every);
    let signature = [7u8; 32];
    let set = HeaderSet {
        key_id: "k1",
        session_id: "st1",
        signed_path: "/v1/metrics",
        timestamp: T0,
        signature: &signature,
    };
    let first: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    let max_age = Duration::from_secs(86400);
    a.observe(&sighting("st1", "192.0.2.1", T0)).unwrap();
    a.remember_static(&set, first, T0, max_age);
    // A later use from elsewhere keeps the first address.
    a.remember_static(&set, "198.51.100.9".parse().unwrap(), T0 + 1, max_age);
    assert_eq!(b.static_sighting(&set, T0 + 10).await, None, "not flushed");
    a.inner.flush().await.unwrap();
    let expected = StaticSighting {
        client_ip: first,
        first_seen: T0,
    };
    assert_eq!(b.static_sighting(&set, T0 + 10).await, Some(expected));
    drop(a);
    let restarted = open_every(&server.url(), &shared, settings(), at_t0(), every);
    assert_eq!(
        restarted.static_sighting(&set, T0 + 20).await,
        Some(expected)
    );
    let other = HeaderSet {
        timestamp: T0 + 1,
        ..set
    };
    assert_eq!(restarted.static_sighting(&other, T0 + 20).await, None);
    // Revoked anywhere: refused (a fresh store learns it from its poll).
    restarted.revoke("st1", T0 + 30).await.unwrap();
    let fresh = open_every(&server.url(), &shared, settings(), at_t0(), every);
    eventually("the fresh store polls", Duration::from_secs(3), || {
        fresh.is_revoked("st1", T0 + 31)
    })
    .await;
    assert_eq!(fresh.static_sighting(&set, T0 + 31).await, None);
}

/// The v2 replay cache shared through Redis: two replicas (two caches on
/// one server) agree on delivered, failed and in-flight nonces; with Redis
/// gone each falls back to its local cache and counts `op="replay"`.
#[tokio::test]
async fn the_replay_cache_is_shared_by_replicas() {
    use crate::ingest::forward::Accepted;
    use crate::ingest::replay::{Begin, ReplayCache, RequestPrint};

    let Some(server) = RedisServer::start("redis the_replay_cache_is_shared") else {
        return;
    };
    let shared = prefix();
    let store_a = open(&server.url(), &shared, settings(), at_t0());
    let store_b = open(&server.url(), &shared, settings(), at_t0());
    let ttl = Duration::from_secs(601);
    let a = ReplayCache::new(100, ttl).with_shared(store_a.nonces());
    let b = Arc::new(ReplayCache::new(100, ttl).with_shared(store_b.nonces()));
    let wait = Duration::from_secs(5);
    let (same, other) = (
        RequestPrint::of_signature(b"one request"),
        RequestPrint::of_signature(b"another request"),
    );
    let reply = |text: &'static str| {
        Arc::new(Accepted {
            content_type: Some(http::HeaderValue::from_static("application/json")),
            body: bytes::Bytes::from_static(text.as_bytes()),
        })
    };

    // Delivered through A: B answers from it, without a ticket to forward.
    let Begin::Owner(ticket) = a.begin("k", "AA01", same, wait).await else {
        panic!("A owns a new nonce")
    };
    ticket.delivered(reply("{\"first\":1}"));
    match b.begin("k", "aa01", same, wait).await {
        Begin::Delivered(r) => {
            assert_eq!(&r.body[..], b"{\"first\":1}");
            assert_eq!(r.content_type.as_ref().unwrap(), "application/json");
        }
        other => panic!("B should answer as delivered: {other:?}"),
    }

    // Failed through A: B processes it again.
    let Begin::Owner(ticket) = a.begin("k", "bb02", same, wait).await else {
        panic!()
    };
    ticket.failed();
    let mut took_over = false;
    for _ in 0..50 {
        match b.begin("k", "bb02", same, Duration::from_millis(200)).await {
            Begin::Owner(ticket) => {
                took_over = true;
                ticket.delivered(reply("again"));
                break;
            }
            Begin::StillInFlight => continue,
            Begin::Delivered(_) => panic!("a failed nonce is not delivered"),
            Begin::Reused => panic!("the same request is not a reuse"),
        }
    }
    assert!(took_over, "B processes a failed nonce again");

    // A concurrent duplicate on B waits for A's outcome.
    let Begin::Owner(ticket) = a.begin("k", "cc03", same, wait).await else {
        panic!()
    };
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.begin("k", "cc03", same, wait).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiter.is_finished(), "the duplicate waits");
    ticket.delivered(reply("once"));
    match waiter.await.unwrap() {
        Begin::Delivered(r) => assert_eq!(&r.body[..], b"once"),
        other => panic!("{other:?}"),
    }
    // A waiter that sees no outcome within its bound: still in flight.
    let Begin::Owner(_held) = a.begin("k", "dd04", same, wait).await else {
        panic!()
    };
    assert!(matches!(
        b.begin("k", "dd04", same, Duration::from_millis(120)).await,
        Begin::StillInFlight
    ));

    // Another request reusing a nonce A holds or delivered: refused on B,
    // never answered with A's 200.
    let Begin::Owner(ticket) = a.begin("k", "ff06", same, wait).await else {
        panic!()
    };
    assert!(matches!(
        b.begin("k", "ff06", other, wait).await,
        Begin::Reused
    ));
    ticket.delivered(reply("first"));
    // The same request waits out A's (background) settlement, then replays.
    assert!(matches!(
        b.begin("k", "ff06", same, wait).await,
        Begin::Delivered(_)
    ));
    assert!(matches!(
        b.begin("k", "ff06", other, wait).await,
        Begin::Reused
    ));

    // Redis gone: the local cache answers, and the failure is counted.
    drop(server);
    let errors = store_a.inner.metrics.errors.with_label_values(&["replay"]);
    let before = errors.get();
    let Begin::Owner(ticket) = a.begin("k", "ee05", same, wait).await else {
        panic!("falls back to the local cache")
    };
    ticket.delivered(reply("local"));
    assert!(matches!(
        a.begin("k", "ee05", same, wait).await,
        Begin::Delivered(_)
    ));
    assert!(
        errors.get() > before,
        "counted as store_errors_total{{op=\"replay\"}}"
    );
}
