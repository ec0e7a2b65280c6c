//! The OTLP/gRPC listener (`ingest.grpc_listen`): the three unary Export
//! methods, answered by the OTLP/HTTP ingest route itself.
//!
//! A thin HTTP/2 service rather than tonic's generated server traits: a
//! tonic service gets the message already decoded and its metadata apart
//! from the bytes, while admission needs the request's headers, its path
//! and the body as a stream it reads only once the signature holds. So a
//! call becomes the ingest request it is: the `X-KMS-*` metadata are its
//! headers, the method path (`/opentelemetry.proto.collector.metrics.v1.MetricsService/Export`)
//! its signed path, the message ([`Unframe`]: prefix stripped, gzip
//! inflated, capped) its `application/x-protobuf` body; then
//! [`super::ingest::handle`] runs admission, the content policy, the quotas
//! on items, the spool or the forwarder, and observes it once. Its answer
//! becomes gRPC's: 200 with the collector's Export response (partial
//! success passed through) framed (a gRPC collector's as it came),
//! `grpc-status: 0`; a refusal, the
//! renderer's `google.rpc.Status` (the `reason` in `ErrorInfo`, `RetryInfo`
//! when retryable) as `grpc-status`, `grpc-message` and
//! `grpc-status-details-bin`, Trailers-Only.

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use prost::Message;

use super::error::Status;
use super::grpc_body::{Reply, Unframe};
use super::ingest::GrpcCall;
use super::state::AppState;
use crate::ingest::forward::ViaGrpc;
use crate::ingest::forward_grpc::FRAMED;
use crate::pipeline::admission::BodyLimits;
use crate::pipeline::body::BoxError;
use crate::protocol::grpc;

/// The content type of every gRPC answer.
const GRPC: HeaderValue = HeaderValue::from_static("application/grpc");

/// Answers one call on the gRPC listener.
pub async fn handle<B>(state: &AppState, request: Request<B>, peer: IpAddr) -> Response<Reply>
where
    B: hyper::body::Body + Unpin,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    let Some(signal) = grpc::signal_of(parts.uri.path()).filter(|_| state.settings.ingest.enabled)
    else {
        return trailers_only(grpc::UNIMPLEMENTED, "unknown method", None);
    };
    let settings = &state.settings.ingest;
    let grpc_content = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "application/grpc" || v.starts_with("application/grpc+proto"));
    let encoding = parts.headers.get(grpc::GRPC_ENCODING).cloned();
    let gzip = encoding
        .as_ref()
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let headers = &mut parts.headers;
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_ENCODING);
    // What the body stage checks, as for OTLP/HTTP: a non-gRPC content type
    // is `unsupported_media_type`, an encoding other than gzip or identity
    // `unsupported_encoding` (the message is inflated before admission reads it).
    match grpc_content {
        true => replace(
            headers,
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        ),
        false => drop(headers.remove(header::CONTENT_TYPE)),
    };
    if let Some(value) =
        encoding.filter(|v| !gzip && !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        headers.insert(header::CONTENT_ENCODING, value);
    }
    let mut limits = BodyLimits::ingest(&state.settings);
    if gzip {
        limits.max_bytes = settings.max_decompressed_bytes;
    }
    // The client's deadline caps the forward's (a malformed one is ignored).
    let timeout = parts
        .headers
        .get(grpc::GRPC_TIMEOUT)
        .and_then(|v| grpc::parse_timeout(v.as_bytes()));
    let call = GrpcCall {
        limits,
        via: ViaGrpc { timeout },
    };
    let body = Unframe::new(
        body,
        gzip,
        settings.max_body_bytes,
        settings.max_decompressed_bytes,
    );
    let answer = super::ingest::handle(state, parts, body, peer, Some(signal), Some(call)).await;
    to_grpc(answer).await
}

/// Sets `name` to `value` alone; in place when it holds one value already,
/// since an insert first makes room for a new entry and regrows a full map
/// (a call's metadata often fills one) for a name it then only replaces.
fn replace(headers: &mut HeaderMap, name: header::HeaderName, value: HeaderValue) {
    let single = headers.get_all(&name).iter().nth(1).is_none();
    match headers.get_mut(&name) {
        Some(slot) if single => *slot = value,
        _ => drop(headers.insert(name, value)),
    }
}

/// The ingest route's answer as gRPC's; see the module doc.
async fn to_grpc(answer: Response<super::respond::Body>) -> Response<Reply> {
    let (parts, mut body) = answer.into_parts();
    // Full<Bytes> is one data frame (none when empty) and cannot fail.
    let bytes = match body.frame().await {
        Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    };
    let mut metadata = parts.headers;
    // A gRPC collector's Export response comes framed: sent on as it is.
    let framed = metadata.remove(header::CONTENT_TYPE) == Some(FRAMED);
    metadata.remove(header::CONTENT_LENGTH);
    if parts.status == StatusCode::OK {
        let mut trailers = HeaderMap::new();
        trailers.insert(grpc::GRPC_STATUS, HeaderValue::from(grpc::OK));
        let message = match framed {
            true => bytes,
            false => Bytes::from(grpc::frame(&bytes)),
        };
        let mut response = Response::new(Reply::new(Some(message), Some(trailers)));
        metadata.insert(header::CONTENT_TYPE, GRPC);
        *response.headers_mut() = metadata;
        return response;
    }
    let (code, message) = match Status::decode(bytes.clone()) {
        Ok(status) => (
            u32::try_from(status.code).unwrap_or(grpc::INTERNAL),
            status.message,
        ),
        Err(_) => (grpc::INTERNAL, "Internal error".to_string()),
    };
    let mut response = trailers_only(code, &message, Some(&bytes));
    for (name, value) in &metadata {
        response.headers_mut().append(name, value.clone());
    }
    response
}

/// A Trailers-Only answer: the status in the headers, no message.
fn trailers_only(code: u32, message: &str, details: Option<&[u8]>) -> Response<Reply> {
    let mut response = Response::new(Reply::new(None, None));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, GRPC);
    headers.insert(grpc::GRPC_STATUS, HeaderValue::from(code));
    if let Ok(value) = HeaderValue::from_str(&grpc::percent_encode(message)) {
        headers.insert(grpc::GRPC_MESSAGE, value);
    }
    if let Some(Ok(value)) = details.map(|d| HeaderValue::from_str(&STANDARD_NO_PAD.encode(d))) {
        headers.insert(grpc::GRPC_STATUS_DETAILS, value);
    }
    response
}
