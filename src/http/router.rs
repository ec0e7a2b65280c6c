//! Maps method and path to a handler. Small on purpose: a `match`, no
//! framework. The session API, the OTLP ingest routes and `/auth` with a
//! body (Traefik's `forwardBody`) read bodies, always capped, and only after
//! the credential checks.

use std::net::IpAddr;

use http::{HeaderValue, Method, Request, Response, StatusCode};

use super::respond::{self, Body};
use super::state::AppState;
use super::{auth, bans, ingest, listener, ops, sessions, status};
use crate::pipeline::body::BoxError;

/// Handles one request.
///
/// A refusal usually comes before the body is read (nothing is read for a
/// request that fails the checks), and a connection with an unread body
/// cannot carry the next request: the refusal then says `Connection:
/// close`, so a proxy that pools connections (Traefik) does not send its
/// next request down a connection this side is closing, which it would
/// answer 502.
pub async fn route<B>(state: AppState, request: Request<B>, peer: IpAddr) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<BoxError>,
{
    let http1 = request.version() < http::Version::HTTP_2;
    let has_body = !request.body().is_end_stream()
        && request.headers().get(http::header::CONTENT_LENGTH)
            != Some(&HeaderValue::from_static("0"));
    let mut response = dispatch(state, request, peer).await;
    if http1 && has_body && response.status().as_u16() >= 400 {
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn dispatch<B>(state: AppState, request: Request<B>, peer: IpAddr) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let state = &state;
    if !listener::serves(state.role(), &parts) {
        return respond::json_error(StatusCode::NOT_FOUND, "Not found", "not_found");
    }
    let path = parts.uri.path();
    if sessions::handles(path) {
        return sessions::route(state, parts, body, peer).await;
    }
    if bans::handles(path) {
        return bans::route(state, &parts, peer).await;
    }
    if let Some(signal) = crate::ingest::signal_for(&state.settings, path) {
        return ingest::handle(state, parts, body, peer, Some(signal), None).await;
    }
    let forwarded = parts.headers.contains_key(&state.settings.forwarded.uri);
    if !forwarded && parts.method == Method::POST && crate::ingest::detects(&state.settings, path) {
        return ingest::handle(state, parts, body, peer, None, None).await;
    }
    match (path, &parts.method) {
        ("/auth", _) => auth::forward_auth(state, &parts, body, peer).await,
        // The original deployment's Traefik address has no path: it calls
        // `/` with X-Forwarded-Uri (`auth.forwarded_uri_header`). A
        // browser's `GET /` gets the status page.
        ("/", _) if forwarded => auth::forward_auth(state, &parts, body, peer).await,
        ("/", &Method::GET | &Method::HEAD) => status::index(state).await,
        ("/waiting", &Method::GET | &Method::HEAD) => status::waiting(state).await,
        ("/health", &Method::GET | &Method::HEAD) => ops::health(),
        ("/ready", &Method::GET | &Method::HEAD) => ops::ready(state),
        ("/metrics", &Method::GET) => ops::metrics(state),
        ("/health" | "/ready" | "/metrics" | "/" | "/waiting", _) => respond::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "method_not_allowed",
        ),
        _ => respond::json_error(StatusCode::NOT_FOUND, "Not found", "not_found"),
    }
}
