//! Where the gateway listens and how it treats connections: `listen`,
//! `trusted_proxies`, `[server]` (timeouts and caps on request heads) and
//! the default `[rate_limit]`.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

use super::{positive, rate_spec, RateSpec};
use crate::config::raw::{RateLimitSection, RawConfig, ServerSection};
use crate::config::{show, ConfigError};
use crate::ip::TrustedProxies;

#[derive(Debug, Clone, Serialize)]
pub struct ServerSettings {
    #[serde(serialize_with = "show::duration")]
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    #[serde(serialize_with = "show::duration")]
    pub shutdown_grace: Duration,
    pub body_budget_bytes: usize,
    /// Filled in by `validate` once the ingest caps are known.
    pub body_budget_per_client_bytes: usize,
}

/// `[rate_limit]`, validated.
pub(super) struct Limits {
    pub rate_limit: RateSpec,
    pub session_api: RateSpec,
    pub purge_interval: Duration,
    pub ipv6_prefix: u8,
}

/// `listen` and `trusted_proxies`.
pub(super) fn addresses(raw: &RawConfig) -> Result<(SocketAddr, TrustedProxies), ConfigError> {
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
    Ok((listen, TrustedProxies::new(trusted)))
}

/// `ops_listen`: an address:port, not the one `listen` names (port 0,
/// any free port, may repeat).
pub(super) fn ops_listen(
    raw: &RawConfig,
    listen: SocketAddr,
) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(text) = &raw.ops_listen else {
        return Ok(None);
    };
    let ops: SocketAddr = text.parse().map_err(|_| {
        ConfigError::invalid("ops_listen", format!("{text:?} is not an address:port"))
    })?;
    if ops.port() != 0
        && ops.port() == listen.port()
        && (ops.ip() == listen.ip() || ops.ip().is_unspecified() || listen.ip().is_unspecified())
    {
        return Err(ConfigError::invalid(
            "ops_listen",
            format!("{ops} is the main listener's address ({listen}): give the operations endpoints their own port"),
        ));
    }
    Ok(Some(ops))
}

pub(super) fn server_settings(server: &ServerSection) -> Result<ServerSettings, ConfigError> {
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
    positive(
        "server.max_connections_per_ip",
        server.max_connections_per_ip as u64,
    )?;
    Ok(ServerSettings {
        header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
        max_header_bytes: server.max_header_bytes,
        max_headers: server.max_headers,
        max_connections: server.max_connections,
        max_connections_per_ip: server.max_connections_per_ip,
        shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
        body_budget_bytes: server.body_budget_bytes,
        body_budget_per_client_bytes: server.body_budget_per_client_bytes.unwrap_or(0),
    })
}

pub(super) fn limits(section: &RateLimitSection) -> Result<Limits, ConfigError> {
    let rate_limit = rate_spec("rate_limit", section.per_second, section.burst)?;
    let api = &section.session_api;
    let session_api = rate_spec("rate_limit.session_api", api.per_second, api.burst)?;
    positive(
        "rate_limit.purge_interval_secs",
        section.purge_interval_secs,
    )?;
    if section.ipv6_prefix > 128 {
        return Err(ConfigError::invalid(
            "rate_limit.ipv6_prefix",
            "must be at most 128",
        ));
    }
    Ok(Limits {
        rate_limit,
        session_api,
        purge_interval: Duration::from_secs(section.purge_interval_secs),
        ipv6_prefix: section.ipv6_prefix,
    })
}

/// An address alone is its own /32 or /128; host bits of a CIDR are dropped.
fn parse_cidr(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{text:?} is not an IP address or CIDR"))
}
