//! Direct OTLP/HTTP ingest: `POST /v1/traces|metrics|logs` (paths from
//! `[ingest]`), verified like `/auth`, then forwarded to the collector.
//! `POST /` (and `ingest.detect_paths`) takes a v1 export whose signal is
//! found from the signed path ([`auth::check_signature_detect`]): the shipped
//! client posts to the bare origin.
//!
//! rate limit -> signature (v1 or v2; method and path from the request) ->
//! media type -> body (capped, within a deadline) -> v2 body hash -> session
//! (with the body's size) -> v2 replay cache -> decode/count/enrich per
//! `ingest.mode` -> forward -> the collector's answer or an honest refusal.
//! One metrics update and one log line per request.
//!
//! - [`body`]: capped reading and gzip inflation.
//! - [`otlp`]: signals, media types, decode, count, enrich, encode.
//! - [`forward`]: the pooled client and the bounded concurrency.
//! - [`replay`]: the v2 (key id, nonce) cache for idempotent retries.
//! - [`error`]: refusals, mapped to status, reason and a body in the request's media type.
//! - [`metrics`]: the `{ns}_ingest_*` series.

pub mod body;
pub mod error;
pub mod forward;
pub mod metrics;
pub mod otlp;
pub mod replay;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body as HttpBody;

use crate::auth::{self, Verified};
use crate::config::{IngestMode, Policy, Settings};
use crate::respond::Body;
use crate::state::AppState;
use body::BoxError;
use error::IngestError;
use forward::{Accepted, Collector, Outgoing};
use metrics::IngestMetrics;
use otlp::{Media, Signal};
use replay::{Begin, ReplayCache};

/// Bodies at least this large are decoded on the blocking pool, so a big
/// export never stalls the connections sharing a worker.
const BLOCKING_THRESHOLD: usize = 128 * 1024;

/// The ingest side of the shared state.
pub struct Ingest {
    pub collector: Collector,
    pub replay: ReplayCache,
    pub metrics: IngestMetrics,
}

impl Ingest {
    /// `nonces`: the Redis session store's, to share the replay cache.
    pub fn new(
        settings: &Settings,
        registry: &prometheus::Registry,
        nonces: Option<crate::session::redis::SharedNonces>,
    ) -> Result<Ingest, String> {
        let ingest = &settings.ingest;
        let max_skew = settings
            .policies
            .values()
            .map(|p| p.max_skew_secs)
            .chain([settings.default_policy.max_skew_secs])
            .max()
            .unwrap_or(300);
        // A timestamp passes up to max_skew either side of now.
        let ttl = Duration::from_secs(max_skew.saturating_mul(2).saturating_add(1));
        Ok(Ingest {
            collector: Collector::new(&ingest.collector).map_err(|e| e.to_string())?,
            replay: match nonces {
                Some(nonces) => ReplayCache::new(ingest.replay_capacity, ttl).with_shared(nonces),
                None => ReplayCache::new(ingest.replay_capacity, ttl),
            },
            metrics: IngestMetrics::register(&settings.metrics_namespace, registry)
                .map_err(|e| e.to_string())?,
        })
    }
}

/// The signal an ingest path serves, if ingest is on.
pub fn signal_for(settings: &Settings, path: &str) -> Option<Signal> {
    let ingest = &settings.ingest;
    if !ingest.enabled {
        return None;
    }
    if path == ingest.traces_path {
        Some(Signal::Traces)
    } else if path == ingest.metrics_path {
        Some(Signal::Metrics)
    } else if path == ingest.logs_path {
        Some(Signal::Logs)
    } else {
        None
    }
}

/// Whether `path` is one where the signal is found from the signature.
pub fn detects(settings: &Settings, path: &str) -> bool {
    settings.ingest.enabled && settings.ingest.detect_paths.iter().any(|p| p == path)
}

/// How a request ended well.
enum Done {
    Delivered(Arc<Accepted>),
    Replayed(Arc<Accepted>),
}

/// What the log line and metrics report about one request.
#[derive(Default)]
struct Facts {
    session: String,
    version: u8,
    nonce: String,
    key_id: String,
    bytes: usize,
    items: Option<u64>,
    /// The signal, once known (on `/`: after the signature named it).
    signal: Option<Signal>,
    static_headers: bool,
}

