//! The persistent store for one node: SQLite in `sessions.data_dir`.
//!
//! Like the Redis store, a local [`MemoryStore`] answers the hot path
//! (`observe`, `is_revoked`, static sightings, token checks) without
//! touching the disk; the file is only the durable copy:
//! - signed sessions and token touches are written behind: the hot path
//!   marks the session dirty and a background thread writes every dirty
//!   session's current record in one transaction about every
//!   `flush_interval` ([`behind`]), and once more when the store is dropped;
//! - static-header first sightings are queued and written the same way;
//! - the session API's changes (issue, extend, refresh, delete, revoke, a
//!   user's sessions, wipe) are written through: committed before the call
//!   answers ([`write`]), on a blocking thread, never a runtime worker;
//! - on open everything live is loaded back into memory and rows past
//!   their end are pruned ([`load`]); a prune runs every minute after.
//!
//! A file that cannot be opened, is not a database, or was written by a
//! newer schema fails the start with the path named, never a silent
//! fallback to memory. Tokens are kept only as their SHA-256. With
//! `[sessions.encryption]` the private fields of each row are sealed
//! ([`crate::session::seal`]); a row that does not open fails the start.

mod abuse;
mod behind;
mod load;
mod nonces;
mod rows;
mod schema;
mod write;
mod written;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use rusqlite::Connection;

use super::seal::Sealer;
use super::{
    answered, BoxFuture, Change, Changed, EmbeddedSettings, HeaderSet, Issue, IssuedSessions,
    ListFilter, Lookup, MemoryStore, NewSession, Page, Refusal, SessionAdmin, SessionGate,
    SessionKind, SessionSettings, Sighting, StaticSighting, Stats, StoreError, StoreMetrics,
    TokenCheck, TokenHash, TokenUse,
};
use crate::clock::UnixClock;
use behind::{Pending, PendingStatic, Signal};
pub use nonces::PersistedNonces;

pub struct EmbeddedStore {
    inner: Arc<Inner>,
    signals: Option<SyncSender<Signal>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    /// The one connection: the flush thread and write-through share it.
    db: Mutex<Connection>,
    path: PathBuf,
    local: MemoryStore,
    pending: Pending,
    settings: SessionSettings,
    embedded: EmbeddedSettings,
    metrics: StoreMetrics,
    clock: UnixClock,
    /// Quota windows and bans ([`abuse`]).
    abuse: abuse::AbuseState,
    /// `[sessions.encryption]`: seals the private fields of every row.
    sealer: Option<Sealer>,
    /// What the session rows' private columns hold ([`written`]).
    written: written::Written,
}

/// A poisoned lock only means a panic elsewhere; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `embedded.data_dir`, loads what is
    /// live, and starts the write-behind thread. Blocking: call it at
    /// startup. `evicted` counts sessions dropped from memory for capacity.
    pub fn open(
        settings: SessionSettings,
        embedded: EmbeddedSettings,
        metrics: StoreMetrics,
        evicted: IntCounter,
        clock: UnixClock,
    ) -> Result<EmbeddedStore, StoreError> {
        let started = Instant::now();
        let sealer = embedded.encryption.as_ref().map(Sealer::load).transpose()?;
        let (conn, path) = schema::open(&embedded.data_dir, sealer.is_some())?;
        let local = MemoryStore::new(settings.clone(), evicted);
        let retention = secs(settings.expired_retention);
        // Signed and issued sessions are each bounded by max_sessions.
        let cap = usize::try_from(settings.max_sessions.saturating_mul(2)).unwrap_or(usize::MAX);
        let written = written::Written::new(cap);
        let loaded = load::load(&conn, &local, clock(), retention, sealer.as_ref(), &written)
            .map_err(|err| schema::fail(&path, "cannot load", err))?;
        let abuse = abuse::AbuseState::load(&conn, clock(), sealer.as_ref())
            .map_err(|err| schema::fail(&path, "cannot load the quotas and bans", err))?;
        let (quota_windows, bans) = abuse.counts();
        tracing::info!(
            path = %path.display(),
            sessions = loaded.sessions,
            revocations = loaded.revocations,
            tokens = loaded.tokens,
            static_sightings = loaded.statics,
            quota_windows,
            bans,
            pruned = loaded.pruned,
            sealed_with = sealer.as_ref().map_or("none", |s| s.key_id()),
            resealed = loaded.resealed,
            ms = started.elapsed().as_millis() as u64,
            "session store (embedded) loaded"
        );
        let inner = Arc::new(Inner {
            db: Mutex::new(conn),
            path,
            local,
            pending: Pending::default(),
            settings,
            embedded,
            metrics,
            clock,
            abuse,
            sealer,
            written,
        });
        let (signals, received) = sync_channel(1);
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name("telegate-store".into())
            .spawn(move || behind::run(worker, received))
            .map_err(|err| schema::fail(&inner.path, "cannot start the flush thread", err))?;
        Ok(EmbeddedStore {
            inner,
            signals: Some(signals),
            thread: Some(thread),
        })
    }

    /// The handle the v2 replay cache keeps delivered nonces through.
    pub fn nonces(&self) -> PersistedNonces {
        PersistedNonces {
            inner: self.inner.clone(),
        }
    }

    /// The handle quotas and bans are kept through across restarts.
    pub fn abuse(&self) -> Arc<dyn crate::pipeline::abuse::shared::SharedAbuse> {
        Arc::new(abuse::EmbeddedAbuse {
            inner: self.inner.clone(),
        })
    }

    /// Writes what is pending now (tests, and before a planned stop).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }

    /// Wakes the flush thread when a queue is full (once is enough).
    fn wake(&self) {
        if let Some(signals) = &self.signals {
            let _ = signals.try_send(Signal::Wake);
        }
    }
}

