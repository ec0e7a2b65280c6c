//! Turns a [`RawConfig`] into typed [`Settings`], once, at start (and on key
//! reload). Every error names the key it is about.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ingest::{validate_ingest, IngestSettings};
use super::raw::{KeyEntry, RawConfig};
use super::sessions::{session_settings, SessionSettings};
use super::ConfigError;
use crate::ip::TrustedProxies;
use crate::keyring::{KeyId, KeySource, KeySpec};
use crate::signature_v2::V2Names;
use crate::signed_request::HeaderNames;

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub trusted_proxies: TrustedProxies,
    pub server: ServerSettings,
    pub header_names: HeaderNames,
    pub v2_names: V2Names,
    pub require_session_id: bool,
    /// Allow every request after deciding it (logged and counted as decided).
    pub monitor_mode: bool,
    /// `Some`: static-header sessions are on.
    pub static_headers: Option<StaticHeaders>,
    pub reload_poll: Duration,
    pub keys: Vec<KeySpec>,
    pub rate_limit: RateSpec,
    pub purge_interval: Duration,
    pub ipv6_prefix: u8,
    pub default_policy: Policy,
    pub policies: BTreeMap<String, Policy>,
    pub sessions: SessionSettings,
    pub admin_token_file: Option<PathBuf>,
    pub metrics_namespace: String,
    pub log_format: LogFormat,
    pub log_level: String,
    pub status: StatusSettings,
    pub ingest: IngestSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

/// `[auth.static_headers]`: how long and from where a header set signed
/// once may be used after it leaves the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticHeaders {
    pub max_age_secs: u64,
    pub pin_ip: bool,
}

/// The longest `auth.static_headers.max_age_secs`: a week.
pub const STATIC_HEADERS_MAX_AGE_LIMIT: u64 = 7 * 86400;

/// The `/` and `/waiting` status pages.
#[derive(Debug, Clone)]
pub struct StatusSettings {
    pub templates_dir: Option<PathBuf>,
    pub refresh_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// What one `/auth?policy=NAME` decision checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub max_skew_secs: u64,
    /// `None`: the default limiter.
    pub rate_limit: Option<RateSpec>,
    /// `None`: every live key verifies.
    pub key_ids: Option<Vec<KeyId>>,
    pub require_build: Option<String>,
    /// Never empty.
    pub methods: BTreeSet<AuthMethod>,
    /// 1: v1 or v2 signatures; 2: v2 only.
    pub min_signature_version: u8,
}

/// A credential a policy accepts (`policies.NAME.methods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// An `X-KMS-*` signature (v1 or v2).
    Hmac,
    /// A session token issued by `POST /sessions`.
    Session,
}

impl Policy {
    /// Whether `methods` lists this credential.
    pub fn allows(&self, method: AuthMethod) -> bool {
        self.methods.contains(&method)
    }
}

