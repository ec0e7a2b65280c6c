//! `[content]` (the ingest content policy, with an optional per-policy
//! override `[policies.NAME.content]`) and `[cardinality]` (the series
//! guard): the sections as written and their validation into
//! [`ContentSettings`] and [`CardinalitySettings`], globs compiled once.
//!
//! Both need a decoded export, so both refuse `ingest.mode = "passthrough"`
//! at load: an operator must never believe a policy holds that cannot run.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::glob::Globs;
use super::ingest::{IngestMode, IngestSettings};
use super::raw::{by_name, RawConfig};
use super::{show, ConfigError};

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ContentSection {
    /// `drop` (offending items removed, partial success) or `reject` (400).
    #[serde(deserialize_with = "by_name")]
    pub on_violation: OnViolation,
    /// Allowed resource `service.name` values (absent: any).
    pub service_names: Option<Vec<String>>,
    /// Globs on metric names (absent: any).
    pub metric_names: Option<Vec<String>>,
    /// Globs on span names (absent: any).
    pub span_names: Option<Vec<String>>,
    /// Globs on a log record's `event_name`, else its scope (logger) name.
    pub log_names: Option<Vec<String>>,
    /// Globs: only these resource attribute keys (absent: any).
    pub allowed_resource_attribute_keys: Option<Vec<String>>,
    /// Globs: resource attribute keys refused.
    pub denied_resource_attribute_keys: Vec<String>,
    /// Globs: only these point / span / log record attribute keys (absent: any).
    pub allowed_attribute_keys: Option<Vec<String>>,
    /// Globs: point / span / log record attribute keys refused.
    pub denied_attribute_keys: Vec<String>,
    /// Most attributes on one resource or one item.
    pub max_attributes: Option<usize>,
    /// Longest attribute value (strings and bytes; arrays and maps summed).
    pub max_attribute_value_bytes: Option<usize>,
    /// Most spans, data points or log records in one export.
    pub max_items_per_export: Option<u64>,
}

/// What a violation of `[content]` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnViolation {
    #[default]
    Drop,
    Reject,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CardinalitySection {
    /// Distinct series (attribute sets) per metric name in `window_secs`.
    pub max_series_per_metric: usize,
    /// New series one session may add per metric name in the window.
    pub max_series_per_session: usize,
    pub window_secs: u64,
    /// Metric names tracked at once; past it a new name is over its bound.
    pub max_metrics: usize,
    /// (session, metric) pairs counted at once; past it only the overall bound holds.
    pub max_sessions: usize,
    /// Resource attributes that are part of a series (the Prometheus
    /// exporter turns these into `job` / `instance`).
    pub resource_keys: Vec<String>,
}

impl Default for CardinalitySection {
    fn default() -> Self {
        CardinalitySection {
            max_series_per_metric: 1000,
            max_series_per_session: 100,
            window_secs: 3600,
            max_metrics: 10_000,
            max_sessions: 100_000,
            resource_keys: vec![
                "service.name".into(),
                "service.namespace".into(),
                "service.instance.id".into(),
            ],
        }
    }
}

/// The content policy, typed: every list compiled, `None` means any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentSettings {
    pub on_violation: OnViolation,
    pub service_names: Option<Vec<String>>,
    pub metric_names: Option<Globs>,
    pub span_names: Option<Globs>,
    pub log_names: Option<Globs>,
    pub allowed_resource_attribute_keys: Option<Globs>,
    pub denied_resource_attribute_keys: Option<Globs>,
    pub allowed_attribute_keys: Option<Globs>,
    pub denied_attribute_keys: Option<Globs>,
    pub max_attributes: Option<usize>,
    pub max_attribute_value_bytes: Option<usize>,
    pub max_items_per_export: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardinalitySettings {
    pub max_series_per_metric: usize,
    pub max_series_per_session: usize,
    #[serde(serialize_with = "show::duration")]
    pub window: Duration,
    pub max_metrics: usize,
    pub max_sessions: usize,
    pub resource_keys: Vec<String>,
}

/// The content policy the ingest routes apply: `ingest.policy`'s own
/// `[policies.NAME.content]` when it has one (it replaces `[content]`
/// whole), else `[content]`, else none.
pub fn ingest_content(
    raw: &RawConfig,
    ingest: &IngestSettings,
) -> Result<Option<ContentSettings>, ConfigError> {
    for (name, policy) in &raw.policies {
        if let Some(section) = &policy.content {
            content_settings(&format!("policies.{name}.content"), section)?;
        }
    }
    let (key, section) = match ingest
        .policy
        .as_ref()
        .and_then(|name| raw.policies.get(name).map(|p| (name, p)))
        .and_then(|(name, p)| p.content.as_ref().map(|c| (name, c)))
    {
        Some((name, section)) => (format!("policies.{name}.content"), Some(section)),
        None => ("content".to_string(), raw.content.as_ref()),
    };
    let Some(section) = section else {
        return Ok(None);
    };
    passthrough_refuses(&key, ingest)?;
    Ok(Some(content_settings(&key, section)?))
}

