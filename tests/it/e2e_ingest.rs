//! End to end with the real collector: OTLP exports posted straight to the
//! telegate binary's ingest routes arrive in rotel (which prints everything
//! it decodes), refused ones never do; and v2 through real Traefik with
//! `forwardBody: true`.
//!
//! ```text
//! reqwest --POST /v1/*--> telegate (validate | enrich) --> rotel
//! reqwest --POST /v1/metrics--> Traefik --GET /auth + body--> telegate
//!                                  | 2xx only
//!                                  v
//!                                rotel
//! ```
//!
//! Every export carries a name unique to the run and the case, so "not
//! delivered" is a grep that finds nothing once a later export is seen.
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_ingest:: -- --nocapture`.

use std::time::Duration;

use crate::support::otlp::{gzip, gzip_zeros, text, unix_now};
use crate::support::stack::{keygen, Rotel, Telegate, Traefik};
use crate::support::{
    add_headers, http_client, kms_headers, require_tools, sample, signed_v2, Reply, Workdir,
    PROTOBUF,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use prost::Message;

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
const KEY_ID: &str = "e2e";

#[tokio::test]
async fn ingest_delivers_to_the_real_collector_and_never_fakes_a_delivery() {
    let Some(tools) = require_tools("e2e_ingest", &["rotel-agent"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-ingest");
    let secret = keygen();
    let run = keygen()[..12].to_owned();
    work.write("e2e.key", &secret);
    let mut rotel = Rotel::start(&tools, &work).await;
    let validate = Telegate::start(&work, &config(&rotel.url(), "validate")).await;
    let enrich_dir = Workdir::new("telegate-e2e-ingest-enrich");
    enrich_dir.write("e2e.key", &secret);
    let enrich = Telegate::start(&enrich_dir, &config(&rotel.url(), "enrich")).await;
    let client = Client {
        http: http_client(),
        secret: secret.clone(),
        session: format!("e2e-session-{run}"),
    };

    // 1. Protobuf traces, JSON metrics and gzipped logs arrive intact.
    let span_name = format!("span_{run}");
    let reply = client
        .v1(
            &validate.url("/v1/traces"),
            "/v1/traces",
            PROTOBUF,
            false,
            traces(&span_name, &run).encode_to_vec(),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    rotel
        .wait_for(&format!("Name           : {span_name}"), DELIVERY_TIMEOUT)
        .await;

    let json_metric = format!("json_{run}");
    let json = serde_json::to_vec(&metrics(&json_metric, &run)).expect("serialize OTLP JSON");
    let reply = client
        .v1(
            &validate.url("/v1/metrics"),
            "/v1/metrics",
            JSON,
            false,
            json,
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/json"),
        "rotel's own answer"
    );
    rotel
        .wait_for(&format!("-> Name: {json_metric}\n"), DELIVERY_TIMEOUT)
        .await;

    let log_body = format!("log_{run}");
    let gz = gzip(&logs(&log_body).encode_to_vec());
    let reply = client
        .v1(&validate.url("/v1/logs"), "/v1/logs", PROTOBUF, true, gz)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    rotel
        .wait_for(&format!("Body: Str({log_body})"), DELIVERY_TIMEOUT)
        .await;

    // 2. Enrich: the verified session and version appear, user.id does not.
    let enriched = format!("enriched_{run}");
    let reply = client
        .v1(
            &enrich.url("/v1/metrics"),
            "/v1/metrics",
            PROTOBUF,
            true,
            gzip(&metrics(&enriched, &run).encode_to_vec()),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    rotel
        .wait_for(&format!("-> Name: {enriched}\n"), DELIVERY_TIMEOUT)
        .await;
    let enriched_json = format!("enriched_json_{run}");
    let json = serde_json::to_vec(&metrics(&enriched_json, &run)).expect("serialize OTLP JSON");
    let reply = client
        .v1(&enrich.url("/v1/metrics"), "/v1/metrics", JSON, false, json)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    rotel
        .wait_for(&format!("-> Name: {enriched_json}\n"), DELIVERY_TIMEOUT)
        .await;
    let seen = rotel.output();
    assert!(
        seen.contains(&format!("-> session.id: Str({})", client.session)),
        "session.id added"
    );
    assert!(
        seen.contains("-> client.version: Str(2.0.0.0)"),
        "client.version added"
    );
    assert!(
        seen.contains(&format!("-> user.id: Str(private-{run})")),
        "validate keeps user.id"
    );
    assert_eq!(
        seen.matches(&format!("-> user.id: Str(private-{run})"))
            .count(),
        2,
        "only the two validate-mode metric exports carry user.id; enrich dropped it"
    );

    // 3. v2: valid passes; tampered body 403; the same nonce again is
    //    answered 200 and the collector sees it once.
    let v2_metric = format!("v2_{run}");
    let body = metrics(&v2_metric, &run).encode_to_vec();
    let nonce = format!("{run}{run}{}", &run[..8]);
    let reply = client
        .v2(&validate.url("/v1/metrics"), &nonce, body.clone(), None)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let tampered = format!("tampered_{run}");
    let reply = client
        .v2(
            &validate.url("/v1/metrics"),
            &format!("{nonce}01"),
            body.clone(),
            Some(metrics(&tampered, &run).encode_to_vec()),
        )
        .await;
    reply.assert_refused(403, "body_mismatch");
    let reply = client
        .v2(&validate.url("/v1/metrics"), &nonce, body.clone(), None)
        .await;
    assert_eq!(reply.status, 200, "replayed nonce: {reply:?}");

    // 4. Bad input: each a clear 4xx with a reason; the gateway stays up.
    let bomb = gzip_zeros(32);
    let good = metrics(&format!("bad_{run}"), &run).encode_to_vec();
    let cases: Vec<BadCase> = vec![
        ("gzip bomb", PROTOBUF, true, bomb, 413, "body_too_large"),
        (
            "truncated protobuf",
            PROTOBUF,
            false,
            good[..good.len() - 5].to_vec(),
            400,
            "malformed_otlp",
        ),
        (
            "JSON with wrong types",
            JSON,
            false,
            br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":{"x":1}}]}]}]}"#.to_vec(),
            400,
            "malformed_otlp",
        ),
        (
            "wrong content type",
            "text/plain",
            false,
            good.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            "oversized",
            PROTOBUF,
            false,
            vec![7u8; 5 * 1024 * 1024],
            413,
            "body_too_large",
        ),
        (
            "missing body",
            PROTOBUF,
            false,
            Vec::new(),
            400,
            "empty_body",
        ),
    ];
    for (case, content_type, gzipped, body, status, reason) in cases {
        let reply = client
            .v1(
                &validate.url("/v1/metrics"),
                "/v1/metrics",
                content_type,
                gzipped,
                body,
            )
            .await;
        assert_eq!(reply.status, status, "{case}: {reply:?}");
        assert_eq!(reply.reason().as_deref(), Some(reason), "{case}: {reply:?}");
    }
    let health = http_client()
        .get(validate.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200, "telegate survived the bad input");

    // Barrier, then: the tampered and bad exports never arrived, the v2 one once.
    let sentinel = format!("sentinel_{run}");
    let reply = client
        .v1(
            &validate.url("/v1/metrics"),
            "/v1/metrics",
            PROTOBUF,
            false,
            metrics(&sentinel, &run).encode_to_vec(),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    rotel
        .wait_for(&format!("-> Name: {sentinel}\n"), DELIVERY_TIMEOUT)
        .await;
    let seen = rotel.output();
    assert_eq!(
        seen.matches(&format!("-> Name: {v2_metric}\n")).count(),
        1,
        "v2 export delivered exactly once"
    );
    assert!(
        !seen.contains(&tampered),
        "a tampered body never reaches the collector"
    );
    assert!(
        !seen.contains(&format!("bad_{run}")),
        "refused input never reaches the collector"
    );

    // 5. Collector stopped: 503 + Retry-After, counted; restarted, the retry arrives.
    let (http_port, grpc_port) = (rotel.http_port, rotel.grpc_port);
    drop(rotel);
    let retried = format!("retried_{run}");
    let body = metrics(&retried, &run).encode_to_vec();
    let reply = client
        .v1(
            &validate.url("/v1/metrics"),
            "/v1/metrics",
            PROTOBUF,
            false,
            body.clone(),
        )
        .await;
    assert_eq!(reply.status, 503, "collector down: {reply:?}");
    assert!(
        reply
            .retry_after
            .as_deref()
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)),
        "{reply:?}"
    );
    assert_eq!(reply.reason().as_deref(), Some("collector_unavailable"));
    let exposition = validate.metrics().await;
    let series =
        "telegate_ingest_requests_total{result=\"collector_unavailable\",signal=\"metrics\"}";
    assert_eq!(sample(&exposition, series), Some(1.0), "{exposition}");
    let mut rotel =
        Rotel::start_on(&tools, &work, http_port, grpc_port, "rotel-restarted.log").await;
    let reply = client
        .v1(
            &validate.url("/v1/metrics"),
            "/v1/metrics",
            PROTOBUF,
            false,
            body,
        )
        .await;
    assert_eq!(reply.status, 200, "retry after restart: {reply:?}");
    rotel
        .wait_for(&format!("-> Name: {retried}\n"), DELIVERY_TIMEOUT)
        .await;

    let exposition = validate.metrics().await;
    assert!(
        sample(
            &exposition,
            "telegate_ingest_items_total{signal=\"metrics\"}"
        )
        .is_some_and(|n| n >= 4.0),
        "{exposition}"
    );
    eprintln!("e2e_ingest: run {run}: ok");
}

#[tokio::test]
async fn v2_through_real_traefik_with_forward_body() {
    let Some(tools) = require_tools("e2e_ingest", &["traefik", "rotel-agent"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-ingest-traefik");
    let secret = keygen();
    let run = keygen()[..12].to_owned();
    work.write("e2e.key", &secret);
    let mut rotel = Rotel::start(&tools, &work).await;
    let telegate = Telegate::start(&work, &config(&rotel.url(), "validate")).await;
    let dynamic = format!(
        r#"http:
  routers:
    otlp:
      entryPoints: [web]
      rule: "PathPrefix(`/v1`)"
      middlewares: [gate-auth]
      service: collector
  middlewares:
    gate-auth:
      forwardAuth:
        address: "http://127.0.0.1:{port}/auth"
        trustForwardHeader: false
        forwardBody: true
        maxBodySize: 1048576
        maxResponseBodySize: 65536
        authResponseHeaders: [X-Auth-Session-Id, X-Auth-Client-Version, X-Auth-Key-Id]
  services:
    collector:
      loadBalancer:
        servers:
          - url: "{collector}"
"#,
        port = telegate.port,
        collector = rotel.url()
    );
    let traefik = Traefik::start(&tools, &work, &dynamic, "/v1/metrics").await;
    let client = Client {
        http: http_client(),
        secret,
        session: format!("e2e-traefik-{run}"),
    };
    let good = format!("traefik_v2_{run}");
    let body = gzip(&metrics(&good, &run).encode_to_vec());
    let nonce = format!("{run}{run}{}", &run[..8]);
    let reply = client
        .v2_gzip(&traefik.url("/v1/metrics"), &nonce, body.clone(), None)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/x-protobuf"),
        "rotel's answer"
    );
    let tampered = format!("traefik_tampered_{run}");
    let reply = client
        .v2_gzip(
            &traefik.url("/v1/metrics"),
            &format!("{nonce}02"),
            body,
            Some(gzip(&metrics(&tampered, &run).encode_to_vec())),
        )
        .await;
    reply.assert_refused(403, "body_mismatch");
    let sentinel = format!("traefik_sentinel_{run}");
    let body = gzip(&metrics(&sentinel, &run).encode_to_vec());
    let reply = client
        .v2_gzip(
            &traefik.url("/v1/metrics"),
            &format!("{nonce}03"),
            body,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    rotel
        .wait_for(&format!("-> Name: {sentinel}\n"), DELIVERY_TIMEOUT)
        .await;
    let seen = rotel.output();
    assert!(seen.contains(&format!("-> Name: {good}\n")));
    assert!(
        !seen.contains(&tampered),
        "Traefik forwarded a body telegate refused"
    );
    eprintln!("e2e_ingest traefik: run {run}: ok");
}

/// (name, content type, gzipped, body, expected status, expected reason).
type BadCase = (&'static str, &'static str, bool, Vec<u8>, u16, &'static str);

const JSON: &str = "application/json";

fn config(collector: &str, mode: &str) -> String {
    format!(
        r#"
trusted_proxies = ["127.0.0.1/32"]
[[auth.keys]]
id = "{KEY_ID}"
file = "e2e.key"
[rate_limit]
per_second = 1000
burst = 1000
[ingest]
mode = "{mode}"
drop_attributes = ["user.id"]
[collector]
endpoint = "{collector}"
connect_timeout_secs = 1
request_timeout_secs = 3
retry_after_secs = 2
[log]
level = "info"
"#
    )
}

// ---------------------------------------------------------------- payloads

fn resource(run: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            text("service.name", "telegate-e2e-ingest"),
            text("user.id", &format!("private-{run}")),
        ],
        ..Default::default()
    })
}

fn metrics(name: &str, run: &str) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(run),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    unit: "1".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: unix_now() as u64 * 1_000_000_000,
                            value: Some(number_data_point::Value::AsInt(7)),
                            ..Default::default()
                        }],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn traces(name: &str, run: &str) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(run),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: (0..16).collect(),
                    span_id: (0..8).collect(),
                    name: name.into(),
                    kind: span::SpanKind::Server as i32,
                    start_time_unix_nano: unix_now() as u64 * 1_000_000_000,
                    end_time_unix_nano: unix_now() as u64 * 1_000_000_000 + 1000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs(body: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![text("service.name", "telegate-e2e-ingest")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    severity_text: "INFO".into(),
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(body.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

// ---------------------------------------------------------------- client

/// An exporter signing with v1 or v2.
struct Client {
    http: reqwest::Client,
    secret: String,
    session: String,
}

impl Client {
    async fn v1(
        &self,
        url: &str,
        path: &str,
        content_type: &str,
        gzipped: bool,
        body: Vec<u8>,
    ) -> Reply {
        let signed = kms_headers(&self.secret, "POST", path, unix_now(), &self.session);
        let request = self.http.post(url).header("Content-Type", content_type);
        let mut request = add_headers(request, &signed);
        if gzipped {
            request = request.header("Content-Encoding", "gzip");
        }
        Reply::of(request.body(body).send().await.expect("POST to telegate")).await
    }

    /// v2-signed protobuf to `/v1/metrics`; `send_instead` replaces the body
    /// after signing (tampering).
    async fn v2(
        &self,
        url: &str,
        nonce: &str,
        body: Vec<u8>,
        send_instead: Option<Vec<u8>>,
    ) -> Reply {
        self.v2_with(url, nonce, body, send_instead, false).await
    }

    async fn v2_gzip(
        &self,
        url: &str,
        nonce: &str,
        body: Vec<u8>,
        send_instead: Option<Vec<u8>>,
    ) -> Reply {
        self.v2_with(url, nonce, body, send_instead, true).await
    }

    async fn v2_with(
        &self,
        url: &str,
        nonce: &str,
        body: Vec<u8>,
        send_instead: Option<Vec<u8>>,
        gzipped: bool,
    ) -> Reply {
        let signed = signed_v2(
            &self.secret,
            KEY_ID,
            "/v1/metrics",
            unix_now(),
            &self.session,
            nonce,
            &body,
        );
        let request = self.http.post(url).header("Content-Type", PROTOBUF);
        let mut request = add_headers(request, &signed);
        if gzipped {
            request = request.header("Content-Encoding", "gzip");
        }
        let body = send_instead.unwrap_or(body);
        Reply::of(request.body(body).send().await.expect("POST")).await
    }
}
