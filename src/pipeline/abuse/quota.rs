//! Quotas: one token bucket per (quota, scope value), refilled at `rate`
//! per `period_secs` up to `burst`, on the request's `now` (whole seconds,
//! fine for per-minute to per-day windows). A charge takes `n` tokens from
//! every quota that applies, or none: when one refuses, what the others
//! gave is put back.
//!
//! Buckets live in shards of capped maps, keyed by a hash (random per
//! process, so no client can aim collisions) of the quota's index and the
//! scope value. A full bucket is the same as no bucket, so [`Quotas::purge`]
//! drops them; a shard at its cap purges itself, and if it is still full
//! evicts one bucket (that scope value starts afresh: memory stays bounded
//! at the cost of one generous answer).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Mutex;

use crate::config::{QuotaSpec, QuotaUnit};
use crate::protocol::abuse::{KeyState, QuotaScope};
use crate::protocol::reject::Reject;

const SHARDS: usize = 16;
/// Buckets held at most, over all shards.
pub const MAX_BUCKETS: usize = 1 << 18;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: f64,
    at: i64,
}

/// The scope values of one admitted request, hashed, and which quotas
/// apply to it (bit `i`: `quotas[i]`); computed once in admission, used
/// again for bytes and items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    applies: u32,
    values: [Option<u64>; 5],
}

impl Scopes {
    /// No quota applies.
    pub fn none() -> Scopes {
        Scopes::default()
    }
}

/// The values a request has for each scope (`None`: the scope is unknown,
/// and quotas of that scope do not count it).
#[derive(Debug, Clone, Copy)]
pub struct ScopeValues<'a> {
    pub session: Option<&'a str>,
    pub key: &'a str,
    pub client_version: Option<&'a str>,
    /// Already cut to its limit key (IPv6 by prefix).
    pub address: std::net::IpAddr,
    pub signal: Option<&'a str>,
}

pub struct Quotas {
    specs: Vec<QuotaSpec>,
    shards: Vec<Mutex<HashMap<u64, Bucket>>>,
    hasher: RandomState,
}

