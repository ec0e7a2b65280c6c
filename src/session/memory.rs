//! The embedded session store: signed sessions in a compact table
//! ([`signed`]), issued sessions and the indices in moka caches with
//! per-entry expiry, each bounded by `max_sessions`.
//!
//! moka's default admission (TinyLFU) may refuse a new key when the cache is
//! full; sessions use LRU instead, so a new session is always admitted and
//! the least recently used one is evicted (and counted); the signed table
//! keeps the same promise. Correctness (live, expired, revoked) is decided
//! against the injected Unix clock in the records; moka's own timers only
//! bound memory, a retention period after the logical expiry so a read can
//! still answer 410.
//!
//! Issued sessions add two indices: token hash -> session id, and user ->
//! that user's session ids, oldest first ([`issued`]).

mod admin;
mod interner;
mod issued;
mod key;
mod restore;
mod signed;
mod statics;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::policy::{EvictionPolicy, Expiry};
use moka::sync::Cache;
use prometheus::IntCounter;

use super::{
    answered, BoxFuture, Change, Changed, HeaderSet, Issue, IssuedSessions, ListFilter, Lookup,
    NewSession, Page, Refusal, SessionAdmin, SessionGate, SessionKind, SessionRecord,
    SessionSettings, Sighting, StaticSighting, Stats, StoreError, TokenCheck, TokenHash, TokenUse,
};
use crate::pipeline::client_ip;
use key::{Key, KeyRef};
use signed::{SignedTable, Touch};

/// A record and, for an issued session, the hash of its current token
/// (kept beside the record, never shown).
struct Entry {
    record: SessionRecord,
    token: Option<TokenHash>,
}

type Record = Arc<Mutex<Entry>>;
type IdList = Arc<Mutex<Vec<Arc<str>>>>;
type KeyList = Arc<Mutex<Vec<Key>>>;

pub struct MemoryStore {
    signed: SignedTable,
    /// Issued sessions.
    sessions: Cache<Arc<str>, Record>,
    /// Session id -> revoked until (Unix seconds).
    revoked: Cache<Arc<str>, i64>,
    /// Client address (IPv6 by /64) -> the session ids it opened.
    per_ip: Cache<IpAddr, KeyList>,
    /// Token hash -> the issued session it opens. Kept after an operator
    /// revokes the session, so the token is answered `session_revoked`
    /// for as long as the revocation is.
    tokens: Cache<TokenHash, TokenTarget>,
    /// User id -> the user's issued sessions, oldest first.
    per_user: Cache<Arc<str>, IdList>,
    /// False until the first revocation: lets the hot path skip the
    /// revocation lookup on a gateway that never revoked anything.
    any_revoked: AtomicBool,
    /// Static-header sightings (only filled when that mode is on).
    statics: statics::Statics,
    settings: SessionSettings,
}

/// A token index entry: the session it opens, and how long from its last
/// write moka keeps it (see [`MemoryStore::index_token`]).
#[derive(Clone)]
struct TokenTarget {
    id: Arc<str>,
    keep: Duration,
}

/// Each token entry ends when what it answers for ends: a live session's
/// token with the session's absolute end plus the retention, a revoked
/// one's with its revocation. A fixed `max_lifetime` for all of them kept
/// every revoked token for a week (the soak's memory growth).
struct TokenExpiry;

impl Expiry<TokenHash, TokenTarget> for TokenExpiry {
    fn expire_after_create(
        &self,
        _: &TokenHash,
        value: &TokenTarget,
        _: Instant,
    ) -> Option<Duration> {
        Some(value.keep)
    }

    fn expire_after_update(
        &self,
        _: &TokenHash,
        value: &TokenTarget,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep)
    }
}

/// Memory-bounding expiry: the record's own lifetime plus the retention.
struct RecordExpiry {
    retention: Duration,
}

impl RecordExpiry {
    fn remaining(&self, record: &Record) -> Option<Duration> {
        let record = &lock(record).record;
        let secs = (record.live_until() - record.last_seen).max(0) as u64;
        Some(Duration::from_secs(secs) + self.retention)
    }
}

impl Expiry<Arc<str>, Record> for RecordExpiry {
    fn expire_after_create(&self, _: &Arc<str>, value: &Record, _: Instant) -> Option<Duration> {
        self.remaining(value)
    }

    fn expire_after_update(
        &self,
        _: &Arc<str>,
        value: &Record,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.remaining(value)
    }

