//! The shared session store on PostgreSQL, for operators who run it and
//! not Redis (Redis stays the recommended shared store). The same model as
//! the Redis store:
//! - signed sessions stay on the hot path without a round trip: a local
//!   [`MemoryStore`] answers `observe` and `is_revoked`, and each sighting
//!   adds to a bounded map of deltas written behind in batches about every
//!   `flush_interval` (one `INSERT .. ON CONFLICT` over arrays, [`sync`]);
//!   static-header first sightings are written behind the same way;
//! - issued sessions and tokens (SHA-256 only) live in PostgreSQL, the
//!   source of truth: each token check is one query, so a refresh or logout
//!   through any replica kills the old token everywhere at once ([`ops`]);
//! - a revocation is written through and appended to the `revocations`
//!   change log, which every replica polls (`id > last`) at least every
//!   second: a revocation through one replica is refused by the others
//!   within about a second. The poll keeps [`SessionAdmin::healthy`]
//!   current for `/ready`.
//!
//! When PostgreSQL is down, signed `/auth` keeps working on the local cache
//! (deltas wait, up to a cap, then are dropped and counted); token checks
//! and the API answer 503 `store_unavailable`; the outage is logged once
//! per transition. One connection with a reconnect ([`conn`]); no TLS yet
//! (`sslmode` is not supported beyond `disable`/`prefer`). All SQL is in
//! [`sql`]. The v2 replay cache stays local with this store.

mod conn;
mod ops;
mod reseal;
mod rows;
mod sql;
mod sync;

use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::IntCounter;

use super::health::Health;
use super::redis::statics::StaticQueue;
use super::redis::sync::Pending;
use super::seal::Sealer;
use super::{
    BoxFuture, Change, Changed, HeaderSet, Issue, IssuedSessions, ListFilter, Lookup, MemoryStore,
    NewSession, Page, PostgresSettings, Refusal, SessionAdmin, SessionGate, SessionKind,
    SessionSettings, Sighting, StaticSighting, Stats, StoreError, StoreMetrics, TokenCheck,
    TokenHash, TokenUse,
};
use crate::clock::UnixClock;
use conn::{Conn, Failure};

pub struct PostgresStore {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    conn: Conn,
    /// Signed sessions as this replica sees them, and every revocation.
    local: MemoryStore,
    pending: Pending,
    statics: StaticQueue,
    /// Held while a batch is in flight (and by a wipe), so a read that
    /// flushes first never overtakes the background flush.
    flushing: tokio::sync::Mutex<()>,
    /// The last change-log id applied, and the wipe epoch seen last.
    seq: AtomicI64,
    epoch: Mutex<Option<String>>,
    /// Live issued sessions as of the last poll.
    issued_live: AtomicU64,
    settings: SessionSettings,
    postgres: PostgresSettings,
    metrics: StoreMetrics,
    health: Health,
    clock: UnixClock,
    /// `[sessions.encryption]`: seals the private fields ([`reseal`]).
    sealer: Option<Arc<Sealer>>,
    /// Set once the background pass found no row left to seal again.
    resealed: AtomicBool,
}

impl PostgresStore {
    /// Reads the password file and connects lazily (telegate starts while
    /// PostgreSQL is down), then starts the flush and poll task; needs a
    /// tokio runtime. The task ends when the store is dropped.
    pub fn new(
        settings: SessionSettings,
        postgres: PostgresSettings,
        metrics: StoreMetrics,
        clock: UnixClock,
    ) -> Result<PostgresStore, StoreError> {
        let sealer = postgres
            .encryption
            .as_ref()
            .map(Sealer::load)
            .transpose()?
            .map(Arc::new);
        if let Some(sealer) = &sealer {
            tracing::info!(
                sealed_with = sealer.key_id(),
                opens = ?sealer.key_ids(),
                "session store (postgres): encryption at rest on"
            );
        }
        let conn = Conn::new(&postgres, sealer.clone())?;
        // Evictions from the local cache lose nothing (the server holds
        // the sessions): not counted as evictions.
        let uncounted = IntCounter::new("local_cache_evictions", "not registered")
            .map_err(|err| StoreError(err.to_string()))?;
        let inner = Arc::new(Inner {
            conn,
            local: MemoryStore::new(settings.clone(), uncounted),
            pending: Pending::new(sync::MAX_PENDING),
            statics: StaticQueue::default(),
            flushing: tokio::sync::Mutex::new(()),
            seq: AtomicI64::new(0),
            epoch: Mutex::new(None),
            issued_live: AtomicU64::new(0),
            settings,
            postgres,
            metrics,
            health: Health::new("postgres"),
            clock,
            resealed: AtomicBool::new(sealer.is_none()),
            sealer,
        });
        let task = tokio::spawn(sync::run(Arc::downgrade(&inner)));
        Ok(PostgresStore { inner, task })
    }
}

