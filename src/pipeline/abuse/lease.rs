//! Quotas shared by replicas: each (quota, scope value) counts a fixed
//! window of `period_secs` in the shared store, allowing `rate` per window
//! across every replica. A replica leases a block (a tenth of `rate`, or
//! what one charge needs) with one atomic script, spends it locally, and
//! asks again only when the block is gone; a window the store says is
//! spent is refused locally until it ends. So the request path sees the
//! store once per block, never per request. What a replica leased and did
//! not spend is dropped when the window ends (at most one block per
//! replica and window is lost).
//!
//! When the store fails, the local token buckets apply for a second before
//! the store is tried again; each charge that falls back is counted in
//! `{ns}_quota_fallback_total`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::IntCounter;

use super::shared::{LeaseKey, SharedAbuse};
use crate::config::QuotaSpec;

const SHARDS: usize = 16;
/// Leases held at most, over all shards (past windows are dropped first).
const MAX_LEASES: usize = 1 << 18;
/// A lease that takes longer falls back to the local buckets.
const LEASE_TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy, Default)]
struct Lease {
    window: i64,
    /// Unix seconds the window ends.
    ends: i64,
    left: u64,
    /// The store granted less than asked: the window is spent everywhere.
    spent: bool,
}

pub struct Leases {
    link: Arc<dyn SharedAbuse>,
    shards: Vec<Mutex<HashMap<u64, Lease>>>,
    /// Unix seconds before which the store is not asked (it just failed).
    down_until: AtomicI64,
    fallback: IntCounter,
}

/// What a shared charge found.
pub enum Taken {
    Yes,
    /// Whole seconds until the window ends.
    No(u64),
    /// The store failed: use the local bucket.
    Fallback,
}

impl Leases {
    pub fn new(link: Arc<dyn SharedAbuse>, fallback: IntCounter) -> Leases {
        Leases {
            link,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            down_until: AtomicI64::new(0),
            fallback,
        }
    }

    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Lease>> {
        self.shards[(key as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Spends `n` of quota `index`'s window for `key` (`value`: the scope
    /// value's stable hash, which names the shared counter).
    pub async fn take(
        &self,
        index: usize,
        spec: &QuotaSpec,
        key: u64,
        value: u64,
        n: u64,
        now: i64,
    ) -> Taken {
        let period = spec.period_secs.get() as i64;
        let window = now.div_euclid(period);
        let until_end = ((window + 1) * period - now).max(1) as u64;
        let need = {
            let mut map = self.shard(key);
            if !map.contains_key(&key) && map.len() >= MAX_LEASES / SHARDS {
                map.retain(|_, lease| lease.ends > now);
                if map.len() >= MAX_LEASES / SHARDS {
                    if let Some(victim) = map.keys().next().copied() {
                        map.remove(&victim);
                    }
                }
            }
            let lease = map.entry(key).or_default();
            if lease.window != window {
                *lease = Lease {
                    window,
                    ends: (window + 1) * period,
                    ..Lease::default()
                };
            }
            if lease.left >= n {
                lease.left -= n;
                return Taken::Yes;
            }
            if lease.spent {
                return Taken::No(until_end);
            }
            n - lease.left
        };
        if now < self.down_until.load(Ordering::Relaxed) {
            self.fallback.inc();
            return Taken::Fallback;
        }
        let rate = spec.rate.get();
        let want = need.max(rate / 10).max(1);
        let lease_key = LeaseKey {
            quota: index,
            value,
            window,
        };
        let ttl = spec.period_secs.get() + 60;
        let granted =
            tokio::time::timeout(LEASE_TIMEOUT, self.link.lease(lease_key, want, rate, ttl)).await;
        let granted = match granted {
            Ok(Ok(granted)) => granted,
            Ok(Err(err)) => return self.down(now, &err),
            Err(_) => return self.down(now, "no answer in time"),
        };
        let mut map = self.shard(key);
        let lease = map.entry(key).or_default();
        if lease.window != window {
            return Taken::No(1);
        }
        lease.left += granted;
        if granted < want {
            lease.spent = true;
        }
        if lease.left >= n {
            lease.left -= n;
            Taken::Yes
        } else {
            Taken::No(until_end)
        }
    }

    fn down(&self, now: i64, why: &str) -> Taken {
        let before = self.down_until.swap(now + 1, Ordering::Relaxed);
        if before == 0 || now > before + 1 {
            tracing::warn!(
                error = why,
                "shared quota store unavailable: local quotas apply"
            );
        }
        self.fallback.inc();
        Taken::Fallback
    }

    /// Puts back what a refused charge took (same window only).
    pub fn give_back(&self, key: u64, n: u64, now: i64, spec: &QuotaSpec) {
        let window = now.div_euclid(spec.period_secs.get() as i64);
        if let Some(lease) = self.shard(key).get_mut(&key) {
            if lease.window == window {
                lease.left += n;
            }
        }
    }

    /// Drops leases of windows that have ended; returns those left.
    pub fn purge(&self, now: i64) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
                map.retain(|_, lease| lease.ends > now);
                map.shrink_to_fit();
                map.len()
            })
            .sum()
    }
}
