//! Configuration: one TOML file, every key overridable by
//! `TELEGATE_SECTION__KEY` environment variables, validated once into typed
//! [`Settings`] with errors that name the key.
//!
//! The original deployment's variables are accepted too, so an operator can
//! swap the image without touching the compose file:
//! `KOTORMODSYNC_SIGNING_SECRET` (key id `kotormodsync`),
//! `MODSYNC_SIGNING_SECRET` (key id `modsync`), the secret file at
//! `KOTORMODSYNC_SECRET_FILE` (default `/run/secrets/kotormodsync_signing_secret`,
//! key id `kotormodsync`, used when it exists and the variable is unset),
//! `AUTH_SERVICE_PORT` (the listen port; `TELEGATE_LISTEN` wins) and
//! `REQUIRE_AUTH=false` (monitor mode).

mod abuse;
mod collector;
mod content;
mod encryption;
pub mod env_files;
pub mod glob;
pub mod hazards;
mod ingest;
mod raw;
mod sentinel;
mod sessions;
mod show;
mod spool;
mod store_backend;
mod validate;

use std::path::{Path, PathBuf};

pub use crate::env::{Env, MapEnv, ProcessEnv};
pub use abuse::{
    BanSettings, BansSection, ClientFilters, QuotaEntry, QuotaSpec, QuotaUnit, MAX_QUOTAS,
};
pub use collector::{CollectorSection, CollectorSettings};
pub use content::{
    CardinalitySection, CardinalitySettings, ContentSection, ContentSettings, OnViolation,
};
pub use encryption::{EncryptionSection, EncryptionSettings};
pub use ingest::{IngestMode, IngestSection, IngestSettings};
pub use raw::*;
pub use sentinel::{SentinelSettings, MAX_SENTINELS};
pub use sessions::{PerUserLimit, SessionSettings, SessionsSection, StoreIp, StoreKind};
pub use spool::{Fsync, SpoolSection, SpoolSettings};
pub use store_backend::{EmbeddedSettings, PostgresSettings, RedisSettings, StoreBackend};
pub use validate::{
    Access, AuthMethod, DecisionLog, LogFormat, Policy, RateSpec, ServerSettings, Settings,
    StaticHeaders, StatusSettings, STATIC_HEADERS_MAX_AGE_LIMIT,
};

/// The embedded default (`config/telegate.toml`), used when no file is named.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/telegate.toml");

/// Prefix of the override variables.
pub const ENV_PREFIX: &str = "TELEGATE_";

/// Variables with the prefix that are not config keys.
const NOT_CONFIG_KEYS: &[&str] = &["TELEGATE_CONFIG"];

/// Legacy variables of the original service, each a key with a fixed id.
pub const LEGACY_SECRET_VARS: &[(&str, &str)] = &[
    ("KOTORMODSYNC_SIGNING_SECRET", "kotormodsync"),
    ("MODSYNC_SIGNING_SECRET", "modsync"),
];

/// The original service's secret file variable, and its default.
pub const LEGACY_SECRET_FILE_VAR: &str = "KOTORMODSYNC_SECRET_FILE";
pub const LEGACY_SECRET_FILE_DEFAULT: &str = "/run/secrets/kotormodsync_signing_secret";
/// The original service's port variable (the host of `listen` is kept).
pub const LEGACY_PORT_VAR: &str = "AUTH_SERVICE_PORT";
/// The original service's switch; `false` here means monitor mode.
pub const LEGACY_REQUIRE_AUTH_VAR: &str = "REQUIRE_AUTH";

/// Where the configuration text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    /// The embedded default; relative key paths resolve against `./config`.
    Embedded,
}

