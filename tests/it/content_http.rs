//! The content policy and the series guard over real HTTP, in process,
//! with the scripted collector: what the client is told (OTLP partial
//! success in protobuf and JSON, or 400 `content_rejected`), what the
//! collector received, and every refusal counted under its reason.

use crate::support::collector::{
    metrics_partial_success, start_server_before, FakeCollector, Script,
};
use crate::support::otlp::{gauges, gzip, points_by_name, text};
use crate::support::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use telegate::ingest::otlp::{decode, Export, Media, Signal};

const NAMES: &str = r#"
[content]
metric_names = ["kotormodsync.*", "modsync.*"]
"#;

async fn post(server: &TestServer, path: &str, media: &str, gz: bool, body: Vec<u8>) -> Reply {
    let mut headers = with(
        signed(SECRET_A, "POST", path, NOW, SESSION),
        "Content-Type",
        Some(media),
    );
    if gz {
        headers.push(("Content-Encoding", "gzip".into()));
    }
    let request = add_headers(server.client.post(server.url(path)), &headers).body(body);
    Reply::of(request.send().await.unwrap()).await
}

/// A metrics export, signed, in `media` (uncompressed).
async fn metrics(server: &TestServer, export: &ExportMetricsServiceRequest, media: Media) -> Reply {
    match media {
        Media::Protobuf => {
            post(
                server,
                "/v1/metrics",
                PROTOBUF,
                false,
                export.encode_to_vec(),
            )
            .await
        }
        Media::Json => {
            let json = serde_json::to_vec(export).unwrap();
            post(server, "/v1/metrics", "application/json", false, json).await
        }
    }
}

/// (rejected, error_message) of a metrics answer, in either media type.
fn metrics_partial(reply: &Reply) -> (i64, String) {
    assert_eq!(reply.status, 200, "{reply:?}");
    if reply.content_type.as_deref() == Some(PROTOBUF) {
        let p = ExportMetricsServiceResponse::decode(&reply.body[..])
            .unwrap()
            .partial_success
            .unwrap_or_default();
        return (p.rejected_data_points, p.error_message);
    }
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    let p = &v["partialSuccess"];
    (
        p["rejectedDataPoints"].as_i64().unwrap(),
        p["errorMessage"].as_str().unwrap().to_string(),
    )
}

fn received_metrics(collector: &FakeCollector, i: usize, media: Media) -> Vec<(String, usize)> {
    let got = &collector.received()[i];
    match decode(Signal::Metrics, media, &got.body).unwrap() {
        Export::Metrics(m) => points_by_name(&m),
        other => panic!("not metrics: {other:?}"),
    }
}

