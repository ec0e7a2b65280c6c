//! Ingest metrics (updated by the one observation step), registered in the gateway's registry (passed in):
//! `{ns}_ingest_requests_total{signal,result}` (`delivered`, `replayed`,
//! `spooled` or
//! the refusal's reason), `{ns}_ingest_items_total{signal}` (spans, data
//! points, log records; validate and enrich modes), `{ns}_ingest_bytes_total{signal}`
//! (as received), `{ns}_ingest_forward_duration_seconds` and
//! `{ns}_ingest_in_flight`; the content policy's
//! `{ns}_content_refused_total{reason}` (items refused, by rule) and
//! `{ns}_cardinality_dropped_total` (data points of new series past the bound);
//! `{ns}_cardinality_fallback_total` (exports the local series guard judged
//! because the shared store failed).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::protocol::reject::Reject;
use crate::protocol::signal::Signal;

#[derive(Clone)]
pub struct IngestMetrics {
    pub requests_total: IntCounterVec,
    pub items_total: IntCounterVec,
    pub bytes_total: IntCounterVec,
    pub forward_duration_seconds: Histogram,
    pub in_flight: IntGauge,
    pub content_refused_total: IntCounterVec,
    pub cardinality_dropped_total: IntCounter,
    pub cardinality_fallback_total: IntCounter,
}

impl IngestMetrics {
    /// `reasons`: the refusals after admission (the ingest module's list),
    /// so every `result` label starts at zero beside the admission ones;
    /// `rules`: the content policy's reasons, likewise.
    pub fn register(
        namespace: &str,
        registry: &Registry,
        reasons: &[&str],
        rules: &[&str],
    ) -> Result<IngestMetrics, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(namespace);
        let metrics = IngestMetrics {
            requests_total: IntCounterVec::new(
                opts(
                    "ingest_requests_total",
                    "OTLP exports received, by signal and result",
                ),
                &["signal", "result"],
            )?,
            items_total: IntCounterVec::new(
                opts(
                    "ingest_items_total",
                    "spans, data points and log records forwarded, by signal",
                ),
                &["signal"],
            )?,
            bytes_total: IntCounterVec::new(
                opts(
                    "ingest_bytes_total",
                    "bytes of OTLP bodies received (as sent), by signal",
                ),
                &["signal"],
            )?,
            forward_duration_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "ingest_forward_duration_seconds",
                    "time the collector took to answer an export",
                )
                .namespace(namespace)
                .buckets(vec![
                    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0, 10.0,
                ]),
            )?,
            in_flight: IntGauge::with_opts(opts(
                "ingest_in_flight",
                "exports being forwarded to the collector",
            ))?,
            content_refused_total: IntCounterVec::new(
                opts(
                    "content_refused_total",
                    "items (spans, data points, log records) refused by the content policy or the series guard, by rule",
                ),
                &["reason"],
            )?,
            cardinality_dropped_total: IntCounter::with_opts(opts(
                "cardinality_dropped_total",
                "data points of new series dropped past the cardinality bound",
            ))?,
            cardinality_fallback_total: IntCounter::with_opts(opts(
                "cardinality_fallback_total",
                "exports whose new series the local guard judged because the shared store failed",
            ))?,
        };
        registry.register(Box::new(metrics.requests_total.clone()))?;
        registry.register(Box::new(metrics.items_total.clone()))?;
        registry.register(Box::new(metrics.bytes_total.clone()))?;
        registry.register(Box::new(metrics.forward_duration_seconds.clone()))?;
        registry.register(Box::new(metrics.in_flight.clone()))?;
        registry.register(Box::new(metrics.content_refused_total.clone()))?;
        registry.register(Box::new(metrics.cardinality_dropped_total.clone()))?;
        registry.register(Box::new(metrics.cardinality_fallback_total.clone()))?;
        for rule in rules {
            metrics.content_refused_total.with_label_values(&[rule]);
        }
        for signal in Signal::ALL {
            let s = signal.as_str();
            metrics.items_total.with_label_values(&[s]);
            metrics.bytes_total.with_label_values(&[s]);
            for result in ["delivered", "replayed", "spooled"]
                .iter()
                .chain(reasons)
                .chain(Reject::REASONS)
            {
                metrics.requests_total.with_label_values(&[s, result]);
            }
        }
        Ok(metrics)
    }
}