impl ConfigSource {
    /// The folder relative key paths resolve against.
    pub fn base_dir(&self) -> PathBuf {
        match self {
            ConfigSource::File(path) => path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            ConfigSource::Embedded => PathBuf::from("config"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Embedded => "embedded default (config/telegate.toml)".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("config is not valid TOML: {0}")]
    Syntax(String),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Reads, overrides and validates the configuration.
pub fn load(source: &ConfigSource, env: &dyn Env) -> Result<Settings, ConfigError> {
    let text = match source {
        ConfigSource::File(path) => {
            std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
                path: path.display().to_string(),
                detail: err.to_string(),
            })?
        }
        ConfigSource::Embedded => EMBEDDED_DEFAULT.to_string(),
    };
    from_text(&text, source, env)
}

/// Parses, overrides and validates configuration text; `source` is where it
/// came from (relative key paths resolve against its folder). Nothing is
/// read from disk but the files of the `*_FILE` variables
/// ([`env_files`]): key secrets are read later by the keyring.
pub fn from_text(
    text: &str,
    source: &ConfigSource,
    env: &dyn Env,
) -> Result<Settings, ConfigError> {
    let raw = parse_with_overrides(text, source, env)?;
    validate::validate(&raw, &source.base_dir())
}

/// Parses TOML, applies `TELEGATE_*` and legacy overrides, deserializes.
pub fn parse_with_overrides(
    text: &str,
    source: &ConfigSource,
    env: &dyn Env,
) -> Result<RawConfig, ConfigError> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|err| ConfigError::Syntax(err.to_string()))?;
    let mut origins = Vec::new();
    for (name, value) in env.with_prefix(ENV_PREFIX) {
        if NOT_CONFIG_KEYS.contains(&name.as_str()) || env_files::handles(&name) {
            continue;
        }
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        set_path(&mut table, &path, env_value(&value))
            .map_err(|message| ConfigError::invalid(&name, message))?;
        origins.push((path.join("."), name));
    }
    // `NAME_FILE` for the secrets (Docker secrets): as if `NAME` were set.
    for (name, value) in env_files::overrides(env)? {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        set_path(&mut table, &path, toml::Value::String(value))
            .map_err(|message| ConfigError::invalid(format!("{name}_FILE"), message))?;
        origins.push((path.join("."), format!("{name}_FILE")));
    }
    let mut raw: RawConfig =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|err| {
            let key = err.path().to_string();
            let from_env = origins
                .iter()
                .find(|(path, _)| key.starts_with(path.as_str()))
                .map(|(_, var)| format!(" (set by {var})"))
                .unwrap_or_default();
            ConfigError::invalid(format!("{key}{from_env}"), err.into_inner().to_string())
        })?;
    env_files::apply_redis_password(&mut raw, env)?;
    apply_legacy_secrets(&mut raw, source, env);
    apply_legacy_service(&mut raw, env)?;
    Ok(raw)
}

/// `AUTH_SERVICE_PORT` and `REQUIRE_AUTH` of the original service.
/// `TELEGATE_LISTEN` names the whole address and wins over the port.
fn apply_legacy_service(raw: &mut RawConfig, env: &dyn Env) -> Result<(), ConfigError> {
    if let Some(port) = env.var(LEGACY_PORT_VAR) {
        let port: u16 = port.trim().parse().map_err(|_| {
            ConfigError::invalid(LEGACY_PORT_VAR, format!("{port:?} is not a port number"))
        })?;
        if env.var("TELEGATE_LISTEN").is_none() {
            let mut listen: std::net::SocketAddr = raw.listen.parse().map_err(|_| {
                ConfigError::invalid("listen", format!("{:?} is not an address:port", raw.listen))
            })?;
            listen.set_port(port);
            raw.listen = listen.to_string();
        }
    }
    if let Some(value) = env.var(LEGACY_REQUIRE_AUTH_VAR) {
        match value.trim().to_ascii_lowercase().as_str() {
            "false" | "0" | "no" | "off" => raw.auth.monitor_mode = true,
            "true" | "1" | "yes" | "on" | "" => {}
            other => {
                return Err(ConfigError::invalid(
                    LEGACY_REQUIRE_AUTH_VAR,
                    format!("{other:?} is not true or false"),
                ))
            }
        }
    }
    Ok(())
}

/// The original service's secret variables become keys with fixed ids. With
/// the embedded default they replace its development key: an operator who
/// sets a real secret must never keep the public one live beside it.
fn apply_legacy_secrets(raw: &mut RawConfig, source: &ConfigSource, env: &dyn Env) {
    let mut legacy: Vec<KeyEntry> = LEGACY_SECRET_VARS
        .iter()
        .filter(|(var, _)| {
            env.var(var).is_some_and(|v| !v.trim().is_empty())
                || env
                    .var(&format!("{var}{}", crate::secret_file::FILE_SUFFIX))
                    .is_some()
        })
        .map(|(var, id)| KeyEntry {
            id: (*id).to_string(),
            file: None,
            env: Some((*var).to_string()),
            ..KeyEntry::default()
        })
        .collect();
    // The original read its secret file only when the variable was unset.
    if !legacy.iter().any(|k| k.id == "kotormodsync") {
        let file = env
            .var(LEGACY_SECRET_FILE_VAR)
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| LEGACY_SECRET_FILE_DEFAULT.to_string());
        if Path::new(file.trim()).is_file() {
            legacy.push(KeyEntry {
                id: "kotormodsync".to_string(),
                file: Some(file.trim().to_string()),
                ..KeyEntry::default()
            });
        }
    }
    if legacy.is_empty() {
        return;
    }
    if *source == ConfigSource::Embedded && env.var("TELEGATE_AUTH__KEYS").is_none() {
        raw.auth.keys.clear();
    }
    for entry in legacy {
        if !raw.auth.keys.iter().any(|k| k.id == entry.id) {
            raw.auth.keys.push(entry);
        }
    }
}

/// An override's value: TOML when it parses as a TOML value (`10`, `true`,
/// `["a", "b"]`, `[{ id = "k", file = "/f" }]`), else the plain string.
fn env_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] if !last.is_empty() => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [head, rest @ ..] if !head.is_empty() => {
            let entry = table
                .entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(inner) => set_path(inner, rest, value),
                _ => Err(format!("{head} is not a section")),
            }
        }
        _ => Err("empty key segment".into()),
    }
}

#[cfg(test)]
mod tests;
