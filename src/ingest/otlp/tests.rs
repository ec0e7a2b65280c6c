use super::*;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

fn attr(key: &str, value: &str) -> KeyValue {
    text_attribute(key, value)
}

fn traces() -> ExportTraceServiceRequest {
    let span = |name: &str| Span {
        trace_id: (0..16).collect(),
        span_id: (0..8).collect(),
        name: name.into(),
        attributes: vec![attr("user.email", "a@b"), attr("http.method", "POST")],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attr("service.name", "svc"), attr("session.id", "forged")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "scope".into(),
                    attributes: vec![attr("user.email", "x")],
                    ..Default::default()
                }),
                spans: vec![span("a"), span("b")],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn keys(attributes: &[KeyValue]) -> Vec<&str> {
    attributes.iter().map(|kv| kv.key.as_str()).collect()
}

#[test]
fn media_types() {
    assert_eq!(Media::of("application/x-protobuf"), Some(Media::Protobuf));
    assert_eq!(Media::of("application/json"), Some(Media::Json));
    assert_eq!(
        Media::of("Application/JSON; charset=utf-8"),
        Some(Media::Json)
    );
    assert_eq!(Media::of("application/protobuf"), None);
    assert_eq!(Media::of("text/plain"), None);
    assert_eq!(Media::of(""), None);
}

#[test]
fn protobuf_decodes_counts_and_refuses_truncation() {
    let bytes = traces().encode_to_vec();
    let export = decode(Signal::Traces, Media::Protobuf, &bytes).unwrap();
    assert_eq!(export.items(), 2);
    assert!(decode(Signal::Traces, Media::Protobuf, &bytes[..bytes.len() - 3]).is_err());
    assert!(decode(Signal::Traces, Media::Protobuf, b"\xff\xff\xff").is_err());
    let empty = decode(Signal::Logs, Media::Protobuf, b"").unwrap();
    assert_eq!(empty.items(), 0);
}

#[test]
fn json_round_trips_through_the_crate_mapping() {
    let export = Export::Traces(traces());
    let text = export.encode(Media::Json).unwrap();
    let again = decode(Signal::Traces, Media::Json, &text).unwrap();
    assert_eq!(again, export);
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("\"traceId\":\"000102030405060708090a0b0c0d0e0f\""),
        "{text}"
    );
}

#[test]
fn json_accepts_both_proto3_forms_of_64_bit_integers() {
    let as_strings = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m",
        "gauge":{"dataPoints":[{"timeUnixNano":"1700000000000000000","asInt":"7"}]}}]}]}]}"#;
    let as_numbers = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m",
        "gauge":{"dataPoints":[{"timeUnixNano":1700000000000000000,"asInt":7}]}}]}]}]}"#;
    let a = decode(Signal::Metrics, Media::Json, as_strings).unwrap();
    let b = decode(Signal::Metrics, Media::Json, as_numbers).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.items(), 1);
    let Export::Metrics(request) = a else {
        panic!()
    };
    let Some(Data::Gauge(gauge)) = &request.resource_metrics[0].scope_metrics[0].metrics[0].data
    else {
        panic!()
    };
    assert_eq!(
        gauge.data_points[0].time_unix_nano,
        1_700_000_000_000_000_000
    );
    assert_eq!(
        gauge.data_points[0].value,
        Some(number_data_point::Value::AsInt(7))
    );
    let histogram = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"h",
        "histogram":{"dataPoints":[{"count":"3","bucketCounts":["1","2"],"explicitBounds":[1.0]}]}}]}]}]}"#;
    assert_eq!(
        decode(Signal::Metrics, Media::Json, histogram)
            .unwrap()
            .items(),
        1
    );
}

#[test]
fn json_metrics_whose_oneofs_the_crate_would_drop_are_malformed() {
    let cases: &[&[u8]] = &[
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":[{"asInt":"seven"}]}}]}]}]}"#,
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":[{"asDouble":"x"}]}}]}]}]}"#,
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":"x"}}]}]}]}"#,
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","sum":{"dataPoints":[{"asInt":1}],"aggregationTemporality":"CUMULATIVE"}}]}]}]}"#,
    ];
    for case in cases {
        assert!(
            decode(Signal::Metrics, Media::Json, case).is_err(),
            "{}",
            String::from_utf8_lossy(case)
        );
    }
}

#[test]
fn json_with_wrong_types_or_shape_is_malformed() {
    let cases: &[&[u8]] = &[
        br#"{"resourceSpans":"nope"}"#,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}"#,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}"#,
        br#"[1,2]"#,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_SERVER"}]}]}]}"#,
        br#"{"resourceSpans":["#,
        b"\x0a\x00",
    ];
    for case in cases {
        assert!(
            decode(Signal::Traces, Media::Json, case).is_err(),
            "{}",
            String::from_utf8_lossy(case)
        );
    }
}

#[test]
fn enrich_sets_resource_attributes_and_drops_keys_everywhere() {
    let mut export = Export::Traces(traces());
    export.enrich(
        &[("session.id", "s-1"), ("client.version", "2.0.0.0")],
        &["user.email".to_string()],
    );
    let Export::Traces(request) = &export else {
        panic!()
    };
    let rs = &request.resource_spans[0];
    assert_eq!(
        keys(&rs.resource.as_ref().unwrap().attributes),
        ["service.name", "session.id", "client.version"]
    );
    assert_eq!(
        rs.resource.as_ref().unwrap().attributes[1],
        attr("session.id", "s-1"),
        "the verified session replaces the client's claim"
    );
    assert!(keys(&rs.scope_spans[0].scope.as_ref().unwrap().attributes).is_empty());
    for span in &rs.scope_spans[0].spans {
        assert_eq!(keys(&span.attributes), ["http.method"]);
    }
    let mut kept_private = Export::Traces(traces());
    kept_private.enrich(&[("session.id", "s-1")], &["session.id".to_string()]);
    let Export::Traces(request) = &kept_private else {
        panic!()
    };
    assert_eq!(
        keys(
            &request.resource_spans[0]
                .resource
                .as_ref()
                .unwrap()
                .attributes
        ),
        ["service.name"]
    );
}

#[test]
fn enrich_adds_a_resource_when_there_is_none_and_covers_metrics_and_logs() {
    let mut metrics = Export::Metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "m".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![attr("secret", "x"), attr("ok", "y")],
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    metrics.enrich(&[("session.id", "s")], &["secret".to_string()]);
    let Export::Metrics(request) = &metrics else {
        panic!()
    };
    let rm = &request.resource_metrics[0];
    assert_eq!(
        keys(&rm.resource.as_ref().unwrap().attributes),
        ["session.id"]
    );
    let Some(Data::Gauge(g)) = &rm.scope_metrics[0].metrics[0].data else {
        panic!()
    };
    assert_eq!(keys(&g.data_points[0].attributes), ["ok"]);

    let mut logs = Export::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    attributes: vec![attr("secret", "x")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    assert_eq!(logs.items(), 1);
    logs.enrich(&[], &["secret".to_string()]);
    let Export::Logs(request) = &logs else {
        panic!()
    };
    assert!(request.resource_logs[0].scope_logs[0].log_records[0]
        .attributes
        .is_empty());
    let bytes = logs.encode(Media::Protobuf).unwrap();
    assert_eq!(decode(Signal::Logs, Media::Protobuf, &bytes).unwrap(), logs);
}
