//! Address forms shared by the config and the pipeline (a leaf): the one
//! canonical form of a client address, and the set of trusted proxies that
//! `trusted_proxies` validates into and [`crate::pipeline::client_ip`] consults.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

/// The peers whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(nets)
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// `::ffff:1.2.3.4` is the IPv4 client 1.2.3.4 (dual-stack sockets).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}
