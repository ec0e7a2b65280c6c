//! Who is asking (pure): the socket peer, unless the peer is a trusted proxy,
//! in which case `X-Forwarded-For` is walked from the right and the first hop
//! that is not a trusted proxy is the client.
//!
//! Only the right-most untrusted hop can be believed: everything to its left
//! was written by the client itself.

use std::net::IpAddr;

use crate::ip::canonical;
pub use crate::ip::TrustedProxies;

/// Resolves the client address. `forwarded_for` holds every `X-Forwarded-For`
/// header value in the order received.
pub fn resolve<'a>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            // An unparsable hop ends the chain: the last trusted address is
            // the best we know.
            None => return client,
            Some(ip) if trusted.contains(ip) => client = ip,
            Some(ip) => return ip,
        }
    }
    client
}

/// Groups IPv6 clients by prefix so one host cannot dodge a per-IP limit by
/// hopping through the addresses of its /64.
pub fn limit_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match ipnet::Ipv6Net::new(v6, ipv6_prefix) {
            Ok(net) => IpAddr::V6(net.network()),
            Err(_) => ip,
        },
    }
}

/// A hop as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]:443` (public for the fuzz harness, which checks the walk).
pub fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(cidrs: &[&str]) -> TrustedProxies {
        TrustedProxies::new(cidrs.iter().map(|c| c.parse().unwrap()).collect())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = trusted(&["127.0.0.1/32"]);
        assert_eq!(
            resolve(ip("127.0.0.9"), ["1.1.1.1"].into_iter(), &proxies),
            ip("127.0.0.9")
        );
    }

    #[test]
    fn a_trusted_peer_yields_the_right_most_untrusted_hop() {
        let proxies = trusted(&["127.0.0.1/32", "10.0.0.0/8"]);
        let xff = ["6.6.6.6, 203.0.113.7", "10.0.0.2"];
        assert_eq!(
            resolve(ip("127.0.0.1"), xff.into_iter(), &proxies),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn without_forwarded_for_the_trusted_peer_is_the_client() {
        let proxies = trusted(&["127.0.0.1/32"]);
        assert_eq!(
            resolve(ip("127.0.0.1"), std::iter::empty(), &proxies),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn all_trusted_hops_give_the_left_most() {
        let proxies = trusted(&["10.0.0.0/8", "127.0.0.1/32"]);
        assert_eq!(
            resolve(
                ip("127.0.0.1"),
                ["10.0.0.5, 10.0.0.6"].into_iter(),
                &proxies
            ),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn an_unparsable_hop_stops_at_the_last_trusted_address() {
        let proxies = trusted(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(
            resolve(
                ip("127.0.0.1"),
                ["1.2.3.4, garbage, 10.0.0.3"].into_iter(),
                &proxies
            ),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn ports_brackets_and_mapped_addresses() {
        let proxies = trusted(&["::1/128", "127.0.0.1/32"]);
        assert_eq!(
            resolve(ip("::1"), ["[2001:db8::7]:443"].into_iter(), &proxies),
            ip("2001:db8::7")
        );
        assert_eq!(
            resolve(ip("::1"), ["198.51.100.2:5000"].into_iter(), &proxies),
            ip("198.51.100.2")
        );
        assert_eq!(
            resolve(
                ip("::ffff:127.0.0.1"),
                ["198.51.100.3"].into_iter(),
                &proxies
            ),
            ip("198.51.100.3")
        );
    }

    #[test]
    fn no_trusted_proxies_means_the_peer() {
        assert_eq!(
            resolve(
                ip("127.0.0.1"),
                ["9.9.9.9"].into_iter(),
                &TrustedProxies::default()
            ),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn ipv6_limit_keys_share_a_prefix() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(limit_key(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(limit_key(ip("192.0.2.1"), 64), ip("192.0.2.1"));
    }
}
