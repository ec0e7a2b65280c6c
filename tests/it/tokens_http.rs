//! Issued sessions (tokens) over real HTTP: `POST /sessions` for an admin
//! and for a signed client, every owner route, `/auth` with a token three
//! ways, expiry on the injected clock, per-user limits, wipe, and the token
//! never shown again after it is issued.

use crate::support::*;
use serde_json::{json, Value};

pub(crate) const ADMIN: &str = "admin-token-0123456789abcdef";

/// Session tokens accepted by `/auth?policy=app`; a loose rate limit so the
/// tests can send many requests from one address.
pub(crate) fn config(extra: &str) -> String {
    config_with(&format!(
        "[admin]\ntoken_file = \"admin.token\"\n\
         [rate_limit]\nper_second = 1000\nburst = 1000\n\
         [policies.app]\nmethods = [\"hmac\", \"session\"]\n{extra}"
    ))
}

pub(crate) async fn server(extra: &str) -> TestServer {
    start_server_with_files(&config(extra), &[("admin.token", &format!("{ADMIN}\n"))]).await
}

/// `POST /sessions` as the admin, with an optional JSON body.
pub(crate) async fn admin_create(server: &TestServer, body: Option<Value>) -> reqwest::Response {
    let mut request = server
        .client
        .post(server.url("/sessions"))
        .bearer_auth(ADMIN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// A 201 from `POST /sessions`: (session id, token, whole body).
pub(crate) async fn created(response: reqwest::Response) -> (String, String, Value) {
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let id = body["session_id"].as_str().unwrap().to_string();
    let token = body["token"].as_str().unwrap().to_string();
    (id, token, body)
}

pub(crate) async fn issue_for(server: &TestServer, user: &str) -> (String, String) {
    let (id, token, _) = created(admin_create(server, Some(json!({"user_id": user}))).await).await;
    (id, token)
}

/// `/auth?policy=app` with one extra header.
pub(crate) async fn auth_with(server: &TestServer, name: &str, value: &str) -> reqwest::Response {
    server
        .client
        .get(server.url("/auth?policy=app"))
        .header("X-Forwarded-Method", "POST")
        .header("X-Forwarded-Uri", "/v1/traces")
        .header(name, value)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn auth_bearer(server: &TestServer, token: &str) -> reqwest::Response {
    auth_with(server, "Authorization", &format!("Bearer {token}")).await
}

/// A request on the session API carrying `credential` as a bearer token.
pub(crate) fn with_bearer(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    credential: &str,
) -> reqwest::RequestBuilder {
    server
        .client
        .request(method, server.url(path))
        .bearer_auth(credential)
}

pub(crate) async fn get_as(server: &TestServer, path: &str, credential: &str) -> reqwest::Response {
    with_bearer(server, reqwest::Method::GET, path, credential)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn post_as(
    server: &TestServer,
    path: &str,
    credential: &str,
    body: Option<&str>,
) -> reqwest::Response {
    let mut request = with_bearer(server, reqwest::Method::POST, path, credential);
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    request.send().await.unwrap()
}

pub(crate) async fn delete_as(
    server: &TestServer,
    path: &str,
    credential: &str,
) -> reqwest::Response {
    with_bearer(server, reqwest::Method::DELETE, path, credential)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn json_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The KMS headers for `POST /sessions` itself (no Traefik headers).
pub(crate) fn signed_create(timestamp: i64, session: &str) -> Vec<(&'static str, String)> {
    let headers = signed(SECRET_A, "POST", "/sessions", timestamp, session);
    let headers = with(headers, "X-Forwarded-Method", None);
    with(headers, "X-Forwarded-Uri", None)
}

pub(crate) async fn signed_post(
    server: &TestServer,
    headers: &[(&'static str, String)],
) -> reqwest::Response {
    add_headers(server.client.post(server.url("/sessions")), headers)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_issues_a_token_that_auth_accepts_three_ways() {
    let server = server("").await;
    let response = admin_create(&server, Some(json!({"user_id": "alice"}))).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (id, token, body) = created(response).await;
    assert_eq!(id.len(), 36, "GUID-shaped: {id}");
    assert_eq!(token.len(), 43, "256 bits, URL-safe base64 without padding");
    assert!(!token.contains(&id));
    assert_eq!(body["expires_at"], NOW + 86400);
    assert_eq!(body["idle_expires_at"], NOW + 3600);
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["kind"], "issued");
    assert_eq!(body["pet_name"], telegate::session::petname::pet_name(&id));
    assert_eq!(body["metadata_stored"], false);

    let cookie = format!("other=1; telegate_session={token}");
    for (name, value) in [
        ("Authorization", format!("Bearer {token}")),
        ("X-Session-ID", token.clone()),
        ("Cookie", cookie),
    ] {
        let response = auth_with(&server, name, &value).await;
        assert_eq!(response.status(), 200, "{name}");
        let headers = response.headers();
        assert_eq!(headers["x-auth-session-id"], id.as_str());
        assert_eq!(headers["x-auth-user"], "alice");
        assert_eq!(headers["x-auth-status"], "valid");
    }
    // The default policy does not take tokens: it wants a signature.
    let response = server
        .client
        .get(server.url("/auth"))
        .header("X-Forwarded-Uri", "/v1/traces")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(reason_of(response).await, (401, "missing_signature".into()));
    // Signed requests still pass under the session policy.
    let headers = signed(SECRET_A, "POST", "/v1/traces", NOW, SESSION);
    let mut request = server.client.get(server.url("/auth?policy=app"));
    for (name, value) in &headers {
        request = request.header(*name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);

    let record = json_of(get_as(&server, &format!("/sessions/{id}"), &token).await).await;
    assert_eq!(record["requests"], 3);
    assert_eq!(record["user_id"], "alice");
    let text = server.scrape().await;
    assert_eq!(
        sample(&text, "telegate_sessions_created_total{kind=\"issued\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "telegate_sessions_active{kind=\"issued\"}"),
        Some(1.0)
    );
    let stats = json_of(get_as(&server, "/sessions/stats", ADMIN).await).await;
    assert_eq!(stats["active"]["issued"], 1);
    let issued = json_of(get_as(&server, "/sessions?kind=issued", ADMIN).await).await;
    assert_eq!(issued["sessions"][0]["session_id"], id.as_str());
}

#[tokio::test]
async fn a_signed_client_gets_a_session_over_post_sessions() {
    let server = server("").await;
    let response = signed_post(&server, &signed_create(NOW, "kms-1")).await;
    let (id, token, body) = created(response).await;
    assert_eq!(body["user_id"], Value::Null);
    let record = json_of(get_as(&server, &format!("/sessions/{id}"), &token).await).await;
    assert_eq!(record["key_id"], "a");
    assert_eq!(record["client_version"], "2.0.0.0");
    assert_eq!(record["client_ip"], "127.0.0.1");
    // The signing KMS session itself is tracked as /auth would track it.
    let kms = json_of(get_as(&server, "/sessions/kms-1", ADMIN).await).await;
    assert_eq!(kms["kind"], "signed");
    assert_eq!(auth_bearer(&server, &token).await.status(), 200);

    // Signed over another path, stale, or not signed at all.
    let wrong_path = with(
        signed(SECRET_A, "POST", "/auth", NOW, "kms-1"),
        "X-Forwarded-Uri",
        None,
    );
    let response = signed_post(&server, &wrong_path).await;
    assert_eq!(reason_of(response).await, (403, "bad_signature".into()));
    let response = signed_post(&server, &signed_create(NOW - 301, "kms-1")).await;
    assert_eq!(reason_of(response).await, (401, "stale_timestamp".into()));
    let response = server
        .client
        .post(server.url("/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reason_of(response).await,
        (401, "credential_required".into())
    );
    let response = post_as(&server, "/sessions", "not-the-admin-token", None).await;
    assert_eq!(reason_of(response).await, (403, "bad_admin_token".into()));
    // A revoked KMS session cannot mint tokens.
    delete_as(&server, "/sessions/kms-1", ADMIN).await;
    let response = signed_post(&server, &signed_create(NOW, "kms-1")).await;
    assert_eq!(reason_of(response).await, (403, "session_revoked".into()));
}

#[tokio::test]
async fn signed_issuing_is_rate_limited_and_capped_per_address() {
    let limited = start_server(&config_with("[rate_limit]\nper_second = 1\nburst = 1")).await;
    assert_eq!(
        signed_post(&limited, &signed_create(NOW, "k"))
            .await
            .status(),
        201
    );
    let response = signed_post(&limited, &signed_create(NOW, "k")).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(reason_of(response).await, (429, "rate_limited".into()));

    // The signing session takes one place, each issued session another.
    let capped = server("[sessions]\nmax_per_ip = 3").await;
    for _ in 0..2 {
        assert_eq!(
            signed_post(&capped, &signed_create(NOW, "k"))
                .await
                .status(),
            201
        );
    }
    let response = signed_post(&capped, &signed_create(NOW, "k")).await;
    assert_eq!(reason_of(response).await, (429, "too_many_sessions".into()));
}

#[tokio::test]
async fn bodies_are_capped_and_checked() {
    let server = server("").await;
    let cases: [(&str, (u16, &str)); 6] = [
        ("{", (400, "malformed_body")),
        ("[1]", (400, "malformed_body")),
        (r#"{"user": "x"}"#, (400, "malformed_body")),
        (r#"{"user_id": 7}"#, (400, "malformed_body")),
        (r#"{"metadata": "text"}"#, (400, "malformed_body")),
        (r#"{"user_id": ""}"#, (400, "malformed_body")),
    ];
    for (body, expected) in cases {
        let response = post_as(&server, "/sessions", ADMIN, Some(body)).await;
        let (status, reason) = reason_of(response).await;
        assert_eq!((status, reason.as_str()), expected, "{body}");
    }
    let long_user = json!({"user_id": "u".repeat(129)});
    let response = admin_create(&server, Some(long_user)).await;
    assert_eq!(reason_of(response).await, (400, "malformed_body".into()));
    assert_eq!(
        admin_create(&server, Some(json!({"user_id": "u".repeat(128)})))
            .await
            .status(),
        201
    );
    let big_metadata = json!({"metadata": {"blob": "x".repeat(5000)}});
    let response = admin_create(&server, Some(big_metadata)).await;
    assert_eq!(
        reason_of(response).await,
        (400, "metadata_too_large".into())
    );
    let huge = format!(r#"{{"metadata": {{"blob": "{}"}}}}"#, "x".repeat(9000));
    let response = post_as(&server, "/sessions", ADMIN, Some(&huge)).await;
    assert_eq!(reason_of(response).await, (413, "body_too_large".into()));

    // Metadata is dropped unless store_metadata is on.
    let small = json!({"user_id": "ann", "metadata": {"theme": "dark"}});
    let (id, _, body) = created(admin_create(&server, Some(small.clone())).await).await;
    assert_eq!(body["metadata_stored"], false);
    let record = json_of(get_as(&server, &format!("/sessions/{id}"), ADMIN).await).await;
    assert!(record.get("metadata").is_none(), "{record}");
    let keeping = server_keeping_metadata().await;
    let (id, _, body) = created(admin_create(&keeping, Some(small)).await).await;
    assert_eq!(body["metadata_stored"], true);
    let record = json_of(get_as(&keeping, &format!("/sessions/{id}"), ADMIN).await).await;
    assert_eq!(record["metadata"], json!({"theme": "dark"}));
}

/// Every session API body is a JSON object: an array that serde would read
/// field by field (`["carol"]` as `user_id`) is refused, on create and extend.
#[tokio::test]
async fn json_arrays_are_refused_as_bodies() {
    let server = server("").await;
    for body in [
        r#"["carol"]"#,
        r#"["carol", null]"#,
        "[]",
        "null",
        "\"carol\"",
    ] {
        let response = post_as(&server, "/sessions", ADMIN, Some(body)).await;
        assert_eq!(
            reason_of(response).await,
            (400, "malformed_body".into()),
            "{body}"
        );
    }
    let (id, _) = issue_for(&server, "dave").await;
    let extend = format!("/sessions/{id}/extend");
    let response = post_as(&server, &extend, ADMIN, Some("[60]")).await;
    assert_eq!(reason_of(response).await, (400, "malformed_body".into()));
    let response = post_as(
        &server,
        &extend,
        ADMIN,
        Some(r#"{"additional_seconds": 60}"#),
    )
    .await;
    assert_eq!(response.status(), 200, "the object form still works");
    let listed = json_of(get_as(&server, "/sessions?user=carol", ADMIN).await).await;
    assert_eq!(listed["sessions"], json!([]), "{listed}");
}

/// A session API body that trickles in is cut off at the body deadline
/// (`ingest.body_timeout_secs`) with 408 `body_timeout`, for an admin and for
/// a signed client alike: a slow sender cannot hold the request open.
#[tokio::test]
async fn a_slow_api_body_meets_the_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = server("[ingest]\nbody_timeout_secs = 1").await;
    let admin = vec![("Authorization", format!("Bearer {ADMIN}"))];
    for headers in [admin, signed_create(NOW, "slow-body")] {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut head = String::from("POST /sessions HTTP/1.1\r\nHost: t\r\n");
        head.push_str("Content-Type: application/json\r\nContent-Length: 64\r\n");
        for (name, value) in &headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n{");
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
            .await
            .expect("answered within the deadline, not held open")
            .unwrap();
        let text = String::from_utf8_lossy(&answer[..n]);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("body_timeout"), "{text}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    }
}

async fn server_keeping_metadata() -> TestServer {
    server("[sessions]\nstore_metadata = true").await
}

#[tokio::test]
async fn owners_touch_extend_and_log_out() {
    let server = server("").await;
    let (id, token) = issue_for(&server, "alice").await;
    let (other_id, other_token) = issue_for(&server, "bob").await;
    let path = format!("/sessions/{id}");

    server.set_now(NOW + 100);
    let touched = json_of(post_as(&server, &format!("{path}/activity"), &token, None).await).await;
    assert_eq!(touched["idle_expires_at"], NOW + 100 + 3600);
    assert_eq!(touched["expires_at"], NOW + 86400);
    let extend = format!("{path}/extend");
    let extended = json_of(
        post_as(
            &server,
            &extend,
            &token,
            Some(r#"{"additional_seconds": 600}"#),
        )
        .await,
    )
    .await;
    assert_eq!(extended["expires_at"], NOW + 86400 + 600);
    let far = r#"{"additional_seconds": 604800}"#;
    let extended = json_of(post_as(&server, &extend, ADMIN, Some(far)).await).await;
    assert_eq!(
        extended["expires_at"],
        NOW + 604800,
        "bounded by max lifetime"
    );
    for bad in [
        r#"{"additional_seconds": 0}"#,
        r#"{"additional_seconds": -5}"#,
        r#"{"additional_seconds": "60"}"#,
        r#"{"additional_seconds": 604801}"#,
        r#"{}"#,
        "",
    ] {
        let response = post_as(&server, &extend, &token, Some(bad)).await;
        assert_eq!(
            reason_of(response).await,
            (400, "malformed_body".into()),
            "{bad:?}"
        );
    }

    // Someone else's token, an unknown token, no credential.
    let response = get_as(&server, &path, &other_token).await;
    assert_eq!(reason_of(response).await, (403, "not_owner".into()));
    let response = get_as(&server, "/sessions/no-such-id", &other_token).await;
    assert_eq!(reason_of(response).await, (403, "not_owner".into()));
    let response = get_as(&server, &path, "made-up-token").await;
    assert_eq!(reason_of(response).await, (401, "invalid_session".into()));
    let response = server.client.get(server.url(&path)).send().await.unwrap();
    assert_eq!(
        reason_of(response).await,
        (401, "credential_required".into())
    );
    let by_header = server
        .client
        .get(server.url(&path))
        .header("X-Session-ID", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);
    let response = get_as(&server, "/sessions/no-such-id", ADMIN).await;
    assert_eq!(reason_of(response).await, (404, "not_found".into()));
    let response = post_as(&server, "/sessions/no-such-id/activity", ADMIN, None).await;
    assert_eq!(reason_of(response).await, (404, "not_found".into()));
    // Only admins list, and only issued sessions have a lifetime to change.
    let response = get_as(&server, "/sessions", &token).await;
    assert_eq!(reason_of(response).await, (403, "bad_admin_token".into()));
    let signed_request = signed(SECRET_A, "POST", "/v1/traces", NOW, SESSION);
    server.auth_request(&signed_request).send().await.unwrap();
    let response = post_as(
        &server,
        &format!("/sessions/{SESSION}/activity"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(reason_of(response).await, (400, "not_issued".into()));
    let response = with_bearer(&server, reqwest::Method::PUT, &path, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        reason_of(response).await,
        (405, "method_not_allowed".into())
    );

    // Logout: the session and its token are gone.
    let body = json_of(delete_as(&server, &path, &token).await).await;
    assert_eq!(body["deleted"], true);
    let response = auth_bearer(&server, &token).await;
    assert_eq!(reason_of(response).await, (401, "invalid_session".into()));
    let response = get_as(&server, &path, ADMIN).await;
    assert_eq!(reason_of(response).await, (404, "not_found".into()));
    assert_eq!(auth_bearer(&server, &other_token).await.status(), 200);
    let record =
        json_of(get_as(&server, &format!("/sessions/{other_id}"), &other_token).await).await;
    assert_eq!(record["user_id"], "bob");
}

#[tokio::test]
async fn refresh_kills_the_old_token_at_once() {
    let server = server("").await;
    let (id, old) = issue_for(&server, "alice").await;
    assert_eq!(auth_bearer(&server, &old).await.status(), 200);
    server.set_now(NOW + 60);
    let body =
        json_of(post_as(&server, &format!("/sessions/{id}/refresh"), &old, None).await).await;
    let new = body["token"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(body["session_id"], id.as_str());
    assert_eq!(body["idle_expires_at"], NOW + 60 + 3600);
    let response = auth_bearer(&server, &old).await;
    assert_eq!(reason_of(response).await, (401, "invalid_session".into()));
    let response = get_as(&server, &format!("/sessions/{id}"), &old).await;
    assert_eq!(reason_of(response).await, (401, "invalid_session".into()));
    let response = auth_bearer(&server, &new).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-auth-session-id"], id.as_str());
    // An admin may refresh too; the owner's token then dies.
    let body =
        json_of(post_as(&server, &format!("/sessions/{id}/refresh"), ADMIN, None).await).await;
    assert_ne!(body["token"], new.as_str());
    assert_eq!(auth_bearer(&server, &new).await.status(), 401);
}

#[tokio::test]
async fn expired_sessions_are_410_to_read_and_401_to_auth() {
    let server = server("").await;
    let (id, token) = issue_for(&server, "alice").await;
    let path = format!("/sessions/{id}");
    server.set_now(NOW + 3600);
    assert_eq!(auth_bearer(&server, &token).await.status(), 200);
    // Idle for longer than idle_secs.
    server.set_now(NOW + 3600 + 3601);
    let response = auth_bearer(&server, &token).await;
    assert_eq!(reason_of(response).await, (401, "session_expired".into()));
    let response = get_as(&server, &path, &token).await;
    assert_eq!(reason_of(response).await, (410, "session_expired".into()));
    let response = get_as(&server, &path, ADMIN).await;
    assert_eq!(reason_of(response).await, (410, "session_expired".into()));
    for action in ["activity", "refresh"] {
        let response = post_as(&server, &format!("{path}/{action}"), &token, None).await;
        assert_eq!(reason_of(response).await, (410, "session_expired".into()));
    }

    // Busy all day: the absolute TTL still ends it.
    let (_, busy) = issue_for(&server, "bob").await;
    let start = NOW + 3600 + 3601;
    let mut now = start;
    while now + 1800 <= start + 86400 {
        now += 1800;
        server.set_now(now);
        assert_eq!(auth_bearer(&server, &busy).await.status(), 200, "{now}");
    }
    server.set_now(start + 86401);
    let response = auth_bearer(&server, &busy).await;
    assert_eq!(reason_of(response).await, (401, "session_expired".into()));
    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"session_expired\"}"
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn an_admin_revocation_deletes_and_refuses_the_token() {
    let server = server("").await;
    let (id, token) = issue_for(&server, "alice").await;
    let path = format!("/sessions/{id}");
    let body = json_of(delete_as(&server, &path, ADMIN).await).await;
    assert_eq!(
        (body["revoked"].clone(), body["deleted"].clone()),
        (json!(true), json!(true))
    );
    let response = auth_bearer(&server, &token).await;
    assert_eq!(reason_of(response).await, (403, "session_revoked".into()));
    let response = get_as(&server, &path, &token).await;
    assert_eq!(reason_of(response).await, (403, "session_revoked".into()));
    let response = get_as(&server, &path, ADMIN).await;
    assert_eq!(reason_of(response).await, (404, "not_found".into()));
    let response = auth_with(&server, "X-Session-ID", "never-issued").await;
    assert_eq!(reason_of(response).await, (401, "invalid_session".into()));
    let text = server.scrape().await;
    assert_eq!(sample(&text, "telegate_sessions_revoked_total"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"invalid_session\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_user_over_the_limit_loses_the_oldest_or_is_refused() {
    let server = server("[sessions]\nmax_per_user = 2").await;
    let (first, first_token) = issue_for(&server, "alice").await;
    server.set_now(NOW + 1);
    let (second, _) = issue_for(&server, "alice").await;
    server.set_now(NOW + 2);
    let (third, third_token) = issue_for(&server, "alice").await;
    issue_for(&server, "bob").await;
    let response = auth_bearer(&server, &first_token).await;
    assert_eq!(reason_of(response).await, (401, "invalid_session".into()));
    assert_eq!(auth_bearer(&server, &third_token).await.status(), 200);
    let page = json_of(get_as(&server, "/sessions?user=alice", ADMIN).await).await;
    let mut ids: Vec<_> = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected = vec![second, third];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(!ids.contains(&first));

    let refusing = server_refusing().await;
    issue_for(&refusing, "alice").await;
    issue_for(&refusing, "alice").await;
    let response = admin_create(&refusing, Some(json!({"user_id": "alice"}))).await;
    assert_eq!(
        reason_of(response).await,
        (429, "too_many_user_sessions".into())
    );
    assert_eq!(
        admin_create(&refusing, Some(json!({"user_id": "bob"})))
            .await
            .status(),
        201
    );
}

async fn server_refusing() -> TestServer {
    server("[sessions]\nmax_per_user = 2\nper_user_limit = \"refuse\"").await
}

#[tokio::test]
async fn users_sessions_and_everything_can_be_deleted() {
    let server = server("").await;
    issue_for(&server, "alice smith").await;
    let (_, alice_token) = issue_for(&server, "alice smith").await;
    let (_, bob_token) = issue_for(&server, "bob").await;
    server
        .auth_request(&signed(SECRET_A, "POST", "/v1/traces", NOW, SESSION))
        .send()
        .await
        .unwrap();
    let response = delete_as(&server, "/users/alice%20smith/sessions", &bob_token).await;
    assert_eq!(reason_of(response).await, (403, "bad_admin_token".into()));
    let response = server
        .client
        .delete(server.url("/users/bob/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reason_of(response).await,
        (401, "admin_token_required".into())
    );

    let body = json_of(delete_as(&server, "/users/alice%20smith/sessions", ADMIN).await).await;
    assert_eq!(
        (body["user_id"].clone(), body["deleted"].clone()),
        (json!("alice smith"), json!(2))
    );
    assert_eq!(auth_bearer(&server, &alice_token).await.status(), 401);
    let page = json_of(get_as(&server, "/sessions?user=alice+smith", ADMIN).await).await;
    assert_eq!(page["sessions"], json!([]));
    assert_eq!(auth_bearer(&server, &bob_token).await.status(), 200);

    let response = delete_as(&server, "/sessions", &bob_token).await;
    assert_eq!(reason_of(response).await, (403, "bad_admin_token".into()));
    delete_as(&server, &format!("/sessions/{SESSION}"), ADMIN).await;
    let body = json_of(delete_as(&server, "/sessions", ADMIN).await).await;
    assert_eq!(body["deleted"], 2, "bob's session and the signed one");
    assert_eq!(auth_bearer(&server, &bob_token).await.status(), 401);
    let page = json_of(get_as(&server, "/sessions", ADMIN).await).await;
    assert_eq!(page["sessions"], json!([]));
    let stats = json_of(get_as(&server, "/sessions/stats", ADMIN).await).await;
    assert_eq!(stats["active"], json!({"issued": 0, "signed": 0}));
    assert_eq!(stats["revoked"], 0);
    // The revocation went with the wipe.
    let response = server
        .auth_request(&signed(SECRET_A, "POST", "/v1/traces", NOW, SESSION))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_token_is_never_shown_again() {
    let server = server_keeping_metadata().await;
    let mut tokens = Vec::new();
    for user in ["alice", "bob"] {
        let body = json!({"user_id": user, "metadata": {"plan": "pro"}});
        let (id, token, _) = created(admin_create(&server, Some(body)).await).await;
        auth_bearer(&server, &token).await;
        post_as(&server, &format!("/sessions/{id}/activity"), &token, None).await;
        tokens.push((id, token));
    }
    let (id, token) = tokens[0].clone();
    let refreshed =
        json_of(post_as(&server, &format!("/sessions/{id}/refresh"), &token, None).await).await;
    tokens.push((id, refreshed["token"].as_str().unwrap().to_string()));
    let mut shown = Vec::new();
    for path in [
        "/sessions",
        "/sessions/stats",
        "/sessions?kind=issued&user=alice",
    ] {
        shown.push(get_as(&server, path, ADMIN).await.text().await.unwrap());
    }
    for (id, _) in &tokens {
        shown.push(
            get_as(&server, &format!("/sessions/{id}"), ADMIN)
                .await
                .text()
                .await
                .unwrap(),
        );
        let extend = format!("/sessions/{id}/extend");
        let body = Some(r#"{"additional_seconds": 10}"#);
        shown.push(
            post_as(&server, &extend, ADMIN, body)
                .await
                .text()
                .await
                .unwrap(),
        );
    }
    shown.push(server.scrape().await);
    let all = shown.join("\n");
    assert!(all.contains("\"plan\":\"pro\""), "{all}");
    for (_, token) in &tokens {
        assert!(!all.contains(token.as_str()), "token shown: {all}");
        let hash = telegate::session::TokenHash::of(token);
        assert!(!all.contains(&hex::encode(hash.as_bytes())));
    }
}
