//! The walk against prost, its oracle: every case asserts that both agree
//! (accepted with the same item count, or both refused), and the cases that
//! pin a rule also assert which side of it the bytes are on, so agreement
//! cannot come from both sides accepting everything.

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

#[test]
fn varints_keys_and_wire_types() {
    // A log record's severity_number (field 2, varint) as given.
    let logs_with = |record_bytes: &[u8]| len(1, &len(2, &len(2, record_bytes)));
    let sev = |value: &[u8]| logs_with(&[key(2, VARINT), value.to_vec()].concat());
    let ten = |last: u8| [vec![0xff; 9], vec![last]].concat();
    assert_eq!(same(Signal::Logs, &sev(&ten(0x01))), Some(1));
    assert_eq!(same(Signal::Logs, &sev(&ten(0x02))), None, "overflows u64");
    assert_eq!(
        same(Signal::Logs, &sev(&[vec![0x80; 10], vec![0]].concat())),
        None
    );
    assert_eq!(
        same(Signal::Logs, &sev(&[0x80, 0x80, 0x00])),
        Some(1),
        "padded"
    );
    assert_eq!(same(Signal::Logs, &sev(&[0x80])), None, "cut");
    // Keys: padded, above u32::MAX, tag 0, wire types 6 and 7.
    assert_eq!(same(Signal::Logs, &[0x8a, 0x80, 0x00, 0x00]), Some(0));
    assert_eq!(
        same(Signal::Logs, &[0x80, 0x80, 0x80, 0x80, 0x10, 0x00]),
        None
    );
    assert_eq!(same(Signal::Logs, &[0x00, 0x00]), None);
    assert_eq!(same(Signal::Logs, &[0x0e, 0x00]), None);
    assert_eq!(same(Signal::Logs, &[0x0f, 0x00]), None);
    // A known field with the wrong wire type: severity_text (3, string) as
    // a varint, time (1, fixed64) as fixed32, the body (5) as fixed64.
    assert_eq!(
        same(
            Signal::Logs,
            &logs_with(&[key(3, VARINT), vec![1]].concat())
        ),
        None
    );
    assert_eq!(
        same(
            Signal::Logs,
            &logs_with(&[key(1, FIXED32), vec![0; 4]].concat())
        ),
        None
    );
    assert_eq!(
        same(
            Signal::Logs,
            &logs_with(&[key(1, FIXED64), vec![0; 8]].concat())
        ),
        Some(1)
    );
    assert_eq!(
        same(
            Signal::Logs,
            &logs_with(&[key(5, FIXED64), vec![0; 8]].concat())
        ),
        None
    );
    assert_eq!(
        same(
            Signal::Logs,
            &logs_with(&[key(1, FIXED64), vec![0; 7]].concat())
        ),
        None
    );
}

#[test]
fn strings_are_utf8_bytes_are_not() {
    let logs_with = |record_bytes: &[u8]| len(1, &len(2, &len(2, record_bytes)));
    assert_eq!(
        same(Signal::Logs, &logs_with(&len(3, "é".as_bytes()))),
        Some(1)
    );
    assert_eq!(same(Signal::Logs, &logs_with(&len(3, &[0xc3]))), None);
    assert_eq!(same(Signal::Logs, &logs_with(&len(9, &[0xc3]))), Some(1));
    let kv = len(1, &[0xff, 0xfe]);
    assert_eq!(same(Signal::Logs, &logs_with(&len(6, &kv))), None);
}

#[test]
fn lengths_past_the_end_or_the_parent_are_refused() {
    let inner = len(2, &len(2, &[]));
    assert_eq!(same(Signal::Logs, &len(1, &inner)), Some(1));
    let mut long = len(1, &inner);
    long[1] += 1;
    assert_eq!(same(Signal::Logs, &long), None);
    // The scope's length runs past its resource's end (bytes follow).
    let mut crossing = [len(1, &inner), len(1, &inner)].concat();
    crossing[3] += 1;
    assert_eq!(same(Signal::Logs, &crossing), None);
    let huge = [key(1, LEN), vec![0xff; 9], vec![0x01]].concat();
    assert_eq!(same(Signal::Logs, &huge), None);
}

