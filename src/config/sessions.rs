//! `[sessions]`: where sessions live, how long they last, how many one
//! address or user may hold and how much of a client's address is kept. The
//! section as written (serde, defaults), the typed [`SessionSettings`] the
//! session stores run on, and the validation between them. The session
//! module re-exports these types, so its stores name them as before.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::encryption::{encryption_settings, EncryptionSection};
use super::raw::by_name;
use super::show;
use super::store_backend::{
    embedded_settings, postgres_settings, redis_settings, EmbeddedSettings, PostgresSettings,
    StoreBackend,
};
use super::validate::positive;
use super::ConfigError;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsSection {
    /// `memory` (this process only, lost on restart), `embedded` (this
    /// process, kept on disk under `data_dir`) or `redis` (shared by replicas).
    #[serde(deserialize_with = "by_name")]
    pub store: StoreKind,
    /// With `store = "embedded"`: the directory of the store's files
    /// (relative to the working directory unless absolute).
    pub data_dir: String,
    /// With `store = "redis"`: the server.
    pub redis_url: String,
    /// With `store = "redis"`: the prefix of every key.
    pub redis_prefix: String,
    /// With `store = "redis"`: Redis Sentinel `host:port`s; set, the
    /// master is the one they name (`super::sentinel`).
    pub redis_sentinels: Vec<String>,
    /// The master's name the sentinels watch (with `redis_sentinels`).
    pub redis_master_name: String,
    /// With `store = "postgres"`: the server (`postgres://user@host:port/db`).
    pub postgres_url: String,
    /// With `store = "postgres"`: a file holding the password (trimmed),
    /// set as the connection's password ('' none).
    pub postgres_password_file: String,
    /// With `store = "redis"` or `"embedded"`: how often counters are
    /// written behind (and, with Redis, revocations from other replicas are
    /// picked up).
    pub flush_interval_ms: u64,
    /// Record every verified signed session (off: only revocations are checked).
    pub track: bool,
    /// A session (signed or issued) ends after this long without a request.
    pub idle_secs: u64,
    /// Live sessions one client address may hold (429 `too_many_sessions` beyond).
    pub max_per_ip: usize,
    /// Most sessions held in memory; the least recently used is evicted.
    pub max_sessions: u64,
    /// How long a revocation lasts.
    pub revocation_ttl_secs: u64,
    /// Expired sessions stay readable (410) this long before they are dropped.
    pub expired_retention_secs: u64,
    /// `full`, `truncated` (IPv4 /24, IPv6 /48) or `none`.
    #[serde(deserialize_with = "by_name")]
    pub store_ip: StoreIp,
    /// Absolute lifetime of an issued session.
    pub ttl_secs: u64,
    /// `extend` never pushes an issued session past its creation plus this.
    pub max_lifetime_secs: u64,
    /// Live issued sessions one user may hold.
    pub max_per_user: usize,
    /// `evict_oldest` or `refuse` (429 `too_many_user_sessions`).
    #[serde(deserialize_with = "by_name")]
    pub per_user_limit: PerUserLimit,
    /// Keep the `metadata` given to `POST /sessions` (off: dropped).
    pub store_metadata: bool,
    /// Most bytes of a session API request body (413 `body_too_large`).
    pub max_body_bytes: usize,
    /// Most bytes of serialized `metadata` (400 `metadata_too_large`).
    pub max_metadata_bytes: usize,
    /// The cookie `/auth` reads a session token from.
    pub cookie_name: String,
    /// `[sessions.encryption]`: sealing at rest (embedded, postgres).
    pub encryption: EncryptionSection,
}

impl Default for SessionsSection {
    fn default() -> Self {
        SessionsSection {
            store: StoreKind::Memory,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_prefix: "telegate:".into(),
            redis_sentinels: Vec::new(),
            redis_master_name: String::new(),
            postgres_url: "postgres://telegate@127.0.0.1:5432/telegate".into(),
            postgres_password_file: String::new(),
            data_dir: "data".into(),
            flush_interval_ms: 1000,
            track: true,
            idle_secs: 3600,
            max_per_ip: 50,
            max_sessions: 1_000_000,
            revocation_ttl_secs: 7 * 86400,
            expired_retention_secs: 3600,
            store_ip: StoreIp::Full,
            ttl_secs: 86400,
            max_lifetime_secs: 7 * 86400,
            max_per_user: 10,
            per_user_limit: PerUserLimit::EvictOldest,
            store_metadata: false,
            max_body_bytes: 8 * 1024,
            max_metadata_bytes: 4096,
            cookie_name: "telegate_session".into(),
            encryption: EncryptionSection::default(),
        }
    }
}

/// `sessions.store` as written; [`StoreBackend`] is it with its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Memory,
    Embedded,
    Redis,
    Postgres,
}

/// How much of a client's address is kept (seed 004: store no more than needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreIp {
    Full,
    /// IPv4 /24, IPv6 /48.
    Truncated,
    None,
}

