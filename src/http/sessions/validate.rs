//! `GET /sessions/validate`: the caller's own issued session, found by the
//! token it presents (bearer, `X-Session-ID` or the session cookie, as
//! `/auth` reads it). 200 with its record; 401 `credential_required` (no
//! token) or `invalid_session` (unknown), 403 `session_revoked`, 410
//! `session_expired`. A read: it neither touches the session nor counts a
//! request, so a page may ask as often as it likes without keeping an idle
//! session alive.

use http::{HeaderMap, Response, StatusCode};

use super::ApiError;
use crate::http::respond::{self, Body};
use crate::http::state::AppState;
use crate::session::{token, Lookup, TokenCheck, TokenHash};

pub(super) async fn validate(
    state: &AppState,
    headers: &HeaderMap,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    let presented = token::presented(headers, &state.settings.sessions.cookie_name)
        .ok_or(ApiError::CredentialRequired)?;
    let check = state
        .sessions
        .find_token(&TokenHash::of(presented), now)
        .await?;
    let owner = match check {
        TokenCheck::Live(owner) => owner,
        TokenCheck::Expired(_) => return Err(ApiError::Expired),
        TokenCheck::Revoked { .. } => return Err(ApiError::SessionRevoked),
        TokenCheck::Unknown => return Err(ApiError::InvalidSession),
    };
    match state.sessions.lookup(&owner.session_id, now).await? {
        Lookup::Live(record) => Ok(respond::json(StatusCode::OK, &record)),
        Lookup::Expired(_) => Err(ApiError::Expired),
        // Deleted between the two reads (a logout, an eviction).
        Lookup::Unknown => Err(ApiError::InvalidSession),
    }
}
