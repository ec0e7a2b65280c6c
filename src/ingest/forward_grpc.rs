//! Forwarding a gRPC export over gRPC (`collector.grpc_endpoint`): one
//! pooled h2c client (hyper-util's, prior knowledge), the same connect and
//! request timeouts and in-flight slots as the HTTP forwarder, the export
//! framed as one gRPC message to the signal's Export method. The
//! collector's `grpc-status` is mapped onto the same errors as its HTTP
//! statuses: OK is delivered (its Export response, partial success
//! included, passed back), INVALID_ARGUMENT is the client's fault,
//! RESOURCE_EXHAUSTED is throttled, anything else retryable.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::error::IngestError;
use super::forward::Outgoing;
use crate::config::CollectorSettings;
use crate::protocol::grpc::{export_path, format_timeout, frame, parse_prefix, PREFIX_LEN};
use crate::protocol::headers::{X_AUTH_CLIENT_VERSION, X_AUTH_SESSION_ID};
use crate::protocol::signal::Signal;

/// Most bytes of a collector answer read (as for HTTP).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

pub struct GrpcCollector {
    client: Client<HttpConnector, Full<Bytes>>,
    /// One URI per signal (traces, metrics, logs).
    uris: [Uri; 3],
    headers: HeaderMap,
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
        Ok(GrpcCollector {
            client,
            uris: [
                uri(Signal::Traces)?,
                uri(Signal::Metrics)?,
                uri(Signal::Logs)?,
            ],
            headers: settings.headers.clone(),
            retry_after_secs: settings.retry_after_secs,
        })
    }

    /// Calls Export with one (uncompressed) export within `timeout` (sent
    /// on as the call's `grpc-timeout`, so the collector's deadline is
    /// ours); `Ok` with the Export response's bytes when it answered OK.
    pub async fn send(&self, out: Outgoing<'_>, timeout: Duration) -> Result<Bytes, IngestError> {
        let uri = match out.signal {
            Signal::Traces => &self.uris[0],
            Signal::Metrics => &self.uris[1],
            Signal::Logs => &self.uris[2],
        };
        let mut request = Request::post(uri.clone())
            .body(Full::new(Bytes::from(frame(&out.body))))
            .map_err(|_| IngestError::Internal)?;
        let headers = request.headers_mut();
        headers.extend(self.headers.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        if let Ok(value) = HeaderValue::from_str(&format_timeout(timeout)) {
            headers.insert("grpc-timeout", value);
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
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| parts.headers.get("grpc-status"))
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

/// The one uncompressed message of an answer (none: the empty response).
fn message(body: Bytes) -> Option<Bytes> {
    if body.is_empty() {
        return Some(body);
    }
    let prefix: [u8; PREFIX_LEN] = body.get(..PREFIX_LEN)?.try_into().ok()?;
    match parse_prefix(prefix)? {
        (false, len) if body.len() == PREFIX_LEN + len => Some(body.slice(PREFIX_LEN..)),
        _ => None,
    }
}
