//! OTLP partial success: the 200 answer that tells the client how many
//! items telegate refused (`rejected_data_points` / `rejected_spans` /
//! `rejected_log_records`) and why (`error_message`), in the request's
//! media type (protobuf `Export*ServiceResponse`, or its OTLP/JSON form
//! with the count as a number). When the collector answered with a partial
//! success of its own, its count is added and its message joined after
//! ours; an answer telegate cannot read keeps ours alone (logged).

use bytes::Bytes;
use http::HeaderValue;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::Value;

use super::content::Refusals;
use super::forward::Accepted;
use super::forward_grpc::FRAMED;
use super::otlp::{Media, Signal};
use crate::protocol::grpc::single_message;

/// Longest `error_message` passed on (ours plus the collector's).
const MAX_MESSAGE_CHARS: usize = 1024;

/// The answer for an export telegate refused items of; `collector` is the
/// collector's answer, `None` when nothing was left to forward.
pub fn answer(
    signal: Signal,
    media: Media,
    refused: &Refusals,
    collector: Option<&Accepted>,
) -> Accepted {
    let mut rejected = refused.total() as i64;
    let mut message = refused.message(signal);
    if let Some(theirs) = collector {
        match read(signal, media, theirs) {
            Ok((count, text)) => {
                rejected = rejected.saturating_add(count.max(0));
                if !text.is_empty() {
                    message.push_str("; collector: ");
                    message.push_str(&text);
                }
            }
            Err(err) => tracing::warn!(
                signal = signal.as_str(),
                error = %err,
                "cannot read the collector's answer; the partial success carries telegate's refusals only"
            ),
        }
    }
    let message: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    encode(signal, media, rejected, message)
}

/// The rejected count and message of an answer (0 and "" when it has none).
pub fn read(signal: Signal, request: Media, answer: &Accepted) -> Result<(i64, String), String> {
    if answer.body.is_empty() {
        return Ok((0, String::new()));
    }
    let (body, media) = match &answer.content_type {
        // A gRPC collector's answer, still in its framing.
        Some(framed) if framed == FRAMED => (
            single_message(&answer.body).ok_or("not one uncompressed gRPC message")?,
            Media::Protobuf,
        ),
        content_type => (
            &answer.body[..],
            content_type
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .and_then(Media::of)
                .unwrap_or(request),
        ),
    };
    let proto = |e: prost::DecodeError| e.to_string();
    match media {
        Media::Protobuf => Ok(match signal {
            Signal::Metrics => ExportMetricsServiceResponse::decode(body)
                .map_err(proto)?
                .partial_success
                .map(|p| (p.rejected_data_points, p.error_message)),
            Signal::Traces => ExportTraceServiceResponse::decode(body)
                .map_err(proto)?
                .partial_success
                .map(|p| (p.rejected_spans, p.error_message)),
            Signal::Logs => ExportLogsServiceResponse::decode(body)
                .map_err(proto)?
                .partial_success
                .map(|p| (p.rejected_log_records, p.error_message)),
        }
        .unwrap_or_default()),
        Media::Json => {
            let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            let Some(partial) = value.get("partialSuccess") else {
                return Ok((0, String::new()));
            };
            // proto3 JSON: an int64 is a string or a number.
            let count = match partial.get(count_field(signal)) {
                None | Some(Value::Null) => 0,
                Some(Value::Number(n)) => n.as_i64().ok_or("count is not an integer")?,
                Some(Value::String(s)) => s.parse().map_err(|_| "count is not an integer")?,
                Some(_) => return Err("count is not an integer".into()),
            };
            let text = partial
                .get("errorMessage")
                .and_then(Value::as_str)
                .unwrap_or("");
            Ok((count, text.to_string()))
        }
    }
}

fn count_field(signal: Signal) -> &'static str {
    match signal {
        Signal::Metrics => "rejectedDataPoints",
        Signal::Traces => "rejectedSpans",
        Signal::Logs => "rejectedLogRecords",
    }
}

