//! The forwardAuth decision: the pipeline stages composed in order.
//!
//! policy -> client IP -> rate limit -> parse -> build policy -> window ->
//! verify -> session -> answer, then one metrics update and one log line. Traefik
//! copies a non-2xx answer (status, body, `Retry-After`) back to the client
//! and, on 2xx, the `X-Auth-*` headers named in `authResponseHeaders`.
//!
//! Under a policy whose `methods` include `session`, a request that presents
//! a session token (bearer, `X-Session-ID` or the cookie) is decided by the
//! token instead, right after the rate limit.

use std::net::IpAddr;

use bytes::Bytes;
use std::time::Instant;

use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::client_ip;
use crate::config::Policy;
use crate::keyring::KeyId;
use crate::reject::Reject;
use crate::respond::{self, Body};
use crate::session::token;
use crate::session::{Refusal, Sighting, TokenCheck, TokenHash, TokenOwner, TokenUse};
use crate::signed_request::{self, ParseOptions, SignedRequest};
use crate::state::AppState;
use crate::verify;
use crate::window;

pub const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_AUTH_SESSION_ID: HeaderName = HeaderName::from_static("x-auth-session-id");
pub const X_AUTH_CLIENT_VERSION: HeaderName = HeaderName::from_static("x-auth-client-version");
pub const X_AUTH_KEY_ID: HeaderName = HeaderName::from_static("x-auth-key-id");
pub const X_AUTH_STATUS: HeaderName = HeaderName::from_static("x-auth-status");
pub const X_AUTH_USER: HeaderName = HeaderName::from_static("x-auth-user");

/// What a successful signature verification established.
#[derive(Debug)]
pub struct Verified<'a> {
    pub request: SignedRequest<'a>,
    pub key_id: KeyId,
}

/// Why `/auth` let a request through.
#[derive(Debug)]
enum Allowed<'a> {
    Signed(Verified<'a>),
    Session(TokenOwner),
}

/// Answers one `/auth` request. Async only for a session token, which a
/// remote store checks with one round trip; the signed path never waits.
pub async fn forward_auth(state: &AppState, parts: &Parts, peer: IpAddr) -> Response<Body> {
    let started = Instant::now();
    let client_ip = client_address(state, &parts.headers, peer);
    let policy_name = query_param(parts.uri.query(), "policy");
    let outcome = match select_policy(state, policy_name) {
        Ok(policy) => decide(state, parts, policy, client_ip).await,
        Err(reject) => Err(reject),
    };
    let metrics = &state.metrics;
    metrics.auth_total.inc();
    let response = match &outcome {
        Ok(Allowed::Session(owner)) => {
            metrics.auth_success.inc();
            tracing::info!(
                target: "telegate::decision",
                %client_ip,
                session = owner.session_id,
                method = "session",
                policy = policy_name.unwrap_or("default"),
                result = "allow",
                latency_us = started.elapsed().as_micros() as u64,
                "auth decision"
            );
            allow_session(owner)
        }
        Ok(Allowed::Signed(verified)) => {
            metrics.auth_success.inc();
            metrics
                .key_used_total
                .with_label_values(&[verified.key_id.as_str()])
                .inc();
            tracing::info!(
                target: "telegate::decision",
                %client_ip,
                session = verified.request.session_id,
                key_id = verified.key_id.as_str(),
                client_version = verified.request.client_version.unwrap_or(""),
                sig = %verified.request.signature_prefix(),
                policy = policy_name.unwrap_or("default"),
                result = "allow",
                latency_us = started.elapsed().as_micros() as u64,
                "auth decision"
            );
            allow(verified)
        }
        Err(reject) => {
            metrics.record_reject(reject);
            let headers = &parts.headers;
            let session = header_str(headers, &state.settings.header_names.session_id)
                .or_else(|| header_str(headers, &state.settings.header_names.session_alt))
                .map(|s| truncate(s, signed_request::MAX_FIELD_LEN));
            tracing::info!(
                target: "telegate::decision",
                %client_ip,
                session = session.unwrap_or(""),
                policy = policy_name.unwrap_or("default"),
                result = "deny",
                reason = reject.reason(),
                status = reject.status().as_u16(),
                latency_us = started.elapsed().as_micros() as u64,
                "auth decision"
            );
            reject.into_response()
        }
    };
    metrics
        .auth_duration_seconds
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The client: the socket peer, or `X-Forwarded-For` from a trusted proxy.
pub fn client_address(state: &AppState, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
    client_ip::resolve(
        peer,
        header_values(headers, &X_FORWARDED_FOR),
        &state.settings.trusted_proxies,
    )
}

fn select_policy<'s>(state: &'s AppState, name: Option<&str>) -> Result<&'s Policy, Reject> {
    match name {
        None | Some("") | Some("default") => Ok(&state.settings.default_policy),
        Some(name) => state.settings.policies.get(name).ok_or_else(|| {
            tracing::error!(policy = %truncate(name, 64), "forwardAuth asked for a policy that is not configured");
            Reject::UnknownPolicy
        }),
    }
}

