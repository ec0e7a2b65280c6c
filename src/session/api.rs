//! `/sessions`: the operator's view of sessions. Admin routes need
//! `Authorization: Bearer <admin token>` (the token is read from
//! `admin.token_file`, compared in constant time); without a configured
//! token the API is off (403 `admin_disabled`).

use http::request::Parts;
use http::{header, Method, Response, StatusCode};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{ListFilter, Lookup, SessionKind, StoreError};
use crate::auth::query_param;
use crate::respond::{self, Body};
use crate::state::AppState;

/// Most records one page may hold.
pub const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 100;

/// Routes `/sessions...`; `None` when the path is not ours.
pub async fn route(state: &AppState, parts: &Parts) -> Option<Response<Body>> {
    let path = parts.uri.path();
    let rest = path.strip_prefix("/sessions")?;
    let response = match (rest, &parts.method) {
        ("" | "/", &Method::GET) => admin(state, parts, list(state, parts)).await,
        ("/stats", &Method::GET) => admin(state, parts, stats(state)).await,
        (id, method) if id.len() > 1 && !id[1..].contains('/') => {
            let id = &id[1..];
            match *method {
                Method::GET => admin(state, parts, read(state, id)).await,
                Method::DELETE => admin(state, parts, revoke(state, id)).await,
                _ => method_not_allowed(),
            }
        }
        _ => return None,
    };
    Some(response)
}

/// Runs `handler` for an admin, or answers 401/403.
async fn admin(
    state: &AppState,
    parts: &Parts,
    handler: impl std::future::Future<Output = Result<Response<Body>, StoreError>>,
) -> Response<Body> {
    let Some(expected) = state.admin_token.as_ref() else {
        return respond::json_error(
            StatusCode::FORBIDDEN,
            "The session API is off: no admin token is configured",
            "admin_disabled",
        );
    };
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        None => respond::json_error(
            StatusCode::UNAUTHORIZED,
            "Admin token required",
            "admin_token_required",
        ),
        Some(token) if !bool::from(token.as_bytes().ct_eq(expected.expose())) => {
            respond::json_error(
                StatusCode::FORBIDDEN,
                "Invalid admin token",
                "bad_admin_token",
            )
        }
        Some(_) => match handler.await {
            Ok(response) => response,
            Err(err) => {
                state
                    .metrics
                    .store_errors_total
                    .with_label_values(&["api"])
                    .inc();
                tracing::warn!(error = %err, "session store unavailable");
                let mut response = respond::json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Session store unavailable",
                    "store_unavailable",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, http::HeaderValue::from_static("5"));
                response
            }
        },
    }
}

async fn read(state: &AppState, id: &str) -> Result<Response<Body>, StoreError> {
    Ok(match state.sessions.lookup(id, state.now()).await? {
        Lookup::Live(record) => respond::json(StatusCode::OK, &record),
        Lookup::Expired(_) => {
            respond::json_error(StatusCode::GONE, "Session expired", "session_expired")
        }
        Lookup::Unknown => not_found(),
    })
}

async fn revoke(state: &AppState, id: &str) -> Result<Response<Body>, StoreError> {
    if !state.sessions.revoke(id, state.now()).await? {
        return Ok(not_found());
    }
    state.metrics.sessions_revoked_total.inc();
    tracing::info!(session = id, pet_name = %super::petname::pet_name(id), "session revoked");
    Ok(respond::json(
        StatusCode::OK,
        &json!({"session_id": id, "revoked": true}),
    ))
}

async fn list(state: &AppState, parts: &Parts) -> Result<Response<Body>, StoreError> {
    let query = parts.uri.query();
    let kind = match query_param(query, "kind") {
        None | Some("") => None,
        Some("signed") => Some(SessionKind::Signed),
        Some("issued") => Some(SessionKind::Issued),
        Some(_) => return Ok(bad_query("kind must be signed or issued")),
    };
    let active = match query_param(query, "active") {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Ok(bad_query("active must be true or false")),
    };
    let limit = match query_param(query, "limit").map(str::parse::<usize>) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => return Ok(bad_query("limit must be 1..1000")),
    };
    let filter = ListFilter {
        kind,
        active,
        limit,
        cursor: query_param(query, "cursor")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    };
    let page = state.sessions.list(&filter, state.now()).await?;
    Ok(respond::json(StatusCode::OK, &page))
}

async fn stats(state: &AppState) -> Result<Response<Body>, StoreError> {
    let stats = state.sessions.stats(state.now()).await?;
    Ok(respond::json(StatusCode::OK, &stats))
}

fn not_found() -> Response<Body> {
    respond::json_error(StatusCode::NOT_FOUND, "No such session", "not_found")
}

fn bad_query(message: &str) -> Response<Body> {
    respond::json_error(StatusCode::BAD_REQUEST, message, "bad_query")
}

fn method_not_allowed() -> Response<Body> {
    respond::json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "method_not_allowed",
    )
}
