//! The configuration file as written: one serde struct, defaults included.
//! [`super::validate`] turns it into typed [`super::Settings`].

use std::collections::BTreeMap;

use serde::de::IntoDeserializer;
use serde::{Deserialize, Deserializer, Serialize};

use super::abuse::{BansSection, QuotaEntry};
use super::collector::CollectorSection;
use super::content::{CardinalitySection, ContentSection};
use super::ingest::IngestSection;
use super::sessions::SessionsSection;
use super::spool::SpoolSection;
use super::validate::{AuthMethod, DecisionLog, LogFormat};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub listen: String,
    /// The operations listener (`/metrics`, status pages, admin routes);
    /// absent: everything on `listen`.
    pub ops_listen: Option<String>,
    pub trusted_proxies: Vec<String>,
    pub server: ServerSection,
    pub auth: AuthSection,
    pub rate_limit: RateLimitSection,
    pub policies: BTreeMap<String, PolicySection>,
    pub sessions: SessionsSection,
    pub admin: AdminSection,
    pub metrics: MetricsSection,
    pub log: LogSection,
    pub status: StatusSection,
    pub ingest: IngestSection,
    pub collector: CollectorSection,
    pub spool: SpoolSection,
    /// The ingest content policy (absent: off).
    pub content: Option<ContentSection>,
    /// The ingest series guard (absent: off).
    pub cardinality: Option<CardinalitySection>,
    /// `[[quotas]]`: per credential scope (`config/abuse.rs`).
    pub quotas: Vec<QuotaEntry>,
    /// `[bans]`: absent, no bans.
    pub bans: Option<BansSection>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen: "127.0.0.1:8080".into(),
            ops_listen: None,
            trusted_proxies: vec!["127.0.0.1/32".into(), "::1/128".into()],
            server: ServerSection::default(),
            auth: AuthSection::default(),
            rate_limit: RateLimitSection::default(),
            policies: BTreeMap::new(),
            sessions: SessionsSection::default(),
            admin: AdminSection::default(),
            metrics: MetricsSection::default(),
            log: LogSection::default(),
            status: StatusSection::default(),
            ingest: IngestSection::default(),
            collector: CollectorSection::default(),
            spool: SpoolSection::default(),
            content: None,
            cardinality: None,
            quotas: Vec::new(),
            bans: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// A client must send its whole request head within this time.
    pub header_read_timeout_secs: u64,
    /// Cap on the bytes of a request head (HTTP/1 read buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Cap on the number of request headers (HTTP/1).
    pub max_headers: usize,
    /// Open connections beyond this wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Open connections one peer address (IPv6: one `rate_limit.ipv6_prefix`)
    /// may hold; beyond it a new one is closed at accept. Trusted proxies
    /// are not capped: they carry many clients.
    pub max_connections_per_ip: usize,
    /// In-flight requests get this long to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// Bytes all request bodies and their decompression may hold at once,
    /// across the process; past it a request is 503 `server_busy`.
    pub body_budget_bytes: usize,
    /// Of that budget, what one client (its address cut to the rate-limit
    /// key) may hold; absent: a quarter of it, and at least one export at
    /// its caps.
    pub body_budget_per_client_bytes: Option<usize>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            header_read_timeout_secs: 10,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_connections: 10_000,
            max_connections_per_ip: 64,
            shutdown_grace_secs: 10,
            body_budget_bytes: 256 * 1024 * 1024,
            body_budget_per_client_bytes: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    pub max_skew_secs: u64,
    pub header_prefix: String,
    pub require_session_id: bool,
    /// How often key files (and the config file) are checked for changes.
    pub reload_poll_secs: u64,
    /// Every decision is computed, logged and counted, then the request is
    /// allowed (`REQUIRE_AUTH=false` of the original service sets it).
    pub monitor_mode: bool,
    /// Static-header sessions for clients that sign their headers once
    /// (absent: off, the strict window).
    pub static_headers: Option<StaticHeadersSection>,
    pub keys: Vec<KeyEntry>,
    /// The header a forwardAuth request names the original method in
    /// (nginx `auth_request`: the operator's `proxy_set_header`).
    pub forwarded_method_header: String,
    /// The header a forwardAuth request names the original URI in
    /// (nginx: `X-Original-URI` by convention).
    pub forwarded_uri_header: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticHeadersSection {
    /// A header set is accepted until its timestamp is this old (at most 7 days).
    pub max_age_secs: u64,
    /// Only from the address that first used the header set.
    pub pin_ip: bool,
}

