//! Response builders: JSON bodies with a machine-readable `reason`.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

pub type Body = Full<Bytes>;

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    reason: &'a str,
}

/// `{"error": "...", "reason": "..."}` with the given status.
pub fn json_error(status: StatusCode, error: &str, reason: &str) -> Response<Body> {
    json(status, &ErrorBody { error, reason })
}

/// Serializes `value` as the JSON body of a response.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => with_body(status, "application/json", body.into()),
        Err(err) => {
            tracing::error!(error = %err, "could not serialize a response body");
            internal_error()
        }
    }
}

/// An opaque 500: the details go to the log, never to the client.
pub fn internal_error() -> Response<Body> {
    with_body(
        StatusCode::INTERNAL_SERVER_ERROR,
        "application/json",
        Bytes::from_static(br#"{"error":"Internal error","reason":"internal_error"}"#),
    )
}

pub fn with_body(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
