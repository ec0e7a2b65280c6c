//! `[auth]` and `[policies]`: the signed-header names, the key ring's
//! entries (`auth.keys`), static-header sessions, and what each policy
//! checks. Keys validate before policies, which may name them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::access::{access, Access};
use super::{positive, rate_spec, RateSpec};
use crate::config::abuse::{networks, version_filter, ClientFilters};
use crate::config::raw::{AuthSection, KeyEntry, PolicySection, RawConfig};
use crate::config::{show, ConfigError};
use crate::protocol::headers::ForwardedNames;
use crate::protocol::keyring::{KeyId, KeySource, KeySpec};
use crate::protocol::signature_v2::V2Names;
use crate::protocol::signed_request::HeaderNames;

/// `[auth.static_headers]`: how long and from where a header set signed
/// once may be used after it leaves the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StaticHeaders {
    pub max_age_secs: u64,
    pub pin_ip: bool,
}

/// The longest `auth.static_headers.max_age_secs`: a week.
pub const STATIC_HEADERS_MAX_AGE_LIMIT: u64 = 7 * 86400;

/// What one `/auth?policy=NAME` decision checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub name: String,
    pub max_skew_secs: u64,
    /// `None`: the default limiter.
    pub rate_limit: Option<RateSpec>,
    /// `None`: every live key verifies.
    #[serde(serialize_with = "show::key_ids")]
    pub key_ids: Option<Vec<KeyId>>,
    pub require_build: Option<String>,
    /// Never empty.
    pub methods: BTreeSet<AuthMethod>,
    /// 1: v1 or v2 signatures; 2: v2 only.
    pub min_signature_version: u8,
    /// `/auth` bodies arrive (Traefik `forwardBody: true`): an absent one is
    /// the empty body, and a v2 hash is always checked.
    pub forward_body: bool,
    /// Client versions and networks (`pipeline::abuse`).
    pub filters: ClientFilters,
    /// Roles, permissions and path rules (`pipeline::access`).
    pub access: Access,
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

/// `[auth]`, validated.
pub(super) struct Auth {
    pub header_names: HeaderNames,
    pub v2_names: V2Names,
    pub require_session_id: bool,
    pub monitor_mode: bool,
    pub static_headers: Option<StaticHeaders>,
    pub reload_poll: Duration,
    pub keys: Vec<KeySpec>,
    pub forwarded: ForwardedNames,
}

pub(super) fn auth(auth: &AuthSection, base_dir: &Path) -> Result<Auth, ConfigError> {
    let header_names = HeaderNames::with_prefix(&auth.header_prefix).map_err(|_| {
        ConfigError::invalid("auth.header_prefix", "is not a valid header name prefix")
    })?;
    let v2_names = V2Names::with_prefix(&auth.header_prefix).map_err(|_| {
        ConfigError::invalid("auth.header_prefix", "is not a valid header name prefix")
    })?;
    positive("auth.reload_poll_secs", auth.reload_poll_secs)?;
    let forwarded = forwarded_names(auth)?;
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
    Ok(Auth {
        header_names,
        v2_names,
        require_session_id: auth.require_session_id,
        monitor_mode: auth.monitor_mode,
        static_headers,
        reload_poll: Duration::from_secs(auth.reload_poll_secs),
        keys,
        forwarded,
    })
}

/// `auth.forwarded_method_header` and `auth.forwarded_uri_header`: header
/// names, two different ones.
fn forwarded_names(auth: &AuthSection) -> Result<ForwardedNames, ConfigError> {
    let name = |key: &str, text: &str| {
        http::HeaderName::from_bytes(text.trim().as_bytes())
            .map_err(|_| ConfigError::invalid(key, "is not a valid header name"))
    };
    let method = name(
        "auth.forwarded_method_header",
        &auth.forwarded_method_header,
    )?;
    let uri = name("auth.forwarded_uri_header", &auth.forwarded_uri_header)?;
    if method == uri {
        return Err(ConfigError::invalid(
            "auth.forwarded_uri_header",
            "must differ from auth.forwarded_method_header",
        ));
    }
    Ok(ForwardedNames { method, uri })
}

/// The default policy (the `[auth]` window, HMAC only) and every
/// `[policies.NAME]`, which inherit the window unless they set their own.
pub(super) fn policies(
    raw: &RawConfig,
    keys: &[KeySpec],
) -> Result<(Policy, BTreeMap<String, Policy>), ConfigError> {
    let max_skew_secs = raw.auth.max_skew_secs;
    skew("auth.max_skew_secs", max_skew_secs)?;
    let default_policy = Policy {
        name: "default".into(),
        max_skew_secs,
        rate_limit: None,
        key_ids: None,
        require_build: None,
        methods: BTreeSet::from([AuthMethod::Hmac]),
        min_signature_version: 1,
        forward_body: false,
        filters: ClientFilters::default(),
        access: Access::default(),
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
        let min_signature_version = match section.min_signature_version {
            None => 1,
            Some(v @ (1 | 2)) => v,
            Some(_) => {
                return Err(ConfigError::invalid(
                    key("min_signature_version"),
                    "must be 1 or 2",
                ))
            }
        };
        policies.insert(
            name.clone(),
            Policy {
                name: name.clone(),
                max_skew_secs: match section.max_skew_secs {
                    Some(secs) => skew(&key("max_skew_secs"), secs).map(|()| secs)?,
                    None => max_skew_secs,
                },
                rate_limit,
                key_ids,
                require_build: section.require_build.clone(),
                methods,
                min_signature_version,
                forward_body: section.forward_body.unwrap_or(false),
                filters: client_filters(&format!("policies.{name}"), section)?,
                access: access(name, section)?,
            },
        );
    }
    Ok((default_policy, policies))
}

/// `policies.NAME.{min_client_version, blocked_client_versions,
/// allow_networks, deny_networks}`.
fn client_filters(prefix: &str, section: &PolicySection) -> Result<ClientFilters, ConfigError> {
    let versions = version_filter(
        prefix,
        section.min_client_version.as_deref(),
        section.blocked_client_versions.as_deref(),
    )?;
    let allow_networks = match &section.allow_networks {
        Some(list) => Some(networks(&format!("{prefix}.allow_networks"), list)?),
        None => None,
    };
    let deny_networks = networks(
        &format!("{prefix}.deny_networks"),
        section.deny_networks.as_deref().unwrap_or_default(),
    )?;
    Ok(ClientFilters {
        versions,
        allow_networks,
        deny_networks,
    })
}

/// Validates `auth.keys` into specs: ids unique, one source each, relative
/// files from the config's folder. The secrets are read by the keyring.
fn key_specs(entries: &[KeyEntry], base_dir: &Path) -> Result<Vec<KeySpec>, ConfigError> {
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
        let versions = version_filter(
            &format!("auth.keys[{i}]"),
            entry.min_client_version.as_deref(),
            entry.blocked_client_versions.as_deref(),
        )?;
        specs.push(KeySpec {
            id: KeyId::new(id),
            source,
            not_after,
            state: entry.state,
            versions,
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

/// The longest window accepted: a day. Past that, a captured request is
/// replayable for so long that the window protects nothing.
pub const MAX_SKEW_LIMIT_SECS: u64 = 86400;

fn skew(key: &str, secs: u64) -> Result<(), ConfigError> {
    positive(key, secs)?;
    if secs > MAX_SKEW_LIMIT_SECS {
        return Err(ConfigError::invalid(
            key,
            format!("must be at most {MAX_SKEW_LIMIT_SECS} (a day); the protocol's window is 300"),
        ));
    }
    Ok(())
}
