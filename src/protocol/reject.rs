//! Every reason the admission stages refuse a request: its status, its
//! `reason` code (the metric label and the JSON `reason`), its human sentence
//! and its `Retry-After`. Rendering it is the http layer's one renderer
//! ([`crate::http::error`]); counting it is the one observation step.
//!
//! The human sentences keep the original service's wording ("Missing
//! authentication headers", "Invalid signature", "Request timestamp too old or
//! in future") because operators grep for them; `reason` is the stable code.

use std::borrow::Cow;

use http::StatusCode;

use super::abuse::QuotaScope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("Missing authentication headers")]
    MissingSignature,
    #[error("Missing authentication headers")]
    MissingTimestamp,
    #[error("Missing authentication headers")]
    MissingSessionId,
    #[error("Missing X-Forwarded-Uri (auth.forwarded_uri_header): the forwardAuth request does not name the original path")]
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
    #[error("Content-Type must be application/x-protobuf or application/json")]
    UnsupportedMediaType,
    #[error("Content-Encoding must be gzip or absent")]
    UnsupportedEncoding,
    #[error("The request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("The request body did not arrive in time")]
    BodyTimeout,
    #[error("The request body could not be read")]
    UnreadableBody,
    #[error("The request has no body")]
    EmptyBody,
    #[error("Only POST is accepted on OTLP routes")]
    MethodNotAllowed,
    #[error("The gateway holds as many request bodies as it may; try again shortly")]
    ServerBusy,
    #[error("Quota exceeded")]
    QuotaExceeded {
        scope: QuotaScope,
        retry_after_secs: u64,
    },
    #[error("Too many refused requests: banned for a while")]
    Banned { retry_after_secs: u64 },
    #[error("This signing key has been revoked: update the client")]
    KeyRevoked,
    #[error("This client version is not accepted: update the client")]
    ClientVersionBlocked,
    #[error("Requests from this network are not accepted")]
    NetworkDenied,
    #[error("This session lacks a role the policy requires")]
    InsufficientRole,
    #[error("This session lacks a permission the policy requires")]
    InsufficientPermission,
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
        "unsupported_media_type",
        "unsupported_encoding",
        "body_too_large",
        "body_timeout",
        "unreadable_body",
        "empty_body",
        "server_busy",
        "method_not_allowed",
        "quota_exceeded",
        "banned",
        "key_revoked",
        "client_version_blocked",
        "network_denied",
        "insufficient_role",
        "insufficient_permission",
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
            Reject::UnsupportedMediaType => "unsupported_media_type",
            Reject::UnsupportedEncoding => "unsupported_encoding",
            Reject::BodyTooLarge { .. } => "body_too_large",
            Reject::BodyTimeout => "body_timeout",
            Reject::UnreadableBody => "unreadable_body",
            Reject::EmptyBody => "empty_body",
            Reject::MethodNotAllowed => "method_not_allowed",
            Reject::ServerBusy => "server_busy",
            Reject::QuotaExceeded { .. } => "quota_exceeded",
            Reject::Banned { .. } => "banned",
            Reject::KeyRevoked => "key_revoked",
            Reject::ClientVersionBlocked => "client_version_blocked",
            Reject::NetworkDenied => "network_denied",
            Reject::InsufficientRole => "insufficient_role",
            Reject::InsufficientPermission => "insufficient_permission",
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
            Reject::BadSignature
            | Reject::SessionRevoked
            | Reject::BodyMismatch
            | Reject::Banned { .. }
            | Reject::KeyRevoked
            | Reject::ClientVersionBlocked
            | Reject::NetworkDenied
            | Reject::InsufficientRole
            | Reject::InsufficientPermission => StatusCode::FORBIDDEN,
            Reject::RateLimited { .. } | Reject::TooManySessions | Reject::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            // A gateway with no usable key is broken, not the client: 503 makes
            // OTLP exporters retry instead of dropping data.
            Reject::NoLiveKey => StatusCode::SERVICE_UNAVAILABLE,
            // A token cannot be checked while the session store is down:
            // 503 so the client retries.
            Reject::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            // The policy name comes from the operator's Traefik config.
            Reject::UnknownPolicy => StatusCode::INTERNAL_SERVER_ERROR,
            Reject::UnsupportedMediaType | Reject::UnsupportedEncoding => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Reject::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Reject::UnreadableBody | Reject::EmptyBody => StatusCode::BAD_REQUEST,
            Reject::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            // `server.body_budget_bytes` is spent: the gateway, not the client.
            Reject::ServerBusy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Seconds for `Retry-After`: every refusal that may pass later says
    /// when to try again (OTLP exporters and Traefik's clients honour it).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Reject::RateLimited { retry_after_secs }
            | Reject::QuotaExceeded {
                retry_after_secs, ..
            }
            | Reject::Banned { retry_after_secs } => Some(*retry_after_secs),
            // The gateway's keyring or store is at fault: soon.
            Reject::NoLiveKey | Reject::StoreUnavailable => Some(5),
            // Bodies in flight finish within their deadline.
            Reject::ServerBusy => Some(1),
            // A slot frees when one of the address's sessions idles out.
            Reject::TooManySessions => Some(60),
            _ => None,
        }
    }

    /// The scope of the quota a `quota_exceeded` ran into.
    pub fn quota_scope(&self) -> Option<&'static str> {
        match self {
            Reject::QuotaExceeded { scope, .. } => Some(scope.as_str()),
            _ => None,
        }
    }
}

/// A refusal, as the one renderer (`crate::http::error::render`) needs it:
/// the admission's [`Reject`] and the errors that wrap it after admission.
pub trait Problem {
    fn status(&self) -> StatusCode;
    /// The stable code: the JSON `reason`, the metric label.
    fn reason(&self) -> &'static str;
    /// The human sentence. A 500 never says more than "Internal error".
    fn message(&self) -> Cow<'_, str>;
    /// Seconds for `Retry-After`, on every refusal that may pass later.
    fn retry_after(&self) -> Option<u64>;
    /// A `quota_exceeded`'s scope: named in the body and in `X-Quota-Scope`.
    fn quota_scope(&self) -> Option<&'static str> {
        None
    }
}

impl Problem for Reject {
    fn status(&self) -> StatusCode {
        Reject::status(self)
    }
    fn reason(&self) -> &'static str {
        Reject::reason(self)
    }
    fn message(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
    fn retry_after(&self) -> Option<u64> {
        Reject::retry_after(self)
    }
    fn quota_scope(&self) -> Option<&'static str> {
        Reject::quota_scope(self)
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
            Reject::UnsupportedMediaType,
            Reject::UnsupportedEncoding,
            Reject::BodyTooLarge { limit: 1 },
            Reject::BodyTimeout,
            Reject::UnreadableBody,
            Reject::EmptyBody,
            Reject::MethodNotAllowed,
            Reject::ServerBusy,
            Reject::QuotaExceeded {
                scope: QuotaScope::Session,
                retry_after_secs: 1,
            },
            Reject::Banned {
                retry_after_secs: 1,
            },
            Reject::KeyRevoked,
            Reject::ClientVersionBlocked,
            Reject::NetworkDenied,
            Reject::InsufficientRole,
            Reject::InsufficientPermission,
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
        assert_eq!(limited.retry_after(), Some(3));
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
        assert_eq!(Reject::StoreUnavailable.retry_after(), Some(5));
    }
}