impl Quotas {
    pub fn new(specs: Vec<QuotaSpec>) -> Quotas {
        Quotas {
            specs,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Hashes the request's scope values and picks the quotas that apply.
    pub fn scopes(&self, policy: &str, state: KeyState, values: &ScopeValues<'_>) -> Scopes {
        let mut applies = 0u32;
        for (i, spec) in self.specs.iter().enumerate() {
            if spec.applies(policy, state) {
                applies |= 1 << i;
            }
        }
        if applies == 0 {
            return Scopes::none();
        }
        let text = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(|s| self.hasher.hash_one(s));
        Scopes {
            applies,
            values: [
                text(values.session),
                text(Some(values.key)),
                text(values.client_version),
                Some(self.hasher.hash_one(values.address)),
                text(values.signal),
            ],
        }
    }

    /// Takes `n` from every quota of `unit` that applies; see the module doc.
    pub fn charge(&self, scopes: &Scopes, unit: QuotaUnit, n: u64, now: i64) -> Result<(), Reject> {
        if scopes.applies == 0 || n == 0 {
            return Ok(());
        }
        let mut taken: [Option<u64>; crate::config::MAX_QUOTAS] = [None; crate::config::MAX_QUOTAS];
        for (i, spec) in self.specs.iter().enumerate() {
            if scopes.applies & (1 << i) == 0 || spec.unit != unit {
                continue;
            }
            let Some(value) = scopes.values[spec.scope.index()] else {
                continue;
            };
            let key = self.key(i, value);
            match self.take(spec, key, n, now) {
                Ok(()) => taken[i] = Some(key),
                Err(retry_after_secs) => {
                    for (j, key) in taken.iter().enumerate() {
                        if let Some(key) = key {
                            self.give_back(&self.specs[j], *key, n);
                        }
                    }
                    return Err(Reject::QuotaExceeded {
                        scope: spec.scope,
                        retry_after_secs,
                    });
                }
            }
        }
        Ok(())
    }

    fn key(&self, index: usize, value: u64) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write_usize(index);
        hasher.write_u64(value);
        hasher.finish()
    }

    fn shard(&self, key: u64) -> &Mutex<HashMap<u64, Bucket>> {
        &self.shards[(key as usize) % SHARDS]
    }

    /// `Err`: whole seconds until `n` would pass (at least 1).
    fn take(&self, spec: &QuotaSpec, key: u64, n: u64, now: i64) -> Result<(), u64> {
        let burst = spec.burst.get() as f64;
        let per_sec = spec.rate.get() as f64 / spec.period_secs.get() as f64;
        let mut map = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(&key) && map.len() >= MAX_BUCKETS / SHARDS {
            let specs = &self.specs;
            map.retain(|_, b| !is_full(b, specs_max(specs), now));
            if map.len() >= MAX_BUCKETS / SHARDS {
                if let Some(victim) = map.keys().next().copied() {
                    map.remove(&victim);
                }
            }
        }
        let bucket = map.entry(key).or_insert(Bucket {
            level: burst,
            at: now,
        });
        let elapsed = now.saturating_sub(bucket.at).max(0) as f64;
        bucket.level = (bucket.level + elapsed * per_sec).min(burst);
        bucket.at = bucket.at.max(now);
        let want = n as f64;
        if bucket.level >= want {
            bucket.level -= want;
            return Ok(());
        }
        if want > burst {
            return Err(spec.period_secs.get());
        }
        let wait = ((want - bucket.level) / per_sec).ceil() as u64;
        Err(wait.max(1))
    }

    fn give_back(&self, spec: &QuotaSpec, key: u64, n: u64) {
        let mut map = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = map.get_mut(&key) {
            bucket.level = (bucket.level + n as f64).min(spec.burst.get() as f64);
        }
    }

    /// Drops buckets that have refilled (the same as absent); returns the
    /// buckets left.
    pub fn purge(&self, now: i64) -> usize {
        let refill = specs_max(&self.specs);
        self.shards
            .iter()
            .map(|shard| {
                let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
                map.retain(|_, b| !is_full(b, refill, now));
                map.shrink_to_fit();
                map.len()
            })
            .sum()
    }

    pub fn bucket_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn specs(&self) -> &[QuotaSpec] {
        &self.specs
    }
}

/// The longest time any quota takes to refill from empty, in seconds: a
/// bucket untouched that long is full whatever its quota.
fn specs_max(specs: &[QuotaSpec]) -> i64 {
    specs
        .iter()
        .map(|s| {
            let secs =
                (s.burst.get() as f64 * s.period_secs.get() as f64 / s.rate.get() as f64).ceil();
            secs as i64
        })
        .max()
        .unwrap_or(0)
}

fn is_full(bucket: &Bucket, refill_secs: i64, now: i64) -> bool {
    now.saturating_sub(bucket.at) >= refill_secs
}

/// The quota scopes' labels, for the metric.
pub fn scope_labels() -> impl Iterator<Item = &'static str> {
    QuotaScope::ALL.into_iter().map(QuotaScope::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU64;

    fn spec(scope: QuotaScope, unit: QuotaUnit, rate: u64, period: u64, burst: u64) -> QuotaSpec {
        QuotaSpec {
            scope,
            unit,
            rate: NonZeroU64::new(rate).unwrap(),
            period_secs: NonZeroU64::new(period).unwrap(),
            burst: NonZeroU64::new(burst).unwrap(),
            policies: None,
            key_states: None,
        }
    }

    fn values<'a>(session: &'a str) -> ScopeValues<'a> {
        ScopeValues {
            session: Some(session),
            key: "a",
            client_version: Some("2.0"),
            address: "192.0.2.1".parse().unwrap(),
            signal: Some("metrics"),
        }
    }

    #[test]
    fn a_bucket_spends_its_burst_then_refills_at_the_rate() {
        let quotas = Quotas::new(vec![spec(
            QuotaScope::Session,
            QuotaUnit::Requests,
            60,
            60,
            3,
        )]);
        let s = quotas.scopes("default", KeyState::Active, &values("s1"));
        for _ in 0..3 {
            assert_eq!(quotas.charge(&s, QuotaUnit::Requests, 1, 100), Ok(()));
        }
        assert_eq!(
            quotas.charge(&s, QuotaUnit::Requests, 1, 100),
            Err(Reject::QuotaExceeded {
                scope: QuotaScope::Session,
                retry_after_secs: 1
            })
        );
        let other = quotas.scopes("default", KeyState::Active, &values("s2"));
        assert_eq!(
            quotas.charge(&other, QuotaUnit::Requests, 1, 100),
            Ok(()),
            "per session"
        );
        assert_eq!(
            quotas.charge(&s, QuotaUnit::Requests, 1, 101),
            Ok(()),
            "one a second"
        );
        assert!(quotas.charge(&s, QuotaUnit::Requests, 1, 101).is_err());
        assert_eq!(
            quotas.charge(&s, QuotaUnit::Bytes, 1000, 101),
            Ok(()),
            "other unit"
        );
    }

    #[test]
    fn a_refusal_gives_back_what_the_other_quotas_took() {
        let quotas = Quotas::new(vec![
            spec(QuotaScope::Key, QuotaUnit::Items, 100, 60, 100),
            spec(QuotaScope::Session, QuotaUnit::Items, 10, 60, 10),
        ]);
        let s = quotas.scopes("default", KeyState::Active, &values("s1"));
        assert!(quotas.charge(&s, QuotaUnit::Items, 8, 0).is_ok());
        let refused = quotas.charge(&s, QuotaUnit::Items, 8, 0).unwrap_err();
        assert_eq!(refused.quota_scope(), Some("session"));
        assert_eq!(refused.retry_after(), Some(36), "6 items at 1/6 per second");
        // The key quota got its 8 back (92 left): nine fresh sessions take
        // 10 each (2 left), the tenth is refused by the key. Without the
        // give-back only 84 would be left and the ninth would fail.
        for n in 0..9 {
            let session = format!("fresh{n}");
            let t = quotas.scopes("default", KeyState::Active, &values(&session));
            assert!(
                quotas.charge(&t, QuotaUnit::Items, 10, 0).is_ok(),
                "fresh {n}"
            );
        }
        let last = quotas.scopes("default", KeyState::Active, &values("last"));
        assert_eq!(
            quotas
                .charge(&last, QuotaUnit::Items, 10, 0)
                .unwrap_err()
                .quota_scope(),
            Some("key"),
            "2 left of the key's 100"
        );
    }

    #[test]
    fn more_than_the_burst_waits_a_period_and_policies_and_states_select() {
        let mut deprecated = spec(QuotaScope::Address, QuotaUnit::Bytes, 100, 60, 100);
        deprecated.key_states = Some(vec![KeyState::Deprecated]);
        let mut bulk = spec(QuotaScope::Signal, QuotaUnit::Requests, 1, 60, 1);
        bulk.policies = Some(vec!["bulk".into()]);
        let quotas = Quotas::new(vec![deprecated, bulk]);
        let active = quotas.scopes("default", KeyState::Active, &values("s"));
        assert_eq!(active, Scopes::none(), "neither applies");
        let old = quotas.scopes("default", KeyState::Deprecated, &values("s"));
        assert_eq!(
            quotas
                .charge(&old, QuotaUnit::Bytes, 101, 0)
                .unwrap_err()
                .retry_after(),
            Some(60)
        );
        let b = quotas.scopes("bulk", KeyState::Active, &values("s"));
        assert!(quotas.charge(&b, QuotaUnit::Requests, 1, 0).is_ok());
        assert!(quotas.charge(&b, QuotaUnit::Requests, 1, 0).is_err());
    }

    #[test]
    fn purge_drops_refilled_buckets() {
        let quotas = Quotas::new(vec![spec(
            QuotaScope::Session,
            QuotaUnit::Requests,
            10,
            60,
            10,
        )]);
        for n in 0..100 {
            let session = format!("s{n}");
            let s = quotas.scopes("default", KeyState::Active, &values(&session));
            quotas.charge(&s, QuotaUnit::Requests, 1, 0).unwrap();
        }
        assert_eq!(quotas.bucket_count(), 100);
        assert_eq!(quotas.purge(30), 100, "not refilled yet");
        assert_eq!(quotas.purge(60), 0);
    }
}
