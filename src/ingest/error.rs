//! Every way an admitted export ends without delivery: its status, `reason`,
//! sentence and `Retry-After`, rendered by the one renderer
//! ([`crate::http::error::render`]) in the request's media type. Refusals
//! before that are the admission's [`crate::protocol::reject::Reject`]s.
//!
//! Statuses follow the OTLP retry contract: exporters retry 429/502/503/504
//! (honouring `Retry-After`) and drop everything else, so anything that may
//! succeed later is a 503 or 429 with `Retry-After`, never a 4xx.

use std::borrow::Cow;

use http::StatusCode;

use super::body::InflateError;
use crate::protocol::reject::{Problem, Reject};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Inflate(InflateError),
    #[error("The body is not an OTLP export: {0}")]
    Malformed(String),
    #[error("Too many exports in flight to the collector")]
    Busy { retry_after_secs: u64 },
    /// `unreachable`: no answer at all (refused, timed out, cut short), so
    /// `retry_after_secs` is telegate's own hint, not the collector's.
    #[error("The collector is unavailable")]
    CollectorUnavailable {
        retry_after_secs: u64,
        unreachable: bool,
    },
    #[error("The collector is throttling exports")]
    CollectorThrottled { retry_after_secs: u64 },
    #[error("The collector rejected the export (status {status})")]
    CollectorRejected { status: u16 },
    #[error("The export breaks the content policy (rule {rule})")]
    ContentRejected { rule: &'static str, items: u64 },
    #[error("The first request with this nonce is still being processed")]
    ReplayInFlight,
    #[error("This nonce was already used by another request; sign each export with a fresh nonce")]
    NonceReused,
    #[error("The ingest spool is full; the export was not accepted")]
    SpoolFull { retry_after_secs: u64 },
    #[error("The ingest spool cannot write; the export was not accepted")]
    SpoolUnavailable { retry_after_secs: u64 },
    #[error("Internal error")]
    Internal,
    /// An `items` quota, charged once the export is decoded: the
    /// admission's `quota_exceeded`, answered the same way.
    #[error("{0}")]
    Quota(Reject),
}

impl From<InflateError> for IngestError {
    fn from(err: InflateError) -> Self {
        IngestError::Inflate(err)
    }
}

impl IngestError {
    /// Every reason, so metrics can start each label at zero.
    pub const REASONS: &'static [&'static str] = &[
        "body_too_large",
        "malformed_gzip",
        "malformed_otlp",
        "collector_busy",
        "collector_unavailable",
        "collector_throttled",
        "collector_rejected",
        "replay_in_flight",
        "nonce_reused",
        "server_busy",
        "spool_full",
        "spool_unavailable",
        "content_rejected",
        "internal_error",
    ];

    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Inflate(InflateError::TooLarge { .. }) => "body_too_large",
            IngestError::Inflate(InflateError::BadGzip) => "malformed_gzip",
            IngestError::Inflate(InflateError::Busy) => "server_busy",
            IngestError::Malformed(_) => "malformed_otlp",
            IngestError::Busy { .. } => "collector_busy",
            IngestError::CollectorUnavailable { .. } => "collector_unavailable",
            IngestError::CollectorThrottled { .. } => "collector_throttled",
            IngestError::CollectorRejected { status: 413 } => "body_too_large",
            IngestError::CollectorRejected { .. } => "collector_rejected",
            IngestError::ReplayInFlight => "replay_in_flight",
            IngestError::NonceReused => "nonce_reused",
            IngestError::SpoolFull { .. } => "spool_full",
            IngestError::SpoolUnavailable { .. } => "spool_unavailable",
            IngestError::ContentRejected { .. } => "content_rejected",
            IngestError::Internal => "internal_error",
            IngestError::Quota(reject) => reject.reason(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::Inflate(InflateError::TooLarge { .. })
            | IngestError::CollectorRejected { status: 413 } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Inflate(InflateError::BadGzip)
            | IngestError::Malformed(_)
            | IngestError::ContentRejected { .. }
            | IngestError::CollectorRejected { .. } => StatusCode::BAD_REQUEST,
            IngestError::CollectorThrottled { .. } => StatusCode::TOO_MANY_REQUESTS,
            // Not retryable per OTLP: the same request would be refused again.
            IngestError::NonceReused => StatusCode::CONFLICT,
            IngestError::Busy { .. }
            | IngestError::Inflate(InflateError::Busy)
            | IngestError::CollectorUnavailable { .. }
            | IngestError::ReplayInFlight
            | IngestError::SpoolFull { .. }
            | IngestError::SpoolUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            IngestError::Quota(reject) => reject.status(),
        }
    }

    /// Seconds for `Retry-After`, on every retryable answer.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            IngestError::Busy { retry_after_secs }
            | IngestError::CollectorUnavailable {
                retry_after_secs, ..
            }
            | IngestError::CollectorThrottled { retry_after_secs }
            | IngestError::SpoolFull { retry_after_secs }
            | IngestError::SpoolUnavailable { retry_after_secs } => Some(*retry_after_secs),
            IngestError::ReplayInFlight | IngestError::Inflate(InflateError::Busy) => Some(1),
            IngestError::Quota(reject) => reject.retry_after(),
            _ => None,
        }
    }

    /// The parse error of a malformed export, for the log line.
    pub fn detail(&self) -> &str {
        match self {
            IngestError::Malformed(detail) => detail,
            IngestError::ContentRejected { rule, .. } => rule,
            _ => "",
        }
    }
}

