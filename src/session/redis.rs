//! The shared session store: Redis, for replicas that must agree.
//!
//! Signed sessions stay on the hot path without a round trip: a local
//! [`MemoryStore`] answers `observe` and `is_revoked`, and each sighting is
//! also added to a bounded map of pending deltas that a background task
//! writes behind about once per `flush_interval` (one Lua script per batch,
//! [`sync`]). The same task polls the revocation change log at least every
//! second, so a session revoked through any replica is refused here within
//! about a second, and that poll keeps [`SessionAdmin::healthy`] current
//! for `/ready`.
//!
//! Issued sessions and tokens live in Redis only (the source of truth): each
//! token check is one script round trip, so a refresh or logout anywhere
//! kills the old token everywhere at once ([`issued`]). API reads flush this
//! replica's pending deltas first, then read Redis ([`read`]).
//!
//! When Redis is down, signed `/auth` keeps working on the local cache (the
//! deltas wait, up to a cap, then are dropped and counted as
//! `store_errors_total{op="flush_dropped"}`); token checks and the API
//! answer 503 `store_unavailable`; the outage is logged once per transition.
//! With `sessions.redis_sentinels` the store follows the master they name
//! through a failover ([`conn`]).

mod abuse;
mod conn;
mod issued;
mod nonces;
mod read;
mod record;
mod scripts;
pub mod series;
pub(super) mod statics;
pub(super) mod sync;
mod wipe;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{HistogramVec, IntCounter, IntCounterVec};
use redis::aio::ConnectionManagerConfig;
use redis::RedisResult;

use super::health::Health;
use super::{
    BoxFuture, Change, Changed, HeaderSet, Issue, IssuedSessions, ListFilter, Lookup, MemoryStore,
    NewSession, Page, RedisSettings, Refusal, SessionAdmin, SessionGate, SessionKind,
    SessionSettings, Sighting, StaticSighting, Stats, StoreError, TokenCheck, TokenHash, TokenUse,
};
use crate::clock::UnixClock;
use conn::Conn;
pub use nonces::{Claim, SharedNonces, PRINT_HEX_LEN};
use scripts::Scripts;
use sync::{Pending, PollState};

/// Connecting, and each answer, may take this long.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on one store operation, retries included.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// The store's own metrics (`{ns}_store_*`).
#[derive(Clone)]
pub struct StoreMetrics {
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
}

pub struct RedisStore {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    /// To `redis_url`, or to the master the sentinels name ([`conn`]).
    conn: Conn,
    /// Signed sessions as this replica sees them, and every revocation.
    local: MemoryStore,
    pending: Pending,
    /// Static-header sightings waiting for the next flush.
    statics: statics::StaticQueue,
    /// Held while a batch is in flight (and by a wipe), so a read that
    /// flushes first never overtakes the background flush.
    flushing: tokio::sync::Mutex<()>,
    poll: Mutex<PollState>,
    /// Live issued sessions in Redis as of the last poll.
    issued_live: AtomicU64,
    settings: SessionSettings,
    redis: RedisSettings,
    scripts: Scripts,
    metrics: StoreMetrics,
    health: Health,
    clock: UnixClock,
}

impl RedisStore {
    /// Connects lazily (telegate starts while Redis is down) and starts the
    /// flush task; needs a tokio runtime. The task ends when the store is
    /// dropped.
    pub fn new(
        settings: SessionSettings,
        redis: RedisSettings,
        metrics: StoreMetrics,
        clock: UnixClock,
    ) -> Result<RedisStore, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(IO_TIMEOUT))
            .set_response_timeout(Some(IO_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = Conn::open(&redis, config, IO_TIMEOUT)?;
        // The local cache's capacity evictions lose nothing (Redis holds
        // the sessions): they are not counted as evictions.
        let uncounted = IntCounter::new("local_cache_evictions", "not registered")
            .map_err(|err| StoreError(err.to_string()))?;
        let local = MemoryStore::new(settings.clone(), uncounted);
        let inner = Arc::new(Inner {
            conn,
            local,
            pending: Pending::new(sync::MAX_PENDING),
            statics: statics::StaticQueue::default(),
            flushing: tokio::sync::Mutex::new(()),
            poll: Mutex::new(PollState::default()),
            issued_live: AtomicU64::new(0),
            settings,
            redis,
            scripts: Scripts::new(),
            metrics,
            health: Health::new("redis"),
            clock,
        });
        let task = tokio::spawn(sync::run(Arc::downgrade(&inner)));
        Ok(RedisStore { inner, task })
    }
}

impl RedisStore {
    /// The v2 replay cache's shared half, on this store's connection.
    pub fn nonces(&self) -> SharedNonces {
        SharedNonces::new(self.inner.clone())
    }

    /// The series guard's shared half, on this store's connection.
    pub fn series(&self) -> series::SharedSeries {
        series::SharedSeries::new(self.inner.clone())
    }

