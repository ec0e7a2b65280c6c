//! Forwarding to the collector: one pooled reqwest client (rustls), connect
//! and request timeouts, and a semaphore bounding exports in flight. A full
//! semaphore answers at once (503 + `Retry-After`): nothing queues without
//! bound. The collector's answer is mapped onto the OTLP retry contract:
//! 2xx is delivered (its body passed back untouched, partial success
//! included), 400 is the client's fault, 429/502/503/504, refused
//! connections and timeouts are retryable, and any other status (a
//! misconfigured endpoint: 404, 401, ...) is retryable too, because the data
//! is fine and dropping it would lose it.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue};
use tokio::sync::Semaphore;

use super::error::IngestError;
use super::forward_grpc::GrpcCollector;
use super::otlp::Signal;
use crate::config::CollectorSettings;
use crate::protocol::headers::{X_AUTH_CLIENT_VERSION, X_AUTH_SESSION_ID};

/// Most bytes of a collector answer passed back to the client.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Longest `Retry-After` taken from the collector.
const MAX_RETRY_AFTER_SECS: u64 = 300;

/// What the collector answered to a delivered export (a gRPC collector's
/// answer is still framed: `content_type` is `forward_grpc::FRAMED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// One export on its way out.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub signal: Signal,
    pub body: Bytes,
    pub content_type: HeaderValue,
    pub gzipped: bool,
    pub session_id: &'a str,
    pub client_version: Option<&'a str>,
}

pub struct Collector {
    client: reqwest::Client,
    /// One parsed URL per signal (traces, metrics, logs): parsing one per
    /// export cost a sixth of a passthrough export's instructions.
    urls: [reqwest::Url; 3],
    headers: HeaderMap,
    slots: Arc<Semaphore>,
    retry_after_secs: u64,
    /// `collector.request_timeout_secs`: what a client's shorter gRPC deadline caps.
    timeout: Duration,
    /// `collector.grpc_endpoint`: where gRPC exports go over gRPC.
    grpc: Option<GrpcCollector>,
}

/// Marks an export that came in over gRPC: it goes
/// out over gRPC when `collector.grpc_endpoint` is set, within the call's
/// `grpc-timeout` when the client sent one (no use forwarding after the
/// client has given up).
#[derive(Debug, Clone, Copy)]
pub struct ViaGrpc {
    pub timeout: Option<Duration>,
}

