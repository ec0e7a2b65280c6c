//! Every way an ingest request ends without delivery, and the one place that
//! maps it to a status, a `reason` and a body in the request's media type:
//! a protobuf `google.rpc.Status` (with a `google.rpc.ErrorInfo` detail
//! carrying the reason) for protobuf requests, JSON
//! `{"error", "reason"}` otherwise, as the OTLP/HTTP spec asks.
//!
//! Statuses follow the OTLP retry contract: exporters retry 429/502/503/504
//! (honouring `Retry-After`) and drop everything else, so anything that may
//! succeed later is a 503 or 429 with `Retry-After`, never a 4xx.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use prost::Message;

use super::body::BodyError;
use super::otlp::Media;
use crate::reject::Reject;
use crate::respond::{self, Body};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Auth(Reject),
    #[error("Only POST is accepted on OTLP routes")]
    MethodNotAllowed,
    #[error("Content-Type must be application/x-protobuf or application/json")]
    UnsupportedMediaType,
    #[error("Content-Encoding must be gzip or absent")]
    UnsupportedEncoding,
    #[error("{0}")]
    Body(BodyError),
    #[error("The request has no body")]
    EmptyBody,
    #[error("The body is not an OTLP export: {0}")]
    Malformed(String),
    #[error("Too many exports in flight to the collector")]
    Busy { retry_after_secs: u64 },
    #[error("The collector is unavailable")]
    CollectorUnavailable { retry_after_secs: u64 },
    #[error("The collector is throttling exports")]
    CollectorThrottled { retry_after_secs: u64 },
    #[error("The collector rejected the export (status {status})")]
    CollectorRejected { status: u16 },
    #[error("The first request with this nonce is still being processed")]
    ReplayInFlight,
    #[error("Internal error")]
    Internal,
}

impl From<Reject> for IngestError {
    fn from(reject: Reject) -> Self {
        IngestError::Auth(reject)
    }
}

impl From<BodyError> for IngestError {
    fn from(err: BodyError) -> Self {
        IngestError::Body(err)
    }
}

impl IngestError {
    /// Every non-auth reason, so metrics can start each label at zero.
    pub const REASONS: &'static [&'static str] = &[
        "method_not_allowed",
        "unsupported_media_type",
        "unsupported_encoding",
        "body_too_large",
        "malformed_gzip",
        "body_timeout",
        "unreadable_body",
        "empty_body",
        "malformed_otlp",
        "collector_busy",
        "collector_unavailable",
        "collector_throttled",
        "collector_rejected",
        "replay_in_flight",
        "internal_error",
    ];

    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Auth(reject) => reject.reason(),
            IngestError::MethodNotAllowed => "method_not_allowed",
            IngestError::UnsupportedMediaType => "unsupported_media_type",
            IngestError::UnsupportedEncoding => "unsupported_encoding",
            IngestError::Body(BodyError::TooLarge { .. } | BodyError::InflatedTooLarge { .. }) => {
                "body_too_large"
            }
            IngestError::Body(BodyError::BadGzip) => "malformed_gzip",
            IngestError::Body(BodyError::Timeout) => "body_timeout",
            IngestError::Body(BodyError::Unreadable) => "unreadable_body",
            IngestError::EmptyBody => "empty_body",
            IngestError::Malformed(_) => "malformed_otlp",
            IngestError::Busy { .. } => "collector_busy",
            IngestError::CollectorUnavailable { .. } => "collector_unavailable",
            IngestError::CollectorThrottled { .. } => "collector_throttled",
            IngestError::CollectorRejected { status: 413 } => "body_too_large",
            IngestError::CollectorRejected { .. } => "collector_rejected",
            IngestError::ReplayInFlight => "replay_in_flight",
            IngestError::Internal => "internal_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::Auth(reject) => reject.status(),
            IngestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IngestError::UnsupportedMediaType | IngestError::UnsupportedEncoding => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngestError::Body(BodyError::TooLarge { .. } | BodyError::InflatedTooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            IngestError::Body(BodyError::Timeout) => StatusCode::REQUEST_TIMEOUT,
            IngestError::Body(_) | IngestError::EmptyBody | IngestError::Malformed(_) => {
                StatusCode::BAD_REQUEST
            }
            IngestError::CollectorRejected { status: 413 } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::CollectorRejected { .. } => StatusCode::BAD_REQUEST,
            IngestError::CollectorThrottled { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Busy { .. }
            | IngestError::CollectorUnavailable { .. }
            | IngestError::ReplayInFlight => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds for `Retry-After`, on every retryable answer.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            IngestError::Auth(Reject::RateLimited { retry_after_secs }) => Some(*retry_after_secs),
            IngestError::Auth(Reject::NoLiveKey) => Some(5),
            IngestError::Auth(Reject::TooManySessions) => Some(60),
            IngestError::Busy { retry_after_secs }
            | IngestError::CollectorUnavailable { retry_after_secs }
            | IngestError::CollectorThrottled { retry_after_secs } => Some(*retry_after_secs),
            IngestError::ReplayInFlight => Some(1),
            _ => None,
        }
    }

    /// The answer, in the request's media type (`None`: not OTLP, so JSON).
    pub fn into_response(self, media: Option<Media>) -> Response<Body> {
        let mut response = match (media, &self) {
            (Some(Media::Protobuf), _) => {
                let status = Status {
                    code: grpc_code(self.status()),
                    message: self.to_string(),
                    details: vec![Any {
                        type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                        value: ErrorInfo {
                            reason: self.reason().into(),
                            domain: "telegate".into(),
                            metadata: Default::default(),
                        }
                        .encode_to_vec(),
                    }],
                };
                respond::with_body(
                    self.status(),
                    "application/x-protobuf",
                    Bytes::from(status.encode_to_vec()),
                )
            }
            (_, IngestError::Auth(reject)) => return reject.into_response(),
            _ => respond::json_error(self.status(), &self.to_string(), self.reason()),
        };
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The gRPC code of an HTTP status, as `google.rpc.Status.code` carries it.
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 => 5,             // NOT_FOUND
        405 => 12,            // UNIMPLEMENTED
        408 => 4,             // DEADLINE_EXCEEDED
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    }
}