pub fn validate(raw: RawConfig, base_dir: &Path) -> Result<Settings, ConfigError> {
    let listen = raw.listen.parse().map_err(|_| {
        ConfigError::invalid("listen", format!("{:?} is not an address:port", raw.listen))
    })?;
    let trusted = raw
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, cidr)| {
            parse_cidr(cidr).map_err(|m| ConfigError::invalid(format!("trusted_proxies[{i}]"), m))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let server = &raw.server;
    positive(
        "server.header_read_timeout_secs",
        server.header_read_timeout_secs,
    )?;
    // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB.
    if !(8192..=1024 * 1024).contains(&server.max_header_bytes) {
        return Err(ConfigError::invalid(
            "server.max_header_bytes",
            "must be between 8192 and 1048576",
        ));
    }
    if !(1..=1000).contains(&server.max_headers) {
        return Err(ConfigError::invalid(
            "server.max_headers",
            "must be between 1 and 1000",
        ));
    }
    positive("server.max_connections", server.max_connections as u64)?;

    let auth = &raw.auth;
    let header_names = HeaderNames::with_prefix(&auth.header_prefix).map_err(|_| {
        ConfigError::invalid("auth.header_prefix", "is not a valid header name prefix")
    })?;
    let v2_names = V2Names::with_prefix(&auth.header_prefix).map_err(|_| {
        ConfigError::invalid("auth.header_prefix", "is not a valid header name prefix")
    })?;
    positive("auth.reload_poll_secs", auth.reload_poll_secs)?;
    let keys = key_specs(&auth.keys, base_dir)?;
    let static_headers = match &auth.static_headers {
        None => None,
        Some(section) => {
            if !(1..=STATIC_HEADERS_MAX_AGE_LIMIT).contains(&section.max_age_secs) {
                return Err(ConfigError::invalid(
                    "auth.static_headers.max_age_secs",
                    format!("must be between 1 and {STATIC_HEADERS_MAX_AGE_LIMIT} (7 days)"),
                ));
            }
            Some(StaticHeaders {
                max_age_secs: section.max_age_secs,
                pin_ip: section.pin_ip,
            })
        }
    };

    let rate_limit = rate_spec(
        "rate_limit",
        raw.rate_limit.per_second,
        raw.rate_limit.burst,
    )?;
    positive(
        "rate_limit.purge_interval_secs",
        raw.rate_limit.purge_interval_secs,
    )?;
    if raw.rate_limit.ipv6_prefix > 128 {
        return Err(ConfigError::invalid(
            "rate_limit.ipv6_prefix",
            "must be at most 128",
        ));
    }

    let default_policy = Policy {
        name: "default".into(),
        max_skew_secs: auth.max_skew_secs,
        rate_limit: None,
        key_ids: None,
        require_build: None,
        methods: BTreeSet::from([AuthMethod::Hmac]),
        min_signature_version: 1,
    };
    let mut policies = BTreeMap::new();
    for (name, section) in &raw.policies {
        let key = |field: &str| format!("policies.{name}.{field}");
        let rate_limit = match &section.rate_limit {
            Some(rate) => Some(rate_spec(&key("rate_limit"), rate.per_second, rate.burst)?),
            None => None,
        };
        let key_ids = match &section.key_ids {
            Some(ids) => {
                for id in ids {
                    if !keys.iter().any(|k| k.id.as_str() == id) {
                        return Err(ConfigError::invalid(
                            key("key_ids"),
                            format!("no key has id {id:?}"),
                        ));
                    }
                }
                Some(ids.iter().map(|id| KeyId::new(id)).collect())
            }
            None => None,
        };
        let methods: BTreeSet<AuthMethod> = match &section.methods {
            Some(methods) => methods.iter().copied().collect(),
            None => BTreeSet::from([AuthMethod::Hmac]),
        };
        if methods.is_empty() {
            return Err(ConfigError::invalid(
                key("methods"),
                "must name at least one method",
            ));
        }
        policies.insert(
            name.clone(),
            Policy {
                name: name.clone(),
                max_skew_secs: section.max_skew_secs.unwrap_or(auth.max_skew_secs),
                rate_limit,
                key_ids,
                require_build: section.require_build.clone(),
                methods,
                min_signature_version: match section.min_signature_version {
                    None => 1,
                    Some(v @ (1 | 2)) => v,
                    Some(_) => {
                        return Err(ConfigError::invalid(
                            key("min_signature_version"),
                            "must be 1 or 2",
                        ))
                    }
                },
            },
        );
    }

    let sessions = session_settings(&raw.sessions)?;
    let ingest = validate_ingest(&raw.ingest, &raw.collector, policies.keys())?;
    let admin_token_file = raw
        .admin
        .token_file
        .as_ref()
        .map(|file| base_dir.join(file));

    let namespace = &raw.metrics.namespace;
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
    if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
        return Err(ConfigError::invalid(
            "log.level",
            format!("{:?} is not a tracing filter", raw.log.level),
        ));
    }

    Ok(Settings {
        listen,
        trusted_proxies: TrustedProxies::new(trusted),
        server: ServerSettings {
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
            max_header_bytes: server.max_header_bytes,
            max_headers: server.max_headers,
            max_connections: server.max_connections,
            shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
        },
        header_names,
        v2_names,
        require_session_id: auth.require_session_id,
        monitor_mode: auth.monitor_mode,
        static_headers,
        reload_poll: Duration::from_secs(auth.reload_poll_secs),
        keys,
        rate_limit,
        purge_interval: Duration::from_secs(raw.rate_limit.purge_interval_secs),
        ipv6_prefix: raw.rate_limit.ipv6_prefix,
        default_policy,
        policies,
        sessions,
        admin_token_file,
        metrics_namespace: namespace.clone(),
        log_format: raw.log.format,
        log_level: raw.log.level.clone(),
        status: status_settings(&raw, base_dir)?,
        ingest,
    })
}

