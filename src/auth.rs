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
//!
//! The signature stages are public ([`check_signature`], [`check_body`],
//! [`track_session`]) so the ingest routes run exactly the same checks.
//! A v2 signature's body hash is checked when Traefik sends the body
//! (`forwardBody: true`); without it the decision is header-only and the log
//! line says so (`body="header_only"`).
//!
//! Two allowances for the client as it ships ([`check_signature_detect`]):
//! on `/` the signal is found by verifying against each signal path in turn
//! (at most three HMACs per key on a miss), and with `[auth.static_headers]`
//! a v1 header set first seen inside the window stays usable after it, under
//! the rules in `docs/security.md` ([`check_static`]). In monitor mode a
//! refusal is logged and counted, then the request is allowed.

use std::net::IpAddr;

use bytes::Bytes;
use std::time::Instant;

use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::client_ip;
use crate::config::{AuthMethod, Policy};
use crate::ingest::otlp::Signal;
use crate::keyring::KeyId;
use crate::reject::Reject;
use crate::respond::{self, Body};
use crate::session::token;
use crate::session::{HeaderSet, Refusal, Sighting, TokenCheck, TokenHash, TokenOwner, TokenUse};
use crate::signature_v2::{self, V2Fields};
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
pub const X_AUTH_SIGNAL: HeaderName = HeaderName::from_static("x-auth-signal");
/// Monitor mode: the reason a request would have been refused.
pub const X_AUTH_MONITOR: HeaderName = HeaderName::from_static("x-auth-monitor");

/// What a successful signature verification established.
#[derive(Debug)]
pub struct Verified<'a> {
    pub request: SignedRequest<'a>,
    pub key_id: KeyId,
    /// The v2 fields, for a v2 signature.
    pub v2: Option<V2Fields<'a>>,
    pub body: BodyCheck,
    /// The signal the signed path named, when it was found on `/`.
    pub signal: Option<Signal>,
    /// Accepted outside the window as a static header set.
    pub static_headers: bool,
}

impl Verified<'_> {
    pub fn version(&self) -> u8 {
        if self.v2.is_some() {
            2
        } else {
            1
        }
    }
}

/// How far a signature covers the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCheck {
    /// v1: the body is not signed.
    NotSigned,
    /// v2, the body is not checked yet (or was not available: forwardAuth
    /// without `forwardBody`).
    HeaderOnly,
    /// v2, the body's SHA-256 matched the signed one.
    Matched,
}

impl BodyCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyCheck::NotSigned => "not_signed",
            BodyCheck::HeaderOnly => "header_only",
            BodyCheck::Matched => "matched",
        }
    }
}

/// Why `/auth` let a request through.
#[derive(Debug)]
enum Allowed<'a> {
    Signed(Verified<'a>),
    Session(TokenOwner),
}

