//! Conformance checks for issued sessions (tokens). Each takes a fresh store
//! built with [`settings`](super::settings) (or [`refusing`] where it says
//! so). Tokens here are plain strings: the store only ever sees their hash.

use super::*;

/// [`settings`] with `per_user_limit = refuse`.
pub fn refusing() -> SessionSettings {
    SessionSettings {
        per_user_limit: PerUserLimit::Refuse,
        ..settings()
    }
}

pub fn new_session(id: &str, token: &str, user: Option<&str>, now: i64) -> NewSession {
    NewSession {
        session_id: id.into(),
        token_hash: TokenHash::of(token),
        user_id: user.map(str::to_string),
        metadata: Some(serde_json::json!({"theme": "dark"})),
        client_ip: None,
        user_agent: Some("app/1.0".into()),
        client_version: None,
        key_id: None,
        grants: Grants::default(),
        ttl_secs: None,
        now,
    }
}

pub async fn issue(store: &dyn SessionStore, id: &str, token: &str, user: Option<&str>, now: i64) {
    match store
        .issue(new_session(id, token, user, now))
        .await
        .unwrap()
    {
        Issue::Created { .. } => {}
        other => panic!("{id} should be created: {other:?}"),
    }
}

async fn auth(store: &dyn SessionStore, token: &TokenHash, seen: &TokenUse<'_>) -> TokenCheck {
    store.authenticate(token, seen).await.unwrap()
}

async fn find(store: &dyn SessionStore, token: &str, now: i64) -> TokenCheck {
    store.find_token(&TokenHash::of(token), now).await.unwrap()
}

fn seen(now: i64) -> TokenUse<'static> {
    TokenUse {
        client_ip: ip("192.0.2.7"),
        user_agent: Some("browser/2"),
        now,
    }
}

fn owner(id: &str, user: Option<&str>) -> TokenOwner {
    TokenOwner {
        session_id: id.into(),
        user_id: user.map(str::to_string),
        grants: Grants::default(),
    }
}

/// Roles and permissions are stored with the session: read back by
/// `lookup`, and handed to `/auth` (live and expired) by the token; a
/// per-session `ttl_secs` sets the end, capped at the max lifetime.
pub async fn grants_and_ttl_are_kept(store: &dyn SessionStore) {
    let grants = Grants {
        roles: vec!["admin".into(), "ops".into()],
        permissions: vec!["metrics:read".into()],
    };
    let mut new = new_session("g1", "tok-g", Some("alice"), T0);
    new.grants = grants.clone();
    new.ttl_secs = Some(600);
    let Issue::Created { record, .. } = store.issue(new).await.unwrap() else {
        panic!("not created");
    };
    assert_eq!(record.grants, grants);
    assert_eq!(record.expires_at, T0 + 600);
    assert_eq!(live(store, "g1", T0).await.grants, grants);
    let with = TokenOwner {
        grants: grants.clone(),
        ..owner("g1", Some("alice"))
    };
    assert_eq!(
        find(store, "tok-g", T0).await,
        TokenCheck::Live(with.clone())
    );
    let check = auth(store, &TokenHash::of("tok-g"), &seen(T0 + 1)).await;
    assert_eq!(check, TokenCheck::Live(with.clone()));
    let listed = store.list(&page(10), T0 + 1).await.unwrap().sessions;
    assert_eq!(listed[0].grants, grants);
    // The touch kept them; the short TTL ends the session.
    assert_eq!(live(store, "g1", T0 + 600).await.grants, grants);
    assert_eq!(
        auth(store, &TokenHash::of("tok-g"), &seen(T0 + 601)).await,
        TokenCheck::Expired(with)
    );

    let mut capped = new_session("g2", "tok-c", None, T0);
    capped.ttl_secs = Some(MAX_LIFETIME as u64 * 10);
    let Issue::Created { record, .. } = store.issue(capped).await.unwrap() else {
        panic!("not created");
    };
    assert_eq!(record.expires_at, T0 + MAX_LIFETIME);
    assert!(record.grants.is_empty());
    assert_eq!(
        find(store, "tok-c", T0).await,
        TokenCheck::Live(owner("g2", None))
    );
}