/// Answers one OTLP export; `signal` is `None` on a detecting path.
pub async fn handle<B>(
    state: &AppState,
    parts: Parts,
    body: B,
    peer: IpAddr,
    signal: Option<Signal>,
) -> Response<Body>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let client_ip = auth::client_address(state, &parts.headers, peer);
    let media = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Media::of);
    let mut facts = Facts {
        signal,
        ..Facts::default()
    };
    let outcome = process(state, &parts, body, client_ip, media, &mut facts).await;
    let metrics = &state.ingest.metrics;
    let s = facts.signal.map_or("unknown", Signal::as_str);
    let detected = signal.is_none();
    let mode = state.settings.ingest.mode.as_str();
    let latency_us = started.elapsed().as_micros() as u64;
    match outcome {
        Ok(done) => {
            let (result, reply) = match done {
                Done::Delivered(reply) => ("delivered", reply),
                Done::Replayed(reply) => ("replayed", reply),
            };
            metrics.requests_total.with_label_values(&[s, result]).inc();
            tracing::info!(
                target: "telegate::ingest",
                %client_ip, signal = s, mode, session = facts.session, key_id = facts.key_id,
                version = facts.version, nonce = facts.nonce, bytes = facts.bytes,
                items = facts.items.unwrap_or(0), detected, static_headers = facts.static_headers,
                result, status = 200, latency_us,
                "ingest decision"
            );
            success(&reply)
        }
        Err(err) => {
            if let IngestError::Auth(reject) = &err {
                state.metrics.auth_total.inc();
                state.metrics.record_reject(reject);
            }
            metrics
                .requests_total
                .with_label_values(&[s, err.reason()])
                .inc();
            let detail = match &err {
                IngestError::Malformed(detail) => detail.as_str(),
                _ => "",
            };
            tracing::info!(
                target: "telegate::ingest",
                %client_ip, signal = s, mode, session = facts.session, key_id = facts.key_id,
                version = facts.version, nonce = facts.nonce, bytes = facts.bytes,
                detected, result = "deny", reason = err.reason(),
                status = err.status().as_u16(), detail, latency_us,
                "ingest decision"
            );
            err.into_response(media)
        }
    }
}

async fn process<B>(
    state: &AppState,
    parts: &Parts,
    body: B,
    client_ip: IpAddr,
    media: Option<Media>,
    facts: &mut Facts,
) -> Result<Done, IngestError>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    if parts.method != Method::POST {
        return Err(IngestError::MethodNotAllowed);
    }
    let settings = &state.settings.ingest;
    let policy = ingest_policy(&state.settings);
    state.limits.check(&policy.name, client_ip)?;
    let headers = &parts.headers;
    let mut verified = match facts.signal {
        Some(_) => {
            auth::check_signature(state, headers, "POST", parts.uri.path(), policy, client_ip)
                .await?
        }
        None => auth::check_signature_detect(state, headers, "POST", policy, client_ip).await?,
    };
    let signal = match (facts.signal, verified.signal) {
        (Some(signal), _) | (None, Some(signal)) => signal,
        (None, None) => return Err(IngestError::Internal),
    };
    facts.signal = Some(signal);
    facts.static_headers = verified.static_headers;
    facts.session = verified.request.session_id.to_string();
    facts.version = verified.version();
    facts.key_id = verified.key_id.to_string();
    if let Some(v2) = &verified.v2 {
        facts.nonce = v2.nonce_prefix().to_string();
    }
    let media = media.ok_or(IngestError::UnsupportedMediaType)?;
    let gzipped = match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str()) {
        None => false,
        Some(Ok(v)) if v.trim().eq_ignore_ascii_case("gzip") => true,
        Some(Ok(v)) if v.trim().eq_ignore_ascii_case("identity") => false,
        Some(_) => return Err(IngestError::UnsupportedEncoding),
    };
    let raw = body::read(
        body,
        headers,
        settings.max_body_bytes,
        settings.body_timeout,
    )
    .await?;
    facts.bytes = raw.len();
    if raw.is_empty() {
        return Err(IngestError::EmptyBody);
    }
    auth::check_body(&mut verified, Some(&raw))?;
    auth::track_session(state, &verified, headers, client_ip, raw.len() as u64)?;
    count_allowed(state, &verified);
    state
        .ingest
        .metrics
        .bytes_total
        .with_label_values(&[signal.as_str()])
        .inc_by(raw.len() as u64);

    let ticket = match &verified.v2 {
        None => None,
        Some(v2) => {
            let wait = settings.collector.request_timeout + Duration::from_secs(1);
            match state
                .ingest
                .replay
                .begin(verified.key_id.as_str(), v2.nonce, wait)
                .await
            {
                Begin::Owner(ticket) => Some(ticket),
                Begin::Delivered(reply) => return Ok(Done::Replayed(reply)),
                Begin::StillInFlight => return Err(IngestError::ReplayInFlight),
            }
        }
    };
    // A refusal from here on settles the ticket as failed (on drop).
    let job = Job {
        mode: settings.mode,
        signal,
        media,
        gzipped,
        raw,
        max_inflated: settings.max_decompressed_bytes,
        add: enrichment(&verified),
        drop: settings.drop_attributes.clone(),
    };
    let prepared = if job.raw.len() >= BLOCKING_THRESHOLD || gzipped {
        tokio::task::spawn_blocking(move || job.run())
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "payload preparation task failed");
                IngestError::Internal
            })??
    } else {
        job.run()?
    };
    facts.items = prepared.items;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/x-protobuf"));
    let ingest = &state.ingest;
    ingest.metrics.in_flight.inc();
    let forward_started = Instant::now();
    let delivery = ingest
        .collector
        .send(Outgoing {
            signal,
            body: prepared.body,
            content_type,
            gzipped,
            session_id: verified.request.session_id,
            client_version: verified.request.client_version,
        })
        .await;
    ingest.metrics.in_flight.dec();
    ingest
        .metrics
        .forward_duration_seconds
        .observe(forward_started.elapsed().as_secs_f64());
    match delivery {
        Ok(accepted) => {
            let reply = Arc::new(accepted);
            if let Some(items) = prepared.items {
                ingest
                    .metrics
                    .items_total
                    .with_label_values(&[signal.as_str()])
                    .inc_by(items);
            }
            if let Some(ticket) = ticket {
                ticket.delivered(reply.clone());
            }
            Ok(Done::Delivered(reply))
        }
        Err(err) => {
            if let Some(ticket) = ticket {
                ticket.failed();
            }
            Err(err)
        }
    }
}

