//! Every reason the session API refuses a request, and the one place that
//! maps it to a status and a JSON body. Refusals of a signed `POST /sessions`
//! are the same [`Reject`]s `/auth` gives, answered the same way.

use http::{header, HeaderValue, Response, StatusCode};

use crate::reject::Reject;
use crate::respond::{self, Body};
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
    #[error("This user holds the most sessions allowed")]
    TooManyUserSessions,
    #[error("{0}")]
    BadQuery(&'static str),
    #[error("Method not allowed")]
    MethodNotAllowed,
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
            ApiError::TooManyUserSessions => "too_many_user_sessions",
            ApiError::BadQuery(_) => "bad_query",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Rejected(reject) => reject.reason(),
            ApiError::Internal(_) => "internal_error",
            ApiError::Store(_) => "store_unavailable",
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
            | ApiError::SessionRevoked => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Expired => StatusCode::GONE,
            ApiError::NotIssued
            | ApiError::MalformedBody(_)
            | ApiError::MetadataTooLarge
            | ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyUserSessions => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Rejected(reject) => reject.status(),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        match self {
            ApiError::Rejected(reject) => reject.into_response(),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "session API failed");
                respond::internal_error()
            }
            ApiError::Store(err) => {
                tracing::warn!(error = %err, "session store unavailable");
                let mut response = respond::json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Session store unavailable",
                    "store_unavailable",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                response
            }
            other => respond::json_error(other.status(), &other.to_string(), other.reason()),
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

    #[test]
    fn statuses_and_reasons() {
        let cases = [
            (ApiError::CredentialRequired, 401, "credential_required"),
            (ApiError::InvalidSession, 401, "invalid_session"),
            (ApiError::NotOwner, 403, "not_owner"),
            (ApiError::SessionRevoked, 403, "session_revoked"),
            (ApiError::NotFound, 404, "not_found"),
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
}
