//! `/sessions` and `/users/{user}/sessions`: the session API.
//!
//! Who may call what: an admin (`Authorization: Bearer <admin token>`, read
//! from `admin.token_file`, compared in constant time) may call every route;
//! without a configured token the admin side is off (403 `admin_disabled`).
//! The owner of an issued session (its own token as `Authorization: Bearer`
//! or `X-Session-ID`; never a cookie, so a browser cannot be made to call
//! these) may read, touch, extend, refresh and delete it. `POST /sessions`
//! is open to an admin and to a signed client ([`tokens`]). A token for
//! another session is 403 `not_owner`, whether or not the asked-for id
//! exists, so tokens cannot probe for ids. `GET /sessions/validate`
//! answers the caller's own session by whatever token it presents
//! ([`validate`]).

mod access;
mod body;
mod create_body;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod tokens;
mod validate;

use std::net::IpAddr;

use http::request::Parts;
use http::{Method, Response, StatusCode};
use hyper::body::Body as HttpBody;
use serde_json::json;

pub use error::ApiError;

pub(crate) use access::require_admin;
use access::{owner_or_admin, Access};

use crate::http::respond::{self, Body};
use crate::http::state::AppState;
use crate::pipeline::admission::session_api_gate;
use crate::pipeline::body::BoxError;
use crate::pipeline::observe::ApiRefusal;
use crate::protocol::headers::query_param;
use crate::session::{ListFilter, Lookup, SessionKind};
pub(crate) use body::percent_decode;

/// Most records one page may hold.
pub const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 100;

/// Whether `path` belongs to this API.
pub fn handles(path: &str) -> bool {
    path == "/sessions"
        || path.starts_with("/sessions/")
        || path.starts_with("/users/")
        || path == DEAD_LETTERS
}

/// The spool's dead letters, an admin route behind the API's gate.
const DEAD_LETTERS: &str = "/spool/dead-letters";

/// The API's routes.
#[derive(Debug, Clone, Copy)]
enum Route<'a> {
    Sessions,
    Stats,
    /// `GET /sessions/validate`: the caller's own session.
    Validate,
    One(&'a str),
    /// `activity`, `extend` or `refresh` of one session.
    Action(&'a str, &'a str),
    User(&'a str),
    DeadLetters,
    NotFound,
}

impl Route<'_> {
    /// The route as logged: a template, never the caller's id or user.
    fn template(&self) -> &'static str {
        match self {
            Route::Sessions => "/sessions",
            Route::Stats => "/sessions/stats",
            Route::Validate => "/sessions/validate",
            Route::One(_) => "/sessions/{id}",
            Route::Action(_, "activity") => "/sessions/{id}/activity",
            Route::Action(_, "extend") => "/sessions/{id}/extend",
            Route::Action(..) => "/sessions/{id}/refresh",
            Route::User(_) => "/users/{user}/sessions",
            Route::DeadLetters => DEAD_LETTERS,
            Route::NotFound => "other",
        }
    }
}

fn parse_route(path: &str) -> Route<'_> {
    if path == DEAD_LETTERS {
        return Route::DeadLetters;
    }
    if let Some(rest) = path.strip_prefix("/users/") {
        return match rest.strip_suffix("/sessions") {
            Some(user) if !user.is_empty() && !user.contains('/') => Route::User(user),
            _ => Route::NotFound,
        };
    }
    let Some(rest) = path.strip_prefix("/sessions") else {
        return Route::NotFound;
    };
    match rest.trim_start_matches('/').split('/').collect::<Vec<_>>()[..] {
        [""] => Route::Sessions,
        ["stats"] => Route::Stats,
        ["validate"] => Route::Validate,
        [id] => Route::One(id),
        [id, action @ ("activity" | "extend" | "refresh")] if !id.is_empty() => {
            Route::Action(id, action)
        }
        _ => Route::NotFound,
    }
}