/// The policy the ingest routes check: `ingest.policy`, else the default.
fn ingest_policy(settings: &Settings) -> &Policy {
    settings
        .ingest
        .policy
        .as_ref()
        .and_then(|name| settings.policies.get(name))
        .unwrap_or(&settings.default_policy)
}

fn count_allowed(state: &AppState, verified: &Verified<'_>) {
    let metrics = &state.metrics;
    metrics.auth_total.inc();
    metrics.auth_success.inc();
    auth::count_verified(state, verified);
}

/// The resource attributes `enrich` sets, from the verified headers.
fn enrichment(verified: &Verified<'_>) -> Vec<(&'static str, String)> {
    let mut add = Vec::with_capacity(2);
    if !verified.request.session_id.is_empty() {
        add.push(("session.id", verified.request.session_id.to_string()));
    }
    if let Some(version) = verified.request.client_version {
        add.push(("client.version", version.to_string()));
    }
    add
}

/// The CPU part of a request: inflate, decode, count, enrich, re-encode.
struct Job {
    mode: IngestMode,
    signal: Signal,
    media: Media,
    gzipped: bool,
    raw: Bytes,
    max_inflated: usize,
    add: Vec<(&'static str, String)>,
    drop: Vec<String>,
}

struct Prepared {
    body: Bytes,
    items: Option<u64>,
}

impl Job {
    fn run(self) -> Result<Prepared, IngestError> {
        if self.mode == IngestMode::Passthrough {
            if self.gzipped {
                body::gunzip_size(&self.raw, self.max_inflated)?;
            }
            return Ok(Prepared {
                body: self.raw,
                items: None,
            });
        }
        let inflated;
        let plain: &[u8] = if self.gzipped {
            inflated = body::gunzip(&self.raw, self.max_inflated)?;
            &inflated
        } else {
            &self.raw
        };
        let mut export = otlp::decode(self.signal, self.media, plain)
            .map_err(|err| IngestError::Malformed(err.0))?;
        let items = Some(export.items());
        if self.mode == IngestMode::Validate {
            return Ok(Prepared {
                body: self.raw,
                items,
            });
        }
        let add: Vec<(&str, &str)> = self.add.iter().map(|(k, v)| (*k, v.as_str())).collect();
        export.enrich(&add, &self.drop);
        let encoded = export.encode(self.media).map_err(|err| {
            tracing::error!(error = %err, "cannot re-encode an enriched export");
            IngestError::Internal
        })?;
        let body = if self.gzipped {
            body::gzip(&encoded)
        } else {
            encoded
        };
        Ok(Prepared {
            body: Bytes::from(body),
            items,
        })
    }
}

/// 200 with the collector's body and content type (partial success untouched).
fn success(reply: &Accepted) -> Response<Body> {
    let mut response = Response::new(Full::new(reply.body.clone()));
    *response.status_mut() = StatusCode::OK;
    if let Some(content_type) = &reply.content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    response
}

/// `/auth`, reading the body first when Traefik sends one (`forwardBody:
/// true`), so a v2 signature's body hash can be checked.
pub async fn forward_auth<B>(
    state: &AppState,
    parts: &Parts,
    body: B,
    peer: IpAddr,
) -> Response<Body>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    if !body::announced(&parts.headers) {
        return auth::forward_auth(state, parts, peer, None).await;
    }
    let ingest = &state.settings.ingest;
    match body::read(
        body,
        &parts.headers,
        ingest.max_body_bytes,
        ingest.body_timeout,
    )
    .await
    {
        Ok(bytes) => auth::forward_auth(state, parts, peer, Some(&bytes)).await,
        Err(err) => {
            let err = IngestError::Body(err);
            tracing::info!(
                target: "telegate::decision",
                result = "deny",
                reason = err.reason(),
                status = err.status().as_u16(),
                "auth decision"
            );
            err.into_response(None)
        }
    }
}
