//! Writes OTLP metric exports (protobuf) of about the given sizes, for
//! scripts/bench-ingest: `otlp_payload DIR 1024 65536` writes
//! `DIR/metrics-1024.pb`, `DIR/metrics-65536.pb`. Each is a KOTORModSync-like
//! export: one resource, cumulative sums with a few attributes per point.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

fn export(metrics: usize) -> ExportMetricsServiceRequest {
    let metric = |i: usize| Metric {
        name: format!("kotormodsync.bench.metric_{i}"),
        unit: "1".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                attributes: vec![text("mod.name", &format!("mod-{i}")), text("result", "ok")],
                time_unix_nano: 1_800_000_000_000_000_000,
                value: Some(number_data_point::Value::AsInt(i as i64)),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", "KOTORModSync"),
                    text("service.version", "2.0.0.0"),
                    text("session.id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
                    text("user.id", "7d1f0c3e-9b2a-4d5f-8e6c-1b0a9f8e7d6c"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: (0..metrics).map(metric).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: otlp_payload DIR SIZE...");
    for size in args {
        let target: usize = size.parse().expect("SIZE is a byte count");
        let mut n = 1;
        while export(n).encoded_len() < target && n < 100_000 {
            n += 1;
        }
        let bytes = export(n).encode_to_vec();
        let path = format!("{dir}/metrics-{target}.pb");
        std::fs::write(&path, &bytes).expect("write the payload");
        println!("{path} {} bytes {n} points", bytes.len());
    }
}
