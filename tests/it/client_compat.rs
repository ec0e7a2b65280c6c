//! The client as it ships, in process with the injected clock and a
//! scripted collector: signal detection on `/` (ingest and forwardAuth),
//! static-header sessions (each rule), `/` with X-Forwarded-Uri as a
//! decision, and monitor mode.

use crate::support::collector::{start_server_before, FakeCollector};
use crate::support::*;

const OTHER_SESSION: &str = "9b2c1d3e-0000-4000-8000-00000000abcd";

/// In passthrough mode (`extra` opens its own tables).
async fn start(collector: &FakeCollector, extra: &str) -> TestServer {
    start_server_before(
        collector,
        &format!("[ingest]\nmode = \"passthrough\"\n{extra}"),
    )
    .await
}

/// The headers the shipped client sends: signed once over `signed_path`,
/// no X-Forwarded-* (it talks to the origin, not to forwardAuth).
fn shipped(signed_path: &str, timestamp: i64, session: &str) -> Vec<(&'static str, String)> {
    let mut headers = signed(SECRET_A, "POST", signed_path, timestamp, session);
    headers.retain(|(name, _)| !name.starts_with("X-Forwarded"));
    headers.push(("Content-Type", "application/x-protobuf".into()));
    headers
}

async fn post_root(
    server: &TestServer,
    headers: &[(&'static str, String)],
    from: Option<&str>,
) -> reqwest::Response {
    let mut request = add_headers(
        server.client.post(server.url("/")).body(vec![1u8, 2, 3]),
        headers,
    );
    if let Some(ip) = from {
        request = request.header("X-Forwarded-For", ip);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn root_exports_go_to_the_signal_their_signature_names() {
    let collector = FakeCollector::start().await;
    let server = start(&collector, "").await;
    for (path, signal) in [
        ("/v1/metrics", "metrics"),
        ("/v1/traces", "traces"),
        ("/v1/logs", "logs"),
    ] {
        let response = post_root(&server, &shipped(path, NOW, SESSION), None).await;
        assert_eq!(response.status(), 200, "{path}");
        let last = collector.received().pop().unwrap();
        assert_eq!(last.path, path);
        let series = format!("telegate_auth_signal_detected_total{{signal=\"{signal}\"}}");
        assert_eq!(
            sample(&server.scrape().await, &series),
            Some(1.0),
            "{series}"
        );
    }
    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_ingest_requests_total{result=\"delivered\",signal=\"traces\"}"
        ),
        Some(1.0)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_root_signature_over_no_signal_path_is_a_bad_signature() {
    let collector = FakeCollector::start().await;
    let server = start(&collector, "").await;
    for signed_path in ["/", "/v1/other", "/v1/metricsx"] {
        let response = post_root(&server, &shipped(signed_path, NOW, SESSION), None).await;
        assert_eq!(
            reason_any(response).await,
            (403, "bad_signature".into()),
            "{signed_path}"
        );
    }
    let wrong_key = {
        let mut h = shipped("/v1/metrics", NOW, SESSION);
        h = with(h, "X-KMS-Signature", Some(&"ab".repeat(32)));
        h
    };
    let response = post_root(&server, &wrong_key, None).await;
    assert_eq!(reason_any(response).await, (403, "bad_signature".into()));
    assert!(collector.received().is_empty(), "nothing forwarded");
    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"bad_signature\"}"
        ),
        Some(4.0)
    );
    // Missing headers on `/` are the same 401 as anywhere.
    let response = post_root(&server, &[], None).await;
    assert_eq!(reason_any(response).await.0, 401);
    server.stop().await;
}

#[tokio::test]
async fn root_with_x_forwarded_uri_is_a_decision_and_names_the_signal() {
    let collector = FakeCollector::start().await;
    let server = start(&collector, "").await;
    // Traefik with a path-less forwardAuth address calls `/` (GET).
    let mut headers = signed(SECRET_A, "POST", "/v1/traces", NOW, SESSION);
    headers = with(headers, "X-Forwarded-Uri", Some("/"));
    for route in ["/", "/auth"] {
        let mut request = server.client.get(server.url(route));
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{route}");
        assert_eq!(response.headers()["x-auth-status"], "valid");
        assert_eq!(response.headers()["x-auth-signal"], "traces");
    }
    // A plain forwardAuth decision on `/` for a signal path: no X-Auth-Signal.
    let mut request = server.client.get(server.url("/"));
    for (name, value) in valid() {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-auth-status"], "valid");
    assert!(response.headers().get("x-auth-signal").is_none());
    // A bad one on `/` is refused like `/auth` refuses it.
    let bad = with(valid(), "X-KMS-Signature", Some(&"00".repeat(32)));
    let mut request = server.client.get(server.url("/"));
    for (name, value) in bad {
        request = request.header(name, value);
    }
    assert_eq!(
        reason_any(request.send().await.unwrap()).await,
        (403, "bad_signature".into())
    );
    // A browser still gets the status page.
    let page = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(collector.received().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn the_signature_is_compared_as_hex_in_either_case_and_an_absent_session_signs_empty() {
    let collector = FakeCollector::start().await;
    let server = start(&collector, "[auth]\nrequire_session_id = false\n").await;
    let upper = valid()
        .into_iter()
        .map(|(n, v)| match n {
            "X-KMS-Signature" => (n, v.to_uppercase()),
            _ => (n, v),
        })
        .collect::<Vec<_>>();
    let response = server.auth_request(&upper).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-auth-status"], "valid");
    let no_session = with(
        signed(SECRET_A, "POST", "/v1/metrics", NOW, ""),
        "X-KMS-Session-ID",
        None,
    );
    let response = server.auth_request(&no_session).send().await.unwrap();
    assert_eq!(response.status(), 200);
    server.stop().await;
}

const STATIC: &str = r#"
[sessions]
idle_secs = 600
[auth]
max_skew_secs = 300
[auth.static_headers]
max_age_secs = 2000
"#;

#[tokio::test]
async fn static_headers_pass_only_under_every_rule() {
    let collector = FakeCollector::start().await;
    let server = start(&collector, STATIC).await;
    let client = "203.0.113.10";
    let headers = shipped("/v1/metrics", NOW, SESSION);
    // First seen inside the window: remembered with its address.
    assert_eq!(
        post_root(&server, &headers, Some(client)).await.status(),
        200
    );
    server.set_now(NOW + 400);
    let response = post_root(&server, &headers, Some(client)).await;
    assert_eq!(response.status(), 200, "static set after the window");
    assert_eq!(collector.received().last().unwrap().path, "/v1/metrics");
    let text = server.scrape().await;
    assert_eq!(
        sample(&text, "telegate_auth_static_accepted_total"),
        Some(1.0)
    );
    // pin_ip: another address is refused as a stale timestamp.
    let response = post_root(&server, &headers, Some("203.0.113.99")).await;
    assert_eq!(reason_any(response).await, (401, "stale_timestamp".into()));
    // Never seen inside the window: refused.
    let unseen = shipped("/v1/metrics", NOW - 100, SESSION);
    let response = post_root(&server, &unseen, Some(client)).await;
    assert_eq!(reason_any(response).await, (401, "stale_timestamp".into()));
    // A changed signature is not the remembered set: still the stale 401.
    let forged = with(headers.clone(), "X-KMS-Signature", Some(&"ab".repeat(32)));
    let response = post_root(&server, &forged, Some(client)).await;
    assert_eq!(reason_any(response).await, (401, "stale_timestamp".into()));
    // The session stops being tracked (idle 600 s after NOW + 400): refused.
    server.set_now(NOW + 1_100);
    let response = post_root(&server, &headers, Some(client)).await;
    assert_eq!(reason_any(response).await, (401, "stale_timestamp".into()));
    server.stop().await;
}

#[tokio::test]
async fn static_headers_end_at_max_age_and_with_revocation() {
    let collector = FakeCollector::start().await;
    let server = start(&collector, STATIC).await;
    let client = "203.0.113.10";
    let headers = shipped("/v1/traces", NOW, SESSION);
    assert_eq!(
        post_root(&server, &headers, Some(client)).await.status(),
        200
    );
    // Keep the session tracked with fresh signatures every 500 s.
    for step in 1..=4 {
        let now = NOW + 500 * step;
        server.set_now(now);
        let fresh = shipped("/v1/metrics", now, SESSION);
        assert_eq!(post_root(&server, &fresh, Some(client)).await.status(), 200);
        assert_eq!(
            post_root(&server, &headers, Some(client)).await.status(),
            200,
            "age {}",
            now - NOW
        );
    }
    server.set_now(NOW + 2_001);
    let response = post_root(&server, &headers, Some(client)).await;
    assert_eq!(reason_any(response).await, (401, "stale_timestamp".into()));

    // Revocation ends a static set at once.
    let other = shipped("/v1/metrics", NOW + 2_001, OTHER_SESSION);
    assert_eq!(post_root(&server, &other, Some(client)).await.status(), 200);
    server.set_now(NOW + 2_400);
    assert_eq!(post_root(&server, &other, Some(client)).await.status(), 200);
    server
        .state
        .sessions()
        .revoke(OTHER_SESSION, NOW + 2_400)
        .await
        .unwrap();
    let response = post_root(&server, &other, Some(client)).await;
    assert_eq!(reason_any(response).await.0, 401);
    server.stop().await;
}

#[tokio::test]
async fn without_pin_ip_another_address_may_use_the_set_and_without_the_mode_nothing_does() {
    let collector = FakeCollector::start().await;
    let extra = "[auth.static_headers]\npin_ip = false\n";
    let server = start(&collector, extra).await;
    let headers = shipped("/v1/metrics", NOW, SESSION);
    assert_eq!(
        post_root(&server, &headers, Some("203.0.113.10"))
            .await
            .status(),
        200
    );
    server.set_now(NOW + 301);
    let response = post_root(&server, &headers, Some("198.51.100.7")).await;
    assert_eq!(response.status(), 200);
    server.stop().await;

    let strict = start(&collector, "").await;
    assert_eq!(post_root(&strict, &headers, None).await.status(), 200);
    strict.set_now(NOW + 301);
    let response = post_root(&strict, &headers, None).await;
    assert_eq!(reason_any(response).await, (401, "stale_timestamp".into()));
    strict.stop().await;
}

#[tokio::test]
async fn monitor_mode_allows_a_bad_signature_and_counts_it() {
    let collector = FakeCollector::start().await;
    let server = start(&collector, "[auth]\nmonitor_mode = true\n").await;
    let bad = with(valid(), "X-KMS-Signature", Some(&"00".repeat(32)));
    let response = server.auth_request(&bad).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-auth-status"], "monitor");
    assert_eq!(response.headers()["x-auth-monitor"], "bad_signature");
    let good = server.auth_request(&valid()).send().await.unwrap();
    assert_eq!(good.headers()["x-auth-status"], "valid");
    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"bad_signature\"}"
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "telegate_auth_success_total"), Some(1.0));
    assert_eq!(sample(&text, "telegate_auth_monitor_mode"), Some(1.0));
    server.stop().await;
}
