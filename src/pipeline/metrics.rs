//! Prometheus metrics, in a registry that is passed in (no statics), so tests
//! can run servers side by side and read their own counters.
//!
//! Counters end in `_total`, except under `namespace = "kotormodsync"`,
//! where `auth_success` and `auth_failed` keep the names the original
//! deployment's alert rules use (see [`super::metric_names`]).

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::metric_names;
use crate::protocol::reject::Reject;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub auth_total: IntCounter,
    pub auth_success: IntCounter,
    /// forwardAuth requests allowed without a credential: the path is under
    /// the policy's `excluded_paths`.
    pub auth_excluded_total: IntCounter,
    pub auth_failed: IntCounterVec,
    pub rate_limited_total: IntCounter,
    pub key_used_total: IntCounterVec,
    pub key_not_after_seconds: IntGaugeVec,
    pub keyring_reloads_total: IntCounterVec,
    pub auth_duration_seconds: Histogram,
    pub ratelimit_keys: IntGauge,
    pub sessions_active: IntGaugeVec,
    pub sessions_created_total: IntCounterVec,
    pub sessions_revoked_total: IntCounter,
    pub sessions_evicted_total: IntCounter,
    pub store_errors_total: IntCounterVec,
    pub store_duration_seconds: HistogramVec,
    /// Exports on `/` whose signal the signed path named.
    pub signal_detected_total: IntCounterVec,
    /// Header sets accepted outside the window (static-header sessions).
    pub static_accepted_total: IntCounter,
    /// 1 while monitor mode allows every request.
    pub monitor_mode: IntGauge,
    /// Session API requests refused at their credential (admin or owner token).
    pub api_auth_failed: IntCounterVec,
    /// Connections closed at accept: their address held `max_connections_per_ip`.
    pub connections_refused_total: IntCounter,
    /// Bytes of `server.body_budget_bytes` held now (set at each scrape).
    pub body_budget_bytes_in_use: IntGauge,
    /// Leak signals of the last hour (set at each scrape, see `board::leaks`).
    pub leak_key_networks: IntGaugeVec,
    pub leak_sessions_roaming: IntGauge,
    pub leak_networks_crowded: IntGauge,
    pub leak_client_version_requests: IntGaugeVec,
    /// 1, labelled with the version and the revision built from.
    pub build_info: IntGaugeVec,
    /// Unix seconds of the last config and keyring load that succeeded (at start, at each reload).
    pub config_last_reload_success: Gauge,
}

/// The reasons `{ns}_api_auth_failed_total` counts: a session API request
/// whose admin or owner credential was missing or wrong.
pub const API_AUTH_REASONS: &[&str] = &[
    "admin_token_required",
    "bad_admin_token",
    "credential_required",
    "invalid_session",
    "not_owner",
    "session_revoked",
];

