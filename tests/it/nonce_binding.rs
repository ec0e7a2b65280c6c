//! A v2 nonce belongs to one request (issue 12, finding 7): a retry of the
//! very same export is answered from its first outcome, but the nonce
//! re-signed over another body, path or session is refused as
//! `nonce_reused` (409, counted), never answered with the first 200 while
//! its own data is silently not forwarded.

use crate::support::collector::{start_server_before, FakeCollector, Script};
use crate::support::otlp::export_request;
use crate::support::*;
use prost::Message;

const NONCE: &str = "feedfacefeedfacefeedfacefeedface";

fn export(name: &str) -> Vec<u8> {
    export_request(name, "nonce").encode_to_vec()
}

fn v2(path: &str, session: &str, body: &[u8]) -> Headers {
    with(
        signed_v2(SECRET_A, "a", path, NOW, session, NONCE, body),
        "Content-Type",
        Some("application/x-protobuf"),
    )
}

async fn send(server: &TestServer, path: &str, headers: &Headers, body: Vec<u8>) -> Reply {
    let request = add_headers(server.client.post(server.url(path)).body(body), headers);
    Reply::of(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_nonce_reused_by_another_request_is_refused_not_answered_from_the_first() {
    let collector = FakeCollector::start().await;
    collector.answer(Script {
        body: b"first-answer",
        ..Default::default()
    });
    let server = start_server_before(&collector, "").await;
    let first = export("first");
    let reply = send(
        &server,
        "/v1/metrics",
        &v2("/v1/metrics", SESSION, &first),
        first.clone(),
    )
    .await;
    assert_eq!(reply.status, 200);

    // The very same request again: the first outcome, not forwarded again.
    let reply = send(
        &server,
        "/v1/metrics",
        &v2("/v1/metrics", SESSION, &first),
        first,
    )
    .await;
    assert_eq!((reply.status, &reply.body[..]), (200, &b"first-answer"[..]));
    assert_eq!(collector.received().len(), 1);

    // The nonce re-signed over another body, another session, another path.
    let other = export("other");
    let cases = [
        ("/v1/metrics", SESSION, other.clone()),
        ("/v1/metrics", "another-session", export("first")),
        ("/v1/traces", SESSION, other.clone()),
    ];
    for (path, session, body) in cases {
        let reply = send(&server, path, &v2(path, session, &body), body).await;
        assert_eq!(
            (reply.status, reply.reason().as_deref()),
            (409, Some("nonce_reused")),
            "{path} {session}: {reply:?}"
        );
        assert_eq!(reply.retry_after, None, "not retryable: sign a fresh nonce");
    }
    assert_eq!(collector.received().len(), 1, "nothing else forwarded");

    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_ingest_requests_total{result=\"nonce_reused\",signal=\"metrics\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "telegate_ingest_requests_total{result=\"nonce_reused\",signal=\"traces\"}"
        ),
        Some(1.0)
    );
    server.stop().await;
}

/// `/auth?policy=NAME` for a v2 header set, with the body Traefik forwarded
/// (`None`: none arrived).
async fn forward_auth(
    server: &TestServer,
    policy: &str,
    headers: &Headers,
    body: Option<&'static [u8]>,
) -> Reply {
    let headers = with(headers.clone(), "X-Forwarded-Method", Some("POST"));
    let headers = with(headers, "X-Forwarded-Uri", Some("/v1/metrics"));
    let mut request = add_headers(
        server
            .client
            .post(server.url(&format!("/auth?policy={policy}"))),
        &headers,
    );
    if let Some(body) = body {
        request = request.body(body);
    }
    Reply::of(request.send().await.unwrap()).await
}

#[tokio::test]
async fn under_forward_body_an_absent_body_is_the_empty_one() {
    let server = start_server(&config_with(
        "[policies.fwd]\nforward_body = true\n[policies.plain]\n",
    ))
    .await;
    let body: &'static [u8] = b"twenty-two bytes body!";
    let signed_for_body = signed_v2(SECRET_A, "a", "/v1/metrics", NOW, SESSION, NONCE, body);
    let reply = forward_auth(&server, "fwd", &signed_for_body, Some(body)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    for _ in 0..2 {
        let reply = forward_auth(&server, "fwd", &signed_for_body, None).await;
        assert_eq!(
            (reply.status, reply.reason().as_deref()),
            (403, Some("body_mismatch")),
            "a header set for a body never passes without it"
        );
    }
    let signed_empty = signed_v2(SECRET_A, "a", "/v1/metrics", NOW, SESSION, NONCE, b"");
    let reply = forward_auth(&server, "fwd", &signed_empty, None).await;
    assert_eq!(reply.status, 200, "signed for the empty body: {reply:?}");
    // Without forward_body, the headers alone are checked (no body arrives
    // from a middleware without forwardBody), as before.
    let reply = forward_auth(&server, "plain", &signed_for_body, None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        sample(
            &server.scrape().await,
            "telegate_auth_failed_total{reason=\"body_mismatch\"}"
        ),
        Some(2.0)
    );
    server.stop().await;
}