fn encode(signal: Signal, media: Media, rejected: i64, message: String) -> Accepted {
    let (content_type, body) = match media {
        Media::Protobuf => (
            "application/x-protobuf",
            match signal {
                Signal::Metrics => ExportMetricsServiceResponse {
                    partial_success: Some(ExportMetricsPartialSuccess {
                        rejected_data_points: rejected,
                        error_message: message,
                    }),
                }
                .encode_to_vec(),
                Signal::Traces => ExportTraceServiceResponse {
                    partial_success: Some(ExportTracePartialSuccess {
                        rejected_spans: rejected,
                        error_message: message,
                    }),
                }
                .encode_to_vec(),
                Signal::Logs => ExportLogsServiceResponse {
                    partial_success: Some(ExportLogsPartialSuccess {
                        rejected_log_records: rejected,
                        error_message: message,
                    }),
                }
                .encode_to_vec(),
            },
        ),
        Media::Json => {
            let mut partial = serde_json::Map::new();
            partial.insert(count_field(signal).into(), Value::from(rejected));
            partial.insert("errorMessage".into(), Value::from(message));
            let mut root = serde_json::Map::new();
            root.insert("partialSuccess".into(), Value::Object(partial));
            (
                "application/json",
                Value::Object(root).to_string().into_bytes(),
            )
        }
    };
    Accepted {
        content_type: Some(HeaderValue::from_static(content_type)),
        body: Bytes::from(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::content::Rule;

    fn refused() -> Refusals {
        let mut r = Refusals::default();
        r.add(Rule::MetricName, 2);
        r.add(Rule::Cardinality, 1);
        r
    }

    fn collector(media: Media, body: &[u8]) -> Accepted {
        let ct = match media {
            Media::Protobuf => "application/x-protobuf",
            Media::Json => "application/json",
        };
        Accepted {
            content_type: Some(HeaderValue::from_static(ct)),
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn ours_alone_in_both_media() {
        let a = answer(Signal::Metrics, Media::Protobuf, &refused(), None);
        let p = ExportMetricsServiceResponse::decode(&a.body[..])
            .unwrap()
            .partial_success
            .unwrap();
        assert_eq!(p.rejected_data_points, 3);
        assert_eq!(
            p.error_message,
            "telegate refused 3 data points (metric_name 2, cardinality 1)"
        );
        let a = answer(Signal::Logs, Media::Json, &refused(), None);
        assert_eq!(a.content_type.unwrap(), "application/json");
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["partialSuccess"]["rejectedLogRecords"], 3);
    }

    #[test]
    fn the_collector_s_partial_success_adds_up() {
        let theirs = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 4,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        let a = answer(
            Signal::Traces,
            Media::Protobuf,
            &refused(),
            Some(&collector(Media::Protobuf, &theirs)),
        );
        let p = ExportTraceServiceResponse::decode(&a.body[..])
            .unwrap()
            .partial_success
            .unwrap();
        assert_eq!(p.rejected_spans, 7);
        assert!(
            p.error_message.ends_with("; collector: too old"),
            "{}",
            p.error_message
        );
        let framed = Accepted {
            content_type: Some(FRAMED),
            body: crate::protocol::grpc::frame(&theirs).into(),
        };
        let a = answer(Signal::Traces, Media::Protobuf, &refused(), Some(&framed));
        let p = ExportTraceServiceResponse::decode(&a.body[..])
            .unwrap()
            .partial_success
            .unwrap();
        assert_eq!(p.rejected_spans, 7, "a gRPC collector's framed answer");
        for json in [
            r#"{"partialSuccess":{"rejectedDataPoints":"5","errorMessage":"x"}}"#,
            r#"{"partialSuccess":{"rejectedDataPoints":5}}"#,
        ] {
            let a = answer(
                Signal::Metrics,
                Media::Json,
                &refused(),
                Some(&collector(Media::Json, json.as_bytes())),
            );
            let v: Value = serde_json::from_slice(&a.body).unwrap();
            assert_eq!(v["partialSuccess"]["rejectedDataPoints"], 8, "{json}");
        }
        // An empty or unreadable answer keeps ours.
        for body in [&b""[..], b"\xff\xff"] {
            let a = answer(
                Signal::Metrics,
                Media::Protobuf,
                &refused(),
                Some(&collector(Media::Protobuf, body)),
            );
            let p = ExportMetricsServiceResponse::decode(&a.body[..]).unwrap();
            assert_eq!(p.partial_success.unwrap().rejected_data_points, 3);
        }
    }
}
