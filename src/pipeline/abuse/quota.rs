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
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher, RandomState};
use std::sync::Mutex;

use super::lease::{Leases, Taken};

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

/// Scope values are hashed with a per-process random key, except when
/// replicas share counters: then every replica must name a value alike
/// (SipHash with the fixed key; a 64-bit second preimage is out of reach).
enum KeyHasher {
    Random(RandomState),
    Stable,
}

impl KeyHasher {
    fn hash_one<T: Hash>(&self, value: T) -> u64 {
        match self {
            KeyHasher::Random(state) => state.hash_one(value),
            KeyHasher::Stable => {
                let mut hasher = DefaultHasher::new();
                value.hash(&mut hasher);
                hasher.finish()
            }
        }
    }
}

pub struct Quotas {
    specs: Vec<QuotaSpec>,
    shards: Vec<Mutex<HashMap<u64, Bucket>>>,
    hasher: KeyHasher,
    /// `Some`: the counters are shared ([`super::lease`]); the local
    /// buckets are the fallback.
    shared: Option<Leases>,
}

impl Quotas {
    pub fn new(specs: Vec<QuotaSpec>) -> Quotas {
        Quotas {
            specs,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: KeyHasher::Random(RandomState::new()),
            shared: None,
        }
    }

    /// Shares the counters through `leases` (the Redis store).
    pub fn shared(mut self, leases: Leases) -> Quotas {
        self.hasher = KeyHasher::Stable;
        self.shared = Some(leases);
        self
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
    pub async fn charge(
        &self,
        scopes: &Scopes,
        unit: QuotaUnit,
        n: u64,
        now: i64,
    ) -> Result<(), Reject> {
        if scopes.applies == 0 || n == 0 {
            return Ok(());
        }
        // (key, from the shared lease) per quota that took its share.
        let mut taken: [Option<(u64, bool)>; crate::config::MAX_QUOTAS] =
            [None; crate::config::MAX_QUOTAS];
        for (i, spec) in self.specs.iter().enumerate() {
            if scopes.applies & (1 << i) == 0 || spec.unit != unit {
                continue;
            }
            let Some(value) = scopes.values[spec.scope.index()] else {
                continue;
            };
            let key = self.key(i, value);
            let outcome = match &self.shared {
                Some(leases) => match leases.take(i, spec, key, value, n, now).await {
                    Taken::Yes => Ok(true),
                    Taken::No(secs) => Err(secs),
                    Taken::Fallback => self.take(spec, key, n, now).map(|()| false),
                },
                None => self.take(spec, key, n, now).map(|()| false),
            };
            match outcome {
                Ok(leased) => taken[i] = Some((key, leased)),
                Err(retry_after_secs) => {
                    for (j, held) in taken.iter().enumerate() {
                        match (held, &self.shared) {
                            (Some((key, true)), Some(leases)) => {
                                leases.give_back(*key, n, now, &self.specs[j])
                            }
                            (Some((key, _)), _) => self.give_back(&self.specs[j], *key, n),
                            (None, _) => {}
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
        self.hasher.hash_one((index as u64, value))
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
            .sum::<usize>()
            + self.shared.as_ref().map_or(0, |leases| leases.purge(now))
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
#[path = "quota_tests.rs"]
mod tests;