    /// A handle for quotas and bans shared by replicas.
    pub fn abuse(&self) -> std::sync::Arc<dyn crate::pipeline::abuse::shared::SharedAbuse> {
        std::sync::Arc::new(abuse::RedisAbuse::new(self.inner.clone()))
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Inner {
    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn idle_secs(&self) -> i64 {
        secs(self.settings.idle)
    }

    fn retention_secs(&self) -> i64 {
        secs(self.settings.expired_retention)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.redis.prefix)
    }

    /// Runs one Redis operation within [`OP_TIMEOUT`]: its duration is
    /// observed, a failure counted under `op`; a connection failure marks
    /// the store down, any success marks it up.
    async fn run<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(OP_TIMEOUT, work).await;
        self.metrics
            .duration
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        let (detail, unreachable) = match outcome {
            Ok(Ok(value)) => {
                self.health.up();
                return Ok(value);
            }
            // A wrong password or user (AUTH refused on connecting): down,
            // and said as such rather than as unreachable.
            Ok(Err(err)) if err.kind() == redis::ErrorKind::AuthenticationFailed => {
                self.metrics.errors.with_label_values(&[op]).inc();
                self.health.refused(&err.to_string());
                return Err(StoreError(format!("redis {op}: {err}")));
            }
            Ok(Err(err)) => {
                let unreachable = err.is_io_error()
                    || err.is_timeout()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_unrecoverable_error();
                (err.to_string(), unreachable)
            }
            Err(_) => (format!("no answer within {OP_TIMEOUT:?}"), true),
        };
        self.metrics.errors.with_label_values(&[op]).inc();
        if unreachable {
            self.health.down(&detail);
        } else {
            tracing::error!(op, error = %detail, "session store (redis) command failed");
        }
        Err(StoreError(format!("redis {op}: {detail}")))
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

impl SessionGate for RedisStore {
    fn observe(&self, sighting: &Sighting<'_>) -> Result<bool, Refusal> {
        let inner = &self.inner;
        let new = inner.local.observe(sighting)?;
        if !inner.pending.record(sighting, inner.idle_secs()) {
            inner
                .metrics
                .errors
                .with_label_values(&["flush_dropped"])
                .inc();
        }
        Ok(new)
    }

    fn is_revoked(&self, session_id: &str, now: i64) -> bool {
        self.inner.local.is_revoked(session_id, now)
    }

    fn authenticate<'a>(
        &'a self,
        token: &'a TokenHash,
        seen: &'a TokenUse<'a>,
    ) -> BoxFuture<'a, Result<TokenCheck, StoreError>> {
        Box::pin(self.inner.check_token(token, seen.now, Some(seen)))
    }

    /// Static-header sightings: recorded locally and written behind with
    /// the session deltas, read from Redis on a local miss ([`statics`]),
    /// so they hold across replicas and restarts.
    fn remember_static(
        &self,
        set: &HeaderSet<'_>,
        client_ip: std::net::IpAddr,
        now: i64,
        max_age: Duration,
    ) {
        self.inner.remember_static(set, client_ip, now, max_age);
    }

    fn static_sighting<'a>(
        &'a self,
        set: &'a HeaderSet<'a>,
        now: i64,
    ) -> BoxFuture<'a, Option<StaticSighting>> {
        Box::pin(self.inner.static_sighting(set, now))
    }
}

impl IssuedSessions for RedisStore {
    fn issue(&self, new: NewSession) -> BoxFuture<'_, Result<Issue, StoreError>> {
        Box::pin(self.inner.issue(new))
    }

    fn find_token<'a>(
        &'a self,
        token: &'a TokenHash,
        now: i64,
    ) -> BoxFuture<'a, Result<TokenCheck, StoreError>> {
        Box::pin(self.inner.check_token(token, now, None))
    }

    fn change<'a>(
        &'a self,
        session_id: &'a str,
        change: Change,
        now: i64,
    ) -> BoxFuture<'a, Result<Changed, StoreError>> {
        Box::pin(self.inner.change(session_id, change, now))
    }

    fn delete<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.inner.delete(session_id))
    }
}

impl SessionAdmin for RedisStore {
    fn lookup<'a>(
        &'a self,
        session_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Lookup, StoreError>> {
        Box::pin(self.inner.lookup(session_id, now))
    }

    fn revoke<'a>(
        &'a self,
        session_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<SessionKind>, StoreError>> {
        Box::pin(self.inner.revoke(session_id, now))
    }

    fn list<'a>(
        &'a self,
        filter: &'a ListFilter,
        now: i64,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        Box::pin(self.inner.list(filter, now))
    }

    fn stats(&self, now: i64) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(self.inner.stats(now))
    }

    /// Signed: this replica's own view (sessions it saw, still live).
    /// Issued: every live issued session in Redis, as of the last poll.
    fn active(&self, now: i64) -> Vec<(SessionKind, u64)> {
        let signed = self
            .inner
            .local
            .active(now)
            .into_iter()
            .find(|(kind, _)| *kind == SessionKind::Signed)
            .map_or(0, |(_, count)| count);
        let issued = self.inner.issued_live.load(Ordering::Relaxed);
        vec![(SessionKind::Signed, signed), (SessionKind::Issued, issued)]
    }

    fn delete_user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.inner.delete_user(user))
    }

    fn wipe(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.inner.wipe())
    }

    fn healthy(&self) -> bool {
        self.inner.health.is_up()
    }
}

#[cfg(test)]
#[path = "redis_tests.rs"]
mod tests;
