//! OTLP ingest after admission: what an admitted export goes through before
//! the collector has it. The route itself (`POST /v1/traces|metrics|logs`,
//! `POST /` with the signal found from the signature) is
//! [`crate::http::ingest`]; it admits the export through the one pipeline,
//! then: v2 replay cache -> prepare per `ingest.mode` -> forward -> the
//! collector's answer or an honest refusal.
//!
//! - [`body`]: gzip inflation under its cap.
//! - [`otlp`]: decode, count, enrich, encode.
//! - [`prepare`]: the CPU part per `ingest.mode`, on the blocking pool when large.
//! - [`content`]: the content policy (`[content]`) over a decoded export.
//! - [`cardinality`]: the series guard (`[cardinality]`).
//! - [`partial`]: the OTLP partial-success answer, merged with the collector's.
//! - [`forward`]: the pooled client and the bounded concurrency.
//! - [`replay`]: the v2 (key id, nonce) cache for idempotent retries.
//! - [`error`]: refusals after admission, with status, reason and `Retry-After`.

pub mod body;
pub mod cardinality;
pub mod content;
pub mod error;
pub mod forward;
pub mod otlp;
pub mod partial;
pub mod prepare;
pub mod replay;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{ContentSettings, Settings};
use crate::pipeline::ingest_metrics::IngestMetrics;
use crate::session::redis::SharedNonces;
use error::IngestError;
use forward::Collector;
use otlp::Signal;
use replay::ReplayCache;

/// The ingest side of the shared state.
pub struct Ingest {
    pub collector: Collector,
    pub replay: ReplayCache,
    pub metrics: IngestMetrics,
    /// The content policy, when `[content]` is on.
    pub content: Option<Arc<ContentSettings>>,
    /// The series guard, when `[cardinality]` is on.
    pub guard: Option<Arc<cardinality::Guard>>,
}

impl Ingest {
    /// `nonces`: the Redis session store's, to share the replay cache.
    pub fn new(
        settings: &Settings,
        registry: &prometheus::Registry,
        nonces: Option<SharedNonces>,
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
            collector: Collector::new(&ingest.collector)?,
            replay: match nonces {
                Some(nonces) => ReplayCache::new(ingest.replay_capacity, ttl).with_shared(nonces),
                None => ReplayCache::new(ingest.replay_capacity, ttl),
            },
            metrics: IngestMetrics::register(
                &settings.metrics_namespace,
                registry,
                IngestError::REASONS,
                &content::Rule::NAMES,
            )
            .map_err(|e| e.to_string())?,
            content: settings.content.clone().map(Arc::new),
            guard: settings
                .cardinality
                .clone()
                .map(|c| Arc::new(cardinality::Guard::new(c))),
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
