//! Every reason a request is refused, and the one place that maps a reason to
//! an HTTP status, a JSON body and a metric label.
//!
//! The human sentences keep the original service's wording ("Missing
//! authentication headers", "Invalid signature", "Request timestamp too old or
//! in future") because operators grep for them; `reason` is the stable code.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::respond;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("Missing authentication headers")]
    MissingSignature,
    #[error("Missing authentication headers")]
    MissingTimestamp,
    #[error("Missing authentication headers")]
    MissingSessionId,
    #[error("Missing X-Forwarded-Uri: the forwardAuth request does not name the original path")]
    MissingForwardedUri,
    #[error("Invalid timestamp format")]
    MalformedTimestamp,
    #[error("Malformed authentication header")]
    MalformedHeader,
    #[error("Request timestamp too old or in future")]
    StaleTimestamp,
    #[error("Request timestamp too old or in future")]
    FutureTimestamp,
    #[error("Invalid signature")]
    BadSignature,
    #[error("This client build is not accepted")]
    UnofficialBuild,
    #[error("Too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("This session has been revoked")]
    SessionRevoked,
    #[error("Invalid session token")]
    InvalidSession,
    #[error("Session expired")]
    SessionExpired,
    #[error("Too many sessions from this address")]
    TooManySessions,
    #[error("No live signing key is loaded")]
    NoLiveKey,
    #[error("Unknown auth policy")]
    UnknownPolicy,
    #[error("The body is not the one that was signed")]
    BodyMismatch,
    #[error("This route requires a v2 (body-bound) signature")]
    SignatureVersionRequired,
    #[error("Session store unavailable")]
    StoreUnavailable,
}

impl Reject {
    /// Every reason code, so metrics can start each label at zero.
    pub const REASONS: &'static [&'static str] = &[
        "missing_signature",
        "missing_timestamp",
        "missing_session_id",
        "missing_forwarded_uri",
        "malformed_timestamp",
        "malformed_header",
        "stale_timestamp",
        "future_timestamp",
        "bad_signature",
        "unofficial_build",
        "rate_limited",
        "session_revoked",
        "invalid_session",
        "session_expired",
        "too_many_sessions",
        "no_live_key",
        "unknown_policy",
        "body_mismatch",
        "signature_version_required",
        "store_unavailable",
    ];

    pub fn reason(&self) -> &'static str {
        match self {
            Reject::MissingSignature => "missing_signature",
            Reject::MissingTimestamp => "missing_timestamp",
            Reject::MissingSessionId => "missing_session_id",
            Reject::MissingForwardedUri => "missing_forwarded_uri",
            Reject::MalformedTimestamp => "malformed_timestamp",
            Reject::MalformedHeader => "malformed_header",
            Reject::StaleTimestamp => "stale_timestamp",
            Reject::FutureTimestamp => "future_timestamp",
            Reject::BadSignature => "bad_signature",
            Reject::UnofficialBuild => "unofficial_build",
            Reject::RateLimited { .. } => "rate_limited",
            Reject::SessionRevoked => "session_revoked",
            Reject::InvalidSession => "invalid_session",
            Reject::SessionExpired => "session_expired",
            Reject::TooManySessions => "too_many_sessions",
            Reject::NoLiveKey => "no_live_key",
            Reject::UnknownPolicy => "unknown_policy",
            Reject::BodyMismatch => "body_mismatch",
            Reject::SignatureVersionRequired => "signature_version_required",
            Reject::StoreUnavailable => "store_unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Reject::MissingSignature
            | Reject::MissingTimestamp
            | Reject::MissingSessionId
            | Reject::MissingForwardedUri
            | Reject::MalformedTimestamp
            | Reject::MalformedHeader
            | Reject::StaleTimestamp
            | Reject::FutureTimestamp
            | Reject::UnofficialBuild
            | Reject::InvalidSession
            | Reject::SessionExpired
            | Reject::SignatureVersionRequired => StatusCode::UNAUTHORIZED,
            Reject::BadSignature | Reject::SessionRevoked | Reject::BodyMismatch => {
                StatusCode::FORBIDDEN
            }
            Reject::RateLimited { .. } | Reject::TooManySessions => StatusCode::TOO_MANY_REQUESTS,
            // A gateway with no usable key is broken, not the client: 503 makes
            // OTLP exporters retry instead of dropping data.
            Reject::NoLiveKey => StatusCode::SERVICE_UNAVAILABLE,
            // A token cannot be checked while the session store is down:
            // 503 so the client retries.
            Reject::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            // The policy name comes from the operator's Traefik config.
            Reject::UnknownPolicy => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response Traefik hands back to the client unchanged.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = respond::json_error(self.status(), &self.to_string(), self.reason());
        match self {
            Reject::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Reject::NoLiveKey | Reject::StoreUnavailable => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            // A slot frees when one of the address's sessions idles out.
            Reject::TooManySessions => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_listed_reason() {
        let all = [
            Reject::MissingSignature,
            Reject::MissingTimestamp,
            Reject::MissingSessionId,
            Reject::MissingForwardedUri,
            Reject::MalformedTimestamp,
            Reject::MalformedHeader,
            Reject::StaleTimestamp,
            Reject::FutureTimestamp,
            Reject::BadSignature,
            Reject::UnofficialBuild,
            Reject::RateLimited {
                retry_after_secs: 1,
            },
            Reject::SessionRevoked,
            Reject::InvalidSession,
            Reject::SessionExpired,
            Reject::TooManySessions,
            Reject::NoLiveKey,
            Reject::UnknownPolicy,
            Reject::BodyMismatch,
            Reject::SignatureVersionRequired,
            Reject::StoreUnavailable,
        ];
        assert_eq!(all.len(), Reject::REASONS.len());
        for reject in all {
            assert!(Reject::REASONS.contains(&reject.reason()), "{reject:?}");
        }
    }

    #[test]
    fn protocol_statuses() {
        assert_eq!(Reject::MissingSignature.status(), 401);
        assert_eq!(Reject::StaleTimestamp.status(), 401);
        assert_eq!(Reject::FutureTimestamp.status(), 401);
        assert_eq!(Reject::BadSignature.status(), 403);
        let limited = Reject::RateLimited {
            retry_after_secs: 3,
        };
        assert_eq!(limited.status(), 429);
        let response = limited.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn session_token_statuses() {
        assert_eq!(Reject::InvalidSession.status(), 401);
        assert_eq!(Reject::InvalidSession.reason(), "invalid_session");
        assert_eq!(Reject::SessionExpired.status(), 401);
        assert_eq!(Reject::SessionExpired.reason(), "session_expired");
        assert_eq!(Reject::SessionRevoked.status(), 403);
        assert_eq!(Reject::StoreUnavailable.status(), 503);
        assert_eq!(Reject::StoreUnavailable.reason(), "store_unavailable");
        let response = Reject::StoreUnavailable.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }
}
