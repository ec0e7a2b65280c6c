//! Signed sessions in the memory store: a compact sharded table.
//!
//! Signed sessions are the many (one per client run), so they do not live
//! in moka: one moka entry costs about 430 bytes before its value, and a
//! [`SessionRecord`] with its own strings about 600 more, over 1 GB for a
//! million sessions. Here a session is one slot of about 120 bytes in an
//! `IndexMap` shard: GUID ids are kept as 16 bytes, the user agent, client
//! version and key id are shared strings, the address is kept as bytes
//! (already cut to `store_ip`), and the record and pet name are built on
//! read.
//!
//! The contract is moka's: at most `max_sessions` (over all shards, give or
//! take concurrent inserts); a new session is always admitted, the least
//! recently seen of a random sample of [`SAMPLE`] in its shard goes
//! (Redis's approximated LRU) and is counted; liveness is decided against
//! the injected clock, and a slot past its end plus the retention is dead:
//! dropped when met (each insert also checks two random slots).

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use indexmap::IndexMap;
use prometheus::IntCounter;

use super::interner::Interner;
use super::key::{Key, KeyRef};
use crate::session::{petname, SessionKind, SessionRecord, Sighting, StoreIp};

/// Slots sampled to pick the one to evict.
const SAMPLE: usize = 8;
/// Most shards (a small table has fewer, so samples stay meaningful).
const MAX_SHARDS: usize = 64;

/// One signed session.
struct Slot {
    first_seen: i64,
    last_seen: i64,
    requests: u64,
    bytes: u64,
    revoked_at: Option<i64>,
    /// Already cut to `store_ip` (truncated: the network address).
    ip: Option<IpAddr>,
    user_agent: Option<Arc<str>>,
    client_version: Option<Arc<str>>,
    key_id: Option<Arc<str>>,
}

struct Shard {
    map: IndexMap<Key, Slot>,
    /// xorshift state for sampling.
    rng: u64,
}

impl Shard {
    fn random(&mut self) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % self.map.len().max(1) as u64) as usize
    }
}

/// What [`SignedTable::touch`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Touch {
    /// Live: the sighting was counted.
    Counted,
    /// Not there, or no longer live: the sighting starts a new session.
    New,
}

pub(super) struct SignedTable {
    shards: Box<[Mutex<Shard>]>,
    /// `max_sessions`, over all shards.
    capacity: usize,
    len: AtomicUsize,
    idle: i64,
    retention: i64,
    store_ip: StoreIp,
    strings: Interner,
    evicted: IntCounter,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SignedTable {
    pub(super) fn new(
        capacity: u64,
        idle: i64,
        retention: i64,
        store_ip: StoreIp,
        evicted: IntCounter,
    ) -> SignedTable {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        let count = (capacity / 1024).clamp(1, MAX_SHARDS);
        let shards = (0..count)
            .map(|n| {
                Mutex::new(Shard {
                    map: IndexMap::new(),
                    rng: 0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1),
                })
            })
            .collect();
        SignedTable {
            shards,
            capacity,
            len: AtomicUsize::new(0),
            idle,
            retention,
            store_ip,
            strings: Interner::default(),
            evicted,
        }
    }

    fn shard_index(&self, key: &KeyRef<'_>) -> usize {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        (hasher.finish() % self.shards.len() as u64) as usize
    }

    fn shard(&self, key: &KeyRef<'_>) -> &Mutex<Shard> {
        &self.shards[self.shard_index(key)]
    }

    fn live_until(&self, slot: &Slot) -> i64 {
        slot.last_seen.saturating_add(self.idle)
    }

    fn dead(&self, slot: &Slot, now: i64) -> bool {
        self.live_until(slot).saturating_add(self.retention) < now
    }

    /// Counts a sighting of a live session; `New` when there is none.
    pub(super) fn touch(&self, sighting: &Sighting<'_>) -> Touch {
        let key = KeyRef::new(sighting.session_id);
        let mut shard = lock(self.shard(&key));
        match shard.map.get_mut(&key) {
            Some(slot) if self.live_until(slot) >= sighting.now => {
                self.update(slot, sighting);
                Touch::Counted
            }
            _ => Touch::New,
        }
    }