pub async fn issue_and_find_by_token_hash(store: &dyn SessionStore) {
    let created = store
        .issue(new_session("i1", "tok-1", Some("alice"), T0))
        .await
        .unwrap();
    let Issue::Created { record, evicted } = created else {
        panic!("not created: {created:?}");
    };
    assert_eq!(evicted, 0);
    assert_eq!(record.kind, SessionKind::Issued);
    assert_eq!((record.first_seen, record.expires_at), (T0, T0 + TTL));
    assert_eq!(record.idle_expires_at, Some(T0 + IDLE));
    assert_eq!(record.user_id.as_deref(), Some("alice"));
    assert_eq!(record.pet_name, petname::pet_name("i1"));
    assert_eq!(live(store, "i1", T0).await, *record);
    let check = find(store, "tok-1", T0).await;
    assert_eq!(check, TokenCheck::Live(owner("i1", Some("alice"))));
    assert_eq!(find(store, "tok-2", T0).await, TokenCheck::Unknown);
    let listed = format!("{:?}", store.list(&page(10), T0).await.unwrap());
    assert!(!listed.contains("tok-1"), "{listed}");

    // /auth touches: the idle timer restarts, the request is counted.
    let check = auth(store, &TokenHash::of("tok-1"), &seen(T0 + 10)).await;
    assert_eq!(check, TokenCheck::Live(owner("i1", Some("alice"))));
    let record = live(store, "i1", T0 + 10).await;
    assert_eq!((record.last_seen, record.requests), (T0 + 10, 1));
    assert_eq!(record.idle_expires_at, Some(T0 + 10 + IDLE));
    assert_eq!(record.client_ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(record.user_agent.as_deref(), Some("browser/2"));
    // Idle past the timer: expired, for reads and for /auth.
    let idle = T0 + 10 + IDLE + 1;
    assert!(matches!(
        store.lookup("i1", idle).await.unwrap(),
        Lookup::Expired(_)
    ));
    assert!(matches!(
        auth(store, &TokenHash::of("tok-1"), &seen(idle)).await,
        TokenCheck::Expired(_)
    ));
}

pub async fn the_absolute_ttl_ends_a_busy_session(store: &dyn SessionStore) {
    issue(store, "i1", "tok-1", None, T0).await;
    let mut now = T0;
    while now + IDLE / 2 <= T0 + TTL {
        now += IDLE / 2;
        let check = auth(store, &TokenHash::of("tok-1"), &seen(now)).await;
        assert!(matches!(check, TokenCheck::Live(_)), "{now}: {check:?}");
    }
    let after = T0 + TTL + 1;
    assert!(matches!(
        auth(store, &TokenHash::of("tok-1"), &seen(after)).await,
        TokenCheck::Expired(_)
    ));
    assert_eq!(
        store.change("i1", Change::Touch, after).await.unwrap(),
        Changed::Expired
    );
}

pub async fn refresh_kills_the_old_token_at_once(store: &dyn SessionStore) {
    issue(store, "i1", "old", Some("alice"), T0).await;
    let change = Change::Refresh(TokenHash::of("new"));
    let Changed::Done(record) = store.change("i1", change, T0 + 5).await.unwrap() else {
        panic!("refresh failed");
    };
    assert_eq!(
        (record.session_id.as_str(), record.last_seen),
        ("i1", T0 + 5)
    );
    assert_eq!(find(store, "old", T0 + 5).await, TokenCheck::Unknown);
    assert_eq!(
        auth(store, &TokenHash::of("old"), &seen(T0 + 5)).await,
        TokenCheck::Unknown
    );
    assert_eq!(
        find(store, "new", T0 + 5).await,
        TokenCheck::Live(owner("i1", Some("alice")))
    );
}

pub async fn extend_is_bounded_by_the_max_lifetime(store: &dyn SessionStore) {
    issue(store, "i1", "tok-1", None, T0).await;
    let extended = store
        .change("i1", Change::Extend(1000), T0 + 1)
        .await
        .unwrap();
    let Changed::Done(record) = extended else {
        panic!("extend failed: {extended:?}");
    };
    assert_eq!(record.expires_at, T0 + TTL + 1000);
    assert_eq!(
        record.idle_expires_at,
        Some(T0 + 1 + IDLE),
        "extend touches"
    );
    let far = Change::Extend(MAX_LIFETIME as u64);
    let Changed::Done(record) = store.change("i1", far, T0 + 2).await.unwrap() else {
        panic!("extend failed");
    };
    assert_eq!(record.expires_at, T0 + MAX_LIFETIME);
    assert_eq!(
        store.change("ghost", Change::Touch, T0).await.unwrap(),
        Changed::Unknown
    );
    store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
    assert_eq!(
        store.change("s1", Change::Extend(10), T0).await.unwrap(),
        Changed::NotIssued
    );
    // A signature naming an issued id does not turn it into a signed session.
    store.observe(&sighting("i1", "192.0.2.1", T0 + 3)).unwrap();
    assert_eq!(live(store, "i1", T0 + 3).await.kind, SessionKind::Issued);
}

pub async fn a_user_over_the_limit_loses_the_oldest(store: &dyn SessionStore) {
    for n in 0..MAX_PER_USER {
        issue(
            store,
            &format!("a{n}"),
            &format!("ta{n}"),
            Some("alice"),
            T0 + n as i64,
        )
        .await;
    }
    issue(store, "b0", "tb0", Some("bob"), T0).await;
    let outcome = store
        .issue(new_session("a9", "ta9", Some("alice"), T0 + 10))
        .await
        .unwrap();
    assert!(
        matches!(outcome, Issue::Created { evicted: 1, .. }),
        "{outcome:?}"
    );
    assert_eq!(store.lookup("a0", T0 + 10).await.unwrap(), Lookup::Unknown);
    assert_eq!(find(store, "ta0", T0 + 10).await, TokenCheck::Unknown);
    for id in ["a1", "a2", "a9", "b0"] {
        live(store, id, T0 + 10).await;
    }
}

/// Run with a store built with [`refusing`].
pub async fn a_user_over_the_limit_is_refused(store: &dyn SessionStore) {
    for n in 0..MAX_PER_USER {
        issue(
            store,
            &format!("a{n}"),
            &format!("ta{n}"),
            Some("alice"),
            T0,
        )
        .await;
    }
    let refused = store
        .issue(new_session("a9", "ta9", Some("alice"), T0))
        .await
        .unwrap();
    assert_eq!(refused, Issue::TooManyForUser);
    assert_eq!(find(store, "ta9", T0).await, TokenCheck::Unknown);
    live(store, "a0", T0).await;
    // A logout frees a place; so does expiry.
    assert!(store.delete("a0").await.unwrap());
    issue(store, "a8", "ta8", Some("alice"), T0).await;
    issue(store, "a9", "ta9", Some("alice"), T0 + TTL + 1).await;
}

pub async fn a_signed_client_issues_within_its_address_cap(store: &dyn SessionStore) {
    for n in 0..3 {
        let mut new = new_session(&format!("i{n}"), &format!("t{n}"), None, T0);
        new.client_ip = Some(ip("192.0.2.1"));
        assert!(matches!(
            store.issue(new).await.unwrap(),
            Issue::Created { .. }
        ));
    }
    let mut new = new_session("i9", "t9", None, T0);
    new.client_ip = Some(ip("192.0.2.1"));
    assert_eq!(store.issue(new).await.unwrap(), Issue::TooManyForIp);
    issue(store, "admin-made", "t10", None, T0).await;
}

pub async fn logout_revoke_user_delete_and_wipe(store: &dyn SessionStore) {
    issue(store, "a1", "ta1", Some("alice"), T0).await;
    issue(store, "a2", "ta2", Some("alice"), T0).await;
    issue(store, "b1", "tb1", Some("bob"), T0).await;
    issue(store, "c1", "tc1", None, T0).await;
    store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
    let bob = ListFilter {
        user: Some("bob".into()),
        ..page(10)
    };
    let listed = store.list(&bob, T0).await.unwrap().sessions;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].session_id, "b1");
    let stats = store.stats(T0).await.unwrap();
    assert_eq!((stats.active["issued"], stats.active["signed"]), (4, 1));

    // Logout: gone, and so is its token.
    assert!(store.delete("c1").await.unwrap());
    assert!(!store.delete("c1").await.unwrap());
    assert_eq!(find(store, "tc1", T0).await, TokenCheck::Unknown);
    // An operator's revocation of an issued session deletes it; its token
    // is then answered as revoked.
    assert_eq!(
        store.revoke("b1", T0).await.unwrap(),
        Some(SessionKind::Issued)
    );
    assert_eq!(store.lookup("b1", T0).await.unwrap(), Lookup::Unknown);
    let revoked = TokenCheck::Revoked {
        session_id: "b1".into(),
    };
    assert_eq!(find(store, "tb1", T0).await, revoked);
    assert_eq!(auth(store, &TokenHash::of("tb1"), &seen(T0)).await, revoked);

    assert_eq!(store.delete_user("alice").await.unwrap(), 2);
    assert_eq!(store.delete_user("alice").await.unwrap(), 0);
    assert_eq!(find(store, "ta1", T0).await, TokenCheck::Unknown);
    assert_eq!(store.lookup("a2", T0).await.unwrap(), Lookup::Unknown);
    live(store, "s1", T0).await;

    issue(store, "d1", "td1", Some("dora"), T0).await;
    store.revoke("s1", T0).await.unwrap();
    assert_eq!(store.wipe().await.unwrap(), 2);
    assert_eq!(store.lookup("s1", T0).await.unwrap(), Lookup::Unknown);
    assert!(!store.is_revoked("s1", T0));
    assert_eq!(find(store, "td1", T0).await, TokenCheck::Unknown);
    assert_eq!(find(store, "tb1", T0).await, TokenCheck::Unknown);
    assert!(store.list(&page(10), T0).await.unwrap().sessions.is_empty());
    assert_eq!(
        store.active(T0),
        vec![(SessionKind::Signed, 0), (SessionKind::Issued, 0)]
    );
    // The store works on after a wipe.
    issue(store, "e1", "te1", Some("dora"), T0).await;
    store.observe(&sighting("s1", "192.0.2.1", T0)).unwrap();
}

fn page(limit: usize) -> ListFilter {
    ListFilter {
        limit,
        ..ListFilter::default()
    }
}