fn passthrough_refuses(key: &str, ingest: &IngestSettings) -> Result<(), ConfigError> {
    if ingest.mode == IngestMode::Passthrough {
        return Err(ConfigError::invalid(
            key,
            "needs ingest.mode = \"validate\" or \"enrich\" (passthrough never decodes an export)",
        ));
    }
    Ok(())
}

fn content_settings(key: &str, c: &ContentSection) -> Result<ContentSettings, ConfigError> {
    let globs = |field: &str, list: &Option<Vec<String>>| -> Result<Option<Globs>, ConfigError> {
        list.as_ref()
            .map(|l| Globs::new(&format!("{key}.{field}"), l))
            .transpose()
    };
    let denied = |field: &str, list: &Vec<String>| -> Result<Option<Globs>, ConfigError> {
        if list.is_empty() {
            return Ok(None);
        }
        Globs::new(&format!("{key}.{field}"), list).map(Some)
    };
    if let Some(names) = &c.service_names {
        if names.len() > super::glob::MAX_PATTERNS {
            return Err(ConfigError::invalid(
                format!("{key}.service_names"),
                format!("at most {} names", super::glob::MAX_PATTERNS),
            ));
        }
    }
    for (field, value) in [
        ("max_attributes", c.max_attributes.map(|v| v as u64)),
        (
            "max_attribute_value_bytes",
            c.max_attribute_value_bytes.map(|v| v as u64),
        ),
        ("max_items_per_export", c.max_items_per_export),
    ] {
        if value == Some(0) {
            return Err(ConfigError::invalid(
                format!("{key}.{field}"),
                "must be greater than 0 (leave it out for no limit)",
            ));
        }
    }
    Ok(ContentSettings {
        on_violation: c.on_violation,
        service_names: c.service_names.clone(),
        metric_names: globs("metric_names", &c.metric_names)?,
        span_names: globs("span_names", &c.span_names)?,
        log_names: globs("log_names", &c.log_names)?,
        allowed_resource_attribute_keys: globs(
            "allowed_resource_attribute_keys",
            &c.allowed_resource_attribute_keys,
        )?,
        denied_resource_attribute_keys: denied(
            "denied_resource_attribute_keys",
            &c.denied_resource_attribute_keys,
        )?,
        allowed_attribute_keys: globs("allowed_attribute_keys", &c.allowed_attribute_keys)?,
        denied_attribute_keys: denied("denied_attribute_keys", &c.denied_attribute_keys)?,
        max_attributes: c.max_attributes,
        max_attribute_value_bytes: c.max_attribute_value_bytes,
        max_items_per_export: c.max_items_per_export,
    })
}

/// `[cardinality]`, when present.
pub fn cardinality_settings(
    raw: &RawConfig,
    ingest: &IngestSettings,
) -> Result<Option<CardinalitySettings>, ConfigError> {
    let Some(c) = &raw.cardinality else {
        return Ok(None);
    };
    passthrough_refuses("cardinality", ingest)?;
    let bounded = |field: &str, value: usize, max: usize| {
        if value == 0 || value > max {
            return Err(ConfigError::invalid(
                format!("cardinality.{field}"),
                format!("must be between 1 and {max}"),
            ));
        }
        Ok(())
    };
    bounded("max_series_per_metric", c.max_series_per_metric, 1_000_000)?;
    bounded(
        "max_series_per_session",
        c.max_series_per_session,
        c.max_series_per_metric,
    )?;
    bounded("max_metrics", c.max_metrics, 1_000_000)?;
    bounded("max_sessions", c.max_sessions, 10_000_000)?;
    if c.window_secs == 0 || c.window_secs > 7 * 86400 {
        return Err(ConfigError::invalid(
            "cardinality.window_secs",
            "must be between 1 and 604800",
        ));
    }
    if c.resource_keys.len() > 64 {
        return Err(ConfigError::invalid(
            "cardinality.resource_keys",
            "at most 64 keys",
        ));
    }
    Ok(Some(CardinalitySettings {
        max_series_per_metric: c.max_series_per_metric,
        max_series_per_session: c.max_series_per_session,
        window: Duration::from_secs(c.window_secs),
        max_metrics: c.max_metrics,
        max_sessions: c.max_sessions,
        resource_keys: c.resource_keys.clone(),
    }))
}

#[cfg(test)]
mod tests;
