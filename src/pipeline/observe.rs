//! The one observation step: every decision, on every route (`/auth`, the
//! ingest routes and `POST /`, a signed `POST /sessions`), leaves through
//! [`Observer::observe`], which updates the metrics, writes the decision log
//! line and feeds the status board. A route never counts or logs a
//! decision itself, so the three cannot drift apart.
//!
//! The log line is `auth decision` (target `telegate::decision`) for
//! forwardAuth and the session API, `ingest decision` (target
//! `telegate::ingest`) for an export, with the export's delivery facts.
//! Metrics count every decision whatever the log level; `log.decisions`
//! (`all`, `denied`, `none`) says which decisions get a line.
//!
//! The session API's own refusals (its rate limit, a missing or wrong admin
//! or owner token) leave through [`Observer::api_refused`]: a `session API
//! refused` line (target `telegate::api`, unless `log.decisions = "none"`)
//! and a counter, never the token.

use std::net::IpAddr;
use std::time::Instant;

use http::HeaderMap;

use super::abuse::metrics::AbuseMetrics;
use super::admission::{Admission, Admitted, Credential, Route};
use super::board::Board;
use super::ingest_metrics::IngestMetrics;
use super::metrics::Metrics;
use crate::config::DecisionLog;
use crate::protocol::headers::{header_str, truncate};
use crate::protocol::signal::Signal;
use crate::protocol::signed_request::{self, HeaderNames};

/// What an export became after admission (ingest routes only).
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The signal, once known (on `/`: after the signature named it).
    pub signal: Option<Signal>,
    /// Found from the signature (`POST /`), not from the path.
    pub detected: bool,
    /// `ingest.mode`.
    pub mode: &'static str,
    /// Spans, data points or log records, when the mode decoded them.
    pub items: Option<u64>,
    /// Items the content policy or the series guard refused, by rule.
    pub refused: &'a [(&'static str, u64)],
    pub result: Delivered<'a>,
    /// The scope of the items quota that refused the export.
    pub quota_scope: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
pub enum Delivered<'a> {
    /// The collector took it.
    Yes,
    /// A v2 retry answered from the first delivery.
    Replayed,
    /// Committed to the ingest spool; the forwarder delivers it.
    Spooled,
    /// Refused after admission (the collector, a malformed export, ...).
    No {
        reason: &'static str,
        status: u16,
        detail: &'a str,
    },
}

/// One decision, as the route saw it.
pub struct Decision<'a> {
    pub route: Route<'a>,
    pub admission: &'a Admission<'a>,
    pub headers: &'a HeaderMap,
    /// Monitor mode let a refused forwardAuth request through.
    pub monitor: bool,
    pub started: Instant,
    pub now: i64,
    /// Ingest only.
    pub delivery: Option<Delivery<'a>>,
}

/// A session API request refused by its rate limit or at its credential.
#[derive(Debug, Clone, Copy)]
pub struct ApiRefusal<'a> {
    pub client_ip: IpAddr,
    pub method: &'a str,
    /// The route's template (`/sessions/{id}`), not the path: ids and user
    /// names are the caller's words.
    pub route: &'static str,
    pub reason: &'static str,
    pub status: u16,
}

/// The handles the observation step writes to.
#[derive(Clone, Copy)]
pub struct Observer<'a> {
    pub(crate) metrics: &'a Metrics,
    pub(crate) ingest: &'a IngestMetrics,
    pub(crate) abuse: &'a AbuseMetrics,
    pub(crate) board: &'a Board,
    pub(crate) names: &'a HeaderNames,
    /// `log.decisions`: which decisions get a line.
    pub(crate) decisions: DecisionLog,
}

