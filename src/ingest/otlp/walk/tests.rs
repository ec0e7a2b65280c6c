//! The walk against prost, its oracle: every case asserts that both agree
//! (accepted with the same item count, or both refused), and the cases that
//! pin a rule also assert which side of it the bytes are on, so agreement
//! cannot come from both sides accepting everything. Here whole exports
//! and the shapes the walk shortens; the wire format's rules in [`wire`].

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point, summary_data_point,
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint,
};
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use super::super::{decode, Media};
use super::*;

/// The walk's answer, asserted equal to prost's.
fn same(signal: Signal, bytes: &[u8]) -> Option<u64> {
    let walked = items(signal, bytes).ok();
    let decoded = decode(signal, Media::Protobuf, bytes)
        .ok()
        .map(|e| e.items());
    assert_eq!(walked, decoded, "{signal:?} {bytes:02x?}");
    walked
}

fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

fn key(tag: u32, wire: u8) -> Vec<u8> {
    varint(u64::from(tag) << 3 | u64::from(wire))
}

/// A length-delimited field.
fn len(tag: u32, body: &[u8]) -> Vec<u8> {
    [key(tag, LEN), varint(body.len() as u64), body.to_vec()].concat()
}

fn traces() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: vec![7; 16],
        name: "a".into(),
        events: vec![span::Event::default()],
        links: vec![span::Link {
            flags: 1,
            ..Default::default()
        }],
        status: Some(Status {
            message: "ok".into(),
            code: 1,
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span; 2],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn number_points(n: usize) -> Vec<NumberDataPoint> {
    (0..n)
        .map(|i| NumberDataPoint {
            value: Some(number_data_point::Value::AsInt(i as i64)),
            attributes: vec![KeyValue {
                key: "k".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("v".into())),
                }),
            }],
            exemplars: vec![Exemplar {
                trace_id: vec![1; 16],
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect()
}

fn metric(data: Data) -> Metric {
    Metric {
        name: "m".into(),
        data: Some(data),
        ..Default::default()
    }
}

fn metrics() -> ExportMetricsServiceRequest {
    let buckets = Buckets {
        offset: -3,
        bucket_counts: vec![1, 300, u64::MAX],
    };
    let all = vec![
        metric(Data::Gauge(Gauge {
            data_points: number_points(2),
        })),
        metric(Data::Sum(Sum {
            data_points: number_points(3),
            aggregation_temporality: 2,
            is_monotonic: true,
        })),
        metric(Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                bucket_counts: vec![1, 2, 3],
                explicit_bounds: vec![0.5, 1.5],
                sum: Some(4.0),
                ..Default::default()
            }],
            aggregation_temporality: 1,
        })),
        metric(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![
                ExponentialHistogramDataPoint {
                    positive: Some(buckets.clone()),
                    negative: Some(buckets),
                    scale: -2,
                    ..Default::default()
                };
                4
            ],
            aggregation_temporality: 1,
        })),
        metric(Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                quantile_values: vec![summary_data_point::ValueAtQuantile {
                    quantile: 0.5,
                    value: 1.0,
                }],
                ..Default::default()
            }],
        })),
        Metric {
            name: "no data".into(),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![
                ScopeMetrics {
                    metrics: all.clone(),
                    ..Default::default()
                },
                ScopeMetrics {
                    metrics: all,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
    }
}

fn logs(records: usize, body: Option<AnyValue>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    LogRecord {
                        body,
                        severity_text: "INFO".into(),
                        trace_id: vec![0xff; 16],
                        ..Default::default()
                    };
                    records
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn real_exports_count_as_decoded() {
    assert_eq!(same(Signal::Traces, &traces().encode_to_vec()), Some(2));
    assert_eq!(same(Signal::Metrics, &metrics().encode_to_vec()), Some(22));
    assert_eq!(same(Signal::Logs, &logs(3, None).encode_to_vec()), Some(3));
    assert_eq!(same(Signal::Logs, b""), Some(0));
    // Another signal's bytes: refused or counted as that signal would be.
    same(Signal::Logs, &metrics().encode_to_vec());
    same(Signal::Traces, &logs(3, None).encode_to_vec());
}

#[test]
fn every_truncation_and_every_byte_changed_agrees() {
    for (signal, bytes) in [
        (Signal::Traces, traces().encode_to_vec()),
        (Signal::Metrics, metrics().encode_to_vec()),
        (Signal::Logs, logs(2, None).encode_to_vec()),
    ] {
        let mut refused = 0;
        for end in 0..bytes.len() {
            refused += usize::from(same(signal, &bytes[..end]).is_none());
        }
        assert!(refused > bytes.len() / 2, "most truncations are refused");
        for at in 0..bytes.len() {
            for value in [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, bytes[at] ^ 0x08] {
                let mut changed = bytes.clone();
                changed[at] = value;
                same(signal, &changed);
            }
        }
    }
}

/// A metric whose data fields are `data` (tag, points), in order.
fn metric_fields(data: &[(u32, usize)]) -> Vec<u8> {
    let point = len(1, &NumberDataPoint::default().encode_to_vec());
    let mut metric = len(1, b"m");
    for &(tag, points) in data {
        metric.extend(len(tag, &point.repeat(points)));
    }
    let scope = len(2, &metric);
    len(1, &len(2, &scope))
}

#[test]
fn metric_data_is_a_oneof_merged_by_kind_last_kind_wins() {
    let count = |data: &[(u32, usize)]| same(Signal::Metrics, &metric_fields(data));
    assert_eq!(count(&[(5, 2)]), Some(2));
    assert_eq!(count(&[(5, 2), (5, 3)]), Some(5), "gauge twice: merged");
    assert_eq!(
        count(&[(5, 2), (7, 1)]),
        Some(1),
        "a sum replaces the gauge"
    );
    assert_eq!(count(&[(5, 2), (7, 1), (5, 3)]), Some(3));
    assert_eq!(count(&[(11, 4), (9, 0)]), Some(0));
    assert_eq!(count(&[(10, 1), (10, 1), (11, 2), (11, 2)]), Some(4));
}

/// `kv` as a resource attribute of a metrics export (no items).
fn resource_attribute(kv: &[u8]) -> Vec<u8> {
    len(1, &len(1, &len(1, kv)))
}

#[test]
fn string_attributes_take_the_short_way_and_everything_else_the_walk() {
    let pair = |key: &[u8], value: &[u8]| [len(1, key), len(2, &len(1, value))].concat();
    let m = Signal::Metrics;
    let count = |kv: &[u8]| same(m, &resource_attribute(kv));
    assert_eq!(count(&pair(b"service.name", b"KOTORModSync")), Some(0));
    assert_eq!(count(&pair(b"", b"")), Some(0));
    assert_eq!(count(&pair("caf\u{e9}".as_bytes(), b"v")), Some(0), "UTF-8");
    assert_eq!(count(&pair(b"k", "\u{1f600}".as_bytes())), Some(0));
    assert_eq!(count(&pair(b"k", &[0xff])), None, "not UTF-8");
    assert_eq!(count(&pair(&[b'k', 0xc3], b"v")), None, "a cut sequence");
    let long = vec![b'a'; 200];
    assert_eq!(count(&pair(&long, &long)), Some(0), "two-byte lengths");
    // The value holds more than its string, or the pair more than both.
    let extra = [
        len(1, b"k"),
        len(2, &[len(1, b"v"), vec![0x10, 0x01]].concat()),
    ]
    .concat();
    assert_eq!(count(&extra), Some(0));
    assert_eq!(
        count(&[pair(b"k", b"v"), vec![0x18, 0x01]].concat()),
        Some(0)
    );
    assert_eq!(count(&[pair(b"k", b"v"), vec![0x18]].concat()), None);
    assert_eq!(count(&[pair(b"k", b"v"), vec![0x10, 0x01]].concat()), None);
    assert_eq!(
        count(&[len(2, &len(1, b"v")), len(1, b"k")].concat()),
        Some(0)
    );
    let mut cut = pair(b"key", b"value");
    cut.pop();
    assert_eq!(count(&cut), None);
    let mut wrong_field = pair(b"k", b"v");
    wrong_field[3] = 0x1a; // field 3 (unknown) instead of 2
    assert_eq!(count(&wrong_field), Some(0));
    let mut wrong_wire = pair(b"k", b"v");
    wrong_wire[0] = 0x0b; // key as a group start: not a string
    assert_eq!(count(&wrong_wire), None);
}

#[test]
fn messages_nested_past_the_walks_own_stack_count_the_same() {
    // Spans in events' attributes' arrays: the export nests deeper than the
    // stack the walk keeps before it recurses.
    let array = |n: usize| {
        let mut value = len(1, b"x");
        for _ in 0..n {
            value = len(5, &len(1, &value));
        }
        value
    };
    for n in [0, 1, 5, 10, 30] {
        let kv = [len(1, b"k"), len(2, &array(n))].concat();
        let span = [len(9, &kv), len(11, &len(3, &kv))].concat();
        let scope = [len(2, &span), len(2, &span)].concat();
        let export = len(1, &len(2, &scope));
        assert_eq!(same(Signal::Traces, &export), Some(2), "{n}");
    }
}

mod wire;
