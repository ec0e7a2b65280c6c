//! Every reason the session API refuses a request, with its status and
//! `reason`, rendered by the one renderer ([`crate::http::error::render`]).
//! Refusals of a signed `POST /sessions` are the same [`Reject`]s `/auth`
//! gives, wrapped, so they answer the same way.

use std::borrow::Cow;

use http::{Response, StatusCode};

use crate::http::error::{render, Format};
use crate::http::respond::Body;
use crate::pipeline::body::BodyError;
use crate::protocol::reject::{Problem, Reject};
use crate::session::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("The session API is off: no admin token is configured")]
    AdminDisabled,
    #[error("Admin token required")]
    AdminTokenRequired,
    #[error("Invalid admin token")]
    BadAdminToken,
    #[error("An admin token, a session token or a signed request is required")]
    CredentialRequired,
    #[error("Invalid session token")]
    InvalidSession,
    #[error("This token belongs to another session")]
    NotOwner,
    #[error("This session has been revoked")]
    SessionRevoked,
    #[error("No such session")]
    NotFound,
    #[error("Session expired")]
    Expired,
    #[error("Only issued sessions have a token, an idle timer and a lifetime to change")]
    NotIssued,
    #[error("{0}")]
    MalformedBody(&'static str),
    #[error("metadata is larger than sessions.max_metadata_bytes")]
    MetadataTooLarge,
    #[error("The request body is larger than sessions.max_body_bytes")]
    BodyTooLarge,
    #[error("The request body did not arrive in time")]
    BodyTimeout,
    #[error("This user holds the most sessions allowed")]
    TooManyUserSessions,
    #[error("{0}")]
    BadQuery(&'static str),
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("This v2 nonce was already used; sign each request with a fresh nonce")]
    NonceReused,
    #[error("The first request with this nonce is still being processed")]
    ReplayInFlight,
    #[error("user_id may not start with \"signed:\": that namespace holds the user ids signed clients claim")]
    ReservedUserId,
    #[error("roles and permissions are granted by an admin only: a signed client cannot give itself any")]
    GrantsAdminOnly,
    #[error("The ingest spool is off")]
    SpoolOff,
    /// A signed `POST /sessions` refused like `/auth` would refuse it.
    #[error("{0}")]
    Rejected(Reject),
    /// The OS RNG failed: logged, answered with an opaque 500.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::AdminDisabled => "admin_disabled",
            ApiError::AdminTokenRequired => "admin_token_required",
            ApiError::BadAdminToken => "bad_admin_token",
            ApiError::CredentialRequired => "credential_required",
            ApiError::InvalidSession => "invalid_session",
            ApiError::NotOwner => "not_owner",
            ApiError::SessionRevoked => "session_revoked",
            ApiError::NotFound => "not_found",
            ApiError::Expired => "session_expired",
            ApiError::NotIssued => "not_issued",
            ApiError::MalformedBody(_) => "malformed_body",
            ApiError::MetadataTooLarge => "metadata_too_large",
            ApiError::BodyTooLarge => "body_too_large",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::TooManyUserSessions => "too_many_user_sessions",
            ApiError::BadQuery(_) => "bad_query",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::NonceReused => "nonce_reused",
            ApiError::ReplayInFlight => "replay_in_flight",
            ApiError::ReservedUserId => "malformed_body",
            ApiError::SpoolOff => "spool_off",
            ApiError::GrantsAdminOnly => "grants_admin_only",
            ApiError::Rejected(reject) => reject.reason(),
            ApiError::Internal(_) => "internal_error",
            ApiError::Store(_) => "store_unavailable",
        }
    }

    /// The reason, when the request was refused at its admin or owner
    /// credential (counted as `{ns}_api_auth_failed_total{reason}`).
    pub fn credential_failure(&self) -> Option<&'static str> {
        match self {
            ApiError::AdminTokenRequired
            | ApiError::BadAdminToken
            | ApiError::CredentialRequired
            | ApiError::InvalidSession
            | ApiError::NotOwner
            | ApiError::SessionRevoked => Some(self.reason()),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::AdminTokenRequired
            | ApiError::CredentialRequired
            | ApiError::InvalidSession => StatusCode::UNAUTHORIZED,
            ApiError::AdminDisabled
            | ApiError::BadAdminToken
            | ApiError::NotOwner
            | ApiError::GrantsAdminOnly
            | ApiError::SessionRevoked => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::SpoolOff => StatusCode::NOT_FOUND,
            ApiError::Expired => StatusCode::GONE,
            ApiError::NotIssued
            | ApiError::MalformedBody(_)
            | ApiError::MetadataTooLarge
            | ApiError::ReservedUserId
            | ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::NonceReused => StatusCode::CONFLICT,
            ApiError::ReplayInFlight => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyUserSessions => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Rejected(reject) => reject.status(),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The answer: internal and store failures are logged here in full
    /// and answered opaquely; everything else says what was refused.
    pub fn into_response(self) -> Response<Body> {
        match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "session API failed");
            }
            ApiError::Store(err) => tracing::warn!(error = %err, "session store unavailable"),
            _ => {}
        }
        render(&self, Format::Json)
    }
}

