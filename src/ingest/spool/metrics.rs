//! The spool's metrics, in the gateway's registry (passed in):
//! `{ns}_spool_bytes`, `{ns}_spool_exports` and
//! `{ns}_spool_oldest_age_seconds` (the backlog, gauges),
//! `{ns}_spool_delivered_total` and `{ns}_spool_dead_lettered_total`, and
//! `{ns}_spool_commit_duration_seconds` (one sample per commit of the
//! writer: the group fsync).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct SpoolMetrics {
    pub bytes: IntGauge,
    pub exports: IntGauge,
    pub oldest_age_seconds: IntGauge,
    pub delivered_total: IntCounter,
    pub dead_lettered_total: IntCounter,
    pub commit_duration_seconds: Histogram,
}

impl SpoolMetrics {
    pub fn register(
        namespace: &str,
        registry: &Registry,
    ) -> Result<SpoolMetrics, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(namespace);
        let metrics = SpoolMetrics {
            bytes: IntGauge::with_opts(opts("spool_bytes", "bytes of export bodies in the spool"))?,
            exports: IntGauge::with_opts(opts(
                "spool_exports",
                "exports in the spool, not yet delivered",
            ))?,
            oldest_age_seconds: IntGauge::with_opts(opts(
                "spool_oldest_age_seconds",
                "age of the oldest export in the spool (0 when empty)",
            ))?,
            delivered_total: IntCounter::with_opts(opts(
                "spool_delivered_total",
                "spooled exports the collector acknowledged",
            ))?,
            dead_lettered_total: IntCounter::with_opts(opts(
                "spool_dead_lettered_total",
                "spooled exports the collector rejected (moved to the dead letters)",
            ))?,
            commit_duration_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "spool_commit_duration_seconds",
                    "time of one spool commit (the group fsync)",
                )
                .namespace(namespace)
                .buckets(vec![
                    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
                ]),
            )?,
        };
        registry.register(Box::new(metrics.bytes.clone()))?;
        registry.register(Box::new(metrics.exports.clone()))?;
        registry.register(Box::new(metrics.oldest_age_seconds.clone()))?;
        registry.register(Box::new(metrics.delivered_total.clone()))?;
        registry.register(Box::new(metrics.dead_lettered_total.clone()))?;
        registry.register(Box::new(metrics.commit_duration_seconds.clone()))?;
        Ok(metrics)
    }
}
