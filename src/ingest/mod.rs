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
//! - [`spool`]: with `[spool]` on, the durable spool an export is committed
//!   to instead of being forwarded, and the forwarder that drains it.

pub mod body;
pub mod cardinality;
pub mod content;
pub mod error;
pub mod forward;
pub mod forward_grpc;
pub mod otlp;
pub mod partial;
pub mod prepare;
pub mod replay;
pub mod spool;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{ContentSettings, Settings};
use crate::pipeline::ingest_metrics::IngestMetrics;
use crate::session::embedded::PersistedNonces;
use crate::session::redis::series::SharedSeries;
use crate::session::redis::SharedNonces;
use error::IngestError;
use forward::Collector;
use otlp::Signal;
use replay::ReplayCache;
use spool::metrics::SpoolMetrics;
use spool::{MsClock, Spool};

/// The ingest side of the shared state.
pub struct Ingest {
    pub collector: Collector,
    pub replay: ReplayCache,
    pub metrics: IngestMetrics,
    /// `Some` with `[spool]` on: exports are spooled, not forwarded.
    pub spool: Option<Spool>,
    /// The content policy, when `[content]` is on.
    pub content: Option<Arc<ContentSettings>>,
    /// The series guard, when `[cardinality]` is on.
    pub guard: Option<Arc<cardinality::Guard>>,
}

/// What a session store offers the v2 replay cache.
pub enum StoreNonces {
    /// Redis: one cache for every replica (and one series bound).
    Shared(SharedNonces, SharedSeries),
    /// Embedded: delivered nonces kept across a restart.
    Persisted(PersistedNonces),
}

impl Ingest {
    /// `nonces`: the session store's, when it has them (Redis: shared by
    /// replicas; embedded: kept across restarts).
    pub fn new(
        settings: &Settings,
        registry: &prometheus::Registry,
        nonces: Option<StoreNonces>,
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
        let series = match &nonces {
            Some(StoreNonces::Shared(_, series)) => Some(series.clone()),
            _ => None,
        };
        let metrics = IngestMetrics::register(
            &settings.metrics_namespace,
            registry,
            IngestError::REASONS,
            &content::Rule::NAMES,
        )
        .map_err(|e| e.to_string())?;
        let guard = settings.cardinality.clone().map(|c| {
            let guard = cardinality::Guard::new(c);
            Arc::new(match series {
                Some(link) => guard.with_shared(cardinality::shared::Shared::new(
                    link,
                    metrics.cardinality_fallback_total.clone(),
                )),
                None => guard,
            })
        });
        Ok(Ingest {
            collector: Collector::new(&ingest.collector)?,
            replay: {
                let cache = ReplayCache::new(ingest.replay_capacity, ttl);
                match nonces {
                    Some(StoreNonces::Shared(nonces, _)) => cache.with_shared(nonces),
                    Some(StoreNonces::Persisted(nonces)) => cache.with_persisted(nonces),
                    None => cache,
                }
            },
            metrics,
            spool: None,
            content: settings.content.clone().map(Arc::new),
            guard,
        })
    }

    /// Opens the spool when `[spool]` is on and starts its forwarder (needs
    /// a tokio runtime). The error names the path.
    pub fn open_spool(
        &mut self,
        settings: &Settings,
        registry: &prometheus::Registry,
        now_ms: MsClock,
    ) -> Result<(), String> {
        if !settings.spool.enabled || self.spool.is_some() {
            return Ok(());
        }
        let metrics = SpoolMetrics::register(&settings.metrics_namespace, registry)
            .map_err(|e| e.to_string())?;
        let spool = Spool::open(&settings.spool, &settings.ingest.collector, metrics, now_ms)?;
        self.spool = Some(spool);
        Ok(())
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