impl Default for StaticHeadersSection {
    fn default() -> Self {
        StaticHeadersSection {
            max_age_secs: 86400,
            pin_ip: true,
        }
    }
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            max_skew_secs: 300,
            header_prefix: "X-KMS".into(),
            require_session_id: true,
            reload_poll_secs: 5,
            monitor_mode: false,
            static_headers: None,
            keys: Vec::new(),
            forwarded_method_header: "X-Forwarded-Method".into(),
            forwarded_uri_header: "X-Forwarded-Uri".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub id: String,
    /// A file holding the secret text (relative paths: from the config file's folder).
    pub file: Option<String>,
    /// An environment variable holding the secret text.
    pub env: Option<String>,
    /// RFC 3339 time after which the key stops verifying.
    pub not_after: Option<String>,
    /// `active`, `deprecated` (verifies, tells the client to update, own
    /// quotas) or `revoked` (403 `key_revoked`); changed by a reload.
    #[serde(default)]
    pub state: crate::protocol::abuse::KeyState,
    /// Requests signed with this key need at least this client version.
    pub min_client_version: Option<String>,
    /// Client versions refused under this key (e.g. a build that leaked it).
    pub blocked_client_versions: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSection {
    pub per_second: u32,
    pub burst: u32,
    /// Idle limiter keys are dropped this often, bounding memory.
    pub purge_interval_secs: u64,
    /// IPv6 clients are limited per prefix of this length (one /64 is one host).
    pub ipv6_prefix: u8,
    /// The session API's own limiter (every route, every caller), so token
    /// guessing and listing floods are bounded apart from `/auth`'s quota.
    pub session_api: PolicyRate,
}

impl Default for RateLimitSection {
    fn default() -> Self {
        RateLimitSection {
            per_second: 10,
            burst: 20,
            purge_interval_secs: 60,
            ipv6_prefix: 64,
            session_api: PolicyRate {
                per_second: 20,
                burst: 50,
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    pub max_skew_secs: Option<u64>,
    pub rate_limit: Option<PolicyRate>,
    /// Only these keys verify under this policy (default: every live key).
    pub key_ids: Option<Vec<String>>,
    /// When set, `X-KMS-Build` must equal it (e.g. `official`).
    pub require_build: Option<String>,
    /// Accepted credentials (default `["hmac"]`). An unknown one is named
    /// at `methods` itself, not at its index, as before they were typed.
    #[serde(deserialize_with = "auth_methods")]
    pub methods: Option<Vec<AuthMethod>>,
    /// `2`: only body-bound v2 signatures pass (401 `signature_version_required`).
    pub min_signature_version: Option<u8>,
    /// The policy's Traefik middleware forwards the body (`forwardBody:
    /// true`): on `/auth`, an absent body is checked as the empty body, so
    /// a v2 hash always binds what is forwarded.
    pub forward_body: Option<bool>,
    /// This policy's own ingest content policy, replacing `[content]` whole.
    pub content: Option<ContentSection>,
    /// Older client versions are refused (403 `client_version_blocked`).
    pub min_client_version: Option<String>,
    /// These client versions are refused (403 `client_version_blocked`).
    pub blocked_client_versions: Option<Vec<String>>,
    /// Only clients in these CIDRs pass (403 `network_denied`).
    pub allow_networks: Option<Vec<String>>,
    /// Clients in these CIDRs never pass (403 `network_denied`).
    pub deny_networks: Option<Vec<String>>,
    /// A session needs one of these roles (403 `insufficient_role`).
    pub require_roles: Option<Vec<String>>,
    /// A session needs all of these permissions (403 `insufficient_permission`).
    pub require_permissions: Option<Vec<String>>,
    /// Path prefixes that need a credential even under an excluded one.
    pub protected_paths: Option<Vec<String>>,
    /// Path prefixes allowed without a credential (counted as `excluded`).
    pub excluded_paths: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRate {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// A file holding the admin bearer token; absent: the session API is off.
    pub token_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `kotormodsync` reproduces the original deployment's metric names.
    pub namespace: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            namespace: "telegate".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `text` or `json`.
    #[serde(deserialize_with = "by_name")]
    pub format: LogFormat,
    /// A tracing filter: `info`, `warn`, `telegate=debug`, ...
    pub level: String,
    /// Which decisions get a log line: `all`, `denied` or `none` (metrics
    /// count every decision regardless).
    #[serde(deserialize_with = "by_name")]
    pub decisions: DecisionLog,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            level: "info".into(),
            decisions: DecisionLog::All,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusSection {
    /// A folder whose `index.html` / `waiting.html` replace the built-in
    /// status pages (relative paths: from the config file's folder).
    pub templates_dir: Option<String>,
    /// The status pages ask the browser to reload after this many seconds.
    pub refresh_secs: u64,
    /// A session seen from more client networks than this in the last hour
    /// is suspicious (status page, `{ns}_leak_sessions_roaming`).
    pub suspicious_session_networks: usize,
    /// A client network that used more session ids than this in the last
    /// hour is suspicious (`{ns}_leak_networks_crowded`).
    pub suspicious_network_sessions: usize,
}

impl Default for StatusSection {
    fn default() -> Self {
        StatusSection {
            templates_dir: None,
            refresh_secs: 10,
            suspicious_session_networks: 3,
            suspicious_network_sessions: 20,
        }
    }
}

/// A mode or method written as its name. The text is read first and then
/// matched to a variant, so a value of the wrong type says "expected a
/// string" (toml's own enum path would say "unit variant").
pub(super) fn by_name<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    variant(String::deserialize(deserializer)?)
}

/// `policies.NAME.methods`: names, each an [`AuthMethod`]; an unknown one
/// is reported at the key itself rather than at `methods[i]`.
fn auth_methods<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<AuthMethod>>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    let methods = names.into_iter().map(variant).collect::<Result<_, _>>()?;
    Ok(Some(methods))
}

fn variant<'de, T: Deserialize<'de>, E: serde::de::Error>(name: String) -> Result<T, E> {
    T::deserialize(name.into_deserializer()).map_err(|err: serde::de::value::Error| E::custom(err))
}