impl Drop for PostgresStore {
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

    /// Runs one operation on the client within [`conn::OP_TIMEOUT`] (a
    /// reconnect included): its duration is observed, a failure counted
    /// under `op`; an unreachable server marks the store down (and drops
    /// the client), any success marks it up.
    async fn run<'a, T, F, Fut>(&'a self, op: &'static str, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<tokio_postgres::Client>) -> Fut + 'a,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + 'a,
    {
        let started = Instant::now();
        let mut used = None;
        let attempt = async {
            let client = self.conn.client().await?;
            used = Some(client.clone());
            work(client).await.map_err(Failure::from)
        };
        let outcome = tokio::time::timeout(conn::OP_TIMEOUT, attempt).await;
        self.metrics
            .duration
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        let failure = match outcome {
            Ok(Ok(value)) => {
                self.health.up();
                return Ok(value);
            }
            Ok(Err(failure)) => failure,
            Err(_) => Failure::Unreachable(format!("no answer within {:?}", conn::OP_TIMEOUT)),
        };
        self.metrics.errors.with_label_values(&[op]).inc();
        let detail = match failure {
            Failure::Unreachable(detail) => {
                if let Some(client) = &used {
                    self.conn.broken(client).await;
                }
                self.health.down(&detail);
                detail
            }
            Failure::Query(detail) => {
                tracing::error!(op, error = %detail, "session store (postgres) query failed");
                detail
            }
            Failure::Sealing(detail) => {
                self.health.down(&detail);
                tracing::error!(op, error = %detail, "session store (postgres) refused: fix sessions.encryption.key_files");
                detail
            }
            Failure::Refused(detail) => {
                self.health.refused(&detail);
                detail
            }
        };
        Err(StoreError(format!("postgres {op}: {detail}")))
    }

    fn count_flush_dropped(&self, dropped: u64) {
        if dropped > 0 {
            self.metrics
                .errors
                .with_label_values(&["flush_dropped"])
                .inc_by(dropped);
        }
    }
}

/// A poisoned lock only means a panic elsewhere; the data is still usable.
fn sync_lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

impl SessionGate for PostgresStore {
    fn observe(&self, sighting: &Sighting<'_>) -> Result<bool, Refusal> {
        let inner = &self.inner;
        let new = inner.local.observe(sighting)?;
        if !inner.pending.record(sighting, inner.idle_secs()) {
            inner.count_flush_dropped(1);
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

    fn remember_static(&self, set: &HeaderSet<'_>, client_ip: IpAddr, now: i64, max_age: Duration) {
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

impl IssuedSessions for PostgresStore {
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

impl SessionAdmin for PostgresStore {
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

    /// Signed: this replica's own view. Issued: every live issued session
    /// in the database, as of the last poll.
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

    fn check_at_start(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async {
            match self.inner.conn.client().await {
                Ok(_) => Ok(()),
                Err(Failure::Sealing(reason)) => Err(StoreError(format!("postgres: {reason}"))),
                Err(
                    Failure::Unreachable(detail)
                    | Failure::Query(detail)
                    | Failure::Refused(detail),
                ) => {
                    tracing::warn!(error = %detail, "session store (postgres) not ready at start; retried per operation");
                    Ok(())
                }
            }
        })
    }
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
