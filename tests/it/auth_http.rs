//! `/auth` over real HTTP: one test per status and reason, asserting status,
//! `reason`, response headers and the metric counters.

use crate::support::*;

const DEFAULT: &str = "";

async fn refused(
    server: &TestServer,
    headers: Vec<(&'static str, String)>,
    status: u16,
    reason: &str,
) {
    let response = server.auth_request(&headers).send().await.unwrap();
    assert_eq!(
        response.headers().get("x-auth-status"),
        None,
        "a refusal must not carry X-Auth-* headers"
    );
    assert_eq!(reason_of(response).await, (status, reason.to_string()));
    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            &format!("telegate_auth_failed_total{{reason=\"{reason}\"}}")
        ),
        Some(1.0),
        "{reason}"
    );
    assert_eq!(sample(&text, "telegate_auth_success_total"), Some(0.0));
}

#[tokio::test]
async fn a_valid_signature_passes_with_the_auth_headers_and_counts() {
    let server = start_server(&config_with(DEFAULT)).await;
    let response = server.auth_request(&valid()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["x-auth-session-id"], SESSION);
    assert_eq!(headers["x-auth-client-version"], "2.0.0.0");
    assert_eq!(headers["x-auth-key-id"], "a");
    assert_eq!(headers["x-auth-status"], "valid");
    let text = server.scrape().await;
    assert_eq!(sample(&text, "telegate_auth_total"), Some(1.0));
    assert_eq!(sample(&text, "telegate_auth_success_total"), Some(1.0));
    assert_eq!(
        sample(&text, "telegate_key_used_total{key_id=\"a\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "telegate_auth_duration_seconds_count"),
        Some(1.0)
    );
    server.stop().await;
}

#[tokio::test]
async fn every_live_key_of_the_ring_verifies() {
    let server = start_server(&config_with(DEFAULT)).await;
    let response = server
        .auth_request(&signed(SECRET_B, "POST", "/v1/traces", NOW, SESSION))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-auth-key-id"], "b");
    let text = server.scrape().await;
    assert_eq!(
        sample(&text, "telegate_key_used_total{key_id=\"b\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_guide_spelling_and_a_query_in_the_uri_pass() {
    let server = start_server(&config_with(DEFAULT)).await;
    let mut headers = signed(SECRET_A, "POST", "/v1/logs?tenant=x", NOW, "guide-session");
    headers = with(headers, "X-KMS-Session-ID", None);
    headers = with(headers, "X-KMS-Client-Version", None);
    headers.push(("X-KMS-Session", "guide-session".into()));
    headers.push(("X-KMS-Version", "1.9".into()));
    headers.push(("X-KMS-Build", "official".into()));
    let response = server.auth_request(&headers).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-auth-session-id"], "guide-session");
    assert_eq!(response.headers()["x-auth-client-version"], "1.9");
}

#[tokio::test]
async fn missing_signature_is_401() {
    let server = start_server(&config_with(DEFAULT)).await;
    refused(
        &server,
        with(valid(), "X-KMS-Signature", None),
        401,
        "missing_signature",
    )
    .await;
}

#[tokio::test]
async fn missing_timestamp_is_401() {
    let server = start_server(&config_with(DEFAULT)).await;
    refused(
        &server,
        with(valid(), "X-KMS-Timestamp", None),
        401,
        "missing_timestamp",
    )
    .await;
}

#[tokio::test]
async fn missing_session_id_is_401() {
    let server = start_server(&config_with(DEFAULT)).await;
    refused(
        &server,
        with(valid(), "X-KMS-Session-ID", None),
        401,
        "missing_session_id",
    )
    .await;
}

#[tokio::test]
async fn missing_forwarded_uri_is_401() {
    let server = start_server(&config_with(DEFAULT)).await;
    refused(
        &server,
        with(valid(), "X-Forwarded-Uri", None),
        401,
        "missing_forwarded_uri",
    )
    .await;
}

#[tokio::test]
async fn malformed_timestamp_is_401_with_the_original_sentence() {
    let server = start_server(&config_with(DEFAULT)).await;
    let response = server
        .auth_request(&with(valid(), "X-KMS-Timestamp", Some("1800000000.5")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "malformed_timestamp");
    assert_eq!(body["error"], "Invalid timestamp format");
}

/// One spelling per instant (docs/protocol.md): digits only. A leading zero
/// or a plus sign over HTTP/1; a leading or trailing space over h2c, where
/// no HTTP/1 parser strips it first.
#[tokio::test]
async fn a_timestamp_that_is_not_plain_decimal_is_refused() {
    let server = start_server(&config_with(DEFAULT)).await;
    for spelling in ["01800000000", "+1800000000", "0x6b49d200"] {
        let response = server
            .auth_request(&with(valid(), "X-KMS-Timestamp", Some(spelling)))
            .send()
            .await
            .unwrap();
        assert_eq!(
            reason_of(response).await,
            (401, "malformed_timestamp".to_string()),
            "{spelling}"
        );
    }
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for spelling in [" 1800000000", "1800000000 "] {
        let mut request = h2.get(server.url("/auth"));
        for (name, value) in with(valid(), "X-KMS-Timestamp", Some(spelling)) {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(
            reason_of(response).await,
            (401, "malformed_timestamp".to_string()),
            "{spelling:?}"
        );
    }
    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"malformed_timestamp\"}"
        ),
        Some(5.0)
    );
    assert_eq!(sample(&text, "telegate_auth_success_total"), Some(0.0));
    let response = server.auth_request(&valid()).send().await.unwrap();
    assert_eq!(response.status(), 200, "the plain spelling still passes");
}

#[tokio::test]
async fn malformed_session_id_is_401() {
    let server = start_server(&config_with(DEFAULT)).await;
    refused(
        &server,
        signed(SECRET_A, "POST", "/v1/metrics", NOW, "a|b"),
        401,
        "malformed_header",
    )
    .await;
}

/// The v2 vector whose session id is UTF-8 (`tests/vectors/v2.tsv`, row 4,
/// key `b`), sent as is: it passes, and the id is handed upstream intact.
#[tokio::test]
async fn the_utf8_session_id_of_the_v2_vectors_passes() {
    let server = start_server(&config_with(DEFAULT)).await;
    let row = include_str!("../vectors/v2.tsv")
        .lines()
        .find(|line| line.contains("séssion"))
        .unwrap();
    let f: Vec<&str> = row.split('\t').collect();
    let headers = vec![
        ("X-Forwarded-Method", f[2].to_string()),
        ("X-Forwarded-Uri", f[3].to_string()),
        ("X-KMS-Timestamp", f[4].to_string()),
        ("X-KMS-Session-ID", f[5].to_string()),
        ("X-KMS-Nonce", f[6].to_string()),
        ("X-KMS-Content-SHA256", f[8].to_string()),
        ("X-KMS-Signature", f[10].to_string()),
        ("X-KMS-Key-Id", f[1].to_string()),
        ("X-KMS-Signature-Version", "2".to_string()),
    ];
    assert_eq!((f[1], f[4]), ("b", NOW.to_string().as_str()));
    let response = server.auth_request(&headers).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-auth-key-id"], "b");
    assert_eq!(
        response.headers()["x-auth-session-id"].as_bytes(),
        "séssion".as_bytes()
    );
}

#[tokio::test]
async fn the_window_edges_are_inclusive() {
    let server = start_server(&config_with(DEFAULT)).await;
    for timestamp in [NOW - 300, NOW + 300] {
        let headers = signed(SECRET_A, "POST", "/v1/metrics", timestamp, SESSION);
        let response = server.auth_request(&headers).send().await.unwrap();
        assert_eq!(response.status(), 200, "timestamp {timestamp}");
    }
}

#[tokio::test]
async fn a_stale_timestamp_is_401() {
    let server = start_server(&config_with(DEFAULT)).await;
    let headers = signed(SECRET_A, "POST", "/v1/metrics", NOW - 301, SESSION);
    let response = server.auth_request(&headers).send().await.unwrap();
    let body: serde_json::Value = {
        assert_eq!(response.status(), 401);
        response.json().await.unwrap()
    };
    assert_eq!(body["reason"], "stale_timestamp");
    assert_eq!(body["error"], "Request timestamp too old or in future");
}

#[tokio::test]
async fn a_future_timestamp_is_401() {
    let server = start_server(&config_with(DEFAULT)).await;
    refused(
        &server,
        signed(SECRET_A, "POST", "/v1/metrics", NOW + 301, SESSION),
        401,
        "future_timestamp",
    )
    .await;
}

#[tokio::test]
async fn the_window_follows_the_clock() {
    let server = start_server(&config_with(DEFAULT)).await;
    let headers = valid();
    assert_eq!(
        server.auth_request(&headers).send().await.unwrap().status(),
        200
    );
    server.set_now(NOW + 301);
    let (status, reason) = reason_of(server.auth_request(&headers).send().await.unwrap()).await;
    assert_eq!((status, reason.as_str()), (401, "stale_timestamp"));
}

#[tokio::test]
async fn a_wrong_key_is_403() {
    let server = start_server(&config_with(DEFAULT)).await;
    let headers = signed(
        "not-a-configured-secret",
        "POST",
        "/v1/metrics",
        NOW,
        SESSION,
    );
    let response = server.auth_request(&headers).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let body = response.text().await.unwrap();
    assert!(body.contains("\"reason\":\"bad_signature\""), "{body}");
    assert!(body.contains("Invalid signature"), "{body}");
    let signature = &headers
        .iter()
        .find(|(n, _)| *n == "X-KMS-Signature")
        .unwrap()
        .1;
    assert!(!body.contains(&signature[..16]), "no signature in the body");
}

#[tokio::test]
async fn a_signature_over_another_path_or_method_is_403() {
    let server = start_server(&config_with(DEFAULT)).await;
    let other_path = with(valid(), "X-Forwarded-Uri", Some("/v1/traces"));
    refused(&server, other_path, 403, "bad_signature").await;
    let other_method = with(valid(), "X-Forwarded-Method", Some("PUT"));
    let (status, _) = reason_of(server.auth_request(&other_method).send().await.unwrap()).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_signature_that_is_not_64_hex_is_403() {
    let server = start_server(&config_with(DEFAULT)).await;
    refused(
        &server,
        with(valid(), "X-KMS-Signature", Some("abc")),
        403,
        "bad_signature",
    )
    .await;
}

#[tokio::test]
async fn an_uppercase_signature_passes() {
    let server = start_server(&config_with(DEFAULT)).await;
    let headers = valid();
    let upper = headers
        .iter()
        .find(|(n, _)| *n == "X-KMS-Signature")
        .unwrap()
        .1
        .to_uppercase();
    let response = server
        .auth_request(&with(headers, "X-KMS-Signature", Some(&upper)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn over_the_rate_limit_is_429_with_retry_after() {
    let server = start_server(&config_with("[rate_limit]\nper_second = 1\nburst = 3")).await;
    for _ in 0..3 {
        assert_eq!(
            server.auth_request(&valid()).send().await.unwrap().status(),
            200
        );
    }
    let response = server.auth_request(&valid()).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, reason) = reason_of(response).await;
    assert_eq!(reason, "rate_limited");
    let text = server.scrape().await;
    assert_eq!(sample(&text, "telegate_rate_limited_total"), Some(1.0));
    assert_eq!(
        sample(&text, "telegate_auth_failed_total{reason=\"rate_limited\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "telegate_ratelimit_keys"), Some(1.0));
}

#[tokio::test]
async fn bad_requests_count_against_the_limit_too() {
    let server = start_server(&config_with("[rate_limit]\nper_second = 1\nburst = 2")).await;
    for _ in 0..2 {
        assert_eq!(server.auth_request(&[]).send().await.unwrap().status(), 401);
    }
    assert_eq!(
        server.auth_request(&valid()).send().await.unwrap().status(),
        429
    );
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let server = start_server(&config_with("[rate_limit]\nper_second = 1\nburst = 1")).await;
    let from = |client: &str| {
        let mut headers = valid();
        headers.push(("X-Forwarded-For", client.to_string()));
        headers
    };
    assert_eq!(
        server
            .auth_request(&from("198.51.100.1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        server
            .auth_request(&from("198.51.100.2"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        server
            .auth_request(&from("198.51.100.1"))
            .send()
            .await
            .unwrap()
            .status(),
        429
    );
    // The client cannot prepend its way out: the right-most untrusted hop counts.
    let spoofed = from("203.0.113.9, 198.51.100.2");
    assert_eq!(
        server.auth_request(&spoofed).send().await.unwrap().status(),
        429
    );
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let config = config_with("[rate_limit]\nper_second = 1\nburst = 1").replace(
        "trusted_proxies = [\"127.0.0.1/32\"]",
        "trusted_proxies = []",
    );
    let server = start_server(&config).await;
    let mut first = valid();
    first.push(("X-Forwarded-For", "198.51.100.1".into()));
    let mut second = valid();
    second.push(("X-Forwarded-For", "198.51.100.2".into()));
    assert_eq!(
        server.auth_request(&first).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        server.auth_request(&second).send().await.unwrap().status(),
        429,
        "a forged X-Forwarded-For must not buy a fresh bucket"
    );
}

const POLICIES: &str = r#"
[policies.strict]
key_ids = ["b"]
max_skew_secs = 10
require_build = "official"
[policies.bulk]
rate_limit = { per_second = 1000, burst = 1000 }
"#;

#[tokio::test]
async fn a_policy_narrows_keys_window_and_build() {
    let server = start_server(&config_with(POLICIES)).await;
    let strict = |headers: Vec<(&'static str, String)>| {
        server
            .client
            .get(server.url("/auth?policy=strict"))
            .headers(header_map(&headers))
            .send()
    };
    let mut ok = signed(SECRET_B, "POST", "/v1/metrics", NOW - 10, SESSION);
    ok.push(("X-KMS-Build", "official".into()));
    assert_eq!(strict(ok.clone()).await.unwrap().status(), 200);

    let (status, reason) = reason_of(
        strict(with(ok.clone(), "X-KMS-Build", Some("dev")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, reason.as_str()), (401, "unofficial_build"));

    let mut key_a = signed(SECRET_A, "POST", "/v1/metrics", NOW, SESSION);
    key_a.push(("X-KMS-Build", "official".into()));
    let (status, reason) = reason_of(strict(key_a).await.unwrap()).await;
    assert_eq!(
        (status, reason.as_str()),
        (403, "bad_signature"),
        "key a is not in the policy"
    );

    let mut old = signed(SECRET_B, "POST", "/v1/metrics", NOW - 11, SESSION);
    old.push(("X-KMS-Build", "official".into()));
    let (status, reason) = reason_of(strict(old).await.unwrap()).await;
    assert_eq!((status, reason.as_str()), (401, "stale_timestamp"));

    // Without the policy the default (300 s, every key, any build) applies.
    let mut default = signed(SECRET_A, "POST", "/v1/metrics", NOW - 200, SESSION);
    default.push(("X-KMS-Build", "dev".into()));
    assert_eq!(
        server.auth_request(&default).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_policy_has_its_own_rate_limit() {
    let server =
        start_server(&(config_with(POLICIES) + "[rate_limit]\nper_second = 1\nburst = 1\n")).await;
    for _ in 0..5 {
        let response = server
            .client
            .get(server.url("/auth?policy=bulk"))
            .headers(header_map(&valid()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        server.auth_request(&valid()).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        server.auth_request(&valid()).send().await.unwrap().status(),
        429
    );
}

#[tokio::test]
async fn an_unknown_policy_is_an_operator_error() {
    let server = start_server(&config_with(DEFAULT)).await;
    let response = server
        .client
        .get(server.url("/auth?policy=nope"))
        .headers(header_map(&valid()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reason_of(response).await,
        (500, "unknown_policy".to_string())
    );
}

#[tokio::test]
async fn no_live_key_is_503_and_not_ready() {
    let config = config_with(DEFAULT)
        .replace(
            "id = \"a\"\n",
            "id = \"a\"\nnot_after = \"2020-01-01T00:00:00Z\"\n",
        )
        .replace(
            "id = \"b\"\n",
            "id = \"b\"\nnot_after = \"2020-01-01T00:00:00Z\"\n",
        );
    let server = start_server(&config).await;
    let response = server.auth_request(&valid()).send().await.unwrap();
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(reason_of(response).await, (503, "no_live_key".to_string()));
    let ready = server
        .client
        .get(server.url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let server = start_server(&config_with(DEFAULT)).await;
    let health = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "healthy"})
    );
    let ready = server
        .client
        .get(server.url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["live_keys"], serde_json::json!(["a", "b"]));
    assert_eq!(body["warnings"], serde_json::json!([]));
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    for name in [
        "telegate_auth_total",
        "telegate_auth_success_total",
        "telegate_auth_failed_total",
        "telegate_rate_limited_total",
        "telegate_keyring_reloads_total",
        "telegate_auth_duration_seconds",
        "telegate_ratelimit_keys",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    let missing = server.client.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(reason_of(missing).await, (404, "not_found".to_string()));
    let wrong = server
        .client
        .post(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reason_of(wrong).await,
        (405, "method_not_allowed".to_string())
    );
}

#[tokio::test]
async fn the_kotormodsync_namespace_serves_the_original_names() {
    let server = start_server(&config_with("[metrics]\nnamespace = \"kotormodsync\"")).await;
    server.auth_request(&valid()).send().await.unwrap();
    server
        .auth_request(&with(valid(), "X-KMS-Signature", None))
        .send()
        .await
        .unwrap();
    let text = server.scrape().await;
    assert_eq!(sample(&text, "kotormodsync_auth_total"), Some(2.0));
    assert_eq!(sample(&text, "kotormodsync_auth_success"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "kotormodsync_auth_failed{reason=\"missing_signature\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_development_key_is_flagged_on_ready() {
    let dev_key = include_str!("../../config/dev-signing.key");
    let config = "listen = \"127.0.0.1:0\"\n[[auth.keys]]\nid = \"dev\"\nfile = \"dev.key\"\n";
    let server = start_server_with_files(config, &[("dev.key", dev_key)]).await;
    let ready = server
        .client
        .get(server.url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(
        body["warnings"].to_string().contains("DEVELOPMENT KEY"),
        "{body}"
    );
}

/// Nothing is read for a request that fails the header checks: an unsigned
/// `/auth` announcing a large body it never sends is answered at once,
/// not after the body deadline.
#[tokio::test]
async fn a_refused_request_is_answered_before_its_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start_server(&config_with("[ingest]\nbody_timeout_secs = 30")).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = "GET /auth HTTP/1.1\r\nHost: gate\r\nX-Forwarded-Method: POST\r\n\
                X-Forwarded-Uri: /v1/metrics\r\nContent-Length: 1000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("missing_signature"), "{answer}");
    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"missing_signature\"}"
        ),
        Some(1.0)
    );
    server.stop().await;
}

/// A body Traefik forwards (`forwardBody: true`) that is too large is a
/// counted refusal like any other, after the signature checked out.
#[tokio::test]
async fn a_forwarded_body_over_the_cap_is_413_and_counted() {
    let server = start_server(&config_with("[ingest]\nmax_body_bytes = 1024")).await;
    let response = server
        .auth_request(&valid())
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(reason_of(response).await, (413, "body_too_large".into()));
    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"body_too_large\"}"
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "telegate_auth_total"), Some(1.0));
    assert_eq!(
        sample(&text, "telegate_auth_duration_seconds_count"),
        Some(1.0)
    );
    server.stop().await;
}
