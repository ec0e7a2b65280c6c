//! `GET /spool/dead-letters`: the exports the collector rejected, for an
//! admin (the session API's gate and admin token check run first, in
//! [`super::sessions`]). Metadata only, never a payload; one bounded page,
//! oldest first, `?after=<id>` for the next (`next_after` in the answer).

use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::json;

use super::respond::{self, Body};
use super::sessions::ApiError;
use super::state::AppState;
use crate::ingest::spool::MAX_PAGE;
use crate::protocol::headers::query_param;

const DEFAULT_PAGE: usize = 100;

pub async fn dead_letters(state: &AppState, parts: &Parts) -> Result<Response<Body>, ApiError> {
    let Some(spool) = &state.ingest.spool else {
        return Err(ApiError::SpoolOff);
    };
    let query = parts.uri.query();
    let limit = match query_param(query, "limit").map(str::parse::<usize>) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => return Err(ApiError::BadQuery("limit must be 1..500")),
    };
    let after = match query_param(query, "after").map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n,
        Some(_) => return Err(ApiError::BadQuery("after must be a dead letter id")),
    };
    let letters = spool
        .dead_letters(after, limit)
        .await
        .map_err(ApiError::Internal)?;
    let next_after = (letters.len() == limit)
        .then(|| letters.last().map(|l| l.id))
        .flatten();
    Ok(respond::json(
        StatusCode::OK,
        &json!({
            "dead_letters": letters,
            "dead_lettered_total": spool.dead_lettered_total(),
            "next_after": next_after,
        }),
    ))
}
