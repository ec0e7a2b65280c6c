//! Leak signals: signs that the signing secret (which every client holds)
//! is being used by something that is not one user's copy of the client.
//!
//! Over the last hour (two rotating half-hour buckets), per signed request:
//! - per key: the distinct client networks (/64 for IPv6, the address for
//!   IPv4) that used it; a key used from far more networks than there are
//!   users is being shared or scripted;
//! - per session id: the distinct networks it came from; one desktop session
//!   seen from many networks is a replayed or scripted id;
//! - per network: the distinct session ids it used; one host minting many
//!   sessions is spreading itself over ids to dodge per-session quotas;
//! - per client version: its share of the traffic (a version nobody shipped,
//!   or a sudden share for an old one).
//!
//! Everything is bounded: at most [`MAX_TRACKED`] sessions and networks per
//! bucket, [`MAX_SET`] members in any one set (counts saturate there), and
//! [`MAX_VERSIONS`] versions (the rest count as `other`), [`MAX_KEYS`] key
//! ids. Ids are kept as 64-bit hashes (keyed per process), never as text,
//! so nothing here is a raw session id; the status page shows only a short
//! hash. Those hashes key their tables as they are ([`crate::prehashed`]):
//! a signed request costs three keyed hashes (session, network, version),
//! not one per table it touches.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::prehashed::{PrehashedMap, PrehashedSet};

/// One bucket's span; two buckets make the hour.
pub const BUCKET_SECS: i64 = 1800;
/// Sessions (and, apart, networks) tracked per bucket.
pub const MAX_TRACKED: usize = 50_000;
/// Members of one set (networks of a key or session, sessions of a network).
pub const MAX_SET: usize = 1_024;
/// Distinct client versions counted by name.
pub const MAX_VERSIONS: usize = 64;
/// Key ids tracked per bucket (verified requests only, so configured ids:
/// a ring holds a handful).
pub const MAX_KEYS: usize = 64;

#[derive(Default)]
struct Bucket {
    start: i64,
    /// (key id, its networks): a list, as a ring holds a handful of keys.
    keys: Vec<(Box<str>, PrehashedSet)>,
    sessions: PrehashedMap<PrehashedSet>,
    networks: PrehashedMap<PrehashedSet>,
    /// hash(version) -> (version, requests).
    versions: PrehashedMap<(Box<str>, u64)>,
    other_versions: u64,
}

impl Bucket {
    fn add(&mut self, key: &str, session: u64, network: u64, version: (u64, &str)) {
        if let Some((_, set)) = self.keys.iter_mut().find(|(id, _)| **id == *key) {
            insert_capped(set, network);
        } else if self.keys.len() < MAX_KEYS {
            self.keys
                .push((key.into(), PrehashedSet::from_iter([network])));
        }
        if let Some(set) = self.sessions.get_mut(&session) {
            insert_capped(set, network);
        } else if self.sessions.len() < MAX_TRACKED {
            self.sessions
                .insert(session, PrehashedSet::from_iter([network]));
        }
        if let Some(set) = self.networks.get_mut(&network) {
            insert_capped(set, session);
        } else if self.networks.len() < MAX_TRACKED {
            self.networks
                .insert(network, PrehashedSet::from_iter([session]));
        }
        let (hash, name) = version;
        if let Some((_, count)) = self.versions.get_mut(&hash) {
            *count += 1;
        } else if self.versions.len() < MAX_VERSIONS {
            self.versions.insert(hash, (name.into(), 1));
        } else {
            self.other_versions += 1;
        }
    }
}

fn insert_capped(set: &mut PrehashedSet, value: u64) {
    if set.len() < MAX_SET {
        set.insert(value);
    }
}

/// What the last hour shows, for the metrics and the status page.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LeakReport {
    /// (key id, distinct networks), every key seen.
    pub key_networks: Vec<(String, usize)>,
    /// (short session hash, distinct networks), most first, at most 10.
    pub roaming_sessions: Vec<(String, usize)>,
    /// Sessions seen from more than `session_threshold` networks.
    pub sessions_over: usize,
    /// Networks that used more than `network_threshold` sessions.
    pub networks_over: usize,
    /// (client version, requests), most first; `other` last when non-zero.
    pub versions: Vec<(String, u64)>,
}

#[derive(Default)]
pub struct LeakSignals {
    hasher: RandomState,
    buckets: Mutex<[Bucket; 2]>,
}

impl LeakSignals {
    /// One verified signed request.
    pub fn signed(&self, key: &str, session: &str, version: Option<&str>, ip: IpAddr, now: i64) {
        let session = self.hasher.hash_one(session);
        let network = self.hasher.hash_one(network_of(ip));
        let version = version.unwrap_or("none");
        let version = (self.hasher.hash_one(version), version);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let start = now - now.rem_euclid(BUCKET_SECS);
        if buckets[1].start != start {
            if buckets[1].start + BUCKET_SECS == start {
                buckets.swap(0, 1);
            } else {
                buckets[0] = Bucket::default();
            }
            buckets[1] = Bucket {
                start,
                ..Bucket::default()
            };
        }
        buckets[1].add(key, session, network, version);
    }