impl Problem for ApiError {
    fn status(&self) -> StatusCode {
        ApiError::status(self)
    }
    fn reason(&self) -> &'static str {
        ApiError::reason(self)
    }
    fn message(&self) -> Cow<'_, str> {
        match self {
            ApiError::Store(_) => Cow::Borrowed("Session store unavailable"),
            ApiError::Rejected(reject) => reject.message(),
            other => Cow::Owned(other.to_string()),
        }
    }
    /// A store outage is retried like a `Reject::StoreUnavailable`.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Rejected(reject) => reject.retry_after(),
            ApiError::Store(_) => Reject::StoreUnavailable.retry_after(),
            ApiError::ReplayInFlight => Some(1),
            _ => None,
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> ApiError {
        match err {
            BodyError::TooLarge { .. } => ApiError::BodyTooLarge,
            BodyError::Timeout => ApiError::BodyTimeout,
            BodyError::Unreadable => ApiError::MalformedBody("The request body could not be read"),
            BodyError::Busy => ApiError::Rejected(Reject::ServerBusy),
        }
    }
}

impl From<Reject> for ApiError {
    fn from(reject: Reject) -> ApiError {
        ApiError::Rejected(reject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::metrics::API_AUTH_REASONS;

    #[test]
    fn statuses_and_reasons() {
        let cases = [
            (ApiError::CredentialRequired, 401, "credential_required"),
            (ApiError::InvalidSession, 401, "invalid_session"),
            (ApiError::NotOwner, 403, "not_owner"),
            (ApiError::SessionRevoked, 403, "session_revoked"),
            (ApiError::NotFound, 404, "not_found"),
            (ApiError::SpoolOff, 404, "spool_off"),
            (ApiError::GrantsAdminOnly, 403, "grants_admin_only"),
            (ApiError::Expired, 410, "session_expired"),
            (ApiError::MalformedBody("x"), 400, "malformed_body"),
            (ApiError::MetadataTooLarge, 400, "metadata_too_large"),
            (ApiError::BodyTooLarge, 413, "body_too_large"),
            (ApiError::TooManyUserSessions, 429, "too_many_user_sessions"),
            (
                ApiError::Store(StoreError("down".into())),
                503,
                "store_unavailable",
            ),
            (
                ApiError::Rejected(Reject::BadSignature),
                403,
                "bad_signature",
            ),
        ];
        for (error, status, reason) in cases {
            assert_eq!((error.status().as_u16(), error.reason()), (status, reason));
            assert_eq!(error.into_response().status().as_u16(), status);
        }
    }

    #[test]
    fn credential_failures_are_the_counted_reasons() {
        let counted: Vec<_> = [
            ApiError::AdminTokenRequired,
            ApiError::BadAdminToken,
            ApiError::CredentialRequired,
            ApiError::InvalidSession,
            ApiError::NotOwner,
            ApiError::SessionRevoked,
        ]
        .iter()
        .filter_map(ApiError::credential_failure)
        .collect();
        assert_eq!(counted, API_AUTH_REASONS);
        for other in [
            ApiError::NotFound,
            ApiError::AdminDisabled,
            ApiError::Rejected(Reject::BadSignature),
            ApiError::MalformedBody("x"),
        ] {
            assert_eq!(other.credential_failure(), None, "{other:?}");
        }
    }
}
