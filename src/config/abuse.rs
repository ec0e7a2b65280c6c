//! The abuse controls' configuration: `[[quotas]]`, `[bans]`, and the
//! client filters a policy (`policies.NAME.*`) or a key (`auth.keys[].*`)
//! may carry (minimum and blocked client versions, allowed and denied
//! networks). The sections as written and their validation into typed
//! values, which `pipeline::abuse` runs.

use std::num::NonZeroU64;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::protocol::abuse::{KeyState, QuotaScope};
use crate::protocol::client_version::{Version, VersionFilter};

/// Most `[[quotas]]` entries: each costs a bucket lookup per request.
pub const MAX_QUOTAS: usize = 32;
/// Most entries in one version or network list.
const MAX_LIST: usize = 1024;

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaUnit {
    Requests,
    /// Spans, data points or log records of an export (ingest routes only).
    Items,
    /// Body bytes as sent.
    Bytes,
}

/// One `[[quotas]]` entry as written.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QuotaEntry {
    pub scope: QuotaScope,
    pub unit: QuotaUnit,
    /// Allowed per `period_secs`.
    pub rate: u64,
    pub period_secs: u64,
    /// Spent at once at most; defaults to `rate`.
    pub burst: Option<u64>,
    /// The policies it applies to (all when absent).
    pub policies: Option<Vec<String>>,
    /// The key states it applies to (all when absent), e.g. `["deprecated"]`
    /// for a deprecated key's own, smaller quota.
    pub key_states: Option<Vec<KeyState>>,
}

/// `[bans]` as written; absent: no bans.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BansSection {
    /// Refusals from one address or session within `within_secs` that ban it.
    pub refusals: u32,
    pub within_secs: u64,
    /// The first ban; each repeat doubles it, up to `max_ban_secs`.
    pub ban_secs: u64,
    pub max_ban_secs: u64,
}

impl Default for BansSection {
    fn default() -> Self {
        BansSection {
            refusals: 20,
            within_secs: 60,
            ban_secs: 60,
            max_ban_secs: 3600,
        }
    }
}

/// A validated quota.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaSpec {
    pub scope: QuotaScope,
    pub unit: QuotaUnit,
    pub rate: NonZeroU64,
    pub period_secs: NonZeroU64,
    pub burst: NonZeroU64,
    pub policies: Option<Vec<String>>,
    pub key_states: Option<Vec<KeyState>>,
}

impl QuotaSpec {
    /// Whether it counts a request under `policy` signed with a `state` key.
    pub fn applies(&self, policy: &str, state: KeyState) -> bool {
        self.policies
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == policy))
            && self
                .key_states
                .as_ref()
                .is_none_or(|states| states.contains(&state))
    }
}

/// Validated `[bans]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BanSettings {
    pub refusals: u32,
    pub within_secs: u64,
    pub ban_secs: u64,
    pub max_ban_secs: u64,
}

/// A policy's client filters: versions and networks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientFilters {
    pub versions: VersionFilter,
    /// `Some`: only these networks pass (403 `network_denied`).
    pub allow_networks: Option<Vec<IpNet>>,
    /// These networks never pass, even when allowed.
    pub deny_networks: Vec<IpNet>,
}

impl ClientFilters {
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.allow_networks.is_none() && self.deny_networks.is_empty()
    }

    /// Whether the (canonical) client address passes the network lists.
    pub fn network_allows(&self, ip: std::net::IpAddr) -> bool {
        let ip = crate::ip::canonical(ip);
        if self.deny_networks.iter().any(|net| net.contains(&ip)) {
            return false;
        }
        self.allow_networks
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|net| net.contains(&ip)))
    }
}

pub(super) fn quotas(
    entries: &[QuotaEntry],
    policy_names: &[&str],
) -> Result<Vec<QuotaSpec>, ConfigError> {
    if entries.len() > MAX_QUOTAS {
        return Err(ConfigError::invalid(
            "quotas",
            format!("at most {MAX_QUOTAS} entries"),
        ));
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let key = |field: &str| format!("quotas[{i}].{field}");
            let positive = |field: &str, value: u64| {
                NonZeroU64::new(value)
                    .ok_or_else(|| ConfigError::invalid(key(field), "must be at least 1"))
            };
            if let Some(names) = &entry.policies {
                if let Some(unknown) = names.iter().find(|n| !policy_names.contains(&n.as_str())) {
                    return Err(ConfigError::invalid(
                        key("policies"),
                        format!("no policy is named {unknown:?}"),
                    ));
                }
            }
            Ok(QuotaSpec {
                scope: entry.scope,
                unit: entry.unit,
                rate: positive("rate", entry.rate)?,
                period_secs: positive("period_secs", entry.period_secs)?,
                burst: positive("burst", entry.burst.unwrap_or(entry.rate))?,
                policies: entry.policies.clone(),
                key_states: entry.key_states.clone(),
            })
        })
        .collect()
}

pub(super) fn bans(section: Option<&BansSection>) -> Result<Option<BanSettings>, ConfigError> {
    let Some(section) = section else {
        return Ok(None);
    };
    for (key, value) in [
        ("bans.refusals", u64::from(section.refusals)),
        ("bans.within_secs", section.within_secs),
        ("bans.ban_secs", section.ban_secs),
    ] {
        super::validate::positive(key, value)?;
    }
    if section.max_ban_secs < section.ban_secs {
        return Err(ConfigError::invalid(
            "bans.max_ban_secs",
            "must be at least bans.ban_secs",
        ));
    }
    Ok(Some(BanSettings {
        refusals: section.refusals,
        within_secs: section.within_secs,
        ban_secs: section.ban_secs,
        max_ban_secs: section.max_ban_secs,
    }))
}

/// `PREFIX.min_client_version` and `PREFIX.blocked_client_versions`.
pub(super) fn version_filter(
    prefix: &str,
    min: Option<&str>,
    blocked: Option<&[String]>,
) -> Result<VersionFilter, ConfigError> {
    let min_version = match min {
        None => None,
        Some(text) => Some(Version::parse(text).ok_or_else(|| {
            ConfigError::invalid(
                format!("{prefix}.min_client_version"),
                format!("{text:?} does not start with a version number like 2.0.1"),
            )
        })?),
    };
    let blocked = blocked.unwrap_or_default();
    if blocked.len() > MAX_LIST {
        return Err(ConfigError::invalid(
            format!("{prefix}.blocked_client_versions"),
            format!("at most {MAX_LIST} entries"),
        ));
    }
    Ok(VersionFilter {
        min: min_version,
        min_text: min.map(str::to_string),
        blocked: blocked.iter().map(|b| b.trim().to_lowercase()).collect(),
    })
}

/// `PREFIX.allow_networks` / `PREFIX.deny_networks`: CIDRs (a bare address
/// is its own /32 or /128).
pub(super) fn networks(key: &str, texts: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    if texts.len() > MAX_LIST {
        return Err(ConfigError::invalid(
            key,
            format!("at most {MAX_LIST} entries"),
        ));
    }
    texts
        .iter()
        .map(|text| {
            let text = text.trim();
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| ConfigError::invalid(key, format!("{text:?} is not a CIDR")))
        })
        .collect()
}