/// Answers one `/auth` request. `body` is what Traefik sent with
/// `forwardBody: true` (`None`: no body). Async only for a session token,
/// which a remote store checks with one round trip; the signed path never
/// waits.
pub async fn forward_auth(
    state: &AppState,
    parts: &Parts,
    peer: IpAddr,
    body: Option<&[u8]>,
) -> Response<Body> {
    let started = Instant::now();
    let client_ip = client_address(state, &parts.headers, peer);
    let policy_name = query_param(parts.uri.query(), "policy");
    let outcome = match select_policy(state, policy_name) {
        Ok(policy) => decide(state, parts, policy, client_ip, body).await,
        Err(reject) => Err(reject),
    };
    let metrics = &state.metrics;
    metrics.auth_total.inc();
    let now = state.now();
    let response = match &outcome {
        Ok(Allowed::Session(owner)) => {
            metrics.auth_success.inc();
            state.status.allowed(None, now);
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
            state.status.allowed(Some(&verified.key_id), now);
            count_verified(state, verified);
            tracing::info!(
                target: "telegate::decision",
                %client_ip,
                session = verified.request.session_id,
                key_id = verified.key_id.as_str(),
                client_version = verified.request.client_version.unwrap_or(""),
                sig = %verified.request.signature_prefix(),
                version = verified.version(),
                nonce = verified.v2.as_ref().map_or("", |v2| v2.nonce_prefix()),
                body = verified.body.as_str(),
                signal = verified.signal.map_or("", Signal::as_str),
                static_headers = verified.static_headers,
                policy = policy_name.unwrap_or("default"),
                result = "allow",
                latency_us = started.elapsed().as_micros() as u64,
                "auth decision"
            );
            allow(verified)
        }
        Err(reject) => {
            metrics.record_reject(reject);
            state.status.denied(reject.reason(), now);
            let headers = &parts.headers;
            let session = header_str(headers, &state.settings.header_names.session_id)
                .or_else(|| header_str(headers, &state.settings.header_names.session_alt))
                .map(|s| truncate(s, signed_request::MAX_FIELD_LEN));
            let monitor = state.settings.monitor_mode;
            tracing::info!(
                target: "telegate::decision",
                %client_ip,
                session = session.unwrap_or(""),
                policy = policy_name.unwrap_or("default"),
                result = "deny",
                reason = reject.reason(),
                status = reject.status().as_u16(),
                monitor,
                latency_us = started.elapsed().as_micros() as u64,
                "auth decision"
            );
            if monitor {
                monitor_allow(reject)
            } else {
                reject.into_response()
            }
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

pub fn select_policy<'s>(state: &'s AppState, name: Option<&str>) -> Result<&'s Policy, Reject> {
    match name {
        None | Some("") | Some("default") => Ok(&state.settings.default_policy),
        Some(name) => state.settings.policies.get(name).ok_or_else(|| {
            tracing::error!(policy = %truncate(name, 64), "forwardAuth asked for a policy that is not configured");
            Reject::UnknownPolicy
        }),
    }
}

async fn decide<'p>(
    state: &'p AppState,
    parts: &'p Parts,
    policy: &Policy,
    client_ip: IpAddr,
    body: Option<&[u8]>,
) -> Result<Allowed<'p>, Reject> {
    state.limits.check(&policy.name, client_ip)?;
    let headers = &parts.headers;
    if policy.allows(AuthMethod::Session) {
        let cookie_name = &state.settings.sessions.cookie_name;
        if let Some(presented) = token::presented(headers, cookie_name) {
            return check_token(state, presented, headers, client_ip)
                .await
                .map(Allowed::Session);
        }
        if !policy.allows(AuthMethod::Hmac) {
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
    let mut verified = if state.settings.ingest.detect_paths.iter().any(|p| p == path) {
        check_signature_detect(state, headers, method, policy, client_ip).await?
    } else {
        check_signature(state, headers, method, path, policy, client_ip).await?
    };
    check_body(&mut verified, body)?;
    if verified.body == BodyCheck::HeaderOnly {
        tracing::debug!(
            session = verified.request.session_id,
            nonce = verified.v2.as_ref().map_or("", |v2| v2.nonce_prefix()),
            "v2 signature checked on headers only: the forwardAuth request carried no body (Traefik forwardBody: true binds it)"
        );
    }
    let bytes = body.map_or(0, |b| b.len() as u64);
    track_session(state, &verified, headers, client_ip, bytes)?;
    Ok(Allowed::Signed(verified))
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
/// rate limit: parse, build policy, window, verify, session (a v2 body is
/// not checked: header-only). `/auth` takes method and path from Traefik's
/// `X-Forwarded-*`; `POST /sessions` from the request itself.
pub async fn verify_signed<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
    method: &'h str,
    path: &'h str,
    policy: &Policy,
    client_ip: IpAddr,
) -> Result<Verified<'h>, Reject> {
    let verified = check_signature(state, headers, method, path, policy, client_ip).await?;
    track_session(state, &verified, headers, client_ip, 0)?;
    Ok(verified)
}

/// Parse, build policy, signature version policy, window, then the v1
/// signature under every live key or the v2 signature under the key its id
/// names. Pure apart from reading the clock, the keyring and (static-header
/// sessions only) the session store.
pub async fn check_signature<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
    method: &'h str,
    path: &'h str,
    policy: &Policy,
    client_ip: IpAddr,
) -> Result<Verified<'h>, Reject> {
    let (verified, _) = check_paths(state, headers, method, &[path], policy, client_ip).await?;
    Ok(verified)
}

/// [`check_signature`] for a request on `/` (or an `ingest.detect_paths`
/// entry): the signature is tried over the metrics, traces and logs paths in
/// turn, and the one that verifies names the signal. A miss costs three
/// HMACs per live key, then 403 `bad_signature`.
pub async fn check_signature_detect<'h>(
    state: &'h AppState,
    headers: &'h HeaderMap,
    method: &'h str,
    policy: &Policy,
    client_ip: IpAddr,
) -> Result<Verified<'h>, Reject> {
    let ingest = &state.settings.ingest;
    let candidates = [
        (Signal::Metrics, ingest.metrics_path.as_str()),
        (Signal::Traces, ingest.traces_path.as_str()),
        (Signal::Logs, ingest.logs_path.as_str()),
    ];
    let paths = candidates.map(|(_, path)| path);
    let (mut verified, index) =
        check_paths(state, headers, method, &paths, policy, client_ip).await?;
    verified.signal = Some(candidates[index].0);
    Ok(verified)
}