/// Answers a request whose path [`handles`] accepted: the API's rate limit
/// first, then the route. Only `POST /sessions` and `extend` read the body,
/// and no more than `sessions.max_body_bytes`. A refusal by the rate limit
/// or at the credential is observed ([`Observer::api_refused`]).
///
/// [`Observer::api_refused`]: crate::pipeline::observe::Observer::api_refused
pub async fn route<B>(state: &AppState, parts: Parts, body: B, peer: IpAddr) -> Response<Body>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let route = parse_route(parts.uri.path());
    let (client_ip, gate) = session_api_gate(&state.stages(), peer, &parts.headers);
    let outcome = match &gate {
        Ok(()) => dispatch(state, &parts, route, body, peer).await,
        Err(reject) => Err(ApiError::Rejected(*reject)),
    };
    // A signed `POST /sessions` refused by admission was observed there, as
    // a decision; only the gate's and the tokens' refusals are observed here.
    let observed = match (&gate, &outcome) {
        (Err(reject), _) => Some(reject.reason()),
        (Ok(()), Err(err)) => err.credential_failure(),
        (Ok(()), Ok(_)) => None,
    };
    if let (Some(reason), Err(err)) = (observed, &outcome) {
        state.observer().api_refused(&ApiRefusal {
            client_ip,
            method: parts.method.as_str(),
            route: route.template(),
            reason,
            status: err.status().as_u16(),
        });
    }
    match outcome {
        Ok(response) => response,
        Err(err) => {
            if matches!(err, ApiError::Store(_)) {
                state
                    .metrics
                    .store_errors_total
                    .with_label_values(&["api"])
                    .inc();
            }
            err.into_response()
        }
    }
}

async fn dispatch<B>(
    state: &AppState,
    parts: &Parts,
    route: Route<'_>,
    body: B,
    peer: IpAddr,
) -> Result<Response<Body>, ApiError>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let headers = &parts.headers;
    let method = &parts.method;
    // The one reading of the clock for this request.
    let now = state.now();
    match route {
        Route::Sessions => match *method {
            Method::GET => {
                require_admin(state, headers)?;
                list(state, parts, now).await
            }
            Method::POST => tokens::create(state, parts, body, peer, now).await,
            Method::DELETE => {
                require_admin(state, headers)?;
                wipe(state).await
            }
            _ => Err(ApiError::MethodNotAllowed),
        },
        Route::Stats => match *method {
            Method::GET => {
                require_admin(state, headers)?;
                let stats = state.sessions.stats(now).await?;
                Ok(respond::json(StatusCode::OK, &stats))
            }
            _ => Err(ApiError::MethodNotAllowed),
        },
        Route::Validate => match *method {
            Method::GET => validate::validate(state, headers, now).await,
            _ => Err(ApiError::MethodNotAllowed),
        },
        Route::One(id) => {
            let id = &session_segment(id)?;
            match *method {
                Method::GET => {
                    owner_or_admin(state, headers, id, now).await?;
                    read(state, id, now).await
                }
                Method::DELETE => {
                    let access = owner_or_admin(state, headers, id, now).await?;
                    delete(state, access, id, now).await
                }
                _ => Err(ApiError::MethodNotAllowed),
            }
        }
        Route::Action(id, action) => {
            if *method != Method::POST {
                return Err(ApiError::MethodNotAllowed);
            }
            let id = &session_segment(id)?;
            owner_or_admin(state, headers, id, now).await?;
            match action {
                "activity" => tokens::activity(state, id, now).await,
                "extend" => tokens::extend(state, headers, body, id, now).await,
                _ => tokens::refresh(state, id, now).await,
            }
        }
        Route::User(user) => match *method {
            Method::DELETE => {
                require_admin(state, headers)?;
                delete_user(state, user).await
            }
            _ => Err(ApiError::MethodNotAllowed),
        },
        Route::DeadLetters => match *method {
            Method::GET => {
                require_admin(state, headers)?;
                crate::http::spool::dead_letters(state, parts).await
            }
            _ => Err(ApiError::MethodNotAllowed),
        },
        Route::NotFound => Err(ApiError::NotFound),
    }
}

