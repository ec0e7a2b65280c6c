//! Roles, permissions and path rules over real HTTP (issue 14): an admin
//! grants `roles` / `permissions` on `POST /sessions` (a signed client may
//! not), `GET /sessions/{id}` shows them, `/auth` hands them on as
//! `X-Auth-Roles` / `X-Auth-Permissions` and a policy's `require_roles` /
//! `require_permissions` refuse a session without them (403, counted by
//! reason); `excluded_paths` pass without a credential (counted as
//! `excluded`) and no `..` / `%2e%2e` / `//` form escapes a protected
//! prefix; `ttl_secs` is honoured and capped; `GET /sessions/validate`
//! answers live, expired, revoked and unknown tokens.

use crate::support::*;
use crate::tokens_http::{admin_create, created, delete_as, json_of, signed_create, ADMIN};
use serde_json::{json, Value};

/// The metric names these tests read, in one place (issue 13 renames).
const FAILED: &str = "telegate_auth_failed_total";
const EXCLUDED: &str = "telegate_auth_excluded_total";

/// `policy=admin` takes session tokens only and wants role `admin` (or
/// `ops`) and permission `write`; `/public` and `/health` are excluded,
/// `/public/admin` protected again.
const POLICIES: &str = r#"
[policies.admin]
methods = ["hmac", "session"]
require_roles = ["admin", "ops"]
require_permissions = ["write"]
[policies.site]
methods = ["session"]
excluded_paths = ["/public/", "/health"]
protected_paths = ["/public/admin"]
"#;

async fn server() -> TestServer {
    crate::tokens_http::server(POLICIES).await
}

async fn issue(server: &TestServer, body: Value) -> (String, String, Value) {
    created(admin_create(server, Some(body)).await).await
}

/// `/auth?policy=NAME` for `uri`, with a bearer token when given.
async fn auth(
    server: &TestServer,
    policy: &str,
    uri: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = server
        .client
        .get(server.url(&format!("/auth?policy={policy}")))
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Uri", uri);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn failed(text: &str, reason: &str) -> Option<f64> {
    sample(text, &format!("{FAILED}{{reason=\"{reason}\"}}"))
}

