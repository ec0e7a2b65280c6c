//! Signed-session tracking and the operator's session API over real HTTP.

use crate::support::*;

const ADMIN: &str = "admin-token-0123456789abcdef";

fn config(extra: &str) -> String {
    config_with(&format!("[admin]\ntoken_file = \"admin.token\"\n{extra}"))
}

async fn server(extra: &str) -> TestServer {
    start_server_with_files(&config(extra), &[("admin.token", &format!("{ADMIN}\n"))]).await
}

async fn admin_get(server: &TestServer, path: &str) -> reqwest::Response {
    server
        .client
        .get(server.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
}

/// `GET /sessions/{id}` as the admin: the record (a 200 is asserted).
async fn admin_record(server: &TestServer, id: &str) -> serde_json::Value {
    let response = admin_get(server, &format!("/sessions/{id}")).await;
    assert_eq!(response.status(), 200, "{id}");
    response.json().await.unwrap()
}

async fn admin_delete(server: &TestServer, path: &str) -> reqwest::Response {
    server
        .client
        .delete(server.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
}

async fn auth_as(server: &TestServer, session: &str) -> reqwest::Response {
    let mut headers = signed(SECRET_A, "POST", "/v1/metrics", NOW, session);
    headers.push(("User-Agent", "OTel-OTLP-Exporter-Dotnet/1.9.0".into()));
    server.auth_request(&headers).send().await.unwrap()
}

#[tokio::test]
async fn verified_requests_are_tracked_and_readable() {
    let server = server("").await;
    assert_eq!(auth_as(&server, SESSION).await.status(), 200);
    assert_eq!(auth_as(&server, SESSION).await.status(), 200);
    let response = admin_get(&server, &format!("/sessions/{SESSION}")).await;
    assert_eq!(response.status(), 200);
    let record: serde_json::Value = response.json().await.unwrap();
    assert_eq!(record["session_id"], SESSION);
    assert_eq!(record["kind"], "signed");
    assert_eq!(record["requests"], 2);
    assert_eq!(record["first_seen"], NOW);
    assert_eq!(record["client_ip"], "127.0.0.1");
    assert_eq!(record["client_version"], "2.0.0.0");
    assert_eq!(record["user_agent"], "OTel-OTLP-Exporter-Dotnet/1.9.0");
    assert_eq!(record["key_id"], "a");
    assert_eq!(
        record["pet_name"],
        telegate::session::petname::pet_name(SESSION)
    );
    let text = server.scrape().await;
    assert_eq!(
        sample(&text, "telegate_sessions_created_total{kind=\"signed\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "telegate_sessions_active{kind=\"signed\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn refused_requests_are_not_tracked() {
    let server = server("").await;
    let headers = signed("wrong-secret", "POST", "/v1/metrics", NOW, "intruder");
    assert_eq!(
        server.auth_request(&headers).send().await.unwrap().status(),
        403
    );
    let response = admin_get(&server, "/sessions/intruder").await;
    assert_eq!(reason_of(response).await, (404, "not_found".into()));
}

#[tokio::test]
async fn a_revoked_session_is_refused_by_auth_even_with_a_valid_signature() {
    let server = server("").await;
    assert_eq!(auth_as(&server, SESSION).await.status(), 200);
    let response = admin_delete(&server, &format!("/sessions/{SESSION}")).await;
    assert_eq!(response.status(), 200);
    let response = auth_as(&server, SESSION).await;
    assert_eq!(reason_of(response).await, (403, "session_revoked".into()));
    assert_eq!(auth_as(&server, "another-session").await.status(), 200);
    let record: serde_json::Value = admin_get(&server, &format!("/sessions/{SESSION}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(record["revoked_at"], NOW);
    let text = server.scrape().await;
    assert_eq!(sample(&text, "telegate_sessions_revoked_total"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"session_revoked\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "telegate_sessions_active{kind=\"signed\"}"),
        Some(1.0)
    );
}

/// Every id that passes `/auth` can be read and revoked by its
/// percent-encoded path segment, UTF-8 included (the docs' and the v2
/// vectors' `séssion`), and the id comes back byte for byte.
#[tokio::test]
async fn every_id_that_passes_auth_can_be_read_and_revoked() {
    let server = server("").await;
    let ids = [
        ("séssion", "s%C3%A9ssion"),
        (
            "セッション-1",
            "%E3%82%BB%E3%83%83%E3%82%B7%E3%83%A7%E3%83%B3-1",
        ),
        ("a:b@c+d=e", "a%3Ab%40c%2Bd%3De"),
        ("plain.id_1~", "plain.id_1~"),
    ];
    for (id, encoded) in ids {
        let response = auth_as(&server, id).await;
        assert_eq!(response.status(), 200, "{id}");
        assert_eq!(
            response.headers()["x-auth-session-id"].as_bytes(),
            id.as_bytes()
        );
        assert_eq!(admin_record(&server, encoded).await["session_id"], id);
        let response = admin_delete(&server, &format!("/sessions/{encoded}")).await;
        assert_eq!(response.status(), 200, "{id}");
        let response = auth_as(&server, id).await;
        assert_eq!(
            reason_of(response).await,
            (403, "session_revoked".into()),
            "{id}"
        );
    }
    let response = admin_get(&server, "/sessions/%zz").await;
    assert_eq!(reason_of(response).await, (400, "bad_query".into()));
}

/// The characters that would change an id's meaning in a URL or a log line
/// are refused where the id enters, like `|`: no session is recorded.
#[tokio::test]
async fn ids_with_url_structure_or_whitespace_are_malformed() {
    let server = server("").await;
    let refused = [
        "evil/one",
        "a?b",
        "a#b",
        "a b",
        "a%2Fb",
        "a\\b",
        "a\tb",
        "a\u{85}b",
        "a\u{2028}b",
    ];
    for id in refused {
        let response = auth_as(&server, id).await;
        assert_eq!(
            reason_of(response).await,
            (401, "malformed_header".into()),
            "{id:?}"
        );
    }
    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"malformed_header\"}"
        ),
        Some(refused.len() as f64)
    );
    assert_eq!(
        sample(&text, "telegate_sessions_active{kind=\"signed\"}"),
        Some(0.0)
    );
}

/// An id stored before the rule (`evil/one`, from an older release sharing
/// the Redis store) is still reachable: the API decodes `%2F`.
#[tokio::test]
async fn an_id_with_a_slash_stored_earlier_can_be_revoked() {
    let server = server("").await;
    let sighting = telegate::session::Sighting {
        session_id: "evil/one",
        client_ip: "127.0.0.1".parse().unwrap(),
        user_agent: None,
        client_version: None,
        key_id: "a",
        bytes: 0,
        now: NOW,
    };
    assert_eq!(server.state.sessions().observe(&sighting), Ok(true));
    assert_eq!(
        admin_record(&server, "evil%2Fone").await["session_id"],
        "evil/one"
    );
    let response = admin_delete(&server, "/sessions/evil%2Fone").await;
    assert_eq!(response.status(), 200);
    assert!(server.state.sessions().is_revoked("evil/one", NOW));
    let raw = admin_delete(&server, "/sessions/evil/one").await;
    assert_eq!(reason_of(raw).await, (404, "not_found".into()));
}

/// A 15 KB User-Agent is kept as its first 256 bytes (cut on a character
/// boundary), whether a signed request, `POST /sessions` or a token on
/// `/auth` brings it: a session costs what docs/configuration.md says.
#[tokio::test]
async fn long_user_agents_are_stored_cut() {
    let server = server("[policies.app]\nmethods = [\"hmac\", \"session\"]").await;
    let long = format!("Exporter/1.0 {}", "x".repeat(15_000));
    let cut = &long[..256];
    let mut headers = signed(SECRET_A, "POST", "/v1/metrics", NOW, SESSION);
    headers.push(("User-Agent", long.clone()));
    assert_eq!(
        server.auth_request(&headers).send().await.unwrap().status(),
        200
    );
    let record = admin_record(&server, SESSION).await;
    assert_eq!(record["user_agent"], cut);

    let issued: serde_json::Value = server
        .client
        .post(server.url("/sessions"))
        .bearer_auth(ADMIN)
        .header("User-Agent", long.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = issued["session_id"].as_str().unwrap();
    let record = admin_record(&server, id).await;
    assert_eq!(record["user_agent"], cut);

    let other = format!("Other/2.0 {}", "y".repeat(15_000));
    let response = server
        .client
        .get(server.url("/auth?policy=app"))
        .header("X-Forwarded-Method", "POST")
        .header("X-Forwarded-Uri", "/v1/traces")
        .bearer_auth(issued["token"].as_str().unwrap())
        .header("User-Agent", other.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let record = admin_record(&server, id).await;
    assert_eq!(
        record["user_agent"],
        &other[..256],
        "a token's use updates it, cut too"
    );
}

#[tokio::test]
async fn unknown_and_expired_sessions() {
    let server = server("").await;
    assert_eq!(
        reason_of(admin_get(&server, "/sessions/ghost").await).await,
        (404, "not_found".into())
    );
    assert_eq!(
        reason_of(admin_delete(&server, "/sessions/ghost").await).await,
        (404, "not_found".into())
    );
    auth_as(&server, SESSION).await;
    server.set_now(NOW + 3601);
    let response = admin_get(&server, &format!("/sessions/{SESSION}")).await;
    assert_eq!(reason_of(response).await, (410, "session_expired".into()));
}

#[tokio::test]
async fn one_address_cannot_mint_unbounded_sessions() {
    let server = server("[sessions]\nmax_per_ip = 2").await;
    assert_eq!(auth_as(&server, "s-1").await.status(), 200);
    assert_eq!(auth_as(&server, "s-2").await.status(), 200);
    let response = auth_as(&server, "s-3").await;
    assert_eq!(response.headers()["retry-after"], "60");
    assert_eq!(reason_of(response).await, (429, "too_many_sessions".into()));
    assert_eq!(
        auth_as(&server, "s-1").await.status(),
        200,
        "known sessions go on"
    );
    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"too_many_sessions\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn list_pages_and_stats() {
    let server = server("").await;
    for id in ["c", "a", "b"] {
        auth_as(&server, id).await;
    }
    let page: serde_json::Value = admin_get(&server, "/sessions?limit=2")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<_> = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].clone())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(page["next_cursor"], "b");
    let page: serde_json::Value = admin_get(
        &server,
        "/sessions?limit=2&cursor=b&kind=signed&active=true",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(page["sessions"][0]["session_id"], "c");
    assert_eq!(page["next_cursor"], serde_json::Value::Null);
    let bad = admin_get(&server, "/sessions?limit=0").await;
    assert_eq!(reason_of(bad).await, (400, "bad_query".into()));
    let bad = admin_get(&server, "/sessions?kind=other").await;
    assert_eq!(reason_of(bad).await, (400, "bad_query".into()));

    admin_delete(&server, "/sessions/c").await;
    let stats: serde_json::Value = admin_get(&server, "/sessions/stats")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["active"]["signed"], 2);
    assert_eq!(stats["active"]["issued"], 0);
    assert_eq!(stats["by_client_version"]["2.0.0.0"], 2);
    assert_eq!(stats["created_last_hour"], 3);
    assert_eq!(stats["revoked"], 1);
}

#[tokio::test]
async fn the_session_api_needs_the_admin_token() {
    let server = server("").await;
    let none = server
        .client
        .get(server.url("/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(reason_of(none).await, (401, "admin_token_required".into()));
    let wrong = server
        .client
        .get(server.url("/sessions"))
        .bearer_auth("not-the-token-xxxxxx")
        .send()
        .await
        .unwrap();
    let body = wrong.text().await.unwrap();
    assert!(body.contains("bad_admin_token"), "{body}");
    assert!(!body.contains(ADMIN));
    let off = start_server(&config_with("")).await;
    let response = off
        .client
        .get(off.url("/sessions/stats"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(reason_of(response).await, (403, "admin_disabled".into()));
    let put = server
        .client
        .put(server.url("/sessions/x"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(reason_of(put).await, (405, "method_not_allowed".into()));
}

/// The session API has its own limiter (`rate_limit.session_api`), per
/// client address (a trusted proxy's `X-Forwarded-For` names it), apart
/// from `/auth`'s quota; a refusal is a counted 429 with `Retry-After`.
#[tokio::test]
async fn the_session_api_has_its_own_rate_limit() {
    let server = server("[rate_limit]\nsession_api = { per_second = 1, burst = 3 }").await;
    for n in 0..3 {
        let response = admin_get(&server, "/sessions/stats").await;
        assert_eq!(response.status(), 200, "request {n}");
    }
    let response = admin_get(&server, "/sessions/stats").await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(reason_of(response).await, (429, "rate_limited".into()));
    let wrong = server
        .client
        .get(server.url("/sessions"))
        .bearer_auth("guess-0000000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        reason_of(wrong).await,
        (429, "rate_limited".into()),
        "a guess is limited before its token is compared"
    );
    let other_client = server
        .client
        .get(server.url("/sessions/stats"))
        .bearer_auth(ADMIN)
        .header("X-Forwarded-For", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other_client.status(),
        200,
        "another address has its own cells"
    );
    assert_eq!(
        auth_as(&server, SESSION).await.status(),
        200,
        "/auth is apart"
    );
    let text = server.scrape().await;
    assert_eq!(sample(&text, "telegate_rate_limited_total"), Some(2.0));
    assert_eq!(
        sample(&text, "telegate_auth_failed_total{reason=\"rate_limited\"}"),
        Some(0.0),
        "not a forwardAuth decision"
    );
    assert_eq!(
        sample(
            &text,
            "telegate_api_auth_failed_total{reason=\"bad_admin_token\"}"
        ),
        Some(0.0),
        "refused before the token was looked at"
    );
}

/// Failed admin and owner credentials are counted by reason
/// (`{ns}_api_auth_failed_total`); the log line is checked on the real
/// binary in `e2e_observe`.
#[tokio::test]
async fn failed_api_credentials_are_counted_by_reason() {
    let server = server("").await;
    for _ in 0..5 {
        let wrong = server
            .client
            .get(server.url("/sessions"))
            .bearer_auth("not-the-token-xxxxxx")
            .send()
            .await
            .unwrap();
        assert_eq!(reason_of(wrong).await, (403, "bad_admin_token".into()));
    }
    let none = server
        .client
        .get(server.url("/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(reason_of(none).await, (401, "admin_token_required".into()));
    let unknown_token = server
        .client
        .get(server.url(&format!("/sessions/{SESSION}")))
        .bearer_auth("no-such-session-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        reason_of(unknown_token).await,
        (401, "invalid_session".into())
    );
    let bare = server
        .client
        .delete(server.url(&format!("/sessions/{SESSION}")))
        .send()
        .await
        .unwrap();
    assert_eq!(reason_of(bare).await, (401, "credential_required".into()));
    assert_eq!(admin_get(&server, "/sessions/stats").await.status(), 200);
    let text = server.scrape().await;
    for (reason, count) in [
        ("bad_admin_token", 5.0),
        ("admin_token_required", 1.0),
        ("invalid_session", 1.0),
        ("credential_required", 1.0),
        ("not_owner", 0.0),
    ] {
        let series = format!("telegate_api_auth_failed_total{{reason=\"{reason}\"}}");
        assert_eq!(sample(&text, &series), Some(count), "{reason}");
    }
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"invalid_session\"}"
        ),
        Some(0.0),
        "the API's refusals are not forwardAuth decisions"
    );
}

#[tokio::test]
async fn with_tracking_off_nothing_is_recorded_but_revocations_hold() {
    let server = server("[sessions]\ntrack = false").await;
    assert_eq!(auth_as(&server, SESSION).await.status(), 200);
    let response = admin_get(&server, &format!("/sessions/{SESSION}")).await;
    assert_eq!(reason_of(response).await, (404, "not_found".into()));
    let metrics = server.scrape().await;
    assert_eq!(
        sample(&metrics, "telegate_sessions_created_total{kind=\"signed\"}"),
        Some(0.0)
    );
    // A revocation learnt while tracking was on still refuses.
    server
        .state
        .sessions()
        .observe(&telegate::session::Sighting {
            session_id: "s-known",
            client_ip: "127.0.0.1".parse().unwrap(),
            user_agent: None,
            client_version: None,
            key_id: "a",
            bytes: 0,
            now: NOW,
        })
        .unwrap();
    let response = admin_delete(&server, "/sessions/s-known").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        reason_of(auth_as(&server, "s-known").await).await,
        (403, "session_revoked".into())
    );
}