fn refused(text: &str, reason: &str) -> f64 {
    sample(
        text,
        &format!("telegate_content_refused_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or_else(|| panic!("no content_refused_total{{reason={reason}}}"))
}

#[tokio::test]
async fn a_disallowed_metric_is_dropped_counted_and_reported_in_protobuf_and_json() {
    let collector = FakeCollector::start().await;
    let server = start_server_before(&collector, NAMES).await;
    let export = gauges("svc", &[("kotormodsync.ok", 2), ("spam.series", 3)]);

    let reply = metrics(&server, &export, Media::Protobuf).await;
    let (rejected, message) = metrics_partial(&reply);
    assert_eq!(rejected, 3);
    assert_eq!(message, "telegate refused 3 data points (metric_name 3)");
    assert_eq!(
        received_metrics(&collector, 0, Media::Protobuf),
        [("kotormodsync.ok".to_string(), 2)]
    );

    let reply = metrics(&server, &export, Media::Json).await;
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    assert_eq!(metrics_partial(&reply).0, 3);
    assert_eq!(
        collector.received()[1].headers["content-type"],
        "application/json"
    );
    assert_eq!(
        received_metrics(&collector, 1, Media::Json),
        [("kotormodsync.ok".to_string(), 2)]
    );

    // Gzipped in, re-encoded and gzipped again out.
    let gz = gzip(&export.encode_to_vec());
    let reply = post(&server, "/v1/metrics", PROTOBUF, true, gz).await;
    assert_eq!(metrics_partial(&reply).0, 3);
    let got = &collector.received()[2];
    assert_eq!(got.headers["content-encoding"], "gzip");

    // An export breaking nothing goes as sent, the collector's answer untouched.
    let clean = gauges("svc", &[("modsync.ok", 1)]).encode_to_vec();
    let reply = post(&server, "/v1/metrics", PROTOBUF, false, clean.clone()).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty(), "the collector's own (empty) answer");
    assert_eq!(collector.received()[3].body, clean);

    let text = server.scrape().await;
    assert_eq!(refused(&text, "metric_name"), 9.0);
    assert_eq!(
        sample(&text, "telegate_ingest_items_total{signal=\"metrics\"}"),
        Some(7.0),
        "forwarded items only"
    );
}

#[tokio::test]
async fn an_export_with_nothing_left_is_not_forwarded_and_all_is_rejected() {
    let collector = FakeCollector::start().await;
    let server = start_server_before(&collector, NAMES).await;
    let export = gauges("svc", &[("spam.a", 2), ("spam.b", 2)]).encode_to_vec();
    let reply = post(&server, "/v1/metrics", PROTOBUF, false, export).await;
    assert_eq!(metrics_partial(&reply).0, 4);
    assert!(collector.received().is_empty());
    let text = server.scrape().await;
    assert_eq!(
        sample(
            &text,
            "telegate_ingest_requests_total{result=\"delivered\",signal=\"metrics\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn reject_answers_400_and_nothing_reaches_the_collector() {
    let collector = FakeCollector::start().await;
    let server =
        start_server_before(&collector, &format!("{NAMES}on_violation = \"reject\"\n")).await;
    let export = gauges("svc", &[("kotormodsync.ok", 2), ("spam.series", 3)]);
    let reply = metrics(&server, &export, Media::Protobuf).await;
    reply.assert_refused(400, "content_rejected");
    let status = telegate::http::error::Status::decode(&reply.body[..]).unwrap();
    assert!(status.message.contains("metric_name"), "{}", status.message);
    let reply = metrics(&server, &export, Media::Json).await;
    reply.assert_refused_json(400, "content_rejected");
    assert!(collector.received().is_empty());
    let text = server.scrape().await;
    assert_eq!(
        refused(&text, "metric_name"),
        10.0,
        "every item of both exports"
    );
    assert_eq!(
        sample(
            &text,
            "telegate_ingest_requests_total{result=\"content_rejected\",signal=\"metrics\"}"
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn the_collector_s_partial_success_and_ours_add_up() {
    let collector = FakeCollector::start().await;
    let server = start_server_before(&collector, NAMES).await;
    collector.answer(metrics_partial_success(1, "point too old").1);
    let export = gauges("svc", &[("kotormodsync.ok", 2), ("spam.series", 3)]);
    let reply = metrics(&server, &export, Media::Protobuf).await;
    let (rejected, message) = metrics_partial(&reply);
    assert_eq!(rejected, 4);
    assert_eq!(
        message,
        "telegate refused 3 data points (metric_name 3); collector: point too old"
    );
    collector.answer(Script {
        content_type: "application/json",
        body: br#"{"partialSuccess":{"rejectedDataPoints":"2","errorMessage":"late"}}"#,
        ..Default::default()
    });
    let reply = metrics(&server, &export, Media::Json).await;
    assert_eq!(metrics_partial(&reply).0, 5);
}

#[tokio::test]
async fn ten_thousand_new_series_deliver_at_most_the_bound() {
    let collector = FakeCollector::start().await;
    let config = "\n[cardinality]\nmax_series_per_metric = 1000\nmax_series_per_session = 1000\n";
    let server = start_server_before(&collector, config).await;
    let export = gauges("svc", &[("kotormodsync.bomb", 10_000)]).encode_to_vec();
    let reply = post(&server, "/v1/metrics", PROTOBUF, false, export.clone()).await;
    let (rejected, message) = metrics_partial(&reply);
    assert_eq!(rejected, 9_000);
    assert!(message.contains("cardinality 9000"), "{message}");
    assert_eq!(
        received_metrics(&collector, 0, Media::Protobuf),
        [("kotormodsync.bomb".to_string(), 1000)]
    );
    // The same export again: the admitted series flow, the rest still do not.
    let reply = post(&server, "/v1/metrics", PROTOBUF, false, export).await;
    assert_eq!(metrics_partial(&reply).0, 9_000);
    let text = server.scrape().await;
    assert_eq!(
        sample(&text, "telegate_cardinality_dropped_total"),
        Some(18_000.0)
    );
    assert_eq!(refused(&text, "cardinality"), 18_000.0);
    let page = server.client.get(server.url("/")).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(
        page.contains("<td>kotormodsync.bomb</td><td>1000 / 1000</td><td>100 %</td>"),
        "the status page lists the metric at its bound:\n{page}"
    );
}

/// One server, every rule: each export breaks exactly one, and its
/// refusal is counted under that rule's label.
#[tokio::test]
async fn each_rule_refuses_under_its_own_reason() {
    let collector = FakeCollector::start().await;
    let config = r#"
[content]
service_names = ["svc"]
metric_names = ["ok.*"]
span_names = ["ok.*"]
log_names = ["ok.*"]
denied_attribute_keys = ["user.*"]
max_attributes = 3
max_attribute_value_bytes = 16
max_items_per_export = 5
[cardinality]
max_series_per_metric = 2
max_series_per_session = 2
"#;
    let server = start_server_before(&collector, config).await;
    let with_point_attrs = |attributes: Vec<_>| {
        let mut export = gauges("svc", &[("ok.m", 1)]);
        let m = &mut export.resource_metrics[0].scope_metrics[0].metrics[0];
        if let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Gauge(g)) = &mut m.data {
            g.data_points[0].attributes = attributes;
        }
        export
    };
    // Points without attributes: one series, so only the item cap applies.
    let one_series = |name: &str, points: usize| {
        let mut export = gauges("svc", &[(name, points)]);
        let m = &mut export.resource_metrics[0].scope_metrics[0].metrics[0];
        if let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Gauge(g)) = &mut m.data {
            g.data_points.iter_mut().for_each(|p| p.attributes.clear());
        }
        export
    };
    let metric_cases: Vec<(&str, ExportMetricsServiceRequest, i64)> = vec![
        ("service_name", gauges("evil", &[("ok.m", 1)]), 1),
        ("metric_name", gauges("svc", &[("bad.m", 2)]), 2),
        (
            "attribute_key",
            with_point_attrs(vec![text("user.id", "u")]),
            1,
        ),
        (
            "too_many_attributes",
            with_point_attrs((0..4).map(|i| text(&format!("k{i}"), "v")).collect()),
            1,
        ),
        (
            "attribute_value_too_long",
            with_point_attrs(vec![text("k", &"x".repeat(17))]),
            1,
        ),
        ("too_many_items", one_series("ok.items", 7), 2),
        ("cardinality", gauges("svc", &[("ok.series", 3)]), 1),
    ];
    for (reason, export, rejected) in metric_cases {
        let reply = metrics(&server, &export, Media::Protobuf).await;
        let (got, message) = metrics_partial(&reply);
        assert_eq!(got, rejected, "{reason}: {message}");
        assert!(message.contains(reason), "{reason}: {message}");
        assert_eq!(
            refused(&server.scrape().await, reason),
            rejected as f64,
            "{reason}"
        );
    }

    let traces = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: gauges("svc", &[]).resource_metrics[0].resource.clone(),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    name: "bad.span".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let reply = post(
        &server,
        "/v1/traces",
        PROTOBUF,
        false,
        traces.encode_to_vec(),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let p = ExportTraceServiceResponse::decode(&reply.body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(p.rejected_spans, 1);
    assert_eq!(refused(&server.scrape().await, "span_name"), 1.0);

    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: gauges("svc", &[]).resource_metrics[0].resource.clone(),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    event_name: "bad.event".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let json = serde_json::to_vec(&logs).unwrap();
    let reply = post(&server, "/v1/logs", "application/json", false, json).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedLogRecords"], 1);
    assert_eq!(refused(&server.scrape().await, "log_name"), 1.0);
}