#[tokio::test]
async fn granted_roles_are_stored_shown_and_sent_upstream() {
    let server = server().await;
    let (id, token, body) = issue(
        &server,
        json!({"user_id": "ann", "roles": ["admin", "viewer"], "permissions": ["write", "read"]}),
    )
    .await;
    assert_eq!(body["roles"], json!(["admin", "viewer"]));
    assert_eq!(body["permissions"], json!(["write", "read"]));
    let record =
        json_of(crate::tokens_http::get_as(&server, &format!("/sessions/{id}"), ADMIN).await).await;
    assert_eq!(record["roles"], json!(["admin", "viewer"]));
    assert_eq!(record["permissions"], json!(["write", "read"]));

    let response = auth(&server, "admin", "/grafana/", Some(&token)).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["x-auth-roles"], "admin,viewer");
    assert_eq!(headers["x-auth-permissions"], "write,read");
    assert_eq!(headers["x-auth-user"], "ann");
    // A session without grants sends neither header.
    let (_, plain, body) = issue(&server, json!({})).await;
    assert!(body["roles"].as_array().unwrap().is_empty());
    let response = auth(&server, "app", "/v1/traces", Some(&plain)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-auth-roles").is_none());
    assert!(response.headers().get("x-auth-permissions").is_none());

    // Names are checked: capped in count and length, plain characters.
    for bad in [
        json!({"roles": ["has space"]}),
        json!({"roles": ["a,b"]}),
        json!({"permissions": ["x".repeat(65)]}),
        json!({"roles": (0..33).map(|n| format!("r{n}")).collect::<Vec<_>>()}),
        json!({"roles": "admin"}),
    ] {
        let response = admin_create(&server, Some(bad.clone())).await;
        assert_eq!(
            reason_of(response).await,
            (400, "malformed_body".into()),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_session_without_the_role_is_refused_and_counted() {
    let server = server().await;
    let (_, token, _) = issue(
        &server,
        json!({"roles": ["viewer"], "permissions": ["write"]}),
    )
    .await;
    let response = auth(&server, "admin", "/grafana/", Some(&token)).await;
    assert_eq!(reason_of(response).await, (403, "insufficient_role".into()));
    // A signed client holds no role at all.
    let headers = signed(SECRET_A, "GET", "/grafana/", NOW, SESSION);
    let response = add_headers(
        server.client.get(server.url("/auth?policy=admin")),
        &headers,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(reason_of(response).await, (403, "insufficient_role".into()));
    // Any one of the roles will do.
    let (_, ops, _) = issue(&server, json!({"roles": ["ops"], "permissions": ["write"]})).await;
    assert_eq!(
        auth(&server, "admin", "/grafana/", Some(&ops))
            .await
            .status(),
        200
    );
    let text = server.scrape().await;
    assert_eq!(failed(&text, "insufficient_role"), Some(2.0));
}

#[tokio::test]
async fn a_session_without_every_permission_is_refused_and_counted() {
    let server = server().await;
    let (_, token, _) = issue(
        &server,
        json!({"roles": ["admin"], "permissions": ["read"]}),
    )
    .await;
    let response = auth(&server, "admin", "/grafana/", Some(&token)).await;
    assert_eq!(
        reason_of(response).await,
        (403, "insufficient_permission".into())
    );
    let text = server.scrape().await;
    assert_eq!(failed(&text, "insufficient_permission"), Some(1.0));
    assert_eq!(failed(&text, "insufficient_role"), Some(0.0));
}

#[tokio::test]
async fn a_signed_client_cannot_grant_itself_a_role() {
    let server = server().await;
    for body in [json!({"roles": ["admin"]}), json!({"permissions": []})] {
        let response = add_headers(
            server.client.post(server.url("/sessions")).json(&body),
            &signed_create(NOW, SESSION),
        )
        .send()
        .await
        .unwrap();
        let reply = Reply::of(response).await;
        reply.assert_refused_json(403, "grants_admin_only");
        let text = String::from_utf8_lossy(&reply.body).to_string();
        assert!(text.contains("admin only"), "{text}");
    }
    // The same client without them still gets its session.
    let response = add_headers(
        server
            .client
            .post(server.url("/sessions"))
            .json(&json!({"ttl_secs": 60})),
        &signed_create(NOW, SESSION),
    )
    .send()
    .await
    .unwrap();
    let (_, _, body) = created(response).await;
    assert_eq!(body["expires_at"], NOW + 60);
}

#[tokio::test]
async fn excluded_paths_pass_without_a_credential_and_nothing_escapes_a_protected_one() {
    let server = server().await;
    for uri in [
        "/public/",
        "/public/app.js?v=1",
        "/health",
        "/public/x/../y",
    ] {
        let response = auth(&server, "site", uri, None).await;
        assert_eq!(response.status(), 200, "{uri}");
        assert_eq!(response.headers()["x-auth-status"], "excluded", "{uri}");
    }
    for uri in [
        "/admin",
        "/healthz",
        "/public/admin",
        "/public/admin/users",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2e/admin/",
        "/public/..%2fadmin",
        "/public%2f..%2fadmin",
        "/public//admin",
        "//public/admin",
        "/public/./admin",
        "/public/%61dmin",
        "/public/%252e%252e/admin",
        "/public/..\\admin",
    ] {
        let response = auth(&server, "site", uri, None).await;
        assert_eq!(
            reason_of(response).await,
            (401, "invalid_session".into()),
            "{uri}"
        );
    }
    // A protected path with a token passes as a session.
    let (_, token, _) = issue(&server, json!({})).await;
    let response = auth(&server, "site", "/public/admin", Some(&token)).await;
    assert_eq!(response.headers()["x-auth-status"], "valid");
    let text = server.scrape().await;
    assert_eq!(sample(&text, EXCLUDED), Some(4.0));
    assert_eq!(failed(&text, "invalid_session"), Some(15.0));
}

#[tokio::test]
async fn ttl_secs_is_honoured_and_capped_at_the_max_lifetime() {
    let server = server().await;
    let (_, token, body) = issue(&server, json!({"ttl_secs": 120})).await;
    assert_eq!(body["expires_at"], NOW + 120);
    server.set_now(NOW + 120);
    assert_eq!(
        auth(&server, "app", "/v1/traces", Some(&token))
            .await
            .status(),
        200
    );
    server.set_now(NOW + 121);
    let response = auth(&server, "app", "/v1/traces", Some(&token)).await;
    assert_eq!(reason_of(response).await, (401, "session_expired".into()));

    server.set_now(NOW);
    let (_, _, body) = issue(&server, json!({"ttl_secs": 365 * 86400})).await;
    assert_eq!(
        body["expires_at"],
        NOW + 7 * 86400,
        "sessions.max_lifetime_secs"
    );
    let response = admin_create(&server, Some(json!({"ttl_secs": 0}))).await;
    assert_eq!(reason_of(response).await, (400, "malformed_body".into()));
}

/// `GET /sessions/validate` with one header (`""`: none).
async fn validate(server: &TestServer, name: &str, value: &str) -> reqwest::Response {
    let mut request = server.client.get(server.url("/sessions/validate"));
    if !name.is_empty() {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn validate_answers_the_callers_own_session() {
    let server = server().await;
    let (id, token, _) = issue(&server, json!({"roles": ["admin"], "ttl_secs": 300})).await;
    for (name, value) in [
        ("Authorization", format!("Bearer {token}")),
        ("X-Session-ID", token.clone()),
        ("Cookie", format!("telegate_session={token}")),
    ] {
        let record = json_of(validate(&server, name, &value).await).await;
        assert_eq!(record["session_id"], id.as_str(), "{name}");
        assert_eq!(record["roles"], json!(["admin"]));
    }
    // A read: the session was not touched.
    let record = json_of(validate(&server, "X-Session-ID", &token).await).await;
    assert_eq!(record["requests"], 0);

    let response = validate(&server, "X-Session-ID", "no-such-token").await;
    assert_eq!(reason_of(response).await, (401, "invalid_session".into()));
    let response = validate(&server, "", "").await;
    assert_eq!(
        reason_of(response).await,
        (401, "credential_required".into())
    );

    let (revoked_id, revoked, _) = issue(&server, json!({})).await;
    assert_eq!(
        delete_as(&server, &format!("/sessions/{revoked_id}"), ADMIN)
            .await
            .status(),
        200
    );
    let response = validate(&server, "X-Session-ID", &revoked).await;
    assert_eq!(reason_of(response).await, (403, "session_revoked".into()));

    server.set_now(NOW + 301);
    let response = validate(&server, "X-Session-ID", &token).await;
    assert_eq!(reason_of(response).await, (410, "session_expired".into()));
}
