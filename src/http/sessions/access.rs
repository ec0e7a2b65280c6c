//! Who is calling the session API: the admin by its bearer token
//! (compared in constant time), or the owner of one issued session by that
//! session's own token.

use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::http::state::AppState;
use crate::session::{token, TokenCheck, TokenHash};

/// Who is calling a per-session route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Admin,
    Owner,
}

pub(super) fn is_admin(state: &AppState, presented: &str) -> bool {
    state
        .admin_token()
        .is_some_and(|expected| bool::from(presented.as_bytes().ct_eq(expected.expose())))
}

/// The admin bearer token, compared in constant time (also the bans API's gate).
pub(crate) fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.admin_token().is_none() {
        return Err(ApiError::AdminDisabled);
    }
    let presented = token::bearer(headers).ok_or(ApiError::AdminTokenRequired)?;
    if !is_admin(state, presented) {
        return Err(ApiError::BadAdminToken);
    }
    Ok(())
}

/// An admin, or the owner of session `id` by its token. An owner whose
/// session expired still passes: the route then answers 410 (and logout
/// still works).
pub(super) async fn owner_or_admin(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    now: i64,
) -> Result<Access, ApiError> {
    let presented = match token::bearer(headers) {
        Some(bearer) if is_admin(state, bearer) => return Ok(Access::Admin),
        Some(bearer) => bearer,
        None => token::session_header(headers).ok_or(ApiError::CredentialRequired)?,
    };
    let check = state
        .sessions
        .find_token(&TokenHash::of(presented), now)
        .await?;
    match check {
        TokenCheck::Live(owner) | TokenCheck::Expired(owner) if owner.session_id == id => {
            Ok(Access::Owner)
        }
        TokenCheck::Revoked { session_id } if session_id == id => Err(ApiError::SessionRevoked),
        TokenCheck::Unknown => Err(ApiError::InvalidSession),
        _ => Err(ApiError::NotOwner),
    }
}
