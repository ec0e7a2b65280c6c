//! Forwarding a gRPC export over gRPC (`collector.grpc_endpoint`): one
//! pooled h2c client (hyper-util's, prior knowledge), the same connect and
//! request timeouts and in-flight slots as the HTTP forwarder, the export
//! framed as one gRPC message to the signal's Export method. The
//! collector's `grpc-status` is mapped onto the same errors as its HTTP
//! statuses: OK is delivered (its Export response, partial success
//! included, passed back), INVALID_ARGUMENT is the client's fault,
//! RESOURCE_EXHAUSTED is throttled, anything else retryable.
//!
//! Per export, nothing is copied or built that need not be: the message
//! goes out as its prefix chained to the export's bytes (one DATA frame,
//! h2 writes the export from where it is), the headers that never change
//! are built once, and the collector's answer is kept in its own framing
//! ([`FRAMED`]), which the gRPC listener sends back as it is.

use std::io::Cursor;
use std::time::Duration;

use bytes::buf::{Buf, Chain};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::error::IngestError;
use super::forward::Outgoing;
use crate::config::CollectorSettings;
use crate::protocol::grpc::{
    export_path, format_timeout, prefix, single_message, GRPC_STATUS, GRPC_TIMEOUT, PREFIX_LEN,
};
use crate::protocol::headers::{X_AUTH_CLIENT_VERSION, X_AUTH_SESSION_ID};
use crate::protocol::signal::Signal;

/// Most bytes of a collector answer read (as for HTTP).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The content type of an [`Accepted`](super::forward::Accepted) answer
/// whose body is one uncompressed gRPC message, prefix and all (what
/// [`GrpcCollector::send`] returns).
pub const FRAMED: HeaderValue = HeaderValue::from_static("application/grpc");

/// An empty Export response, framed.
const EMPTY: &[u8] = &[0; PREFIX_LEN];

/// One outgoing message: its prefix, then the export's bytes.
type Message = Chain<Cursor<[u8; PREFIX_LEN]>, Bytes>;

pub struct GrpcCollector {
    client: Client<HttpConnector, Full<Message>>,
    /// One URI per signal (traces, metrics, logs).
    uris: [Uri; 3],
    /// `collector.headers`, then the content type and `te` (built once).
    headers: HeaderMap,
    /// The `grpc-timeout` of `collector.request_timeout_secs`, the one most
    /// calls have (built once).
    usual_timeout: (Duration, HeaderValue),
    retry_after_secs: u64,
}

impl GrpcCollector {
    pub fn new(settings: &CollectorSettings, endpoint: &str) -> Result<GrpcCollector, String> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .pool_max_idle_per_host(settings.max_in_flight)
            .build(connector);
        let uri = |signal: Signal| {
            let text = format!("{endpoint}{}", export_path(signal));
            text.parse::<Uri>()
                .map_err(|err| format!("collector.grpc_endpoint {text:?}: {err}"))
        };
        let mut headers = settings.headers.clone();
        headers.insert(header::CONTENT_TYPE, FRAMED);
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        let usual = settings.request_timeout;
        let usual_timeout = HeaderValue::from_str(&format_timeout(usual))
            .map_err(|err| format!("collector.request_timeout_secs as grpc-timeout: {err}"))?;
        Ok(GrpcCollector {
            client,
            uris: [
                uri(Signal::Traces)?,
                uri(Signal::Metrics)?,
                uri(Signal::Logs)?,
            ],
            headers,
            usual_timeout: (usual, usual_timeout),
            retry_after_secs: settings.retry_after_secs,
        })
    }

    /// Calls Export with one (uncompressed) export within `timeout` (sent
    /// on as the call's `grpc-timeout`, so the collector's deadline is
    /// ours); `Ok` with the Export response, framed ([`FRAMED`]), when it
    /// answered OK.
    pub async fn send(&self, out: Outgoing<'_>, timeout: Duration) -> Result<Bytes, IngestError> {
        let uri = match out.signal {
            Signal::Traces => &self.uris[0],
            Signal::Metrics => &self.uris[1],
            Signal::Logs => &self.uris[2],
        };
        let framed = Cursor::new(prefix(out.body.len())).chain(out.body.clone());
        let mut request = Request::new(Full::new(framed));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        // Room for the three below from the start: a clone of the fixed
        // headers has none, and would grow twice.
        let headers = request.headers_mut();
        headers.reserve(self.headers.len() + 3);
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        if timeout == self.usual_timeout.0 {
            headers.insert(GRPC_TIMEOUT, self.usual_timeout.1.clone());
        } else if let Ok(value) = HeaderValue::from_str(&format_timeout(timeout)) {
            headers.insert(GRPC_TIMEOUT, value);
        }
        if let Ok(value) = HeaderValue::from_str(out.session_id) {
            headers.insert(X_AUTH_SESSION_ID, value);
        }
        if let Some(Ok(value)) = out.client_version.map(HeaderValue::from_str) {
            headers.insert(X_AUTH_CLIENT_VERSION, value);
        }
        let unavailable = IngestError::CollectorUnavailable {
            retry_after_secs: self.retry_after_secs,
            unreachable: true,
        };
        let call = async {
            let response = self.client.request(request).await.map_err(|err| {
                tracing::warn!(signal = out.signal.as_str(), error = %err, "gRPC collector unreachable");
            })?;
            let (parts, body) = response.into_parts();
            let collected = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|_| {
                    tracing::warn!(
                        signal = out.signal.as_str(),
                        "gRPC collector answer cut or too long"
                    )
                })?;
            Ok::<_, ()>((parts, collected))
        };
        let (parts, collected) = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(())) | Err(_) => return Err(unavailable),
        };
        // Trailers-Only puts the status in the headers.
        let status = collected
            .trailers()
            .and_then(|t| t.get(GRPC_STATUS))
            .or_else(|| parts.headers.get(GRPC_STATUS))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok());
        let body = collected.to_bytes();
        match status {
            Some(0) if parts.status.is_success() => message(body).ok_or(unavailable),
            Some(3) => Err(IngestError::CollectorRejected { status: 400 }),
            Some(8) => Err(IngestError::CollectorThrottled {
                retry_after_secs: self.retry_after_secs,
            }),
            other => {
                tracing::warn!(signal = out.signal.as_str(), http = parts.status.as_u16(), grpc_status = ?other, "the gRPC collector refused an export");
                Err(IngestError::CollectorUnavailable {
                    retry_after_secs: self.retry_after_secs,
                    unreachable: false,
                })
            }
        }
    }
}

/// The answer's one uncompressed message in its framing, as it came (no
/// message: the empty response, framed).
fn message(body: Bytes) -> Option<Bytes> {
    if body.is_empty() {
        return Some(Bytes::from_static(EMPTY));
    }
    single_message(&body).is_some().then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::grpc::frame;

    #[test]
    fn an_answer_is_kept_in_its_framing_or_refused() {
        let framed = Bytes::from(frame(b"\x0a\x02\x08\x01"));
        assert_eq!(message(framed.clone()), Some(framed.clone()));
        assert_eq!(message(Bytes::new()).as_deref(), Some(EMPTY), "no message");
        assert_eq!(single_message(EMPTY), Some(&b""[..]));
        let mut compressed = framed.to_vec();
        compressed[0] = 1;
        for bad in [
            compressed,
            framed[..6].to_vec(),
            [&framed[..], b"x"].concat(),
        ] {
            assert_eq!(message(Bytes::from(bad.clone())), None, "{bad:?}");
        }
    }
}