fn status_settings(raw: &RawConfig, base_dir: &Path) -> Result<StatusSettings, ConfigError> {
    let section = &raw.status;
    if !(1..=3600).contains(&section.refresh_secs) {
        return Err(ConfigError::invalid(
            "status.refresh_secs",
            "must be between 1 and 3600",
        ));
    }
    Ok(StatusSettings {
        templates_dir: section.templates_dir.as_ref().map(|dir| base_dir.join(dir)),
        refresh_secs: section.refresh_secs,
    })
}

/// Validates `auth.keys` into specs (also used by the key reloader).
pub fn key_specs(entries: &[KeyEntry], base_dir: &Path) -> Result<Vec<KeySpec>, ConfigError> {
    let mut specs: Vec<KeySpec> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let key = |field: &str| format!("auth.keys[{i}].{field}");
        let id = entry.id.trim();
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !id_ok {
            return Err(ConfigError::invalid(
                key("id"),
                "must be 1-64 characters of [A-Za-z0-9._-]",
            ));
        }
        if specs.iter().any(|s| s.id.as_str() == id) {
            return Err(ConfigError::invalid(
                key("id"),
                format!("{id:?} is used twice"),
            ));
        }
        let source = match (&entry.file, &entry.env) {
            (Some(file), None) => KeySource::File(base_dir.join(file)),
            (None, Some(var)) => KeySource::Env(var.clone()),
            _ => {
                return Err(ConfigError::invalid(
                    format!("auth.keys[{i}]"),
                    "needs exactly one of `file` or `env`",
                ))
            }
        };
        let not_after = match &entry.not_after {
            Some(text) => {
                Some(parse_time(text).map_err(|m| ConfigError::invalid(key("not_after"), m))?)
            }
            None => None,
        };
        specs.push(KeySpec {
            id: KeyId::new(id),
            source,
            not_after,
        });
    }
    Ok(specs)
}

/// RFC 3339 (`2026-12-31T00:00:00Z`) to Unix seconds.
fn parse_time(text: &str) -> Result<i64, String> {
    let time = humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(text))
        .map_err(|_| format!("{text:?} is not an RFC 3339 time like 2026-12-31T00:00:00Z"))?;
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before 1970"))?
        .as_secs();
    i64::try_from(secs).map_err(|_| format!("{text:?} is too far in the future"))
}

fn parse_cidr(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{text:?} is not an IP address or CIDR"))
}

fn rate_spec(key: &str, per_second: u32, burst: u32) -> Result<RateSpec, ConfigError> {
    Ok(RateSpec {
        per_second: NonZeroU32::new(per_second).ok_or_else(|| {
            ConfigError::invalid(format!("{key}.per_second"), "must be at least 1")
        })?,
        burst: NonZeroU32::new(burst)
            .ok_or_else(|| ConfigError::invalid(format!("{key}.burst"), "must be at least 1"))?,
    })
}

pub(super) fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be greater than 0"));
    }
    Ok(())
}
