//! `GET /bans` and `DELETE /bans/{subject}`: the escalating bans, for an
//! admin (the session API's bearer token, compared in constant time, and
//! its gate first: client IP, the API's own rate limit). A subject is
//! `address:192.0.2.1`, `address:2001:db8::` (a /64) or `session:ID`,
//! percent-encoded in the path. With `[bans]` absent the list is empty and
//! says so. Refusals leave through `Observer::api_refused` like the
//! session API's.

use std::net::IpAddr;

use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde_json::json;

use super::respond::{self, Body};
use super::sessions::{percent_decode, require_admin, ApiError, MAX_PAGE};
use super::state::AppState;
use crate::pipeline::abuse::bans::Subject;
use crate::pipeline::admission::session_api_gate;
use crate::pipeline::observe::ApiRefusal;
use crate::protocol::headers::query_param;

const DEFAULT_PAGE: usize = 100;

/// Whether `path` belongs to this API.
pub fn handles(path: &str) -> bool {
    path == "/bans" || path.starts_with("/bans/")
}

/// Answers a request whose path [`handles`] accepted.
pub async fn route(state: &AppState, parts: &Parts, peer: IpAddr) -> Response<Body> {
    let path = parts.uri.path();
    let template = if path == "/bans" {
        "/bans"
    } else {
        "/bans/{subject}"
    };
    let (client_ip, gate) = session_api_gate(&state.stages(), peer, &parts.headers);
    let outcome = match gate {
        Ok(()) => match require_admin(state, &parts.headers) {
            Ok(()) => dispatch(state, parts).await,
            Err(err) => Err(err),
        },
        Err(reject) => Err(ApiError::Rejected(reject)),
    };
    match outcome {
        Ok(response) => response,
        Err(err) => {
            let reason = match &err {
                ApiError::Rejected(reject) => Some(reject.reason()),
                other => other.credential_failure(),
            };
            if let Some(reason) = reason {
                state.observer().api_refused(&ApiRefusal {
                    client_ip,
                    method: parts.method.as_str(),
                    route: template,
                    reason,
                    status: err.status().as_u16(),
                });
            }
            err.into_response()
        }
    }
}

async fn dispatch(state: &AppState, parts: &Parts) -> Result<Response<Body>, ApiError> {
    let now = state.now();
    let bans = state.abuse.bans.as_ref();
    match (parts.uri.path().strip_prefix("/bans/"), &parts.method) {
        (None, &Method::GET) => {
            let limit = match query_param(parts.uri.query(), "limit").map(str::parse::<usize>) {
                None => DEFAULT_PAGE,
                Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
                Some(_) => return Err(ApiError::BadQuery("limit must be 1..1000")),
            };
            let listed = bans.map(|b| b.list(now, limit)).unwrap_or_default();
            Ok(respond::json(
                StatusCode::OK,
                &json!({"enabled": bans.is_some(), "bans": listed}),
            ))
        }
        (Some(raw), &Method::DELETE) if !raw.is_empty() => {
            let text = percent_decode(raw, false).ok_or(ApiError::BadQuery(
                "the subject is not valid percent-encoded UTF-8",
            ))?;
            let subject = Subject::parse(&text).ok_or(ApiError::BadQuery(
                "the subject must be address:IP or session:ID",
            ))?;
            // An address is banned by its limit key (IPv6: its prefix).
            let subject = match subject {
                Subject::Address(ip) => Subject::Address(state.abuse.address(ip)),
                session => session,
            };
            let lifted = state.abuse.lift(&subject, now).await;
            if !lifted {
                return Ok(respond::json_error(
                    StatusCode::NOT_FOUND,
                    "No ban in force for this subject",
                    "not_found",
                ));
            }
            Ok(respond::json(
                StatusCode::OK,
                &json!({"subject": subject.to_string(), "lifted": true}),
            ))
        }
        (Some(""), _) => Err(ApiError::NotFound),
        _ => Err(ApiError::MethodNotAllowed),
    }
}
