//! `/health`, `/ready` and `/metrics`: what an orchestrator and Prometheus
//! ask. `/health` says the process answers; `/ready` that it can decide
//! (a live key, a store that answers); `/metrics` renders the registry
//! after refreshing the gauges that are read, not counted.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::json;

use super::respond::{self, Body};
use super::state::AppState;

pub fn health() -> Response<Body> {
    respond::json(StatusCode::OK, &json!({"status": "healthy"}))
}

/// 503 until the keyring holds a live key, and while the session store
/// cannot answer. A development key is ready but says so, loudly, in the
/// body. With the spool on, the body shows its backlog (a backlog is not
/// unready: the spool is there to hold one).
pub fn ready(state: &AppState) -> Response<Body> {
    let ring = state.keyring.current();
    let now = state.now();
    let live: Vec<&str> = ring.live(now).map(|k| k.id.as_str()).collect();
    let mut warnings = Vec::new();
    if ring.uses_development_key() {
        warnings.push("DEVELOPMENT KEY IN USE: the shipped public key verifies requests; configure your own keys");
    }
    if live.is_empty() {
        return respond::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not_ready", "reason": "no_live_key", "live_keys": live, "warnings": warnings}),
        );
    }
    if !state.sessions.healthy() {
        return respond::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not_ready", "reason": "store_unavailable", "live_keys": live, "warnings": warnings}),
        );
    }
    let mut body = json!({"status": "ready", "live_keys": live, "warnings": warnings});
    if let Some(spool) = &state.ingest.spool {
        body["spool"] = json!(spool.backlog());
    }
    respond::json(StatusCode::OK, &body)
}

pub fn metrics(state: &AppState) -> Response<Body> {
    for (kind, count) in state.sessions.active(state.now()) {
        state
            .metrics
            .sessions_active
            .with_label_values(&[kind.as_str()])
            .set(count as i64);
    }
    state
        .metrics
        .ratelimit_keys
        .set(state.limits.key_count() as i64);
    state
        .metrics
        .body_budget_bytes_in_use
        .set(i64::try_from(state.budget.in_use_bytes()).unwrap_or(i64::MAX));
    publish_leaks(state);
    if let Some(spool) = &state.ingest.spool {
        // Refreshes the oldest export's age, which no event moves.
        spool.backlog();
    }
    match state.metrics.render() {
        Ok(text) => respond::with_body(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(text),
        ),
        Err(err) => {
            tracing::error!(error = %err, "could not render metrics");
            respond::internal_error()
        }
    }
}

/// The leak signals of the last hour as gauges, with bounded labels: key
/// ids (from the config) and the ten largest client versions (+ `other`).
fn publish_leaks(state: &AppState) {
    let status = &state.settings.status;
    let report = state.board.leaks.report(
        state.now(),
        status.suspicious_session_networks,
        status.suspicious_network_sessions,
    );
    let metrics = &state.metrics;
    metrics.leak_key_networks.reset();
    for (key, networks) in &report.key_networks {
        metrics
            .leak_key_networks
            .with_label_values(&[key])
            .set(*networks as i64);
    }
    metrics
        .leak_sessions_roaming
        .set(report.sessions_over as i64);
    metrics
        .leak_networks_crowded
        .set(report.networks_over as i64);
    metrics.leak_client_version_requests.reset();
    let mut rest = 0;
    for (i, (version, requests)) in report.versions.iter().enumerate() {
        if i < 10 && version != "other" {
            metrics
                .leak_client_version_requests
                .with_label_values(&[version])
                .set(*requests as i64);
        } else {
            rest += *requests;
        }
    }
    if rest > 0 {
        metrics
            .leak_client_version_requests
            .with_label_values(&["other"])
            .set(rest as i64);
    }
}
