//! The session API's parsers of outside bytes, public only so the fuzz
//! harness ([`crate::fuzzing`]) can reach them: the route a path names, the
//! percent-decoding of path and query segments, and the two JSON bodies.
//! Nothing here is an API for anyone else.

use super::create_body::CreateBody;
pub use super::create_body::MAX_USER_ID_CHARS;
use super::tokens::ExtendBody;
use super::{parse_route, ApiError, Route};

pub use super::body::percent_decode;

/// The segments the route of `path` takes from it (session id, action,
/// user), or `None` when no route matches.
pub fn route_segments(path: &str) -> Option<Vec<&str>> {
    Some(match parse_route(path) {
        Route::Sessions | Route::Stats | Route::Validate | Route::DeadLetters => Vec::new(),
        Route::One(id) => vec![id],
        Route::Action(id, action) => vec![id, action],
        Route::User(user) => vec![user],
        Route::NotFound => return None,
    })
}

/// A `POST /sessions` body as the handler reads it: the checked user id.
pub fn create_body(bytes: &[u8]) -> Result<Option<String>, ApiError> {
    CreateBody::parse(bytes).map(|body| body.user_id)
}

/// An `extend` body as the handler reads it: the seconds asked for.
pub fn extend_body(bytes: &[u8]) -> Result<u64, ApiError> {
    ExtendBody::parse(bytes).map(|body| body.additional_seconds)
}
