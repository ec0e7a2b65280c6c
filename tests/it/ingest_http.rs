//! The OTLP ingest routes over real HTTP, in process, with a scripted
//! collector (`support::collector`): every refusal's status and reason,
//! the OTLP retry contract, v2 body binding and idempotent retries,
//! enrichment, and `/auth` with a forwarded body.

use std::time::Duration;

use crate::support::collector::{start_server_before, FakeCollector, Script};
use crate::support::otlp::{gzip, gzip_zeros, text};
use crate::support::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use telegate::http::error::{ErrorInfo, Status};

const NONCE: &str = "00112233445566778899aabbccddeeff";

/// One gauge with `points` data points and a `user.id` attribute on the resource.
fn export(name: &str, points: usize) -> ExportMetricsServiceRequest {
    let point = NumberDataPoint {
        time_unix_nano: 1_700_000_000_000_000_000,
        attributes: vec![text("user.id", "u-1"), text("dp", "x")],
        value: Some(number_data_point::Value::AsInt(7)),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![text("service.name", "svc"), text("user.id", "u-1")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![point; points],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn post(
    server: &TestServer,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    add_headers(server.client.post(server.url(path)).body(body), headers)
}

fn protobuf(headers: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    with(headers, "Content-Type", Some("application/x-protobuf"))
}

fn v1(path: &str) -> Vec<(&'static str, String)> {
    protobuf(signed(SECRET_A, "POST", path, NOW, SESSION))
}

async fn status_reason(response: reqwest::Response) -> (u16, String, Option<String>) {
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, reason) = reason_any(response).await;
    (status, reason, retry)
}

/// (name, headers, body, expected status, expected reason).
type Case = (
    &'static str,
    Vec<(&'static str, String)>,
    Vec<u8>,
    u16,
    &'static str,
);

#[tokio::test]
async fn a_signed_protobuf_export_is_forwarded_untouched_and_counted() {
    let collector = FakeCollector::start().await;
    let server =
        start_server_before(&collector, r#"headers = { "X-Scope-OrgID" = "tenant-1" }"#).await;
    let body = export("m1", 3).encode_to_vec();
    let response = post(&server, "/v1/metrics", &v1("/v1/metrics"), body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let got = collector.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/v1/metrics");
    assert_eq!(
        got[0].body, body,
        "validate mode forwards the bytes as sent"
    );
    assert_eq!(got[0].headers["content-type"], "application/x-protobuf");
    assert_eq!(got[0].headers["x-auth-session-id"], SESSION);
    assert_eq!(got[0].headers["x-auth-client-version"], "2.0.0.0");
    assert_eq!(
        got[0].headers["x-scope-orgid"], "tenant-1",
        "static collector headers"
    );
    assert!(got[0].headers.get("x-kms-signature").is_none());
    let text = server.scrape().await;
    assert_eq!(
        sample(&text, "telegate_ingest_items_total{signal=\"metrics\"}"),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "telegate_ingest_requests_total{result=\"delivered\",signal=\"metrics\"}"
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "telegate_auth_success_total"), Some(1.0));
    let session = server.state.sessions().lookup(SESSION, NOW).await.unwrap();
    assert!(
        format!("{session:?}").contains(&format!("bytes: {}", body.len())),
        "{session:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_collectors_answer_maps_onto_the_otlp_retry_contract() {
    let collector = FakeCollector::start().await;
    let server = start_server_before(&collector, "").await;
    let send = || {
        post(
            &server,
            "/v1/metrics",
            &v1("/v1/metrics"),
            export("m", 1).encode_to_vec(),
        )
        .send()
    };

    // Partial success passes through untouched.
    collector.answer(Script {
        content_type: "application/json",
        body: br#"{"partialSuccess":{"rejectedDataPoints":"1","errorMessage":"x"}}"#,
        ..Default::default()
    });
    let response = send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"partialSuccess":{"rejectedDataPoints":"1","errorMessage":"x"}}"#
    );

    let cases = [
        (400, None, 400, "collector_rejected", None),
        (429, Some("7"), 429, "collector_throttled", Some("7")),
        (503, None, 503, "collector_unavailable", Some("5")),
        (502, Some("2"), 503, "collector_unavailable", Some("2")),
        (504, None, 503, "collector_unavailable", Some("5")),
        (404, None, 503, "collector_unavailable", Some("5")),
    ];
    for (collector_status, retry_after, status, reason, retry) in cases {
        collector.answer(Script {
            status: collector_status,
            retry_after,
            ..Default::default()
        });
        let response = send().await.unwrap();
        assert_eq!(response.status(), status, "collector {collector_status}");
        assert_eq!(response.headers()["content-type"], "application/x-protobuf");
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            retry,
            "collector {collector_status}"
        );
        let status_body = Status::decode(response.bytes().await.unwrap()).unwrap();
        let info = ErrorInfo::decode(&status_body.details[0].value[..]).unwrap();
        assert_eq!(info.reason, reason, "collector {collector_status}");
    }

    // Collector gone: 503 + Retry-After, counted; never a 200.
    collector.stop().await;
    let down = start_server_before(&collector, "").await;
    let response = post(
        &down,
        "/v1/metrics",
        &v1("/v1/metrics"),
        export("m", 1).encode_to_vec(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        status_reason(response).await,
        (503, "collector_unavailable".into(), Some("5".into()))
    );
    let text = down.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_ingest_requests_total{result=\"collector_unavailable\",signal=\"metrics\"}"
        ),
        Some(1.0)
    );
    server.stop().await;
    down.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_with_a_reason() {
    let collector = FakeCollector::start().await;
    let server = start_server_before(
        &collector,
        "[ingest]\nmax_body_bytes = 65536\nmax_decompressed_bytes = 1048576",
    )
    .await;
    let json = |h| with(h, "Content-Type", Some("application/json"));
    let good = export("m", 1).encode_to_vec();
    // A gzip bomb: 32 MiB of zeros at the best ratio (about 32 KiB).
    let bomb = gzip_zeros(32);
    assert!(bomb.len() < 65536, "the bomb fits under the compressed cap");
    let cases: Vec<Case> = vec![
        (
            "unsigned",
            protobuf(vec![]),
            good.clone(),
            401,
            "missing_signature",
        ),
        (
            "gzip bomb",
            with(v1("/v1/metrics"), "Content-Encoding", Some("gzip")),
            bomb,
            413,
            "body_too_large",
        ),
        (
            "oversized",
            v1("/v1/metrics"),
            vec![0u8; 70_000],
            413,
            "body_too_large",
        ),
        (
            "truncated protobuf",
            v1("/v1/metrics"),
            good[..good.len() - 4].to_vec(),
            400,
            "malformed_otlp",
        ),
        (
            "JSON with wrong types",
            json(v1("/v1/metrics")),
            br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":5}]}]}]}"#.to_vec(),
            400,
            "malformed_otlp",
        ),
        (
            "JSON that is protobuf",
            json(v1("/v1/metrics")),
            good.clone(),
            400,
            "malformed_otlp",
        ),
        (
            "wrong content type",
            with(v1("/v1/metrics"), "Content-Type", Some("text/plain")),
            good.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            with(v1("/v1/metrics"), "Content-Type", None),
            good.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown encoding",
            with(v1("/v1/metrics"), "Content-Encoding", Some("zstd")),
            good.clone(),
            415,
            "unsupported_encoding",
        ),
        (
            "not gzip",
            with(v1("/v1/metrics"), "Content-Encoding", Some("gzip")),
            good.clone(),
            400,
            "malformed_gzip",
        ),
        (
            "missing body",
            v1("/v1/metrics"),
            Vec::new(),
            400,
            "empty_body",
        ),
        (
            "signed for another path",
            v1("/v1/traces"),
            good.clone(),
            403,
            "bad_signature",
        ),
    ];
    for (case, headers, body, status, reason) in cases {
        let response = post(&server, "/v1/metrics", &headers, body)
            .send()
            .await
            .unwrap();
        let got_status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = response.bytes().await.unwrap();
        let got_reason = if content_type.as_deref() == Some("application/x-protobuf") {
            let status = Status::decode(bytes).unwrap_or_else(|e| panic!("{case}: {e}"));
            ErrorInfo::decode(&status.details[0].value[..])
                .unwrap()
                .reason
        } else {
            let json: serde_json::Value =
                serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{case}: {e}"));
            json["reason"].as_str().unwrap().to_string()
        };
        assert_eq!(
            (got_status, got_reason.as_str()),
            (status, reason),
            "{case}"
        );
    }
    assert!(
        collector.received().is_empty(),
        "nothing bad reached the collector"
    );
    let response = server
        .client
        .get(server.url("/v1/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reason_any(response).await,
        (405, "method_not_allowed".into())
    );
    server.stop().await;
}

#[tokio::test]
async fn v2_binds_the_body_and_a_delivered_nonce_is_answered_not_forwarded_again() {
    let collector = FakeCollector::start().await;
    collector.answer(Script {
        body: b"first-answer",
        ..Default::default()
    });
    let server = start_server_before(&collector, "").await;
    let body = gzip(&export("v2", 2).encode_to_vec());
    let headers = with(
        protobuf(signed_v2(
            SECRET_A,
            "a",
            "/v1/metrics",
            NOW,
            SESSION,
            NONCE,
            &body,
        )),
        "Content-Encoding",
        Some("gzip"),
    );
    let response = post(&server, "/v1/metrics", &headers, body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), "first-answer");

    let mut tampered = body.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let response = post(&server, "/v1/metrics", &headers, tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(status_reason(response).await.0, 403);

    collector.answer(Script {
        body: b"second-answer",
        ..Default::default()
    });
    let response = post(&server, "/v1/metrics", &headers, body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.unwrap(),
        "first-answer",
        "the first outcome"
    );
    assert_eq!(collector.received().len(), 1, "forwarded exactly once");

    let wrong_key = with(headers.clone(), "X-KMS-Key-Id", Some("b"));
    let response = post(&server, "/v1/metrics", &wrong_key, body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(reason_any(response).await, (403, "bad_signature".into()));

    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_ingest_requests_total{result=\"replayed\",signal=\"metrics\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"body_mismatch\"}"
        ),
        Some(1.0)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_v2_export_that_failed_is_processed_again_and_v1_is_never_a_replay() {
    let collector = FakeCollector::start().await;
    collector.answer(Script {
        status: 503,
        ..Default::default()
    });
    let server = start_server_before(&collector, "").await;
    let body = export("retry", 1).encode_to_vec();
    let headers = protobuf(signed_v2(
        SECRET_B,
        "b",
        "/v1/metrics",
        NOW,
        SESSION,
        NONCE,
        &body,
    ));
    let response = post(&server, "/v1/metrics", &headers, body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    collector.answer(Script::default());
    let response = post(&server, "/v1/metrics", &headers, body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the retry is processed again");
    assert_eq!(collector.received().len(), 2);

    // Two identical v1 exports in the same second are both delivered.
    for _ in 0..2 {
        let response = post(&server, "/v1/metrics", &v1("/v1/metrics"), body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(collector.received().len(), 4);
    server.stop().await;
}

#[tokio::test]
async fn a_policy_can_require_v2() {
    let collector = FakeCollector::start().await;
    let server = start_server_before(
        &collector,
        "[ingest]\npolicy = \"strict\"\n[policies.strict]\nmin_signature_version = 2",
    )
    .await;
    let body = export("m", 1).encode_to_vec();
    let response = post(&server, "/v1/metrics", &v1("/v1/metrics"), body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        reason_any(response).await,
        (401, "signature_version_required".into())
    );
    let headers = protobuf(signed_v2(
        SECRET_A,
        "a",
        "/v1/metrics",
        NOW,
        SESSION,
        NONCE,
        &body,
    ));
    let response = post(&server, "/v1/metrics", &headers, body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn enrich_sets_verified_attributes_drops_private_ones_and_keeps_the_encoding() {
    let collector = FakeCollector::start().await;
    let server = start_server_before(
        &collector,
        "[ingest]\nmode = \"enrich\"\ndrop_attributes = [\"user.id\"]",
    )
    .await;
    let plain = export("enriched", 2).encode_to_vec();
    let headers = with(v1("/v1/metrics"), "Content-Encoding", Some("gzip"));
    let response = post(&server, "/v1/metrics", &headers, gzip(&plain))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let got = &collector.received()[0];
    assert_eq!(got.headers["content-encoding"], "gzip");
    let mut held = telegate::pipeline::budget::MemoryBudget::new(1 << 30).hold();
    let inflated = telegate::ingest::body::gunzip(&got.body, 1 << 20, &mut held).unwrap();
    let forwarded = ExportMetricsServiceRequest::decode(&inflated[..]).unwrap();
    let resource = forwarded.resource_metrics[0].resource.as_ref().unwrap();
    let keys: Vec<&str> = resource
        .attributes
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    assert_eq!(keys, ["service.name", "session.id", "client.version"]);
    assert_eq!(resource.attributes[1], text("session.id", SESSION));
    let Some(metric::Data::Gauge(gauge)) =
        &forwarded.resource_metrics[0].scope_metrics[0].metrics[0].data
    else {
        panic!("gauge kept")
    };
    assert_eq!(gauge.data_points.len(), 2);
    assert!(gauge
        .data_points
        .iter()
        .all(|p| p.attributes == vec![text("dp", "x")]));

    // JSON in, JSON out.
    let json = serde_json::to_vec(&export("json", 1)).unwrap();
    let headers = with(v1("/v1/metrics"), "Content-Type", Some("application/json"));
    let response = post(&server, "/v1/metrics", &headers, json)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let got = &collector.received()[1];
    assert_eq!(got.headers["content-type"], "application/json");
    let text = String::from_utf8(got.body.to_vec()).unwrap();
    assert!(
        text.contains("\"session.id\"") && !text.contains("user.id"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_saturated_collector_is_answered_at_once_not_queued() {
    let collector = FakeCollector::start().await;
    collector.answer(Script {
        delay: Duration::from_millis(400),
        ..Default::default()
    });
    let server = start_server_before(&collector, "max_in_flight = 1").await;
    let send = || {
        post(
            &server,
            "/v1/metrics",
            &v1("/v1/metrics"),
            export("m", 1).encode_to_vec(),
        )
        .send()
    };
    let (a, b) = tokio::join!(send(), async {
        // The second goes once the first holds the only slot: the collector
        // has it (and answers it only after its 400 ms).
        poll_until(
            "the first export at the collector",
            Duration::from_secs(5),
            || {
                std::future::ready(match collector.received().len() {
                    0 => Err("not yet".to_string()),
                    _ => Ok(()),
                })
            },
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
        send().await
    });
    assert_eq!(a.unwrap().status(), 200);
    let b = b.unwrap();
    assert_eq!(b.status(), 503);
    assert_eq!(b.headers()["retry-after"], "1");
    server.stop().await;
}

#[tokio::test]
async fn forward_auth_checks_a_v2_body_when_traefik_sends_one() {
    let collector = FakeCollector::start().await;
    let server = start_server_before(&collector, "").await;
    let body = export("m", 1).encode_to_vec();
    let mut headers = signed_v2(SECRET_A, "a", "/v1/metrics", NOW, SESSION, NONCE, &body);
    headers.push(("X-Forwarded-Method", "POST".into()));
    headers.push(("X-Forwarded-Uri", "/v1/metrics".into()));
    let response = server
        .auth_request(&headers)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = server
        .auth_request(&headers)
        .body(b"other".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(reason_any(response).await, (403, "body_mismatch".into()));
    let response = server.auth_request(&headers).send().await.unwrap();
    assert_eq!(response.status(), 200, "no body: header-only check");
    assert!(collector.received().is_empty(), "/auth never forwards");
    server.stop().await;
}
