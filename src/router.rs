//! Maps method and path to a handler. Small on purpose: a `match`, no
//! framework.

use std::net::IpAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::auth;
use crate::ingest;
use crate::respond::{self, Body};
use crate::session;
use crate::state::AppState;
use crate::status;

/// Handles one request. The session API, the OTLP ingest routes and `/auth`
/// with a body (Traefik's `forwardBody`) read bodies, always capped.
pub async fn route<B>(state: AppState, request: Request<B>, peer: IpAddr) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let state = &state;
    if session::api::handles(parts.uri.path()) {
        return session::api::route(state, parts, body, peer).await;
    }
    if let Some(signal) = ingest::signal_for(&state.settings, parts.uri.path()) {
        return ingest::handle(state, parts, body, peer, Some(signal)).await;
    }
    let forwarded = parts.headers.contains_key(&auth::X_FORWARDED_URI);
    if !forwarded
        && parts.method == Method::POST
        && ingest::detects(&state.settings, parts.uri.path())
    {
        return ingest::handle(state, parts, body, peer, None).await;
    }
    match (parts.uri.path(), &parts.method) {
        ("/auth", _) => ingest::forward_auth(state, &parts, body, peer).await,
        // The original deployment's Traefik address has no path: it calls
        // `/` with X-Forwarded-Uri. A browser's `GET /` gets the status page.
        ("/", _) if forwarded => ingest::forward_auth(state, &parts, body, peer).await,
        ("/", &Method::GET | &Method::HEAD) => status::index(state).await,
        ("/waiting", &Method::GET | &Method::HEAD) => status::waiting(state).await,
        ("/health", &Method::GET | &Method::HEAD) => {
            respond::json(StatusCode::OK, &json!({"status": "healthy"}))
        }
        ("/ready", &Method::GET | &Method::HEAD) => ready(state),
        ("/metrics", &Method::GET) => metrics(state),
        ("/health" | "/ready" | "/metrics" | "/" | "/waiting", _) => respond::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "method_not_allowed",
        ),
        _ => respond::json_error(StatusCode::NOT_FOUND, "Not found", "not_found"),
    }
}

/// 503 until the keyring holds a live key, and while the session store
/// cannot answer. A development key is ready but says so, loudly, in the
/// body.
fn ready(state: &AppState) -> Response<Body> {
    let ring = state.keyring.current();
    let now = state.now();
    let live: Vec<&str> = ring.live(now).map(|k| k.id.as_str()).collect();
    let mut warnings = Vec::new();
    if ring.uses_development_key() {
        warnings.push("DEVELOPMENT KEY IN USE: the shipped public key verifies requests; configure your own keys");
    }
    if live.is_empty() {
        return respond::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not_ready", "reason": "no_live_key", "live_keys": live, "warnings": warnings}),
        );
    }
    if !state.sessions.healthy() {
        return respond::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not_ready", "reason": "store_unavailable", "live_keys": live, "warnings": warnings}),
        );
    }
    respond::json(
        StatusCode::OK,
        &json!({"status": "ready", "live_keys": live, "warnings": warnings}),
    )
}

fn metrics(state: &AppState) -> Response<Body> {
    for (kind, count) in state.sessions.active(state.now()) {
        state
            .metrics
            .sessions_active
            .with_label_values(&[kind.as_str()])
            .set(count as i64);
    }
    state
        .metrics
        .ratelimit_keys
        .set(state.limits.key_count() as i64);
    match state.metrics.render() {
        Ok(text) => respond::with_body(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(text),
        ),
        Err(err) => {
            tracing::error!(error = %err, "could not render metrics");
            respond::internal_error()
        }
    }
}