    /// The last hour (both buckets, if the older is the one just before).
    pub fn report(
        &self,
        now: i64,
        session_threshold: usize,
        network_threshold: usize,
    ) -> LeakReport {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let start = now - now.rem_euclid(BUCKET_SECS);
        let live: Vec<&Bucket> = buckets
            .iter()
            .filter(|b| b.start == start || b.start + BUCKET_SECS == start)
            .collect();
        let mut keys: HashMap<&str, HashSet<u64>> = HashMap::new();
        let mut sessions: HashMap<u64, HashSet<u64>> = HashMap::new();
        let mut networks: HashMap<u64, HashSet<u64>> = HashMap::new();
        let mut versions: HashMap<&str, u64> = HashMap::new();
        let mut other = 0;
        for bucket in &live {
            for (key, set) in &bucket.keys {
                keys.entry(key).or_default().extend(set);
            }
            for (id, set) in &bucket.sessions {
                sessions.entry(*id).or_default().extend(set);
            }
            for (id, set) in &bucket.networks {
                networks.entry(*id).or_default().extend(set);
            }
            for (version, n) in bucket.versions.values() {
                *versions.entry(version).or_default() += n;
            }
            other += bucket.other_versions;
        }
        let mut key_networks: Vec<(String, usize)> = keys
            .into_iter()
            .map(|(k, s)| (k.to_string(), s.len().min(MAX_SET)))
            .collect();
        key_networks.sort();
        let mut roaming: Vec<(u64, usize)> = sessions
            .iter()
            .map(|(id, s)| (*id, s.len().min(MAX_SET)))
            .collect();
        roaming.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let sessions_over = roaming
            .iter()
            .filter(|(_, n)| *n > session_threshold)
            .count();
        let roaming_sessions = roaming
            .into_iter()
            .filter(|(_, n)| *n > session_threshold)
            .take(10)
            .map(|(id, n)| (format!("{:08x}", id >> 32), n))
            .collect();
        let networks_over = networks
            .values()
            .filter(|s| s.len().min(MAX_SET) > network_threshold)
            .count();
        let mut versions: Vec<(String, u64)> = versions
            .into_iter()
            .map(|(v, n)| (v.to_string(), n))
            .collect();
        versions.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        if other > 0 {
            versions.push(("other".into(), other));
        }
        LeakReport {
            key_networks,
            roaming_sessions,
            sessions_over,
            networks_over,
            versions,
        }
    }
}

/// The client's network: the address for IPv4, its /64 for IPv6 (one
/// household or host gets a whole /64).
pub fn network_of(ip: IpAddr) -> IpAddr {
    match crate::ip::canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_session_from_many_networks_and_a_network_with_many_sessions_show() {
        let leaks = LeakSignals::default();
        let now = 1_800_000_000;
        for i in 0..5 {
            leaks.signed("k", "roaming", Some("2.0"), ip(&format!("10.0.0.{i}")), now);
        }
        for i in 0..30 {
            leaks.signed("k", &format!("s{i}"), Some("1.0"), ip("10.9.9.9"), now + 1);
        }
        // One /64: many addresses, one network.
        for i in 0..10 {
            leaks.signed(
                "k",
                "home",
                Some("2.0"),
                ip(&format!("2001:db8::{i:x}")),
                now,
            );
        }
        let report = leaks.report(now + 2, 3, 20);
        assert_eq!(report.sessions_over, 1);
        assert_eq!(report.roaming_sessions.len(), 1);
        assert_eq!(report.roaming_sessions[0].1, 5);
        assert_eq!(report.networks_over, 1);
        // 5 + 1 + 1 networks used key k.
        assert_eq!(report.key_networks, vec![("k".to_string(), 7)]);
        assert_eq!(report.versions[0], ("1.0".to_string(), 30));
        assert_eq!(report.versions[1], ("2.0".to_string(), 15));
    }

    #[test]
    fn the_hour_rolls_over_and_everything_is_bounded() {
        let leaks = LeakSignals::default();
        let now = 1_800_000_000 - 1_800_000_000 % BUCKET_SECS;
        leaks.signed("k", "old", None, ip("10.0.0.1"), now);
        leaks.signed("k", "new", None, ip("10.0.0.2"), now + BUCKET_SECS);
        assert_eq!(leaks.report(now + BUCKET_SECS, 0, 0).key_networks[0].1, 2);
        assert_eq!(
            leaks.report(now + 2 * BUCKET_SECS, 0, 0).key_networks[0].1,
            1
        );
        assert_eq!(
            leaks.report(now + 4 * BUCKET_SECS, 0, 0),
            LeakReport::default()
        );

        for i in 0..(MAX_VERSIONS + 5) {
            leaks.signed("k", "s", Some(&format!("v{i}")), ip("10.0.0.3"), now);
        }
        for i in 0..(MAX_SET + 10) {
            leaks.signed("k", "s", None, IpAddr::V4((i as u32).into()), now);
        }
        let report = leaks.report(now, 0, 0);
        // 5 versions past the cap, and "none" (no version) arriving after it.
        let past_cap = (5 + MAX_SET + 10) as u64;
        assert_eq!(
            report.versions.last().unwrap(),
            &("other".to_string(), past_cap)
        );
        assert_eq!(report.key_networks[0].1, MAX_SET, "saturates");
        for i in 0..(MAX_KEYS + 5) {
            leaks.signed(&format!("key{i}"), "s", None, ip("10.0.0.4"), now);
        }
        assert_eq!(leaks.report(now, 0, 0).key_networks.len(), MAX_KEYS);
    }
}