    /// Starts a session (replacing an expired one of the same id), evicting
    /// the least recently seen of a sample when the table is full.
    pub(super) fn insert(&self, sighting: &Sighting<'_>) {
        let key = KeyRef::new(sighting.session_id);
        let mut slot = Slot {
            first_seen: sighting.now,
            last_seen: sighting.now,
            requests: 0,
            bytes: 0,
            revoked_at: None,
            ip: None,
            user_agent: None,
            client_version: None,
            key_id: None,
        };
        self.update(&mut slot, sighting);
        let home = self.shard_index(&key);
        let mut shard = lock(&self.shards[home]);
        let new = shard.map.get(&key).is_none();
        if new {
            for _ in 0..2 {
                let i = shard.random();
                if shard
                    .map
                    .get_index(i)
                    .is_some_and(|(_, other)| self.dead(other, sighting.now))
                {
                    shard.map.swap_remove_index(i);
                    self.len.fetch_sub(1, Ordering::Relaxed);
                }
            }
            if self.len.load(Ordering::Relaxed) >= self.capacity {
                if shard.map.is_empty() {
                    // Evict from the next shard that has something.
                    drop(shard);
                    for offset in 1..self.shards.len() {
                        let mut other = lock(&self.shards[(home + offset) % self.shards.len()]);
                        if !other.map.is_empty() {
                            self.evict(&mut other);
                            break;
                        }
                    }
                    shard = lock(&self.shards[home]);
                } else {
                    self.evict(&mut shard);
                }
            }
        }
        if shard.map.insert(key.to_owned(), slot).is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Puts back a session a persistent store kept (load on open), unless
    /// it is dead at `now`; the capacity evicts as for a new session.
    pub(super) fn restore(&self, record: &SessionRecord, now: i64) {
        let key = KeyRef::new(&record.session_id);
        let slot = Slot {
            first_seen: record.first_seen,
            last_seen: record.last_seen,
            requests: record.requests,
            bytes: record.bytes,
            revoked_at: record.revoked_at,
            // As `record` rendered it: an address, or a truncated network.
            ip: record.client_ip.as_deref().and_then(|text| {
                text.parse::<IpAddr>()
                    .ok()
                    .or_else(|| text.parse::<ipnet::IpNet>().ok().map(|n| n.network()))
            }),
            user_agent: record.user_agent.as_deref().map(|v| self.strings.get(v)),
            client_version: record
                .client_version
                .as_deref()
                .map(|v| self.strings.get(v)),
            key_id: record.key_id.as_deref().map(|v| self.strings.get(v)),
        };
        if self.dead(&slot, now) {
            return;
        }
        let mut shard = lock(self.shard(&key));
        if shard.map.get(&key).is_none() && self.len.load(Ordering::Relaxed) >= self.capacity {
            self.evict(&mut shard);
        }
        if shard.map.insert(key.to_owned(), slot).is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn evict(&self, shard: &mut Shard) {
        let mut oldest: Option<(usize, i64)> = None;
        for _ in 0..SAMPLE.min(shard.map.len()) {
            let i = shard.random();
            if let Some((_, slot)) = shard.map.get_index(i) {
                if oldest.is_none_or(|(_, seen)| slot.last_seen < seen) {
                    oldest = Some((i, slot.last_seen));
                }
            }
        }
        if let Some((i, _)) = oldest {
            shard.map.swap_remove_index(i);
            self.len.fetch_sub(1, Ordering::Relaxed);
            self.evicted.inc();
        }
    }

    fn update(&self, slot: &mut Slot, sighting: &Sighting<'_>) {
        slot.last_seen = sighting.now;
        slot.requests += 1;
        slot.bytes += sighting.bytes;
        slot.ip = match self.store_ip {
            StoreIp::Full => Some(sighting.client_ip),
            StoreIp::Truncated => {
                let prefix = if sighting.client_ip.is_ipv4() { 24 } else { 48 };
                ipnet::IpNet::new(sighting.client_ip, prefix)
                    .ok()
                    .map(|net| net.network())
            }
            StoreIp::None => None,
        };
        if slot.user_agent.as_deref() != sighting.user_agent {
            slot.user_agent = sighting.user_agent.map(|ua| self.strings.get(ua));
        }
        if slot.client_version.as_deref() != sighting.client_version {
            slot.client_version = sighting.client_version.map(|v| self.strings.get(v));
        }
        if slot.key_id.as_deref() != Some(sighting.key_id) {
            slot.key_id = Some(self.strings.get(sighting.key_id));
        }
    }

    /// The record of `id`, unless absent or dead at `now`.
    pub(super) fn get(&self, id: &str, now: i64) -> Option<SessionRecord> {
        let key = KeyRef::new(id);
        let shard = lock(self.shard(&key));
        let slot = shard.map.get(&key)?;
        (!self.dead(slot, now)).then(|| self.record(id.to_string(), slot))
    }

    pub(super) fn is_live(&self, key: &Key, now: i64) -> bool {
        let key = key.as_ref();
        let shard = lock(self.shard(&key));
        shard
            .map
            .get(&key)
            .is_some_and(|slot| self.live_until(slot) >= now)
    }

    /// Marks `id` revoked (the first time only); false when absent or dead.
    pub(super) fn revoke(&self, id: &str, now: i64) -> bool {
        let key = KeyRef::new(id);
        let mut shard = lock(self.shard(&key));
        match shard.map.get_mut(&key) {
            Some(slot) if !self.dead(slot, now) => {
                slot.revoked_at.get_or_insert(now);
                true
            }
            _ => false,
        }
    }

    pub(super) fn remove(&self, id: &str) -> bool {
        let key = KeyRef::new(id);
        let removed = lock(self.shard(&key)).map.swap_remove(&key).is_some();
        if removed {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Every record not dead at `now`.
    pub(super) fn snapshot(&self, now: i64) -> Vec<SessionRecord> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            out.extend(
                shard
                    .map
                    .iter()
                    .filter(|(_, slot)| !self.dead(slot, now))
                    .map(|(key, slot)| self.record(key.render(), slot)),
            );
        }
        out
    }

    /// Live, unrevoked sessions (the `sessions_active` gauge).
    pub(super) fn active(&self, now: i64) -> u64 {
        self.shards
            .iter()
            .map(|shard| {
                lock(shard)
                    .map
                    .values()
                    .filter(|slot| slot.revoked_at.is_none() && self.live_until(slot) >= now)
                    .count() as u64
            })
            .sum()
    }

    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub(super) fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            self.len.fetch_sub(shard.map.len(), Ordering::Relaxed);
            shard.map = IndexMap::new();
        }
    }

    fn record(&self, session_id: String, slot: &Slot) -> SessionRecord {
        let client_ip = slot.ip.map(|ip| match self.store_ip {
            StoreIp::Truncated => {
                let prefix = if ip.is_ipv4() { 24 } else { 48 };
                ipnet::IpNet::new(ip, prefix).map_or_else(|_| ip.to_string(), |n| n.to_string())
            }
            _ => ip.to_string(),
        });
        SessionRecord {
            pet_name: petname::pet_name(&session_id),
            session_id,
            kind: SessionKind::Signed,
            first_seen: slot.first_seen,
            last_seen: slot.last_seen,
            expires_at: self.live_until(slot),
            idle_expires_at: None,
            user_id: None,
            metadata: None,
            grants: Default::default(),
            requests: slot.requests,
            bytes: slot.bytes,
            client_ip,
            user_agent: slot.user_agent.as_deref().map(str::to_string),
            client_version: slot.client_version.as_deref().map(str::to_string),
            key_id: slot.key_id.as_deref().map(str::to_string),
            revoked_at: slot.revoked_at,
        }
    }
}
