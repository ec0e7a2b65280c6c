//! End to end with the client as it really ships: its four headers are
//! computed once when telemetry starts, and its protobuf traces and metrics
//! (no gzip) are posted to the bare origin `/`. Against the real telegate
//! binary and the real collector (rotel), and through real Traefik whose
//! forwardAuth address has no path, as the original deployment's had.
//!
//! ```text
//! shipped client --POST / (headers from start)--> telegate --/v1/{signal}--> rotel
//! shipped client --POST /--> Traefik --/--> telegate ingest --> rotel
//! fixed client --POST /v1/metrics--> Traefik --GET / (forwardAuth)--> telegate
//!                                        | 2xx --> rotel
//! ```
//!
//! The only real waits in the suite are here: `max_skew_secs = 3` and
//! exports 6 s after the headers were made, as the issue asks.
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_shipped_client:: -- --nocapture`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::support::otlp::{text, unix_now};
use crate::support::stack::{keygen, Rotel, Telegate, Traefik};
use crate::support::{
    add_headers, header_map, http_client, kms_headers, require_tools, sample, Headers, Workdir,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use prost::Message;

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
const ADMIN: &str = "e2e-admin-token-0123456789abcdef";
/// The client's exports come this long after its headers were made: twice
/// the window below.
const LATE: Duration = Duration::from_secs(6);

// ---------------------------------------------------------------- the client

/// KOTORModSync's telemetry as shipped: headers for `/v1/traces` and
/// `/v1/metrics` signed once at start, both exporters pointed at the bare
/// origin, protobuf without gzip.
struct ShippedClient {
    http: reqwest::Client,
    origin: String,
    traces_headers: Headers,
    metrics_headers: Headers,
}

impl ShippedClient {
    /// "Telemetry starts": the headers are computed now, never again.
    fn start(origin: &str, secret: &str, session: &str, source: IpAddr) -> ShippedClient {
        let timestamp = unix_now();
        let headers = |path: &str| kms_headers(secret, "POST", path, timestamp, session);
        ShippedClient {
            http: client_from(source),
            origin: origin.to_string(),
            traces_headers: headers("/v1/traces"),
            metrics_headers: headers("/v1/metrics"),
        }
    }

    /// The same headers, sent from another local address.
    fn from(&self, source: IpAddr) -> ShippedClient {
        ShippedClient {
            http: client_from(source),
            origin: self.origin.clone(),
            traces_headers: self.traces_headers.clone(),
            metrics_headers: self.metrics_headers.clone(),
        }
    }

    fn at(&self, origin: &str) -> ShippedClient {
        let mut other = self.from(IpAddr::V4(Ipv4Addr::LOCALHOST));
        other.origin = origin.to_string();
        other
    }

    async fn post(&self, headers: &[(&str, String)], body: Vec<u8>) -> u16 {
        let request = self
            .http
            .post(format!("{}/", self.origin))
            .header("Content-Type", "application/x-protobuf")
            .body(body);
        add_headers(request, headers)
            .send()
            .await
            .expect("POST /")
            .status()
            .as_u16()
    }

    async fn export_metrics(&self, name: &str) -> u16 {
        self.post(&self.metrics_headers, metrics(name).encode_to_vec())
            .await
    }

    async fn export_traces(&self, name: &str) -> u16 {
        self.post(&self.traces_headers, traces(name).encode_to_vec())
            .await
    }
}

/// A loopback client whose connections come from `source` (127.0.0.x).
fn client_from(source: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(source)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn the_shipped_client_works_with_static_header_sessions_and_only_then() {
    let Some(tools) = require_tools("e2e_shipped_client", &["rotel-agent"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-shipped");
    let strict_work = Workdir::new("telegate-e2e-shipped-strict");
    let secret = keygen();
    let run = keygen()[..12].to_owned();
    for dir in [&work, &strict_work] {
        dir.write("e2e.key", &secret);
        dir.write("admin.token", ADMIN);
    }
    let mut rotel = Rotel::start(&tools, &work).await;
    let lenient = Telegate::start(&work, &config(&rotel.url(), true)).await;
    let strict = Telegate::start(&strict_work, &config(&rotel.url(), false)).await;
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let session = format!("0f8fad5b-d9cb-469f-a165-{run}");
    let client = ShippedClient::start(&lenient.url(""), &secret, &session, loopback);
    let strict_client = client.at(&strict.url(""));

    // The first exports, inside the window, pass everywhere.
    assert_eq!(
        client.export_metrics(&format!("early_metric_{run}")).await,
        200
    );
    assert_eq!(
        client.export_traces(&format!("early_span_{run}")).await,
        200
    );
    assert_eq!(
        strict_client
            .export_metrics(&format!("strict_early_{run}"))
            .await,
        200
    );

    // The one real wait here is the behaviour under test: the real binary
    // reads the real clock, and the headers must be older than the window.
    tokio::time::sleep(LATE).await;

    // Twice the window later, the same headers still deliver, by signal.
    let late_metric = format!("late_metric_{run}");
    let late_span = format!("late_span_{run}");
    assert_eq!(client.export_metrics(&late_metric).await, 200);
    assert_eq!(client.export_traces(&late_span).await, 200);
    // The strict gateway refuses them as the original would have.
    let strict_late = format!("strict_late_{run}");
    assert_eq!(strict_client.export_metrics(&strict_late).await, 401);
    // Another address with the same headers (pin_ip): refused.
    let thief = client.from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let stolen = format!("stolen_{run}");
    assert_eq!(thief.export_metrics(&stolen).await, 401);
    // Revoked: refused.
    let revoke = http_client()
        .delete(lenient.url(&format!("/sessions/{session}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert!(revoke.status().is_success(), "revoke: {}", revoke.status());
    let revoked = format!("revoked_{run}");
    assert_eq!(client.export_metrics(&revoked).await, 401);

    let sentinel = format!("sentinel_{run}");
    let fresh = ShippedClient::start(&lenient.url(""), &secret, &format!("s2-{run}"), loopback);
    assert_eq!(fresh.export_metrics(&sentinel).await, 200);
    rotel.wait_for(&sentinel, DELIVERY_TIMEOUT).await;
    let seen = rotel.output();
    for name in [&late_metric, &late_span] {
        assert!(seen.contains(name.as_str()), "{name} not delivered");
    }
    for name in [&strict_late, &stolen, &revoked] {
        assert!(!seen.contains(name.as_str()), "{name} was delivered");
    }
    let text = lenient.metrics().await;
    assert_eq!(
        sample(&text, "telegate_auth_static_accepted_total"),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "telegate_auth_signal_detected_total{signal=\"traces\"}"
        ),
        Some(2.0)
    );
    assert!(lenient.proc.log_text().contains("static_headers=true"));
    eprintln!("e2e_shipped_client: run {run}: ok");
}

#[tokio::test]
async fn through_traefik_with_a_pathless_forward_auth_address() {
    let Some(tools) = require_tools("e2e_shipped_client", &["traefik", "rotel-agent"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-shipped-traefik");
    let secret = keygen();
    let run = keygen()[..12].to_owned();
    work.write("e2e.key", &secret);
    work.write("admin.token", ADMIN);
    let mut rotel = Rotel::start(&tools, &work).await;
    let telegate = Telegate::start(&work, &config(&rotel.url(), false)).await;
    let dynamic = format!(
        r#"http:
  routers:
    otlp:
      entryPoints: [web]
      rule: "PathPrefix(`/v1/`)"
      middlewares: [kotormodsync-auth]
      service: collector
    otlp-root:
      entryPoints: [web]
      rule: "Path(`/`)"
      service: telegate-ingest
  middlewares:
    kotormodsync-auth:
      forwardAuth:
        address: "http://127.0.0.1:{port}"
        trustForwardHeader: false
        authResponseHeaders: [X-Auth-Status, X-Auth-Session-Id]
  services:
    collector:
      loadBalancer:
        servers:
          - url: "{collector}"
    telegate-ingest:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{port}"
"#,
        port = telegate.port,
        collector = rotel.url()
    );
    let traefik = Traefik::start(&tools, &work, &dynamic, "/v1/metrics").await;
    let origin = traefik.url("");
    let session = format!("traefik-{run}");
    let client = ShippedClient::start(&origin, &secret, &session, IpAddr::V4(Ipv4Addr::LOCALHOST));
    let metric = format!("traefik_root_metric_{run}");
    let span_name = format!("traefik_root_span_{run}");
    assert_eq!(client.export_metrics(&metric).await, 200);
    assert_eq!(client.export_traces(&span_name).await, 200);
    // A fixed client on /v1/metrics goes through the path-less forwardAuth.
    let fixed = format!("traefik_fixed_{run}");
    let status = client
        .http
        .post(traefik.url("/v1/metrics"))
        .header("Content-Type", "application/x-protobuf")
        .headers(header_map(&client.metrics_headers))
        .body(metrics(&fixed).encode_to_vec())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let bad = format!("traefik_bad_{run}");
    let mut forged = client.metrics_headers.clone();
    forged[0].1 = "00".repeat(32);
    let status = client.post(&forged, metrics(&bad).encode_to_vec()).await;
    assert_eq!(status, 403);
    for name in [&metric, &span_name, &fixed] {
        rotel.wait_for(name, DELIVERY_TIMEOUT).await;
    }
    assert!(!rotel.output().contains(&bad));
    eprintln!("e2e_shipped_client traefik: run {run}: ok");
}

#[tokio::test]
async fn require_auth_false_is_monitor_mode_logged_and_counted() {
    let Some(tools) = require_tools("e2e_shipped_client", &["rotel-agent"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-monitor");
    let secret = keygen();
    work.write("e2e.key", &secret);
    work.write("admin.token", ADMIN);
    let rotel = Rotel::start(&tools, &work).await;
    let telegate = Telegate::start_with_env(
        &work,
        &config(&rotel.url(), false),
        &[("REQUIRE_AUTH", "false")],
    )
    .await;
    let response = http_client()
        .get(telegate.url("/"))
        .header("X-Forwarded-Method", "POST")
        .header("X-Forwarded-Uri", "/v1/metrics")
        .header("X-KMS-Signature", "ab".repeat(32))
        .header("X-KMS-Timestamp", unix_now().to_string())
        .header("X-KMS-Session-ID", "monitor-session")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "monitor mode lets it through");
    assert_eq!(response.headers()["x-auth-monitor"], "bad_signature");
    let text = telegate.metrics().await;
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"bad_signature\"}"
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "telegate_auth_monitor_mode"), Some(1.0));
    let log = telegate.proc.log_text();
    assert!(log.contains("MONITOR MODE"), "startup warning: {log}");
    assert!(
        log.contains("reason=\"bad_signature\"") || log.contains("reason=bad_signature"),
        "decision logged: {log}"
    );
    assert!(log.contains("monitor=true"), "{log}");
    assert!(!log.contains(&"ab".repeat(32)), "never the full signature");
}

// ---------------------------------------------------------------- helpers

fn config(collector: &str, static_headers: bool) -> String {
    let statics = if static_headers {
        "[auth.static_headers]\nmax_age_secs = 3600\npin_ip = true\n"
    } else {
        ""
    };
    format!(
        r#"
trusted_proxies = ["127.0.0.1/32"]
[auth]
max_skew_secs = 3
[[auth.keys]]
id = "kotormodsync"
file = "e2e.key"
{statics}
[admin]
token_file = "admin.token"
[rate_limit]
per_second = 1000
burst = 1000
[ingest]
mode = "validate"
[collector]
endpoint = "{collector}"
connect_timeout_secs = 1
request_timeout_secs = 3
[log]
level = "info"
"#
    )
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            text("service.name", "KOTORModSync"),
            text("service.version", "2.0.0.0"),
        ],
        ..Default::default()
    })
}

fn metrics(name: &str) -> ExportMetricsServiceRequest {
    let point = NumberDataPoint {
        time_unix_nano: unix_now() as u64 * 1_000_000_000,
        value: Some(number_data_point::Value::AsInt(1)),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![point],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn traces(name: &str) -> ExportTraceServiceRequest {
    let now = unix_now() as u64 * 1_000_000_000;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: (1..17).collect(),
                    span_id: (1..9).collect(),
                    name: name.into(),
                    kind: span::SpanKind::Client as i32,
                    start_time_unix_nano: now,
                    end_time_unix_nano: now + 1000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