/// `google.rpc.Status` (google/rpc/status.proto): what OTLP/HTTP servers
/// answer a protobuf request's failure with.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.ErrorInfo` (google/rpc/error_details.proto): the machine-readable reason.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ErrorInfo {
    #[prost(string, tag = "1")]
    pub reason: String,
    #[prost(string, tag = "2")]
    pub domain: String,
    #[prost(btree_map = "string, string", tag = "3")]
    pub metadata: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(response: Response<Body>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn protobuf_requests_get_a_status_with_the_reason() {
        let response = IngestError::CollectorUnavailable {
            retry_after_secs: 7,
        }
        .into_response(Some(Media::Protobuf));
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/x-protobuf"
        );
        let status = Status::decode(body_of(response).await).unwrap();
        assert_eq!(status.code, 14);
        let info = ErrorInfo::decode(&status.details[0].value[..]).unwrap();
        assert_eq!(info.reason, "collector_unavailable");
    }

    #[tokio::test]
    async fn json_requests_get_json_and_auth_refusals_keep_their_answer() {
        let response = IngestError::Malformed("x".into()).into_response(Some(Media::Json));
        assert_eq!(response.status(), 400);
        let json: serde_json::Value = serde_json::from_slice(&body_of(response).await).unwrap();
        assert_eq!(json["reason"], "malformed_otlp");
        let limited = IngestError::Auth(Reject::RateLimited {
            retry_after_secs: 3,
        });
        let response = limited.clone().into_response(None);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let response = limited.into_response(Some(Media::Protobuf));
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn retryable_means_503_or_429_with_retry_after() {
        for err in [
            IngestError::Busy {
                retry_after_secs: 1,
            },
            IngestError::CollectorUnavailable {
                retry_after_secs: 1,
            },
            IngestError::CollectorThrottled {
                retry_after_secs: 1,
            },
            IngestError::ReplayInFlight,
        ] {
            assert!(matches!(err.status().as_u16(), 429 | 503), "{err:?}");
            assert!(err.retry_after().is_some(), "{err:?}");
            assert!(IngestError::REASONS.contains(&err.reason()));
        }
        assert_eq!(
            IngestError::Body(BodyError::InflatedTooLarge { limit: 1 }).status(),
            413
        );
        assert_eq!(IngestError::UnsupportedMediaType.status(), 415);
        assert_eq!(IngestError::CollectorRejected { status: 400 }.status(), 400);
    }
}
