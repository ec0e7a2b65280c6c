//! The abuse controls' metrics, registered in the gateway's registry
//! (passed in): `{ns}_quota_exceeded_total{scope}` (counted by the one
//! observation step), `{ns}_bans_total` and `{ns}_bans_active` (by the ban
//! tracker as it bans, lifts and purges), `{ns}_quota_fallback_total` (by
//! the shared leases when the store fails).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::quota::scope_labels;

#[derive(Clone)]
pub struct AbuseMetrics {
    pub quota_exceeded_total: IntCounterVec,
    pub bans_total: IntCounter,
    pub bans_active: IntGauge,
    /// Quota charges answered by the local buckets because the shared
    /// store failed.
    pub quota_fallback_total: IntCounter,
}

impl AbuseMetrics {
    pub fn register(
        namespace: &str,
        registry: &Registry,
    ) -> Result<AbuseMetrics, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(namespace);
        let metrics = AbuseMetrics {
            quota_exceeded_total: IntCounterVec::new(
                opts(
                    "quota_exceeded_total",
                    "requests refused by a quota, by scope",
                ),
                &["scope"],
            )?,
            bans_total: IntCounter::with_opts(opts(
                "bans_total",
                "bans imposed after repeated refusals",
            ))?,
            bans_active: IntGauge::with_opts(opts("bans_active", "bans in force"))?,
            quota_fallback_total: IntCounter::with_opts(opts(
                "quota_fallback_total",
                "quota charges counted locally because the shared store failed",
            ))?,
        };
        registry.register(Box::new(metrics.quota_fallback_total.clone()))?;
        registry.register(Box::new(metrics.quota_exceeded_total.clone()))?;
        registry.register(Box::new(metrics.bans_total.clone()))?;
        registry.register(Box::new(metrics.bans_active.clone()))?;
        for scope in scope_labels() {
            metrics.quota_exceeded_total.with_label_values(&[scope]);
        }
        Ok(metrics)
    }
}