impl Problem for IngestError {
    fn status(&self) -> StatusCode {
        IngestError::status(self)
    }
    fn reason(&self) -> &'static str {
        IngestError::reason(self)
    }
    fn message(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
    fn retry_after(&self) -> Option<u64> {
        IngestError::retry_after(self)
    }
    fn quota_scope(&self) -> Option<&'static str> {
        match self {
            IngestError::Quota(reject) => reject.quota_scope(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::{render, ErrorInfo, Format, Status};
    use bytes::Bytes;
    use http::header;
    use http_body_util::BodyExt;
    use prost::Message;

    async fn body_of(response: http::Response<crate::http::respond::Body>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn protobuf_requests_get_a_status_with_the_reason() {
        let err = IngestError::CollectorUnavailable {
            retry_after_secs: 7,
            unreachable: false,
        };
        let response = render(&err, Format::Protobuf);
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
    async fn json_requests_get_json() {
        let response = render(&IngestError::Malformed("x".into()), Format::Json);
        assert_eq!(response.status(), 400);
        let json: serde_json::Value = serde_json::from_slice(&body_of(response).await).unwrap();
        assert_eq!(json["reason"], "malformed_otlp");
    }

    #[test]
    fn retryable_means_503_or_429_with_retry_after() {
        for err in [
            IngestError::Busy {
                retry_after_secs: 1,
            },
            IngestError::CollectorUnavailable {
                retry_after_secs: 1,
                unreachable: true,
            },
            IngestError::CollectorThrottled {
                retry_after_secs: 1,
            },
            IngestError::ReplayInFlight,
            IngestError::SpoolFull {
                retry_after_secs: 1,
            },
            IngestError::SpoolUnavailable {
                retry_after_secs: 1,
            },
        ] {
            assert!(matches!(err.status().as_u16(), 429 | 503), "{err:?}");
            assert!(err.retry_after().is_some(), "{err:?}");
            assert!(IngestError::REASONS.contains(&err.reason()));
        }
        assert_eq!(
            IngestError::Inflate(InflateError::TooLarge { limit: 1 }).status(),
            413
        );
        assert_eq!(IngestError::CollectorRejected { status: 400 }.status(), 400);
        let content = IngestError::ContentRejected {
            rule: "metric_name",
            items: 3,
        };
        assert_eq!(
            content.status(),
            400,
            "not retryable: the data breaks the policy"
        );
        assert_eq!(content.retry_after(), None);
        assert!(IngestError::REASONS.contains(&content.reason()));
        assert!(content.to_string().contains("metric_name"));
    }
}
