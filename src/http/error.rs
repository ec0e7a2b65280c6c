//! The one error renderer. A refusal knows its status, `reason`, human
//! sentence and `Retry-After` ([`Problem`]); the admission stages'
//! [`crate::protocol::reject::Reject`] is one, and the ingest and session API errors wrap it. [`render`] turns
//! any of them into the answer, in the request's media type: a protobuf
//! `google.rpc.Status` (with a `google.rpc.ErrorInfo` detail carrying the
//! reason, and a `google.rpc.RetryInfo` when retryable) for an OTLP protobuf request, as the OTLP/HTTP spec asks, JSON
//! `{"error", "reason"}` otherwise. `Retry-After` is set here and nowhere
//! else, from [`Problem::retry_after`].
//!
//! The human sentences keep the original service's wording ("Missing
//! authentication headers", "Invalid signature", "Request timestamp too old
//! or in future") because operators grep for them; `reason` is the stable code.

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use prost::Message;

use super::respond::{self, Body};
use crate::protocol::abuse::X_QUOTA_SCOPE;
pub use crate::protocol::reject::Problem;
#[cfg(test)]
use crate::protocol::reject::Reject;
use crate::protocol::signal::Media;

/// The format the client reads errors in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// `google.rpc.Status`, for OTLP/HTTP protobuf requests.
    Protobuf,
}

impl Format {
    /// Protobuf for an OTLP protobuf request, JSON for everything else.
    pub fn of(media: Option<Media>) -> Format {
        match media {
            Some(Media::Protobuf) => Format::Protobuf,
            _ => Format::Json,
        }
    }
}

/// The answer to a refusal; see the module doc.
pub fn render(problem: &dyn Problem, format: Format) -> Response<Body> {
    let status = problem.status();
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
        Cow::Borrowed("Internal error")
    } else {
        problem.message()
    };
    let mut response = match format {
        Format::Protobuf => {
            let mut rpc = Status {
                code: grpc_code(status),
                message: message.into_owned(),
                details: vec![Any {
                    type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                    value: ErrorInfo {
                        reason: problem.reason().into(),
                        domain: "telegate".into(),
                        metadata: problem
                            .quota_scope()
                            .map(|scope| ("scope".to_string(), scope.to_string()))
                            .into_iter()
                            .collect(),
                    }
                    .encode_to_vec(),
                }],
            };
            // OTLP/gRPC: RESOURCE_EXHAUSTED is retried only with a RetryInfo.
            if let Some(secs) = problem.retry_after() {
                rpc.details.push(Any {
                    type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                    value: RetryInfo {
                        retry_delay: Some(ProtoDuration {
                            seconds: i64::try_from(secs).unwrap_or(i64::MAX),
                            nanos: 0,
                        }),
                    }
                    .encode_to_vec(),
                });
            }
            respond::with_body(
                status,
                "application/x-protobuf",
                Bytes::from(rpc.encode_to_vec()),
            )
        }
        Format::Json => match problem.quota_scope() {
            None => respond::json_error(status, &message, problem.reason()),
            Some(scope) => respond::json(
                status,
                &serde_json::json!({"error": message, "reason": problem.reason(), "scope": scope}),
            ),
        },
    };
    if let Some(scope) = problem.quota_scope() {
        response
            .headers_mut()
            .insert(X_QUOTA_SCOPE, HeaderValue::from_static(scope));
    }
    if let Some(secs) = problem.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
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
        410 => 5,             // NOT_FOUND
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

/// `google.rpc.RetryInfo`: when to retry (what `Retry-After` says, for gRPC).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(response: Response<Body>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn protobuf_requests_get_a_status_with_the_reason_and_retry_after() {
        let response = render(&Reject::StoreUnavailable, Format::Protobuf);
        assert_eq!(response.status(), 503);
        // The rule exists once: a protobuf answer keeps its Retry-After.
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/x-protobuf"
        );
        let status = Status::decode(body_of(response).await).unwrap();
        assert_eq!(status.code, 14);
        let info = ErrorInfo::decode(&status.details[0].value[..]).unwrap();
        assert_eq!(info.reason, "store_unavailable");
        assert_eq!(
            status.details[1].type_url,
            "type.googleapis.com/google.rpc.RetryInfo"
        );
        let retry = RetryInfo::decode(&status.details[1].value[..]).unwrap();
        assert_eq!(retry.retry_delay.unwrap().seconds, 5);
    }

    #[tokio::test]
    async fn json_answers_carry_reason_sentence_and_retry_after() {
        let limited = Reject::RateLimited {
            retry_after_secs: 3,
        };
        let response = render(&limited, Format::Json);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let json: serde_json::Value = serde_json::from_slice(&body_of(response).await).unwrap();
        assert_eq!(json["reason"], "rate_limited");
        assert_eq!(json["error"], "Too many requests");
        let bad = render(&Reject::BadSignature, Format::Json);
        assert_eq!(bad.status(), 403);
        assert!(bad.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn every_reject_with_a_retryable_status_says_when() {
        for reason in [
            Reject::NoLiveKey,
            Reject::StoreUnavailable,
            Reject::TooManySessions,
            Reject::RateLimited {
                retry_after_secs: 1,
            },
        ] {
            assert!(matches!(reason.status().as_u16(), 429 | 503));
            assert!(Problem::retry_after(&reason).is_some(), "{reason:?}");
        }
    }
}