impl StoreIp {
    pub fn apply(self, ip: IpAddr) -> Option<String> {
        match self {
            StoreIp::Full => Some(ip.to_string()),
            StoreIp::None => None,
            StoreIp::Truncated => {
                let prefix = if ip.is_ipv4() { 24 } else { 48 };
                ipnet::IpNet::new(ip, prefix)
                    .ok()
                    .map(|net| net.trunc().to_string())
            }
        }
    }
}

/// What issuing a session for a user who already holds `max_per_user` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PerUserLimit {
    /// The user's oldest session is deleted to make room.
    EvictOldest,
    /// The new session is refused (429 `too_many_user_sessions`).
    Refuse,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionSettings {
    pub backend: StoreBackend,
    /// Record signed sessions on `/auth` (`sessions.track`); off, only
    /// revocations are checked.
    pub track: bool,
    /// A session (either kind) ends after this long without a request.
    #[serde(serialize_with = "show::duration")]
    pub idle: Duration,
    /// Absolute lifetime of an issued session when created.
    #[serde(serialize_with = "show::duration")]
    pub ttl: Duration,
    /// `extend` never pushes an issued session past `created + max_lifetime`.
    #[serde(serialize_with = "show::duration")]
    pub max_lifetime: Duration,
    /// Live issued sessions one user may hold.
    pub max_per_user: usize,
    pub per_user_limit: PerUserLimit,
    /// Keep the `metadata` of `POST /sessions` (off by default: privacy).
    pub store_metadata: bool,
    /// Cap on a session API request body.
    pub max_body_bytes: usize,
    /// Cap on the serialized `metadata` of `POST /sessions`.
    pub max_metadata_bytes: usize,
    /// The cookie `/auth` reads a session token from.
    pub cookie_name: String,
    /// Live sessions one client address may hold.
    pub max_per_ip: usize,
    /// Most sessions held; the least recently used goes first.
    pub max_sessions: u64,
    /// How long a revocation lasts.
    #[serde(serialize_with = "show::duration")]
    pub revocation_ttl: Duration,
    /// Expired records are kept this long so reads can say 410, not 404.
    #[serde(serialize_with = "show::duration")]
    pub expired_retention: Duration,
    pub store_ip: StoreIp,
}

pub(super) fn session_settings(
    section: &SessionsSection,
    base_dir: &std::path::Path,
) -> Result<SessionSettings, ConfigError> {
    let encryption = encryption_settings(&section.encryption, section.store, base_dir)?;
    let backend = match section.store {
        StoreKind::Memory => StoreBackend::Memory,
        StoreKind::Embedded => StoreBackend::Embedded(EmbeddedSettings {
            encryption,
            ..embedded_settings(section)?
        }),
        StoreKind::Redis => StoreBackend::Redis(redis_settings(section)?),
        StoreKind::Postgres => StoreBackend::Postgres(PostgresSettings {
            encryption,
            ..postgres_settings(section)?
        }),
    };
    positive("sessions.idle_secs", section.idle_secs)?;
    positive("sessions.max_per_ip", section.max_per_ip as u64)?;
    positive("sessions.max_sessions", section.max_sessions)?;
    positive("sessions.revocation_ttl_secs", section.revocation_ttl_secs)?;
    positive("sessions.ttl_secs", section.ttl_secs)?;
    positive("sessions.max_lifetime_secs", section.max_lifetime_secs)?;
    if section.ttl_secs > section.max_lifetime_secs {
        return Err(ConfigError::invalid(
            "sessions.ttl_secs",
            "must not exceed sessions.max_lifetime_secs",
        ));
    }
    // Unix seconds must stay far from overflow when added to a timestamp.
    if section.max_lifetime_secs > 10 * 365 * 86400 {
        return Err(ConfigError::invalid(
            "sessions.max_lifetime_secs",
            "must be at most ten years",
        ));
    }
    positive("sessions.max_per_user", section.max_per_user as u64)?;
    if !(64..=1024 * 1024).contains(&section.max_body_bytes) {
        return Err(ConfigError::invalid(
            "sessions.max_body_bytes",
            "must be between 64 and 1048576",
        ));
    }
    positive(
        "sessions.max_metadata_bytes",
        section.max_metadata_bytes as u64,
    )?;
    let cookie_ok = !section.cookie_name.is_empty()
        && section
            .cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !cookie_ok {
        return Err(ConfigError::invalid(
            "sessions.cookie_name",
            "must be a cookie name (letters, digits, -_.)",
        ));
    }
    Ok(SessionSettings {
        backend,
        track: section.track,
        idle: Duration::from_secs(section.idle_secs),
        ttl: Duration::from_secs(section.ttl_secs),
        max_lifetime: Duration::from_secs(section.max_lifetime_secs),
        max_per_user: section.max_per_user,
        per_user_limit: section.per_user_limit,
        store_metadata: section.store_metadata,
        max_body_bytes: section.max_body_bytes,
        max_metadata_bytes: section.max_metadata_bytes,
        cookie_name: section.cookie_name.clone(),
        max_per_ip: section.max_per_ip,
        max_sessions: section.max_sessions,
        revocation_ttl: Duration::from_secs(section.revocation_ttl_secs),
        expired_retention: Duration::from_secs(section.expired_retention_secs),
        store_ip: section.store_ip,
    })
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;