/// A session id as named in a path: percent-decoded, as `/users/{user}` is,
/// so an id with characters a URL must escape (UTF-8) is reachable, and an
/// id stored before the session-id rule (`evil/one`) can still be revoked
/// as `evil%2Fone`.
fn session_segment(raw: &str) -> Result<String, ApiError> {
    percent_decode(raw, false).ok_or(ApiError::BadQuery(
        "the session id is not valid percent-encoded UTF-8",
    ))
}

async fn read(state: &AppState, id: &str, now: i64) -> Result<Response<Body>, ApiError> {
    match state.sessions.lookup(id, now).await? {
        Lookup::Live(record) => Ok(respond::json(StatusCode::OK, &record)),
        Lookup::Expired(_) => Err(ApiError::Expired),
        Lookup::Unknown => Err(ApiError::NotFound),
    }
}

/// The owner logs out (the session is deleted); an admin revokes (a signed
/// session stays readable as revoked, an issued one is deleted and its
/// token refused as revoked).
async fn delete(
    state: &AppState,
    access: Access,
    id: &str,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    let pet_name = crate::session::petname::pet_name(id);
    if access == Access::Owner {
        if !state.sessions.delete(id).await? {
            return Err(ApiError::NotFound);
        }
        tracing::info!(session = id, %pet_name, "session logged out");
        return Ok(respond::json(
            StatusCode::OK,
            &json!({"session_id": id, "deleted": true}),
        ));
    }
    let kind = state
        .sessions
        .revoke(id, now)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.metrics.sessions_revoked_total.inc();
    tracing::info!(session = id, %pet_name, kind = kind.as_str(), "session revoked");
    let deleted = kind == SessionKind::Issued;
    Ok(respond::json(
        StatusCode::OK,
        &json!({"session_id": id, "revoked": true, "deleted": deleted}),
    ))
}

async fn list(state: &AppState, parts: &Parts, now: i64) -> Result<Response<Body>, ApiError> {
    let query = parts.uri.query();
    let kind = match query_param(query, "kind") {
        None | Some("") => None,
        Some("signed") => Some(SessionKind::Signed),
        Some("issued") => Some(SessionKind::Issued),
        Some(_) => return Err(ApiError::BadQuery("kind must be signed or issued")),
    };
    let active = match query_param(query, "active") {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiError::BadQuery("active must be true or false")),
    };
    let limit = match query_param(query, "limit").map(str::parse::<usize>) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => return Err(ApiError::BadQuery("limit must be 1..1000")),
    };
    let user = match query_param(query, "user").filter(|u| !u.is_empty()) {
        None => None,
        Some(text) => Some(percent_decode(text, true).ok_or(ApiError::BadQuery(
            "user is not valid percent-encoded UTF-8",
        ))?),
    };
    let filter = ListFilter {
        kind,
        user,
        active,
        limit,
        cursor: query_param(query, "cursor")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    };
    let page = state.sessions.list(&filter, now).await?;
    Ok(respond::json(StatusCode::OK, &page))
}

async fn delete_user(state: &AppState, user: &str) -> Result<Response<Body>, ApiError> {
    let user = percent_decode(user, false).ok_or(ApiError::BadQuery(
        "user is not valid percent-encoded UTF-8",
    ))?;
    let deleted = state.sessions.delete_user(&user).await?;
    tracing::info!(deleted, "a user's sessions deleted");
    Ok(respond::json(
        StatusCode::OK,
        &json!({"user_id": user, "deleted": deleted}),
    ))
}

async fn wipe(state: &AppState) -> Result<Response<Body>, ApiError> {
    let deleted = state.sessions.wipe().await?;
    tracing::warn!(deleted, "all sessions, tokens and revocations wiped");
    Ok(respond::json(StatusCode::OK, &json!({"deleted": deleted})))
}

#[cfg(test)]
mod tests;