impl Collector {
    pub fn new(settings: &CollectorSettings) -> Result<Collector, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .pool_max_idle_per_host(settings.max_in_flight)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|err| err.to_string())?;
        let url = |signal: Signal| {
            let text = format!("{}{}", settings.endpoint, signal.collector_path());
            reqwest::Url::parse(&text).map_err(|err| format!("collector.endpoint {text:?}: {err}"))
        };
        Ok(Collector {
            client,
            urls: [
                url(Signal::Traces)?,
                url(Signal::Metrics)?,
                url(Signal::Logs)?,
            ],
            headers: settings.headers.clone(),
            slots: Arc::new(Semaphore::new(settings.max_in_flight)),
            retry_after_secs: settings.retry_after_secs,
            timeout: settings.request_timeout,
            grpc: match &settings.grpc_endpoint {
                Some(endpoint) => Some(GrpcCollector::new(settings, endpoint)?),
                None => None,
            },
        })
    }

    /// Exports in flight right now.
    pub fn in_flight(&self, max: usize) -> usize {
        max.saturating_sub(self.slots.available_permits())
    }

    /// A gRPC export: over gRPC with `collector.grpc_endpoint` (its Export
    /// response kept framed, `forward_grpc::FRAMED`), else over HTTP like any other; in
    /// `collector.request_timeout_secs` or the client's `deadline`, whichever
    /// is shorter.
    pub async fn send_grpc(
        &self,
        out: Outgoing<'_>,
        deadline: Option<Duration>,
    ) -> Result<Accepted, IngestError> {
        let timeout = deadline.map_or(self.timeout, |d| d.min(self.timeout));
        let Some(grpc) = &self.grpc else {
            return self.send_within(out, timeout).await;
        };
        let Ok(_permit) = self.slots.clone().try_acquire_owned() else {
            return Err(IngestError::Busy {
                retry_after_secs: 1,
            });
        };
        let body = grpc.send(out, timeout).await?;
        Ok(Accepted {
            content_type: Some(super::forward_grpc::FRAMED),
            body,
        })
    }

    /// Posts one export; `Ok` only when the collector answered 2xx.
    pub async fn send(&self, out: Outgoing<'_>) -> Result<Accepted, IngestError> {
        self.send_within(out, self.timeout).await
    }

    /// [`Collector::send`] within `timeout` (at most the configured one).
    async fn send_within(
        &self,
        out: Outgoing<'_>,
        timeout: Duration,
    ) -> Result<Accepted, IngestError> {
        let Ok(_permit) = self.slots.clone().try_acquire_owned() else {
            return Err(IngestError::Busy {
                retry_after_secs: 1,
            });
        };
        let url = match out.signal {
            Signal::Traces => &self.urls[0],
            Signal::Metrics => &self.urls[1],
            Signal::Logs => &self.urls[2],
        };
        let url = url.clone();
        let mut request = self
            .client
            .post(url)
            .headers(self.headers.clone())
            .header(header::CONTENT_TYPE, out.content_type)
            .timeout(timeout);
        if out.gzipped {
            request = request.header(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let Ok(value) = HeaderValue::from_str(out.session_id) {
            request = request.header(X_AUTH_SESSION_ID, value);
        }
        if let Some(Ok(value)) = out.client_version.map(HeaderValue::from_str) {
            request = request.header(X_AUTH_CLIENT_VERSION, value);
        }
        let unavailable = IngestError::CollectorUnavailable {
            retry_after_secs: self.retry_after_secs,
            unreachable: true,
        };
        let mut response = match request.body(out.body).send().await {
            Ok(response) => response,
            Err(err) => {
                let kind = if err.is_timeout() {
                    "timeout"
                } else if err.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                tracing::warn!(signal = out.signal.as_str(), kind, error = %err, "collector unreachable");
                return Err(unavailable);
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| secs.clamp(1, MAX_RETRY_AFTER_SECS))
            .unwrap_or(self.retry_after_secs);
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = read_capped(&mut response).await;
        match status.as_u16() {
            // A 2xx cut short may have carried a partial success: passing it
            // on as an empty 200 would claim everything was taken. Retryable
            // instead (OTLP is at least once).
            200..=299 if body.is_err() => {
                tracing::warn!(
                    signal = out.signal.as_str(),
                    kind = "cut",
                    "collector unreachable: its answer ended before its body did"
                );
                Err(unavailable)
            }
            200..=299 => Ok(Accepted {
                content_type,
                // Delivered even if the answer's body was too long to keep.
                body: body.ok().flatten().unwrap_or_default(),
            }),
            400 | 413 => Err(IngestError::CollectorRejected {
                status: status.as_u16(),
            }),
            429 => Err(IngestError::CollectorThrottled {
                retry_after_secs: retry_after,
            }),
            502..=504 => Err(IngestError::CollectorUnavailable {
                retry_after_secs: retry_after,
                unreachable: false,
            }),
            other => {
                tracing::error!(
                    signal = out.signal.as_str(),
                    status = other,
                    "the collector answered an unexpected status; check collector.endpoint"
                );
                Err(IngestError::CollectorUnavailable {
                    retry_after_secs: retry_after,
                    unreachable: false,
                })
            }
        }
    }
}

/// The answer's body, `Ok(None)` when it is longer than
/// [`MAX_RESPONSE_BYTES`], or `Err` when it could not be read to its end
/// (cut, or past the client's request timeout).
async fn read_capped(response: &mut reqwest::Response) -> Result<Option<Bytes>, reqwest::Error> {
    let mut body = BytesMut::new();
    loop {
        match response.chunk().await? {
            Some(chunk) if body.len() + chunk.len() <= MAX_RESPONSE_BYTES => {
                body.extend_from_slice(&chunk)
            }
            Some(_) => return Ok(None),
            None => return Ok(Some(body.freeze())),
        }
    }
}
