//! OTLP payloads (opentelemetry-proto's prost messages and serde JSON):
//! which signal and media type a request is, decoding (400 `malformed_otlp`),
//! counting items, enrichment and re-encoding in the same media type.
//!
//! The crate's serde support (0.28, `with-serde`) follows the OTLP/JSON
//! mapping for ids (hex) and `intValue` (string or number), but takes only
//! one of the two forms proto3 JSON allows for other 64-bit integers:
//! `*TimeUnixNano` only as strings, `asInt`, `count`, `zeroCount` and
//! `bucketCounts` only as numbers. Worse, its flattened oneofs
//! (`Metric.data`, `NumberDataPoint.value`) swallow a mismatch: the metric's
//! data or the point's value silently becomes `None`. So [`decode`] parses
//! JSON into a value tree, rewrites those fields into the form the crate
//! takes, decodes, and then checks that every metric that had data and every
//! number point that had a value still has one (else 400). Enum names
//! instead of numbers (which OTLP/JSON forbids) are refused.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::Value;

pub use crate::protocol::signal::{Media, Signal};

pub mod walk;

/// A decoded export request.
#[derive(Debug, Clone, PartialEq)]
pub enum Export {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
}

/// Why a payload is not an export of its signal (a short, loggable detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// Decodes `bytes` (already inflated) as `media` for `signal`.
pub fn decode(signal: Signal, media: Media, bytes: &[u8]) -> Result<Export, Malformed> {
    match (signal, media) {
        (Signal::Traces, Media::Protobuf) => ExportTraceServiceRequest::decode(bytes)
            .map(Export::Traces)
            .map_err(proto_error),
        (Signal::Metrics, Media::Protobuf) => ExportMetricsServiceRequest::decode(bytes)
            .map(Export::Metrics)
            .map_err(proto_error),
        (Signal::Logs, Media::Protobuf) => ExportLogsServiceRequest::decode(bytes)
            .map(Export::Logs)
            .map_err(proto_error),
        (Signal::Traces, Media::Json) => json(bytes).map(Export::Traces),
        (Signal::Metrics, Media::Json) => {
            let value = json_tree(bytes)?;
            let export: ExportMetricsServiceRequest = from_tree(&value)?;
            if metric_shape_of_tree(&value) != metric_shape(&export) {
                return Err(Malformed(
                    "not an OTLP/JSON export: a metric's data or a data point's value has the wrong type"
                        .into(),
                ));
            }
            Ok(Export::Metrics(export))
        }
        (Signal::Logs, Media::Json) => json(bytes).map(Export::Logs),
    }
}

fn proto_error(err: prost::DecodeError) -> Malformed {
    Malformed(format!(
        "not a protobuf export: {}",
        short(&err.to_string())
    ))
}

fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Malformed> {
    from_tree(&json_tree(bytes)?)
}

/// The body as a JSON object tree, 64-bit integers normalized.
fn json_tree(bytes: &[u8]) -> Result<Value, Malformed> {
    let mut value: Value = serde_json::from_slice(bytes)
        .map_err(|err| Malformed(format!("not JSON: {}", short(&err.to_string()))))?;
    if !value.is_object() {
        return Err(Malformed("not a JSON object".into()));
    }
    normalize(&mut value);
    Ok(value)
}

fn from_tree<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, Malformed> {
    T::deserialize(value).map_err(|err| {
        Malformed(format!(
            "not an OTLP/JSON export: {}",
            short(&err.to_string())
        ))
    })
}

/// (metrics with data, data points, number points with a value).
type Shape = (usize, usize, usize);

const METRIC_DATA_KEYS: [&str; 5] = [
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];

fn metric_shape_of_tree(value: &Value) -> Shape {
    fn list<'v>(v: &'v Value, key: &str) -> &'v [Value] {
        v.get(key)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
    let mut shape = (0, 0, 0);
    for rm in list(value, "resourceMetrics") {
        for sm in list(rm, "scopeMetrics") {
            for metric in list(sm, "metrics") {
                let Some((key, data)) = METRIC_DATA_KEYS
                    .iter()
                    .find_map(|key| metric.get(*key).map(|data| (*key, data)))
                else {
                    continue;
                };
                shape.0 += 1;
                let points = list(data, "dataPoints");
                shape.1 += points.len();
                if key == "gauge" || key == "sum" {
                    shape.2 += points
                        .iter()
                        .filter(|p| p.get("asInt").is_some() || p.get("asDouble").is_some())
                        .count();
                }
            }
        }
    }
    shape
}

fn metric_shape(request: &ExportMetricsServiceRequest) -> Shape {
    let mut shape = (0, 0, 0);
    for metric in request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        let numbers = match &metric.data {
            None => continue,
            Some(Data::Gauge(g)) => &g.data_points,
            Some(Data::Sum(s)) => &s.data_points,
            Some(_) => {
                shape.0 += 1;
                shape.1 += Export::points(metric.data.as_ref());
                continue;
            }
        };
        shape.0 += 1;
        shape.1 += numbers.len();
        shape.2 += numbers.iter().filter(|p| p.value.is_some()).count();
    }
    shape
}