/// The shared stages; returns which of `paths` the signature covers. A
/// header set outside the window goes on to the static-header check (the
/// only await: the store may ask its server).
async fn check_paths<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
    method: &'h str,
    paths: &[&'h str],
    policy: &Policy,
    client_ip: IpAddr,
) -> Result<(Verified<'h>, usize), Reject> {
    let (verified, index) = check_paths_now(state, headers, method, paths, policy)?;
    if verified.static_headers {
        check_static(
            state,
            &verified.request,
            &verified.key_id,
            state.now(),
            client_ip,
        )
        .await
        .ok_or(Reject::StaleTimestamp)?;
    }
    Ok((verified, index))
}

/// [`check_paths`] up to the static-header check (synchronous).
fn check_paths_now<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
    method: &'h str,
    paths: &[&'h str],
    policy: &Policy,
) -> Result<(Verified<'h>, usize), Reject> {
    let first = *paths.first().ok_or(Reject::BadSignature)?;
    let options = ParseOptions {
        require_session_id: state.settings.require_session_id,
    };
    let names = &state.settings.header_names;
    let mut request = signed_request::parse(names, headers, method, first, options)?;
    if let Some(required) = &policy.require_build {
        if request.build != Some(required.as_str()) {
            return Err(Reject::UnofficialBuild);
        }
    }
    let v2_names = &state.settings.v2_names;
    let v2 = match signature_v2::version(v2_names, headers)? {
        2 => Some(signature_v2::parse(v2_names, headers)?),
        _ if policy.min_signature_version >= 2 => return Err(Reject::SignatureVersionRequired),
        _ => None,
    };
    if v2.as_ref().is_some_and(|v2| v2.nonce.contains('|')) {
        return Err(Reject::MalformedHeader);
    }
    let now = state.now();
    // Out of the window, only a v1 header set may go on, and only to the
    // static-header check; anything else is refused exactly as before.
    let outside = match window::check(request.timestamp, now, policy.max_skew_secs) {
        Ok(()) => None,
        Err(Reject::StaleTimestamp) if v2.is_none() && state.settings.static_headers.is_some() => {
            Some(Reject::StaleTimestamp)
        }
        Err(reject) => return Err(reject),
    };
    let ring = state.keyring.current();
    let allowed = policy.key_ids.as_deref();
    let mut found = None;
    for (index, path) in paths.iter().enumerate() {
        request.path = path;
        let key = match &v2 {
            Some(v2) => signature_v2::verify(&request, v2, &ring, allowed, now),
            None => verify::verify(&request, &ring, allowed, now),
        };
        match key {
            Ok(key) => {
                found = Some((key.id.clone(), index));
                break;
            }
            Err(Reject::BadSignature) => continue,
            Err(other) => return Err(other),
        }
    }
    let Some((key_id, index)) = found else {
        return Err(outside.unwrap_or(Reject::BadSignature));
    };
    let body = if v2.is_some() {
        BodyCheck::HeaderOnly
    } else {
        BodyCheck::NotSigned
    };
    let verified = Verified {
        key_id,
        request,
        v2,
        body,
        signal: None,
        static_headers: outside.is_some(),
    };
    Ok((verified, index))
}

/// Static-header sessions: a verified v1 header set outside the window
/// passes only when it was first seen inside it, its session is tracked and
/// not revoked, its timestamp is younger than `max_age_secs`, and (with
/// `pin_ip`) it comes from the address that first used it.
pub async fn check_static(
    state: &AppState,
    request: &SignedRequest<'_>,
    key_id: &KeyId,
    now: i64,
    client_ip: IpAddr,
) -> Option<()> {
    let rules = state.settings.static_headers?;
    let refuse = |why: &str| {
        tracing::debug!(
            session = request.session_id,
            sig = %request.signature_prefix(),
            why,
            "static header set refused"
        );
        None
    };
    let age = now.saturating_sub(request.timestamp);
    if age > i64::try_from(rules.max_age_secs).unwrap_or(i64::MAX) {
        return refuse("older than max_age_secs");
    }
    if request.session_id.is_empty() {
        return refuse("no session id");
    }
    let set = header_set(request, key_id);
    let Some(first) = state.sessions.static_sighting(&set, now).await else {
        return refuse("not first seen inside the window, or its session is gone or revoked");
    };
    if rules.pin_ip && first.client_ip != client_ip {
        return refuse("another address than the first use (pin_ip)");
    }
    Some(())
}