impl Metrics {
    pub fn new(namespace: &str) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(namespace);
        let metrics = Metrics {
            auth_total: IntCounter::with_opts(opts("auth_total", "forwardAuth decisions made"))?,
            auth_success: IntCounter::with_opts(opts(
                &metric_names::counter(namespace, "auth_success"),
                "requests allowed",
            ))?,
            auth_excluded_total: IntCounter::with_opts(opts(
                "auth_excluded_total",
                "requests allowed without a credential on an excluded path",
            ))?,
            auth_failed: IntCounterVec::new(
                opts(
                    &metric_names::counter(namespace, "auth_failed"),
                    "requests refused, by reason",
                ),
                &["reason"],
            )?,
            rate_limited_total: IntCounter::with_opts(opts(
                "rate_limited_total",
                "requests refused by the per-IP rate limit",
            ))?,
            key_used_total: IntCounterVec::new(
                opts("key_used_total", "successful verifications, by key id"),
                &["key_id"],
            )?,
            key_not_after_seconds: IntGaugeVec::new(
                opts(
                    "key_not_after_seconds",
                    "a loaded key's not_after as Unix seconds (keys without one are absent)",
                ),
                &["key_id"],
            )?,
            keyring_reloads_total: IntCounterVec::new(
                opts(
                    "keyring_reloads_total",
                    "keyring reload attempts, by result",
                ),
                &["result"],
            )?,
            auth_duration_seconds: Histogram::with_opts(
                HistogramOpts::new("auth_duration_seconds", "time to decide one request")
                    .namespace(namespace)
                    .buckets(vec![
                        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
                        0.1,
                    ]),
            )?,
            ratelimit_keys: IntGauge::with_opts(opts(
                "ratelimit_keys",
                "client keys held by the rate limiters",
            ))?,
            sessions_active: IntGaugeVec::new(
                opts("sessions_active", "live sessions, by kind"),
                &["kind"],
            )?,
            sessions_created_total: IntCounterVec::new(
                opts(
                    "sessions_created_total",
                    "sessions first seen or issued, by kind",
                ),
                &["kind"],
            )?,
            sessions_revoked_total: IntCounter::with_opts(opts(
                "sessions_revoked_total",
                "sessions revoked by an operator",
            ))?,
            sessions_evicted_total: IntCounter::with_opts(opts(
                "sessions_evicted_total",
                "sessions dropped because the store was full",
            ))?,
            store_errors_total: IntCounterVec::new(
                opts("store_errors_total", "session store failures, by operation"),
                &["op"],
            )?,
            store_duration_seconds: HistogramVec::new(
                HistogramOpts::new("store_duration_seconds", "session store operation time")
                    .namespace(namespace)
                    .buckets(vec![0.000_01, 0.000_1, 0.001, 0.005, 0.025, 0.1, 0.5]),
                &["op"],
            )?,
            signal_detected_total: IntCounterVec::new(
                opts(
                    "auth_signal_detected_total",
                    "requests to / whose signal was found from the signed path, by signal",
                ),
                &["signal"],
            )?,
            static_accepted_total: IntCounter::with_opts(opts(
                "auth_static_accepted_total",
                "v1 header sets accepted outside the window (static-header sessions)",
            ))?,
            monitor_mode: IntGauge::with_opts(opts(
                "auth_monitor_mode",
                "1 when monitor mode allows every request after deciding it",
            ))?,
            api_auth_failed: IntCounterVec::new(
                opts(
                    "api_auth_failed_total",
                    "session API requests refused at their admin or owner credential, by reason",
                ),
                &["reason"],
            )?,
            connections_refused_total: IntCounter::with_opts(opts(
                "connections_refused_total",
                "connections closed at accept because their address held server.max_connections_per_ip",
            ))?,
            body_budget_bytes_in_use: IntGauge::with_opts(opts(
                "body_budget_bytes_in_use",
                "bytes of server.body_budget_bytes held by request bodies and their inflation",
            ))?,
            leak_key_networks: IntGaugeVec::new(
                opts(
                    "leak_key_networks",
                    "distinct client networks (/64 for IPv6) that used each key in the last hour",
                ),
                &["key"],
            )?,
            leak_sessions_roaming: IntGauge::with_opts(opts(
                "leak_sessions_roaming",
                "session ids seen from more than status.suspicious_session_networks networks in the last hour",
            ))?,
            leak_networks_crowded: IntGauge::with_opts(opts(
                "leak_networks_crowded",
                "client networks that used more than status.suspicious_network_sessions session ids in the last hour",
            ))?,
            leak_client_version_requests: IntGaugeVec::new(
                opts(
                    "leak_client_version_requests",
                    "signed requests in the last hour by client version (the ten largest, the rest as other)",
                ),
                &["version"],
            )?,
            build_info: IntGaugeVec::new(
                opts(
                    "build_info",
                    "1, labelled with the version and the git revision telegate was built from",
                ),
                &["version", "revision"],
            )?,
            config_last_reload_success: Gauge::with_opts(opts(
                "config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful config and keyring load (start or reload)",
            ))?,
            registry,
        };
        metrics.register()?;
        metrics
            .build_info
            .with_label_values(&[metric_names::VERSION, metric_names::REVISION])
            .set(1);
        // Start every label at zero so rate() and alert rules see the series
        // before the first failure of each kind.
        for reason in Reject::REASONS {
            metrics.auth_failed.with_label_values(&[reason]);
        }
        for signal in ["metrics", "traces", "logs"] {
            metrics.signal_detected_total.with_label_values(&[signal]);
        }
        for kind in ["signed", "issued"] {
            metrics.sessions_active.with_label_values(&[kind]);
            metrics.sessions_created_total.with_label_values(&[kind]);
        }
        for result in ["ok", "error"] {
            metrics.keyring_reloads_total.with_label_values(&[result]);
        }
        for reason in API_AUTH_REASONS {
            metrics.api_auth_failed.with_label_values(&[reason]);
        }
        Ok(metrics)
    }

    fn register(&self) -> Result<(), prometheus::Error> {
        let r = &self.registry;
        r.register(Box::new(self.auth_total.clone()))?;
        r.register(Box::new(self.auth_success.clone()))?;
        r.register(Box::new(self.auth_excluded_total.clone()))?;
        r.register(Box::new(self.auth_failed.clone()))?;
        r.register(Box::new(self.rate_limited_total.clone()))?;
        r.register(Box::new(self.key_used_total.clone()))?;
        r.register(Box::new(self.key_not_after_seconds.clone()))?;
        r.register(Box::new(self.keyring_reloads_total.clone()))?;
        r.register(Box::new(self.auth_duration_seconds.clone()))?;
        r.register(Box::new(self.ratelimit_keys.clone()))?;
        r.register(Box::new(self.sessions_active.clone()))?;
        r.register(Box::new(self.sessions_created_total.clone()))?;
        r.register(Box::new(self.sessions_revoked_total.clone()))?;
        r.register(Box::new(self.sessions_evicted_total.clone()))?;
        r.register(Box::new(self.store_errors_total.clone()))?;
        r.register(Box::new(self.store_duration_seconds.clone()))?;
        r.register(Box::new(self.signal_detected_total.clone()))?;
        r.register(Box::new(self.static_accepted_total.clone()))?;
        r.register(Box::new(self.monitor_mode.clone()))?;
        r.register(Box::new(self.api_auth_failed.clone()))?;
        r.register(Box::new(self.connections_refused_total.clone()))?;
        r.register(Box::new(self.body_budget_bytes_in_use.clone()))?;
        r.register(Box::new(self.leak_key_networks.clone()))?;
        r.register(Box::new(self.leak_sessions_roaming.clone()))?;
        r.register(Box::new(self.leak_networks_crowded.clone()))?;
        r.register(Box::new(self.leak_client_version_requests.clone()))?;
        r.register(Box::new(self.build_info.clone()))?;
        r.register(Box::new(self.config_last_reload_success.clone()))?;
        Ok(())
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts one refusal under its reason label.
    pub fn record_reject(&self, reject: &Reject) {
        self.auth_failed.with_label_values(&[reject.reason()]).inc();
        if matches!(reject, Reject::RateLimited { .. }) {
            self.rate_limited_total.inc();
        }
    }

    /// Publishes each loaded key's `not_after`, replacing the previous ring's
    /// series: a dropped key's series goes away with it.
    pub fn set_key_not_after<'a>(&self, keys: impl IntoIterator<Item = (&'a str, Option<i64>)>) {
        self.key_not_after_seconds.reset();
        for (id, not_after) in keys {
            if let Some(not_after) = not_after {
                self.key_not_after_seconds
                    .with_label_values(&[id])
                    .set(not_after);
            }
        }
    }

    /// The text exposition format served at `/metrics`.
    pub fn render(&self) -> Result<Vec<u8>, prometheus::Error> {
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