impl Drop for EmbeddedStore {
    /// The thread flushes a last time and ends; waiting for it keeps that
    /// flush from being cut off by the process exit.
    fn drop(&mut self) {
        if let Some(signals) = self.signals.take() {
            let _ = signals.try_send(Signal::Stop);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Inner {
    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn retention_secs(&self) -> i64 {
        secs(self.settings.expired_retention)
    }

    /// Marks a session for the next flush; false (counted) when full.
    fn mark(&self, id: &str) -> bool {
        let marked = self.pending.mark(id);
        if !marked {
            self.count_error("flush_dropped", 1);
        }
        marked
    }

    fn observe_duration(&self, op: &str, started: Instant) {
        self.metrics
            .duration
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
    }

    fn count_error(&self, op: &str, count: u64) {
        if count > 0 {
            self.metrics.errors.with_label_values(&[op]).inc_by(count);
        }
    }

    /// Counts and logs a failed operation; the error names the file.
    fn failed(&self, op: &'static str, err: rusqlite::Error) -> StoreError {
        self.count_error(op, 1);
        let error = schema::fail(&self.path, op, err);
        tracing::error!(op, error = %error, "session store (embedded) write failed");
        error
    }
}

/// Runs a write-through on a blocking thread, so a slow disk never holds a
/// runtime worker.
fn blocking<'a, T: Send + 'static>(
    inner: &Arc<Inner>,
    work: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
) -> BoxFuture<'a, Result<T, StoreError>> {
    let inner = inner.clone();
    Box::pin(async move {
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|err| StoreError(format!("embedded session store task: {err}")))?
    })
}

impl SessionGate for EmbeddedStore {
    fn observe(&self, sighting: &Sighting<'_>) -> Result<bool, Refusal> {
        let new = self.inner.local.observe(sighting)?;
        if !self.inner.mark(sighting.session_id) {
            self.wake();
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
        answered(Ok(self.inner.authenticate(token, seen)))
    }

    fn remember_static(&self, set: &HeaderSet<'_>, client_ip: IpAddr, now: i64, max_age: Duration) {
        if self
            .inner
            .local
            .remember_static_new(set, client_ip, now, max_age)
        {
            let queued = self.inner.pending.add_static(PendingStatic {
                digest: set.digest(),
                client_ip,
                first_seen: now,
                purge_at: now.saturating_add(secs(max_age)),
            });
            if !queued {
                self.inner.count_error("flush_dropped", 1);
                self.wake();
            }
        }
    }

    fn static_sighting<'a>(
        &'a self,
        set: &'a HeaderSet<'a>,
        now: i64,
    ) -> BoxFuture<'a, Option<StaticSighting>> {
        self.inner.local.static_sighting(set, now)
    }
}

impl IssuedSessions for EmbeddedStore {
    fn issue(&self, new: NewSession) -> BoxFuture<'_, Result<Issue, StoreError>> {
        blocking(&self.inner, move |inner| inner.issue(new))
    }

    fn find_token<'a>(
        &'a self,
        token: &'a TokenHash,
        now: i64,
    ) -> BoxFuture<'a, Result<TokenCheck, StoreError>> {
        self.inner.local.find_token(token, now)
    }

    fn change<'a>(
        &'a self,
        session_id: &'a str,
        change: Change,
        now: i64,
    ) -> BoxFuture<'a, Result<Changed, StoreError>> {
        let id = session_id.to_string();
        blocking(&self.inner, move |inner| inner.change(&id, change, now))
    }

    fn delete<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let id = session_id.to_string();
        blocking(&self.inner, move |inner| inner.delete(&id))
    }
}

impl SessionAdmin for EmbeddedStore {
    fn lookup<'a>(
        &'a self,
        session_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Lookup, StoreError>> {
        self.inner.local.lookup(session_id, now)
    }

    fn revoke<'a>(
        &'a self,
        session_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<SessionKind>, StoreError>> {
        let id = session_id.to_string();
        blocking(&self.inner, move |inner| inner.revoke(&id, now))
    }

    fn list<'a>(
        &'a self,
        filter: &'a ListFilter,
        now: i64,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        self.inner.local.list(filter, now)
    }

    fn stats(&self, now: i64) -> BoxFuture<'_, Result<Stats, StoreError>> {
        self.inner.local.stats(now)
    }

    fn active(&self, now: i64) -> Vec<(SessionKind, u64)> {
        self.inner.local.active(now)
    }

    fn delete_user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        let user = user.to_string();
        blocking(&self.inner, move |inner| inner.delete_user(&user))
    }

    fn wipe(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        blocking(&self.inner, |inner| inner.wipe())
    }
}

#[cfg(test)]
#[path = "embedded_tests.rs"]
mod tests;
#[cfg(test)]
#[path = "embedded_tests_sealed.rs"]
mod tests_sealed;