#[test]
fn unknown_fields_are_skipped_as_prost_does() {
    let logs_with = |record_bytes: &[u8]| len(1, &len(2, &len(2, record_bytes)));
    let cases: &[(&[u8], Option<u64>)] = &[
        (&[0xc8, 0x01, 0x05], Some(1)),                   // 25 varint
        (&[0xc9, 0x01, 0, 0, 0, 0, 0, 0, 0, 0], Some(1)), // 25 fixed64
        (&[0xcd, 0x01, 0, 0, 0, 0], Some(1)),             // 25 fixed32
        (&[0xcd, 0x01, 0, 0, 0], None),
        (&[0xca, 0x01, 0x02, 0xff, 0xff], Some(1)), // 25 bytes, not UTF-8
        (&[0xca, 0x01, 0x03, 0xff, 0xff], None),
        (&[0xcb, 0x01, 0xcc, 0x01], Some(1)), // 25 group, empty
        (&[0xcb, 0x01, 0x08, 0x01, 0x1b, 0x1c, 0xcc, 0x01], Some(1)), // nested group
        (&[0xcb, 0x01, 0xd4, 0x01], None),    // ends group 26
        (&[0xcb, 0x01, 0x08, 0x01], None),    // never ends
        (&[0xcc, 0x01], None),                // a lone end
        (&[0xcb, 0x01, 0x0e, 0xcc, 0x01], None), // wire type 6 inside
    ];
    for (field, expected) in cases {
        assert_eq!(
            same(Signal::Logs, &logs_with(field)),
            *expected,
            "{field:02x?}"
        );
        // The same field at the top level, where no record counts.
        assert_eq!(
            same(Signal::Logs, field),
            expected.map(|_| 0),
            "{field:02x?}"
        );
    }
}

#[test]
fn repeated_numbers_packed_or_not() {
    // A histogram point's bucket_counts (6, fixed64) and a buckets'
    // bucket_counts (2, uint64).
    let histogram = |point: &[u8]| {
        let metric = len(9, &len(1, point));
        len(1, &len(2, &len(2, &metric)))
    };
    let exponential = |buckets: &[u8]| {
        let metric = len(10, &len(1, &len(8, buckets)));
        len(1, &len(2, &len(2, &metric)))
    };
    let m = Signal::Metrics;
    assert_eq!(same(m, &histogram(&len(6, &[0; 16]))), Some(1));
    assert_eq!(same(m, &histogram(&len(6, &[0; 12]))), None);
    assert_eq!(same(m, &histogram(&len(7, &[]))), Some(1));
    assert_eq!(
        same(m, &histogram(&[key(6, FIXED64), vec![0; 8]].concat())),
        Some(1)
    );
    assert_eq!(
        same(m, &histogram(&[key(6, VARINT), vec![0]].concat())),
        None
    );
    assert_eq!(same(m, &exponential(&len(2, &[0x01, 0xff, 0x01]))), Some(1));
    assert_eq!(same(m, &exponential(&len(2, &[0x01, 0xff]))), None);
    assert_eq!(
        same(m, &exponential(&[key(2, VARINT), vec![0x7f]].concat())),
        Some(1)
    );
    assert_eq!(
        same(m, &exponential(&[key(2, FIXED64), vec![0; 8]].concat())),
        None
    );
}

/// A log record whose body is `n` arrays nested, innermost `innermost`.
fn nested(n: usize, innermost: &[u8]) -> Vec<u8> {
    let mut value = innermost.to_vec();
    for _ in 0..n {
        value = len(5, &len(1, &value));
    }
    len(1, &len(2, &len(2, &len(5, &value))))
}

#[test]
fn the_recursion_limit_is_prosts() {
    // The body is at depth 96, each array level two less: 48 levels put
    // the innermost value at depth 0, where only a known scalar may be.
    let string = len(1, b"x");
    assert_eq!(same(Signal::Logs, &nested(48, &string)), Some(1));
    assert_eq!(same(Signal::Logs, &nested(49, &string)), None);
    assert_eq!(same(Signal::Logs, &nested(48, &len(6, &[]))), None);
    assert_eq!(same(Signal::Logs, &nested(48, &[0xc8, 0x01, 0x00])), None);
    // At depth 2 a group's fields are at depth 1 and a nested group's at
    // depth 0 (skipping a field there is refused, ending the group is not).
    let at_two = |field: &[u8]| same(Signal::Logs, &nested(47, field));
    assert_eq!(at_two(&[0xcb, 0x01, 0xcc, 0x01]), Some(1));
    assert_eq!(at_two(&[0xcb, 0x01, 0x08, 0x01, 0xcc, 0x01]), Some(1));
    assert_eq!(at_two(&[0xcb, 0x01, 0x1b, 0x1c, 0xcc, 0x01]), Some(1));
    assert_eq!(
        at_two(&[0xcb, 0x01, 0x1b, 0x08, 0x01, 0x1c, 0xcc, 0x01]),
        None
    );
    assert_eq!(
        same(Signal::Logs, &nested(48, &[0xcb, 0x01, 0xcc, 0x01])),
        None
    );
    let deep = AnyValue {
        value: Some(any_value::Value::StringValue("x".into())),
    };
    assert_eq!(
        same(Signal::Logs, &logs(1, Some(deep)).encode_to_vec()),
        Some(1)
    );
}