async fn decide<'p>(
    state: &AppState,
    parts: &'p Parts,
    policy: &Policy,
    client_ip: IpAddr,
) -> Result<Allowed<'p>, Reject> {
    state.limits.check(&policy.name, client_ip)?;
    let headers = &parts.headers;
    if policy.allows("session") {
        let cookie_name = &state.settings.sessions.cookie_name;
        if let Some(presented) = token::presented(headers, cookie_name) {
            return check_token(state, presented, headers, client_ip)
                .await
                .map(Allowed::Session);
        }
        if !policy.allows("hmac") {
            return Err(Reject::InvalidSession);
        }
    }
    let method = match headers.get(&X_FORWARDED_METHOD) {
        Some(value) => value.to_str().map_err(|_| Reject::MalformedHeader)?,
        None => parts.method.as_str(),
    };
    let uri = headers
        .get(&X_FORWARDED_URI)
        .ok_or(Reject::MissingForwardedUri)?
        .to_str()
        .map_err(|_| Reject::MalformedHeader)?;
    let path = signed_request::signed_path(uri);
    verify_signed(state, headers, method, path, policy, client_ip).map(Allowed::Signed)
}

/// A session token presented to `/auth`: live opens (and touches) its
/// session; expired, revoked and unknown tokens are refused, and a store
/// that cannot answer is 503 (the client retries).
async fn check_token(
    state: &AppState,
    presented: &str,
    headers: &HeaderMap,
    client_ip: IpAddr,
) -> Result<TokenOwner, Reject> {
    let seen = TokenUse {
        client_ip,
        user_agent: header_str(headers, &http::header::USER_AGENT),
        now: state.now(),
    };
    let check = state
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

/// The signature stages for a request signed over `method path`, after the
/// rate limit: parse, build policy, window, verify, session. `/auth` takes
/// method and path from Traefik's `X-Forwarded-*`; `POST /sessions` from the
/// request itself.
pub fn verify_signed<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
    method: &'h str,
    path: &'h str,
    policy: &Policy,
    client_ip: IpAddr,
) -> Result<Verified<'h>, Reject> {
    let options = ParseOptions {
        require_session_id: state.settings.require_session_id,
    };
    let names = &state.settings.header_names;
    let request = signed_request::parse(names, headers, method, path, options)?;
    if let Some(required) = &policy.require_build {
        if request.build != Some(required.as_str()) {
            return Err(Reject::UnofficialBuild);
        }
    }
    let now = state.now();
    window::check(request.timestamp, now, policy.max_skew_secs)?;
    let ring = state.keyring.current();
    let key_id = verify::verify(&request, &ring, policy.key_ids.as_deref(), now)?
        .id
        .clone();
    track_session(state, &request, &key_id, headers, client_ip, now)?;
    Ok(Verified { key_id, request })
}

/// Records the verified session; refuses a revoked one or one too many from
/// this address. A request without a session id (allowed only when
/// `require_session_id = false`) has nothing to track.
fn track_session(
    state: &AppState,
    request: &SignedRequest<'_>,
    key_id: &KeyId,
    headers: &HeaderMap,
    client_ip: IpAddr,
    now: i64,
) -> Result<(), Reject> {
    if request.session_id.is_empty() {
        return Ok(());
    }
    if !state.settings.sessions.track {
        // Tracking off (`sessions.track = false`): revocations still hold.
        if state.sessions.is_revoked(request.session_id, now) {
            return Err(Reject::SessionRevoked);
        }
        return Ok(());
    }
    let sighting = Sighting {
        session_id: request.session_id,
        client_ip,
        user_agent: header_str(headers, &http::header::USER_AGENT),
        client_version: request.client_version,
        key_id: key_id.as_str(),
        bytes: 0,
        now,
    };
    match state.sessions.observe(&sighting) {
        Ok(true) => {
            state
                .metrics
                .sessions_created_total
                .with_label_values(&["signed"])
                .inc();
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(Refusal::Revoked) => Err(Reject::SessionRevoked),
        Err(Refusal::TooManyForIp) => Err(Reject::TooManySessions),
    }
}

fn allow_session(owner: &TokenOwner) -> Response<Body> {
    let mut response = respond::json(
        StatusCode::OK,
        &serde_json::json!({"status": "valid", "session_id": owner.session_id}),
    );
    let headers = response.headers_mut();
    headers.insert(X_AUTH_STATUS, HeaderValue::from_static("valid"));
    if let Ok(value) = HeaderValue::from_str(&owner.session_id) {
        headers.insert(X_AUTH_SESSION_ID, value);
    }
    if let Some(Ok(value)) = owner.user_id.as_deref().map(HeaderValue::from_str) {
        headers.insert(X_AUTH_USER, value);
    }
    response
}

fn allow(verified: &Verified<'_>) -> Response<Body> {
    // Traefik ignores a 2xx body: a static one costs no allocation.
    let mut response = respond::with_body(
        StatusCode::OK,
        "application/json",
        Bytes::from_static(br#"{"status":"valid"}"#),
    );
    let headers = response.headers_mut();
    headers.insert(X_AUTH_STATUS, HeaderValue::from_static("valid"));
    if let Ok(value) = HeaderValue::from_str(verified.key_id.as_str()) {
        headers.insert(X_AUTH_KEY_ID, value);
    }
    if let Ok(value) = HeaderValue::from_str(verified.request.session_id) {
        headers.insert(X_AUTH_SESSION_ID, value);
    }
    if let Some(Ok(value)) = verified.request.client_version.map(HeaderValue::from_str) {
        headers.insert(X_AUTH_CLIENT_VERSION, value);
    }
    response
}

/// Every value of a header, as text, in the order received.
fn header_values<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl DoubleEndedIterator<Item = &'a str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
}

pub fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `name=value` from a query string (no percent-decoding: policy names are plain).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_param_finds_the_policy() {
        assert_eq!(query_param(Some("policy=app"), "policy"), Some("app"));
        assert_eq!(query_param(Some("a=1&policy=x&b"), "policy"), Some("x"));
        assert_eq!(query_param(Some("policyx=1"), "policy"), None);
        assert_eq!(query_param(None, "policy"), None);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