    /// A read is a request (or an admin look): the idle timer restarts.
    fn expire_after_read(
        &self,
        _: &Arc<str>,
        value: &Record,
        _: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        self.remaining(value)
    }
}

/// A poisoned record lock only means another request panicked mid-update;
/// the counters are still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryStore {
    /// `evicted` counts sessions dropped for capacity (not expiry).
    pub fn new(settings: SessionSettings, evicted: IntCounter) -> MemoryStore {
        let signed = SignedTable::new(
            settings.max_sessions,
            secs(settings.idle),
            secs(settings.expired_retention),
            settings.store_ip,
            evicted.clone(),
        );
        let sessions = Cache::builder()
            .max_capacity(settings.max_sessions)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(RecordExpiry {
                retention: settings.expired_retention,
            })
            .eviction_listener(move |_key, _value, cause| {
                if cause == RemovalCause::Size {
                    evicted.inc();
                }
            })
            .build();
        let revoked = Cache::builder()
            .max_capacity(settings.max_sessions)
            .eviction_policy(EvictionPolicy::lru())
            .time_to_live(settings.revocation_ttl)
            .build();
        let per_ip = Cache::builder()
            .max_capacity(settings.max_sessions)
            .eviction_policy(EvictionPolicy::lru())
            .time_to_idle(settings.idle)
            .build();
        let tokens = Cache::builder()
            .max_capacity(settings.max_sessions)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(TokenExpiry)
            .build();
        // Every session in a list ends within max_lifetime of its creation.
        let per_user = Cache::builder()
            .max_capacity(settings.max_sessions)
            .eviction_policy(EvictionPolicy::lru())
            .time_to_idle(settings.max_lifetime)
            .build();
        MemoryStore {
            signed,
            sessions,
            revoked,
            per_ip,
            tokens,
            per_user,
            any_revoked: AtomicBool::new(false),
            statics: statics::Statics::new(settings.max_sessions),
            settings,
        }
    }

    fn idle_secs(&self) -> i64 {
        self.settings.idle.as_secs() as i64
    }

    /// Indexes `token` as opening session `id`, kept until Unix second
    /// `until` (seen at `now`; at least a second, so a revocation ending now
    /// still answers the request in flight).
    fn index_token(&self, token: TokenHash, id: Arc<str>, until: i64, now: i64) {
        let keep = Duration::from_secs(until.saturating_sub(now).max(1) as u64);
        self.tokens.insert(token, TokenTarget { id, keep });
    }

    /// When a live session's token may be forgotten: its absolute end (an
    /// idle timeout only comes sooner) plus the retention, during which it
    /// is answered `session_expired`.
    fn token_until(&self, record: &SessionRecord) -> i64 {
        record
            .expires_at
            .saturating_add(secs(self.settings.expired_retention))
    }

    /// Whether issued session `id` is live.
    fn is_live(&self, id: &str, now: i64) -> bool {
        self.sessions
            .get(id)
            .is_some_and(|record| lock(&record).record.is_live(now))
    }

    /// Whether session `key` (either kind) is live.
    fn key_is_live(&self, key: &Key, now: i64) -> bool {
        self.signed.is_live(key, now) || self.is_live(&key.render(), now)
    }

    /// Lets a new session from `ip` in, unless the address already holds
    /// `max_per_ip` live ones. Runs only for new sessions, not per request.
    fn admit(&self, ip: IpAddr, id: &Key, now: i64) -> Result<(), Refusal> {
        let key = client_ip::limit_key(ip, 64);
        let opened = self
            .per_ip
            .get_with(key, || Arc::new(Mutex::new(Vec::new())));
        let mut opened = lock(&opened);
        opened.retain(|other| other != id && self.key_is_live(other, now));
        if opened.len() >= self.settings.max_per_ip {
            return Err(Refusal::TooManyForIp);
        }
        opened.push(id.clone());
        Ok(())
    }

    /// A revocation learnt elsewhere (another replica, through a shared
    /// store): refused here from now on, and the local record, if any,
    /// shows it.
    pub fn remember_revocation(&self, session_id: &str, revoked_at: i64, until: i64) {
        self.signed.revoke(session_id, revoked_at);
        self.any_revoked.store(true, Ordering::Release);
        self.revoked.insert(Arc::from(session_id), until);
    }

    /// Live sessions of this process opened from `ip`'s address (IPv6 by
    /// /64), as `max_per_ip` counts them.
    pub fn live_for_address(&self, ip: IpAddr, now: i64) -> usize {
        let key = client_ip::limit_key(ip, 64);
        self.per_ip.get(&key).map_or(0, |opened| {
            lock(&opened)
                .iter()
                .filter(|id| self.key_is_live(id, now))
                .count()
        })
    }

    /// Forgets everything at once (a shared store was wiped).
    pub fn clear(&self) {
        self.signed.clear();
        self.sessions.invalidate_all();
        self.revoked.invalidate_all();
        self.per_ip.invalidate_all();
        self.tokens.invalidate_all();
        self.per_user.invalidate_all();
        self.statics.clear();
    }

    /// Every record of either kind (a signed one until it is dead at `now`).
    fn snapshot(&self, now: i64) -> Vec<SessionRecord> {
        let mut all = self.signed.snapshot(now);
        all.extend(
            self.sessions
                .iter()
                .map(|(_, record)| lock(&record).record.clone()),
        );
        all
    }
}

