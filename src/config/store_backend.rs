//! `[sessions]` store backends: which store the sessions live in and its
//! settings (the embedded store's directory, the Redis and PostgreSQL URLs,
//! the write-behind interval), checked from the section as written. Split
//! from [`super::sessions`], which holds the section and the lifetimes.

use std::time::Duration;

use serde::Serialize;

use super::encryption::EncryptionSettings;
use super::sentinel::{sentinel_settings, SentinelSettings};
use super::sessions::SessionsSection;
use super::show;
use super::ConfigError;

/// Where sessions live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// This process only (the session module's `MemoryStore`).
    Memory,
    /// This process, kept on disk (the session module's `EmbeddedStore`).
    Embedded(EmbeddedSettings),
    /// Shared by every replica (the session module's `RedisStore`).
    Redis(RedisSettings),
    /// Shared by every replica (the session module's `PostgresStore`).
    Postgres(PostgresSettings),
}

/// `sessions.postgres_*`: where the shared SQL store is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostgresSettings {
    /// `postgres://user@host:port/db` (no TLS: `sslmode` other than
    /// `disable`/`prefer` is refused).
    #[serde(serialize_with = "show::url")]
    pub url: String,
    /// The password's file, read (trimmed) when the store starts.
    pub password_file: Option<std::path::PathBuf>,
    /// Write-behind of signed-session counters and polling of revocations.
    #[serde(serialize_with = "show::duration")]
    pub flush_interval: Duration,
    /// `[sessions.encryption]`: the storage keys, `None` when off.
    pub encryption: Option<EncryptionSettings>,
}

/// `sessions.data_dir` and the write-behind interval of the embedded store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmbeddedSettings {
    /// Holds `sessions.sqlite3` (and its `-wal`, `-shm`); created if missing.
    pub data_dir: std::path::PathBuf,
    /// Write-behind of signed-session counters and static sightings.
    #[serde(serialize_with = "show::duration")]
    pub flush_interval: Duration,
    /// `[sessions.encryption]`: the storage keys, `None` when off.
    pub encryption: Option<EncryptionSettings>,
}

/// `sessions.redis_*`: where the shared store is and how often this replica
/// writes behind and catches up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedisSettings {
    /// `redis://host:port/db`.
    #[serde(serialize_with = "show::url")]
    pub url: String,
    /// Every key starts with this, so replicas of one deployment share it
    /// and other deployments (or tests) on the same server do not collide.
    pub prefix: String,
    /// Write-behind of signed-session counters and polling of revocations.
    #[serde(serialize_with = "show::duration")]
    pub flush_interval: Duration,
    /// `Some`: the master is found through these sentinels, and `url`
    /// lends only its credentials and database.
    pub sentinel: Option<SentinelSettings>,
}

pub(super) fn redis_settings(section: &SessionsSection) -> Result<RedisSettings, ConfigError> {
    let url = section.redis_url.trim();
    let scheme_ok = url.starts_with("redis://") || url.starts_with("redis+unix://");
    if !scheme_ok || redis::IntoConnectionInfo::into_connection_info(url).is_err() {
        return Err(ConfigError::invalid(
            "sessions.redis_url",
            "must be a redis:// (or redis+unix://) URL",
        ));
    }
    let prefix = &section.redis_prefix;
    if prefix.is_empty() || prefix.len() > 64 || prefix.chars().any(|c| c.is_whitespace()) {
        return Err(ConfigError::invalid(
            "sessions.redis_prefix",
            "must be 1-64 characters without whitespace",
        ));
    }
    Ok(RedisSettings {
        url: url.to_string(),
        prefix: prefix.clone(),
        flush_interval: flush_interval(section)?,
        sentinel: sentinel_settings(section)?,
    })
}

pub(super) fn postgres_settings(
    section: &SessionsSection,
) -> Result<PostgresSettings, ConfigError> {
    let url = section.postgres_url.trim();
    let scheme_ok = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let parsed = url.parse::<tokio_postgres::Config>();
    let Some(parsed) = parsed.ok().filter(|_| scheme_ok) else {
        return Err(ConfigError::invalid(
            "sessions.postgres_url",
            "must be a postgres:// (or postgresql://) URL",
        ));
    };
    // The store connects without TLS for now: a URL that asks for it is
    // refused here rather than failing at every connect.
    if parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(ConfigError::invalid(
            "sessions.postgres_url",
            "sslmode=require is not supported yet (no TLS): use a private network or a local proxy",
        ));
    }
    let file = section.postgres_password_file.trim();
    Ok(PostgresSettings {
        url: url.to_string(),
        password_file: (!file.is_empty()).then(|| std::path::PathBuf::from(file)),
        flush_interval: flush_interval(section)?,
        encryption: None,
    })
}

pub(super) fn embedded_settings(
    section: &SessionsSection,
) -> Result<EmbeddedSettings, ConfigError> {
    let dir = section.data_dir.trim();
    if dir.is_empty() || dir.contains('\0') {
        return Err(ConfigError::invalid(
            "sessions.data_dir",
            "must name a directory",
        ));
    }
    Ok(EmbeddedSettings {
        data_dir: std::path::PathBuf::from(dir),
        flush_interval: flush_interval(section)?,
        encryption: None,
    })
}

fn flush_interval(section: &SessionsSection) -> Result<Duration, ConfigError> {
    if !(10..=60_000).contains(&section.flush_interval_ms) {
        return Err(ConfigError::invalid(
            "sessions.flush_interval_ms",
            "must be between 10 and 60000",
        ));
    }
    Ok(Duration::from_millis(section.flush_interval_ms))
}
