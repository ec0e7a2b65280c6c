//! How the gateway reports itself: `[metrics]` (the Prometheus namespace),
//! `[log]` (format and filter) and `[status]` (the HTML status pages).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::raw::{LogSection, MetricsSection, StatusSection};
use crate::config::ConfigError;

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `log.decisions`: which decisions get a line. A line costs more than the
/// decision itself (see docs/benchmarks.md); metrics count every decision
/// whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionLog {
    /// One line per decision (the default).
    All,
    /// Refusals only: allowed requests are counted, not logged.
    Denied,
    /// No decision lines at all.
    None,
}

impl DecisionLog {
    /// Whether a decision with this outcome gets a line.
    pub fn logs(self, allowed: bool) -> bool {
        match self {
            DecisionLog::All => true,
            DecisionLog::Denied => !allowed,
            DecisionLog::None => false,
        }
    }
}

/// The `/` and `/waiting` status pages.
#[derive(Debug, Clone, Serialize)]
pub struct StatusSettings {
    pub templates_dir: Option<PathBuf>,
    pub refresh_secs: u64,
    pub suspicious_session_networks: usize,
    pub suspicious_network_sessions: usize,
}

/// `metrics.namespace` prefixes every metric name, so it must be one.
pub(super) fn metrics(section: &MetricsSection) -> Result<(), ConfigError> {
    let namespace = &section.namespace;
    let valid_namespace = namespace
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_namespace {
        return Err(ConfigError::invalid(
            "metrics.namespace",
            "must match [a-zA-Z_][a-zA-Z0-9_]*",
        ));
    }
    Ok(())
}

/// `log.level` is handed to tracing at start, so it must parse now.
pub(super) fn log(section: &LogSection) -> Result<(), ConfigError> {
    if tracing_subscriber::EnvFilter::try_new(&section.level).is_err() {
        return Err(ConfigError::invalid(
            "log.level",
            format!("{:?} is not a tracing filter", section.level),
        ));
    }
    Ok(())
}

pub(super) fn status(
    section: &StatusSection,
    base_dir: &Path,
) -> Result<StatusSettings, ConfigError> {
    if !(1..=3600).contains(&section.refresh_secs) {
        return Err(ConfigError::invalid(
            "status.refresh_secs",
            "must be between 1 and 3600",
        ));
    }
    Ok(StatusSettings {
        templates_dir: section.templates_dir.as_ref().map(|dir| base_dir.join(dir)),
        refresh_secs: section.refresh_secs,
        suspicious_session_networks: section.suspicious_session_networks,
        suspicious_network_sessions: section.suspicious_network_sessions,
    })
}