impl SessionGate for MemoryStore {
    fn observe(&self, sighting: &Sighting<'_>) -> Result<bool, Refusal> {
        if self.is_revoked(sighting.session_id, sighting.now) {
            return Err(Refusal::Revoked);
        }
        if self.signed.touch(sighting) == Touch::Counted {
            return Ok(false);
        }
        // A signature naming an issued session's id does not make it a
        // signed one: its lifetimes and token stay as they are.
        if self.sessions.contains_key(sighting.session_id) {
            return Ok(false);
        }
        // A new session (or one that expired and comes back: it starts over).
        let key = KeyRef::new(sighting.session_id).to_owned();
        self.admit(sighting.client_ip, &key, sighting.now)?;
        self.signed.insert(sighting);
        Ok(true)
    }

    fn is_revoked(&self, session_id: &str, now: i64) -> bool {
        self.any_revoked.load(Ordering::Acquire)
            && self
                .revoked
                .get(session_id)
                .is_some_and(|until| until >= now)
    }

    fn authenticate<'a>(
        &'a self,
        token: &'a TokenHash,
        seen: &'a TokenUse<'a>,
    ) -> BoxFuture<'a, Result<TokenCheck, StoreError>> {
        answered(Ok(self.check_token(token, seen.now, Some(seen))))
    }

    fn remember_static(&self, set: &HeaderSet<'_>, client_ip: IpAddr, now: i64, max_age: Duration) {
        self.statics.remember(set, client_ip, now, max_age);
    }

    fn static_sighting<'a>(
        &'a self,
        set: &'a HeaderSet<'a>,
        now: i64,
    ) -> BoxFuture<'a, Option<StaticSighting>> {
        answered(self.static_sighting_now(set, now))
    }
}

impl IssuedSessions for MemoryStore {
    fn issue(&self, new: NewSession) -> BoxFuture<'_, Result<Issue, StoreError>> {
        answered(Ok(self.issue_now(new)))
    }

    fn find_token<'a>(
        &'a self,
        token: &'a TokenHash,
        now: i64,
    ) -> BoxFuture<'a, Result<TokenCheck, StoreError>> {
        answered(Ok(self.check_token(token, now, None)))
    }

    fn change<'a>(
        &'a self,
        session_id: &'a str,
        change: Change,
        now: i64,
    ) -> BoxFuture<'a, Result<Changed, StoreError>> {
        answered(Ok(self.change_now(session_id, change, now)))
    }

    fn delete<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        answered(Ok(self.delete_now(session_id)))
    }
}

impl MemoryStore {
    /// [`SessionGate::remember_static`], saying whether the set was new
    /// here (the Redis store then queues it for the shared store).
    pub(crate) fn remember_static_new(
        &self,
        set: &HeaderSet<'_>,
        client_ip: IpAddr,
        now: i64,
        max_age: Duration,
    ) -> bool {
        self.statics.remember(set, client_ip, now, max_age)
    }

    fn static_sighting_now(&self, set: &HeaderSet<'_>, now: i64) -> Option<StaticSighting> {
        if self.is_revoked(set.session_id, now) {
            return None;
        }
        // Static header sets are v1 signatures: their sessions are signed ones.
        let record = self.signed.get(set.session_id, now)?;
        if !record.is_active(now) {
            return None;
        }
        self.statics.get(set)
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
