//! `[spool]`: the durable ingest spool. When on, an admitted export is
//! committed to an SQLite file under `dir` before telegate answers 200, and a
//! forwarder drains it to the collector. The section as written and its
//! validation into [`SpoolSettings`]; absent or `enabled = false`: off, and
//! ingest forwards directly as before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::raw::by_name;
use super::{show, ConfigError};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSection {
    pub enabled: bool,
    /// The folder of `spool.db`; relative to the config file's folder.
    pub dir: String,
    /// Most bytes of export bodies held; beyond: 503 `spool_full`.
    pub max_bytes: u64,
    /// `batch` (one commit covers every export that arrived meanwhile) or
    /// `always` (one commit per export).
    #[serde(deserialize_with = "by_name")]
    pub fsync: Fsync,
    /// An oldest export older than this refuses new ones (503 `spool_full`).
    pub max_age_secs: u64,
}

impl Default for SpoolSection {
    fn default() -> Self {
        SpoolSection {
            enabled: false,
            dir: "spool".into(),
            max_bytes: 1024 * 1024 * 1024,
            fsync: Fsync::Batch,
            max_age_secs: 86_400,
        }
    }
}

/// How appends reach the disk (`spool.fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Group commit: every export queued meanwhile shares one commit.
    Batch,
    /// One commit (one fsync) per export.
    Always,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpoolSettings {
    pub enabled: bool,
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub fsync: Fsync,
    #[serde(serialize_with = "show::duration")]
    pub max_age: Duration,
}

pub(super) fn spool_settings(
    section: &SpoolSection,
    base_dir: &Path,
) -> Result<SpoolSettings, ConfigError> {
    if section.dir.trim().is_empty() {
        return Err(ConfigError::invalid("spool.dir", "must not be empty"));
    }
    for (key, value) in [
        ("spool.max_bytes", section.max_bytes),
        ("spool.max_age_secs", section.max_age_secs),
    ] {
        if value == 0 {
            return Err(ConfigError::invalid(key, "must be greater than 0"));
        }
    }
    Ok(SpoolSettings {
        enabled: section.enabled,
        dir: base_dir.join(&section.dir),
        max_bytes: section.max_bytes,
        fsync: section.fsync,
        max_age: Duration::from_secs(section.max_age_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_relative_to_the_config() {
        let settings = spool_settings(&SpoolSection::default(), Path::new("/etc/tg")).unwrap();
        assert!(!settings.enabled);
        assert_eq!(settings.dir, Path::new("/etc/tg/spool"));
        assert_eq!(settings.fsync, Fsync::Batch);
    }

    #[test]
    fn zero_limits_name_their_key() {
        let mut section = SpoolSection {
            max_bytes: 0,
            ..SpoolSection::default()
        };
        let err = spool_settings(&section, Path::new(".")).unwrap_err();
        assert!(err.to_string().starts_with("spool.max_bytes"), "{err}");
        section.max_bytes = 1;
        section.max_age_secs = 0;
        let err = spool_settings(&section, Path::new(".")).unwrap_err();
        assert!(err.to_string().starts_with("spool.max_age_secs"), "{err}");
        section.max_age_secs = 1;
        section.dir = " ".into();
        let err = spool_settings(&section, Path::new(".")).unwrap_err();
        assert!(err.to_string().starts_with("spool.dir"), "{err}");
    }
}