fn header_set<'a>(request: &'a SignedRequest<'_>, key_id: &'a KeyId) -> HeaderSet<'a> {
    HeaderSet {
        key_id: key_id.as_str(),
        session_id: request.session_id,
        signed_path: request.path,
        timestamp: request.timestamp,
        signature: &request.signature,
    }
}

/// The counters of an allowed signed request: key use, the detected signal
/// and static-header use.
pub fn count_verified(state: &AppState, verified: &Verified<'_>) {
    let metrics = &state.metrics;
    metrics
        .key_used_total
        .with_label_values(&[verified.key_id.as_str()])
        .inc();
    if let Some(signal) = verified.signal {
        metrics
            .signal_detected_total
            .with_label_values(&[signal.as_str()])
            .inc();
    }
    if verified.static_headers {
        metrics.static_accepted_total.inc();
    }
}

/// Checks a v2 signature's body hash against `body` when there is one
/// (403 `body_mismatch`); v1 and bodiless requests pass unchanged.
pub fn check_body(verified: &mut Verified<'_>, body: Option<&[u8]>) -> Result<(), Reject> {
    if let (Some(v2), Some(body)) = (&verified.v2, body) {
        if !v2.body_matches(body) {
            return Err(Reject::BodyMismatch);
        }
        verified.body = BodyCheck::Matched;
    }
    Ok(())
}

/// Records the verified session (with the body's size, where known);
/// refuses a revoked one or one too many from this address. A request
/// without a session id (allowed only when `require_session_id = false`)
/// has nothing to track.
pub fn track_session(
    state: &AppState,
    verified: &Verified<'_>,
    headers: &HeaderMap,
    client_ip: IpAddr,
    bytes: u64,
) -> Result<(), Reject> {
    let request = &verified.request;
    if request.session_id.is_empty() {
        return Ok(());
    }
    if !state.settings.sessions.track {
        // Tracking off (`sessions.track = false`): revocations still hold.
        if state.sessions.is_revoked(request.session_id, state.now()) {
            return Err(Reject::SessionRevoked);
        }
        return Ok(());
    }
    let sighting = Sighting {
        session_id: request.session_id,
        client_ip,
        user_agent: header_str(headers, &http::header::USER_AGENT),
        client_version: request.client_version,
        key_id: verified.key_id.as_str(),
        bytes,
        now: state.now(),
    };
    match state.sessions.observe(&sighting) {
        Ok(created) => {
            if created {
                state
                    .metrics
                    .sessions_created_total
                    .with_label_values(&["signed"])
                    .inc();
            }
            remember_static(state, verified, client_ip, sighting.now);
            Ok(())
        }
        Err(Refusal::Revoked) => Err(Reject::SessionRevoked),
        Err(Refusal::TooManyForIp) => Err(Reject::TooManySessions),
    }
}

/// Static-header sessions: the first use of a v1 header set inside the
/// window is stored with its session (the store keeps the first address).
fn remember_static(state: &AppState, verified: &Verified<'_>, client_ip: IpAddr, now: i64) {
    let Some(rules) = state.settings.static_headers else {
        return;
    };
    if verified.v2.is_some() || verified.static_headers {
        return;
    }
    let set = header_set(&verified.request, &verified.key_id);
    let max_age = std::time::Duration::from_secs(rules.max_age_secs);
    state
        .sessions
        .remember_static(&set, client_ip, now, max_age);
}

/// Monitor mode: the request goes on; the headers say what was decided.
fn monitor_allow(reject: &Reject) -> Response<Body> {
    let mut response = respond::with_body(
        StatusCode::OK,
        "application/json",
        Bytes::from_static(br#"{"status":"monitor"}"#),
    );
    let headers = response.headers_mut();
    headers.insert(X_AUTH_STATUS, HeaderValue::from_static("monitor"));
    headers.insert(X_AUTH_MONITOR, HeaderValue::from_static(reject.reason()));
    response
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
    if let Some(signal) = verified.signal {
        headers.insert(X_AUTH_SIGNAL, HeaderValue::from_static(signal.as_str()));
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
