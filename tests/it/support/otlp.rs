//! OTLP payloads (a one-counter metrics export, gauges with one series per
//! point, string attributes, gzip)
//! and the wall clock that requests to the real binaries are signed with.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// One cumulative counter with a unique name, from a resource tagged with
/// this run's id.
pub fn export_request(metric_name: &str, run: &str) -> ExportMetricsServiceRequest {
    let point = NumberDataPoint {
        time_unix_nano: unix_now() as u64 * 1_000_000_000,
        value: Some(number_data_point::Value::AsInt(1)),
        ..Default::default()
    };
    let metric = Metric {
        name: metric_name.into(),
        description: "telegate e2e probe".into(),
        unit: "1".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![point],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", "telegate-e2e"),
                    text("e2e.run_id", run),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "telegate-e2e".into(),
                    ..Default::default()
                }),
                metrics: vec![metric],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A string attribute.
pub fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

/// `data` gzipped as a client sends it (the crate's own encoder).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    telegate::ingest::body::gzip(data)
}

/// `mib` MiB of zeros, gzipped at the best ratio (about 1 KiB per MiB): a
/// gzip bomb when `mib` is over the inflated-body cap.
pub fn gzip_zeros(mib: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..mib {
        encoder.write_all(&zeros).expect("gzip into memory");
    }
    encoder.finish().expect("gzip into memory")
}

/// One gauge per (name, points): each point carries `series = i`, so every
/// point is its own series; the resource says `service.name = service`.
pub fn gauges(service: &str, metrics: &[(&str, usize)]) -> ExportMetricsServiceRequest {
    let metrics = metrics
        .iter()
        .map(|(name, points)| Metric {
            name: name.to_string(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: (0..*points)
                    .map(|i| NumberDataPoint {
                        time_unix_nano: unix_now() as u64 * 1_000_000_000,
                        attributes: vec![text("series", &i.to_string())],
                        value: Some(number_data_point::Value::AsInt(i as i64)),
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![text("service.name", service)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Data points per metric name in a metrics export.
pub fn points_by_name(export: &ExportMetricsServiceRequest) -> Vec<(String, usize)> {
    export
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| {
            let n = match &m.data {
                Some(metric::Data::Gauge(g)) => g.data_points.len(),
                Some(metric::Data::Sum(s)) => s.data_points.len(),
                _ => 0,
            };
            (m.name.clone(), n)
        })
        .collect()
}