impl Observer<'_> {
    pub fn observe(&self, decision: &Decision<'_>) {
        let admission = decision.admission;
        let metrics = self.metrics;
        metrics.auth_total.inc();
        match &admission.outcome {
            // No credential was checked: counted apart from the successes.
            Ok(Admitted {
                credential: Credential::Excluded,
                ..
            }) => {
                metrics.auth_excluded_total.inc();
                self.board.allowed(None, decision.now);
            }
            Ok(admitted) => {
                metrics.auth_success.inc();
                self.count_admitted(admitted, decision.admission.client_ip, decision.now);
            }
            Err(reject) => {
                metrics.record_reject(reject);
                self.count_quota(reject.quota_scope());
                self.board.denied(reject.reason(), decision.now);
            }
        }
        if let Some(delivery) = &decision.delivery {
            self.count_delivery(admission, delivery);
        }
        // One reading of the clock for both the histogram and the log line.
        let elapsed = decision.started.elapsed();
        let latency_us = elapsed.as_micros() as u64;
        metrics.auth_duration_seconds.observe(elapsed.as_secs_f64());
        let allowed = match &decision.delivery {
            Some(delivery) => {
                admission.outcome.is_ok() && !matches!(delivery.result, Delivered::No { .. })
            }
            None => admission.outcome.is_ok(),
        };
        if !self.decisions.logs(allowed) {
            return;
        }
        match &decision.delivery {
            Some(delivery) => self.log_ingest(decision, delivery, latency_us),
            None => self.log_decision(decision, latency_us),
        }
    }

    /// Counts and logs a refused session API request: `rate_limited` under
    /// `{ns}_rate_limited_total`, a credential failure under
    /// `{ns}_api_auth_failed_total{reason}`.
    pub fn api_refused(&self, refusal: &ApiRefusal<'_>) {
        let metrics = self.metrics;
        if refusal.reason == "rate_limited" {
            metrics.rate_limited_total.inc();
        } else {
            metrics
                .api_auth_failed
                .with_label_values(&[refusal.reason])
                .inc();
        }
        if !self.decisions.logs(false) {
            return;
        }
        tracing::info!(
            target: "telegate::api",
            client_ip = %refusal.client_ip,
            method = refusal.method,
            route = refusal.route,
            result = "deny",
            reason = refusal.reason,
            status = refusal.status,
            "session API refused"
        );
    }

    fn count_admitted(&self, admitted: &Admitted<'_>, client_ip: std::net::IpAddr, now: i64) {
        let metrics = self.metrics;
        let Credential::Signed(verified) = &admitted.credential else {
            self.board.allowed(None, now);
            return;
        };
        self.board.allowed(Some(&verified.key_id), now);
        self.board.leaks.signed(
            verified.key_id.as_str(),
            verified.request.session_id,
            verified.request.client_version,
            client_ip,
            now,
        );
        metrics
            .key_used_total
            .with_label_values(&[verified.key_id.as_str()])
            .inc();
        if let Some(signal) = verified.signal {
            metrics
                .signal_detected_total
                .with_label_values(&[signal.as_str()])
                .inc();
        }
        if verified.static_headers {
            metrics.static_accepted_total.inc();
        }
        if admitted.session_created {
            metrics
                .sessions_created_total
                .with_label_values(&["signed"])
                .inc();
        }
    }

    /// `{ns}_quota_exceeded_total{scope}`, for a refusal in admission or
    /// (items) after it.
    fn count_quota(&self, scope: Option<&'static str>) {
        if let Some(scope) = scope {
            self.abuse
                .quota_exceeded_total
                .with_label_values(&[scope])
                .inc();
        }
    }

    fn count_delivery(&self, admission: &Admission<'_>, delivery: &Delivery<'_>) {
        self.count_quota(delivery.quota_scope);
        let signal = delivery.signal.map_or("unknown", Signal::as_str);
        let result = match delivery.result {
            Delivered::Yes => "delivered",
            Delivered::Replayed => "replayed",
            Delivered::Spooled => "spooled",
            Delivered::No { reason, .. } => reason,
        };
        let ingest = self.ingest;
        ingest
            .requests_total
            .with_label_values(&[signal, result])
            .inc();
        for (rule, items) in delivery.refused {
            ingest
                .content_refused_total
                .with_label_values(&[rule])
                .inc_by(*items);
            if *rule == "cardinality" {
                ingest.cardinality_dropped_total.inc_by(*items);
            }
        }
        let (Ok(admitted), Some(signal)) = (&admission.outcome, delivery.signal) else {
            return;
        };
        let label = [signal.as_str()];
        let bytes = admitted.body.as_ref().map_or(0, |b| b.len() as u64);
        ingest.bytes_total.with_label_values(&label).inc_by(bytes);
        if let (Delivered::Yes | Delivered::Spooled, Some(items)) =
            (delivery.result, delivery.items)
        {
            ingest.items_total.with_label_values(&label).inc_by(items);
        }
    }

    fn log_decision(&self, decision: &Decision<'_>, latency_us: u64) {
        let admission = decision.admission;
        let client_ip: IpAddr = admission.client_ip;
        let policy = admission.policy;
        let route = decision.route.as_str();
        match &admission.outcome {
            Ok(Admitted {
                credential: Credential::Session(owner),
                ..
            }) => tracing::info!(
                target: "telegate::decision",
                %client_ip, route, session = owner.session_id, method = "session", policy,
                result = "allow", latency_us,
                "auth decision"
            ),
            Ok(Admitted {
                credential: Credential::Excluded,
                ..
            }) => tracing::info!(
                target: "telegate::decision",
                %client_ip, route, method = "excluded", policy, result = "allow", latency_us,
                "auth decision"
            ),
            Ok(Admitted {
                credential: Credential::Signed(verified),
                ..
            }) => tracing::info!(
                target: "telegate::decision",
                %client_ip,
                route,
                session = verified.request.session_id,
                key_id = verified.key_id.as_str(),
                client_version = verified.request.client_version.unwrap_or(""),
                sig = %verified.request.signature_prefix(),
                version = verified.version(),
                nonce = verified.v2.as_ref().map_or("", |v2| v2.nonce_prefix()),
                body = verified.body.as_str(),
                signal = verified.signal.map_or("", Signal::as_str),
                static_headers = verified.static_headers,
                policy,
                result = "allow",
                latency_us,
                "auth decision"
            ),
            Err(reject) => tracing::info!(
                target: "telegate::decision",
                %client_ip,
                route,
                session = self.session_hint(decision.headers),
                policy,
                result = "deny",
                reason = reject.reason(),
                status = reject.status().as_u16(),
                monitor = decision.monitor,
                latency_us,
                "auth decision"
            ),
        }
    }

    /// The session id a refused request claimed, cut short: refused
    /// headers are the attacker's words.
    fn session_hint<'h>(&self, headers: &'h HeaderMap) -> &'h str {
        let session = header_str(headers, &self.names.session_id)
            .or_else(|| header_str(headers, &self.names.session_alt));
        session.map_or("", |s| truncate(s, signed_request::MAX_FIELD_LEN))
    }

    fn log_ingest(&self, decision: &Decision<'_>, delivery: &Delivery<'_>, latency_us: u64) {
        let admission = decision.admission;
        let client_ip = admission.client_ip;
        let signal = delivery.signal.map_or("unknown", Signal::as_str);
        let mode = delivery.mode;
        let detected = delivery.detected;
        let verified = admission.outcome.as_ref().ok().and_then(Admitted::verified);
        let session = match verified {
            Some(verified) => verified.request.session_id,
            None => self.session_hint(decision.headers),
        };
        let key_id = verified.map_or("", |v| v.key_id.as_str());
        let version = verified.map_or(0, |v| v.version());
        let nonce = verified
            .and_then(|v| v.v2.as_ref())
            .map_or("", |v2| v2.nonce_prefix());
        let static_headers = verified.is_some_and(|v| v.static_headers);
        let bytes = admission
            .outcome
            .as_ref()
            .ok()
            .and_then(|a| a.body.as_ref())
            .map_or(0, |b| b.len());
        let (result, reason, status, detail) = match (&admission.outcome, delivery.result) {
            (Err(reject), _) => ("deny", reject.reason(), reject.status().as_u16(), ""),
            (Ok(_), Delivered::Yes) => ("delivered", "", 200, ""),
            (Ok(_), Delivered::Replayed) => ("replayed", "", 200, ""),
            (Ok(_), Delivered::Spooled) => ("spooled", "", 200, ""),
            (
                Ok(_),
                Delivered::No {
                    reason,
                    status,
                    detail,
                },
            ) => ("deny", reason, status, detail),
        };
        let refused: u64 = delivery.refused.iter().map(|(_, n)| n).sum();
        if result == "deny" {
            tracing::info!(
                target: "telegate::ingest",
                %client_ip, signal, mode, session, key_id, version, nonce, bytes,
                detected, result, reason, status, detail, latency_us,
                "ingest decision"
            );
        } else {
            tracing::info!(
                target: "telegate::ingest",
                %client_ip, signal, mode, session, key_id, version, nonce, bytes,
                items = delivery.items.unwrap_or(0), refused, detected, static_headers,
                result, status, latency_us,
                "ingest decision"
            );
        }
    }
}
