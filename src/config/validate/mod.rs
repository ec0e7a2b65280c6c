//! Turns a [`RawConfig`] into typed [`Settings`], once, at start (and on key
//! reload). Every error names the key it is about.
//!
//! One file per part of the file: [`server`] (`listen`, `trusted_proxies`,
//! `[server]`, `[rate_limit]`), [`auth`] (`[auth]`, its keys and
//! `[policies]`), [`observe`] (`[metrics]`, `[log]`, `[status]`); the
//! sessions and ingest sections validate in their own modules. [`validate`]
//! runs them in the order of the file and assembles the result.

mod access;
mod auth;
mod observe;
mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::abuse::{self, BanSettings, QuotaSpec};
use super::content::{cardinality_settings, ingest_content, CardinalitySettings, ContentSettings};
use super::ingest::{validate_ingest, IngestSettings};
use super::raw::RawConfig;
use super::sessions::{session_settings, SessionSettings};
use super::spool::{spool_settings, SpoolSettings};
use super::{show, ConfigError};
use crate::ip::TrustedProxies;
use crate::protocol::headers::ForwardedNames;
use crate::protocol::keyring::KeySpec;
use crate::protocol::signature_v2::V2Names;
use crate::protocol::signed_request::HeaderNames;

pub use access::Access;
pub use auth::{AuthMethod, Policy, StaticHeaders, STATIC_HEADERS_MAX_AGE_LIMIT};
pub use observe::{DecisionLog, LogFormat, StatusSettings};
pub use server::ServerSettings;

/// The whole configuration, typed. It serializes (for `check-config`)
/// without a secret: keys show their id and source, header values of the
/// collector are hidden, a Redis URL loses its credentials.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `ops_listen`: the operations endpoints' own listener, if any.
    pub ops_listen: Option<SocketAddr>,
    pub trusted_proxies: TrustedProxies,
    pub server: ServerSettings,
    #[serde(serialize_with = "show::header_names")]
    pub header_names: HeaderNames,
    #[serde(serialize_with = "show::v2_names")]
    pub v2_names: V2Names,
    pub require_session_id: bool,
    /// Allow every request after deciding it (logged and counted as decided).
    pub monitor_mode: bool,
    /// `Some`: static-header sessions are on.
    pub static_headers: Option<StaticHeaders>,
    #[serde(serialize_with = "show::duration")]
    pub reload_poll: Duration,
    #[serde(serialize_with = "show::keys")]
    pub keys: Vec<KeySpec>,
    /// Where a forwardAuth request names the original method and URI.
    #[serde(serialize_with = "show::forwarded")]
    pub forwarded: ForwardedNames,
    pub rate_limit: RateSpec,
    /// `rate_limit.session_api`: the session API's own limiter.
    pub session_api_rate: RateSpec,
    #[serde(serialize_with = "show::duration")]
    pub purge_interval: Duration,
    pub ipv6_prefix: u8,
    pub default_policy: Policy,
    pub policies: BTreeMap<String, Policy>,
    pub sessions: SessionSettings,
    pub admin_token_file: Option<PathBuf>,
    pub metrics_namespace: String,
    pub log_format: LogFormat,
    pub log_level: String,
    pub log_decisions: DecisionLog,
    pub status: StatusSettings,
    pub ingest: IngestSettings,
    pub spool: SpoolSettings,
    /// The content policy the ingest routes apply (`[content]`, or
    /// `ingest.policy`'s own); `None`: off.
    pub content: Option<ContentSettings>,
    /// `[cardinality]`; `None`: off.
    pub cardinality: Option<CardinalitySettings>,
    /// `[[quotas]]`.
    pub quotas: Vec<QuotaSpec>,
    /// `[bans]`; `None`: off.
    pub bans: Option<BanSettings>,
}

/// A GCRA limit: the default one (`[rate_limit]`) or a policy's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateSpec {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

pub fn validate(raw: &RawConfig, base_dir: &Path) -> Result<Settings, ConfigError> {
    let (listen, trusted_proxies) = server::addresses(raw)?;
    let ops_listen = server::ops_listen(raw, listen)?;
    let server = server::server_settings(&raw.server)?;
    let auth = auth::auth(&raw.auth, base_dir)?;
    let limits = server::limits(&raw.rate_limit)?;
    let (default_policy, policies) = auth::policies(raw, &auth.keys)?;
    let sessions = session_settings(&raw.sessions, base_dir)?;
    let ingest = validate_ingest(&raw.ingest, &raw.collector, policies.keys())?;
    // One export at its caps must fit, or it could never pass.
    let one_export = ingest.max_body_bytes + ingest.max_decompressed_bytes;
    if server.body_budget_bytes < one_export {
        return Err(ConfigError::invalid(
            "server.body_budget_bytes",
            format!("must be at least ingest.max_body_bytes + ingest.max_decompressed_bytes ({one_export})"),
        ));
    }
    let mut server = server;
    server.body_budget_per_client_bytes = match raw.server.body_budget_per_client_bytes {
        None => (server.body_budget_bytes / 4).max(one_export),
        Some(share) if share < one_export || share > server.body_budget_bytes => {
            return Err(ConfigError::invalid(
                "server.body_budget_per_client_bytes",
                format!(
                    "must be between one export at its caps ({one_export}) and server.body_budget_bytes ({})",
                    server.body_budget_bytes
                ),
            ));
        }
        Some(share) => share,
    };
    let content = ingest_content(raw, &ingest)?;
    let cardinality = cardinality_settings(raw, &ingest)?;
    let admin_token_file = raw
        .admin
        .token_file
        .as_ref()
        .map(|file| base_dir.join(file));
    observe::metrics(&raw.metrics)?;
    observe::log(&raw.log)?;
    let status = observe::status(&raw.status, base_dir)?;
    let spool = spool_settings(&raw.spool, base_dir)?;
    let policy_names: Vec<&str> = std::iter::once("default")
        .chain(policies.keys().map(String::as_str))
        .collect();
    let quotas = abuse::quotas(&raw.quotas, &policy_names)?;
    let bans = abuse::bans(raw.bans.as_ref())?;
    Ok(Settings {
        listen,
        ops_listen,
        trusted_proxies,
        server,
        header_names: auth.header_names,
        v2_names: auth.v2_names,
        require_session_id: auth.require_session_id,
        monitor_mode: auth.monitor_mode,
        static_headers: auth.static_headers,
        reload_poll: auth.reload_poll,
        keys: auth.keys,
        forwarded: auth.forwarded,
        rate_limit: limits.rate_limit,
        session_api_rate: limits.session_api,
        purge_interval: limits.purge_interval,
        ipv6_prefix: limits.ipv6_prefix,
        default_policy,
        policies,
        sessions,
        admin_token_file,
        metrics_namespace: raw.metrics.namespace.clone(),
        log_format: raw.log.format,
        log_level: raw.log.level.clone(),
        log_decisions: raw.log.decisions,
        status,
        ingest,
        spool,
        content,
        cardinality,
        quotas,
        bans,
    })
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

pub(in crate::config) fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be greater than 0"));
    }
    Ok(())
}
