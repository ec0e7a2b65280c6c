//! `/auth` (and `/` with `X-Forwarded-Uri`): Traefik's forwardAuth, and
//! the same question from Caddy's `forward_auth` and nginx's `auth_request`
//! (which name the original request in `auth.forwarded_*_header`). The
//! request is admitted through the one pipeline ([`admit`], route
//! `ForwardAuth`: method and path from `X-Forwarded-*`, the policy from
//! `?policy=`, a body only when Traefik sends one with `forwardBody: true`),
//! observed once, then answered. Traefik copies a non-2xx answer (status,
//! body, `Retry-After`) back to the client and, on 2xx, the `X-Auth-*`
//! headers named in `authResponseHeaders`. In monitor mode a refusal is
//! logged and counted, then the request is allowed.

use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use hyper::body::Body as HttpBody;

use super::error::{render, Format};
use super::respond::{self, Body};
use super::state::AppState;
use crate::pipeline::admission::{
    admit, Admitted, Attempt, BodyLimits, BodyStage, Credential, Route,
};
use crate::pipeline::body::BoxError;
use crate::pipeline::observe::Decision;
use crate::pipeline::session_gate::TokenOwner;
use crate::pipeline::signature::Verified;
use crate::protocol::abuse::{mark_deprecated, KeyState};
use crate::protocol::grants;
use crate::protocol::headers::{
    query_param, X_AUTH_CLIENT_VERSION, X_AUTH_KEY_ID, X_AUTH_MONITOR, X_AUTH_PERMISSIONS,
    X_AUTH_ROLES, X_AUTH_SESSION_ID, X_AUTH_SIGNAL, X_AUTH_STATUS, X_AUTH_USER,
};
use crate::protocol::reject::Reject;

/// Answers one forwardAuth request.
pub async fn forward_auth<B>(
    state: &AppState,
    parts: &Parts,
    body: B,
    peer: IpAddr,
) -> Response<Body>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let now = state.now();
    let route = Route::ForwardAuth {
        policy: query_param(parts.uri.query(), "policy"),
    };
    let limits = BodyLimits::ingest(&state.settings);
    let attempt = Attempt {
        route,
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        peer,
        body: BodyStage::IfAnnounced(body, limits),
        now,
    };
    let stages = state.stages();
    let admission = admit(&stages, attempt).await;
    let monitor = state.settings.monitor_mode && admission.outcome.is_err();
    state.observer().observe(&Decision {
        route,
        admission: &admission,
        headers: &parts.headers,
        monitor,
        started,
        now,
        delivery: None,
    });
    match &admission.outcome {
        Ok(admitted) => allow(admitted),
        Err(reject) if monitor => monitor_allow(reject),
        Err(reject) => render(reject, Format::Json),
    }
}

fn allow(admitted: &Admitted<'_>) -> Response<Body> {
    match &admitted.credential {
        Credential::Signed(verified) => allow_signed(verified),
        Credential::Session(owner) => allow_session(owner),
        Credential::Excluded => allow_excluded(),
    }
}

/// An excluded path: allowed with no credential, so no identity to hand on
/// (Traefik strips any `X-Auth-*` the client sent).
fn allow_excluded() -> Response<Body> {
    allowed_as("excluded", br#"{"status":"excluded"}"#)
}

/// A 200 with a static body and `X-Auth-Status: status`.
fn allowed_as(status: &'static str, body: &'static [u8]) -> Response<Body> {
    let mut response =
        respond::with_body(StatusCode::OK, "application/json", Bytes::from_static(body));
    let headers = response.headers_mut();
    headers.insert(X_AUTH_STATUS, HeaderValue::from_static(status));
    response
}

/// Monitor mode: the request goes on; the headers say what was decided.
fn monitor_allow(reject: &Reject) -> Response<Body> {
    let mut response = allowed_as("monitor", br#"{"status":"monitor"}"#);
    let headers = response.headers_mut();
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
    // Names are plain ASCII (`protocol::grants`): always a valid value.
    let grants = &owner.grants;
    for (name, list) in [
        (X_AUTH_ROLES, &grants.roles),
        (X_AUTH_PERMISSIONS, &grants.permissions),
    ] {
        if let Some(Ok(value)) = grants::join(list).map(HeaderValue::try_from) {
            headers.insert(name, value);
        }
    }
    response
}

fn allow_signed(verified: &Verified<'_>) -> Response<Body> {
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
    if verified.key_state == KeyState::Deprecated {
        mark_deprecated(headers);
    }
    response
}
