//! What a signed client may claim on `POST /sessions` (issue 12, findings 4
//! and 7), over real HTTP: every client holds the signing secret, so a user
//! id it claims lives in its own namespace (`signed:`) and can neither evict
//! nor pass for the sessions an admin issued; and one v2 header set mints at
//! most one token.

use crate::support::*;
use crate::tokens_http::{
    admin_create, auth_bearer, created, get_as, issue_for, json_of, server, ADMIN,
};
use serde_json::{json, Value};

/// A signed `POST /sessions` with a JSON body, from `client` (behind the
/// trusted loopback proxy), v1.
async fn signed_claim(server: &TestServer, client: &str, user: &str) -> reqwest::Response {
    let headers = with(
        signed(SECRET_A, "POST", "/sessions", NOW, &format!("kms-{client}")),
        "X-Forwarded-Uri",
        None,
    );
    let headers = with(headers, "X-Forwarded-Method", None);
    let headers = with(headers, "X-Forwarded-For", Some(client));
    add_headers(server.client.post(server.url("/sessions")), &headers)
        .json(&json!({ "user_id": user }))
        .send()
        .await
        .unwrap()
}

/// `/auth` with a token: the `X-Auth-User` it answers with.
async fn auth_user(server: &TestServer, token: &str) -> Option<String> {
    let response = auth_bearer(server, token).await;
    assert_eq!(response.status(), 200);
    response
        .headers()
        .get("x-auth-user")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn a_signed_clients_user_id_cannot_evict_or_impersonate_an_issued_user() {
    let server = server("[sessions]\nmax_per_user = 2").await;
    let (_, carol_token) = issue_for(&server, "carol").await;

    // Ten signed claims to be carol, from ten addresses.
    let mut signed_tokens = Vec::new();
    for i in 0..10 {
        let (_, token, body) =
            created(signed_claim(&server, &format!("127.0.0.{}", 10 + i), "carol").await).await;
        assert_eq!(body["user_id"], "signed:carol");
        signed_tokens.push(token);
    }
    assert_eq!(
        auth_user(&server, &carol_token).await.as_deref(),
        Some("carol"),
        "the admin-issued session survives"
    );
    // The claimed ids count among themselves (max_per_user = 2 of them live).
    let last = signed_tokens.last().unwrap();
    assert_eq!(
        auth_user(&server, last).await.as_deref(),
        Some("signed:carol"),
        "a backend can tell a claim from an issued user"
    );
    let page = json_of(get_as(&server, "/sessions?user=carol", ADMIN).await).await;
    assert_eq!(page["sessions"].as_array().unwrap().len(), 1, "{page}");

    // Nobody mints an admin, or reaches into the namespace directly.
    let (_, token, body) = created(signed_claim(&server, "127.0.0.50", "admin").await).await;
    assert_eq!(body["user_id"], "signed:admin");
    assert_eq!(
        auth_user(&server, &token).await.as_deref(),
        Some("signed:admin")
    );
    let response = signed_claim(&server, "127.0.0.51", "signed:carol").await;
    assert_eq!(reason_of(response).await, (400, "malformed_body".into()));
    let response = admin_create(&server, Some(json!({"user_id": "signed:carol"}))).await;
    assert_eq!(reason_of(response).await, (400, "malformed_body".into()));
}

#[tokio::test]
async fn one_v2_header_set_mints_one_token() {
    let server = server("").await;
    let body = br#"{"user_id":"dave"}"#;
    let nonce = "0a0b0c0d0e0f00112233445566778899";
    let headers = |body: &[u8]| {
        let headers = signed_v2(SECRET_A, "a", "/sessions", NOW, "kms-v2", nonce, body);
        let headers = with(headers, "X-Forwarded-Uri", None);
        with(headers, "X-Forwarded-Method", None)
    };
    let post = |headers: Headers, body: &'static [u8]| {
        add_headers(server.client.post(server.url("/sessions")), &headers)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let (_, _, first): (String, String, Value) =
        created(post(headers(body), body).await.unwrap()).await;
    assert_eq!(first["user_id"], "signed:dave");

    let again = post(headers(body), body).await.unwrap();
    assert_eq!(reason_of(again).await, (409, "nonce_reused".into()));
    let other: &'static [u8] = br#"{"user_id":"eve"}"#;
    let resigned = post(headers(other), other).await.unwrap();
    assert_eq!(reason_of(resigned).await, (409, "nonce_reused".into()));
    // The other body under the first header set: its hash does not match.
    let swapped = post(headers(body), other).await.unwrap();
    assert_eq!(reason_of(swapped).await, (403, "body_mismatch".into()));
    let page = json_of(get_as(&server, "/sessions?user=signed:dave", ADMIN).await).await;
    assert_eq!(page["sessions"].as_array().unwrap().len(), 1, "{page}");
}