/// Rewrites the 64-bit integer fields into the form the crate's serde takes
/// (see the module doc). Returns whether anything changed.
fn normalize(value: &mut Value) -> bool {
    let mut changed = false;
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                changed |= match key.as_str() {
                    "startTimeUnixNano"
                    | "timeUnixNano"
                    | "endTimeUnixNano"
                    | "observedTimeUnixNano" => number_to_string(inner),
                    "asInt" | "count" | "zeroCount" => string_to_number(inner),
                    "bucketCounts" => match inner {
                        Value::Array(items) => items
                            .iter_mut()
                            .fold(false, |acc, item| string_to_number(item) | acc),
                        _ => false,
                    },
                    _ => normalize(inner),
                };
            }
        }
        Value::Array(items) => {
            for item in items {
                changed |= normalize(item);
            }
        }
        _ => {}
    }
    changed
}

fn number_to_string(value: &mut Value) -> bool {
    match value {
        Value::Number(n) if n.is_u64() => {
            *value = Value::String(n.to_string());
            true
        }
        _ => false,
    }
}

fn string_to_number(value: &mut Value) -> bool {
    let parsed = match value {
        Value::String(text) => text
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<u64>().map(Value::from))
            .ok(),
        _ => None,
    };
    match parsed {
        Some(number) => {
            *value = number;
            true
        }
        None => false,
    }
}

fn short(text: &str) -> String {
    text.chars().take(160).collect()
}

impl Export {
    /// Spans, metric data points or log records.
    pub fn items(&self) -> u64 {
        let n: usize = match self {
            Export::Traces(request) => request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum(),
            Export::Metrics(request) => request
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| Export::points(m.data.as_ref()))
                .sum(),
            Export::Logs(request) => request
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len())
                .sum(),
        };
        n as u64
    }

    fn points(data: Option<&Data>) -> usize {
        match data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        }
    }

    /// Removes every attribute whose key is in `drop` (resource, scope and
    /// item attributes, span events and links, exemplars), then sets `add`
    /// on every resource, replacing a value the client sent. A key in both
    /// lists is dropped: the operator's privacy setting wins.
    pub fn enrich(&mut self, add: &[(&str, &str)], drop: &[String]) {
        let keep = |kv: &KeyValue| !drop.contains(&kv.key);
        let add: Vec<(&str, &str)> = add
            .iter()
            .copied()
            .filter(|(key, _)| !drop.iter().any(|d| d == key))
            .collect();
        let resource = |resource: &mut Option<Resource>| {
            let resource = resource.get_or_insert_with(Resource::default);
            resource.attributes.retain(keep);
            for (key, value) in &add {
                resource.attributes.retain(|kv| kv.key != *key);
                resource.attributes.push(text_attribute(key, value));
            }
        };
        match self {
            Export::Traces(request) => {
                for rs in &mut request.resource_spans {
                    resource(&mut rs.resource);
                    for ss in &mut rs.scope_spans {
                        if let Some(scope) = &mut ss.scope {
                            scope.attributes.retain(keep);
                        }
                        for span in &mut ss.spans {
                            span.attributes.retain(keep);
                            for event in &mut span.events {
                                event.attributes.retain(keep);
                            }
                            for link in &mut span.links {
                                link.attributes.retain(keep);
                            }
                        }
                    }
                }
            }
            Export::Metrics(request) => {
                for rm in &mut request.resource_metrics {
                    resource(&mut rm.resource);
                    for sm in &mut rm.scope_metrics {
                        if let Some(scope) = &mut sm.scope {
                            scope.attributes.retain(keep);
                        }
                        for metric in &mut sm.metrics {
                            drop_in_points(metric.data.as_mut(), &keep);
                        }
                    }
                }
            }
            Export::Logs(request) => {
                for rl in &mut request.resource_logs {
                    resource(&mut rl.resource);
                    for sl in &mut rl.scope_logs {
                        if let Some(scope) = &mut sl.scope {
                            scope.attributes.retain(keep);
                        }
                        for record in &mut sl.log_records {
                            record.attributes.retain(keep);
                        }
                    }
                }
            }
        }
    }

    /// Encodes in `media` (JSON: the crate's OTLP/JSON mapping).
    pub fn encode(&self, media: Media) -> Result<Vec<u8>, Malformed> {
        match media {
            Media::Protobuf => Ok(match self {
                Export::Traces(r) => r.encode_to_vec(),
                Export::Metrics(r) => r.encode_to_vec(),
                Export::Logs(r) => r.encode_to_vec(),
            }),
            Media::Json => match self {
                Export::Traces(r) => serde_json::to_vec(r),
                Export::Metrics(r) => serde_json::to_vec(r),
                Export::Logs(r) => serde_json::to_vec(r),
            }
            .map_err(|err| Malformed(format!("cannot encode JSON: {err}"))),
        }
    }
}

fn drop_in_points(data: Option<&mut Data>, keep: &impl Fn(&KeyValue) -> bool) {
    macro_rules! points {
        ($points:expr) => {
            for point in $points {
                point.attributes.retain(keep);
                point_exemplars!(point);
            }
        };
    }
    macro_rules! point_exemplars {
        ($point:expr) => {
            for exemplar in &mut $point.exemplars {
                exemplar.filtered_attributes.retain(keep);
            }
        };
    }
    match data {
        Some(Data::Gauge(g)) => points!(&mut g.data_points),
        Some(Data::Sum(s)) => points!(&mut s.data_points),
        Some(Data::Histogram(h)) => points!(&mut h.data_points),
        Some(Data::ExponentialHistogram(h)) => points!(&mut h.data_points),
        Some(Data::Summary(s)) => {
            for point in &mut s.data_points {
                point.attributes.retain(keep);
            }
        }
        None => {}
    }
}

fn text_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
    }
}

#[cfg(test)]
mod tests;
