//! The session stage. A presented session token opens its session (live),
//! or is refused (expired, revoked, unknown; 503 when the store cannot
//! answer). A verified signature records its session (first and last seen,
//! requests, bytes, client), refused when revoked or one too many from its
//! address; with static-header sessions on, its first use inside the window
//! is remembered. With `sessions.track = false` only revocations are checked.

use std::net::IpAddr;

use http::HeaderMap;

use super::session_gate::{self, Refusal, Sighting, TokenCheck, TokenOwner, TokenUse};
use super::signature::Verified;
use super::Stages;
use crate::protocol::reject::Reject;
use crate::protocol::token::TokenHash;

/// A session token presented under a policy that allows `session`.
pub async fn open_token(
    stages: &Stages<'_>,
    presented: &str,
    headers: &HeaderMap,
    client_ip: IpAddr,
    now: i64,
) -> Result<TokenOwner, Reject> {
    let seen = TokenUse {
        client_ip,
        user_agent: session_gate::user_agent(headers),
        now,
    };
    let check = stages
        .sessions
        .authenticate(&TokenHash::of(presented), &seen)
        .await;
    // The store logs an outage once and counts each failure.
    match check.map_err(|_| Reject::StoreUnavailable)? {
        TokenCheck::Live(owner) => Ok(owner),
        TokenCheck::Expired(_) => Err(Reject::SessionExpired),
        TokenCheck::Revoked { .. } => Err(Reject::SessionRevoked),
        TokenCheck::Unknown => Err(Reject::InvalidSession),
    }
}

/// Records the verified session with the body's size; true when it is new.
/// A request without a session id (allowed only when `require_session_id =
/// false`) has nothing to track.
pub fn record_signed(
    stages: &Stages<'_>,
    verified: &Verified<'_>,
    headers: &HeaderMap,
    client_ip: IpAddr,
    bytes: u64,
    now: i64,
) -> Result<bool, Reject> {
    let request = &verified.request;
    if request.session_id.is_empty() {
        return Ok(false);
    }
    let settings = stages.settings;
    if !settings.sessions.track {
        // Tracking off (`sessions.track = false`): revocations still hold.
        if stages.sessions.is_revoked(request.session_id, now) {
            return Err(Reject::SessionRevoked);
        }
        return Ok(false);
    }
    let sighting = Sighting {
        session_id: request.session_id,
        client_ip,
        user_agent: session_gate::user_agent(headers),
        client_version: request.client_version,
        key_id: verified.key_id.as_str(),
        bytes,
        now,
    };
    let created = match stages.sessions.observe(&sighting) {
        Ok(created) => created,
        Err(Refusal::Revoked) => return Err(Reject::SessionRevoked),
        Err(Refusal::TooManyForIp) => return Err(Reject::TooManySessions),
    };
    // Static-header sessions: the first use of a v1 header set inside the
    // window is stored with its session (the store keeps the first address).
    if let Some(rules) = settings.static_headers {
        if verified.v2.is_none() && !verified.static_headers {
            let max_age = std::time::Duration::from_secs(rules.max_age_secs);
            stages
                .sessions
                .remember_static(&verified.header_set(), client_ip, now, max_age);
        }
    }
    Ok(created)
}
