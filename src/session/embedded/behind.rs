//! Write-behind: what the hot path changed since the last flush, and the
//! background thread that writes it in one transaction about every
//! `flush_interval` (and prunes dead rows every [`PRUNE_EVERY`]).
//!
//! The hot path only marks a session id dirty (one hash lookup; an
//! allocation the first time per interval) or queues a static sighting; the
//! flush reads each dirty session's current record from the memory store,
//! so however many requests a session made meanwhile it is one row write
//! (an UPDATE of its clear columns when its private ones did not change,
//! [`super::written`]).
//! Both queues are bounded: past [`MAX_PENDING`] a new id is dropped and
//! counted (`store_errors_total{op="flush_dropped"}`; the session is written
//! at its next sighting after a flush) and the thread is woken to flush now.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::abuse::AbuseState;
use super::nonces::PendingNonce;
use super::{lock, rows, schema, Inner};
use crate::session::StoreError;

/// Most sessions (and, separately, static sightings) waiting for a flush.
pub(super) const MAX_PENDING: usize = 100_000;
/// How often rows past their end are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A static-header first sighting waiting to be written.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingStatic {
    pub digest: [u8; 32],
    pub client_ip: IpAddr,
    pub first_seen: i64,
    pub purge_at: i64,
}

#[derive(Default)]
pub(super) struct Pending {
    ids: Mutex<HashSet<Box<str>>>,
    statics: Mutex<Vec<PendingStatic>>,
    /// Delivered v2 nonces ([`super::nonces`]).
    pub(super) nonces: Mutex<Vec<PendingNonce>>,
}

impl Pending {
    /// Marks `id` for the next flush; false when the queue is full.
    pub(super) fn mark(&self, id: &str) -> bool {
        let mut ids = lock(&self.ids);
        if ids.contains(id) {
            return true;
        }
        if ids.len() >= MAX_PENDING {
            return false;
        }
        ids.insert(id.into());
        true
    }

    /// Queues a first sighting; false when the queue is full.
    pub(super) fn add_static(&self, sighting: PendingStatic) -> bool {
        let mut statics = lock(&self.statics);
        if statics.len() >= MAX_PENDING {
            return false;
        }
        statics.push(sighting);
        true
    }

    fn take(&self) -> (HashSet<Box<str>>, Vec<PendingStatic>) {
        let ids = std::mem::take(&mut *lock(&self.ids));
        let statics = std::mem::take(&mut *lock(&self.statics));
        (ids, statics)
    }

    pub(super) fn clear(&self) {
        lock(&self.ids).clear();
        lock(&self.statics).clear();
        lock(&self.nonces).clear();
    }
}

/// What the store tells its thread.
pub(super) enum Signal {
    /// A queue is full: flush now.
    Wake,
    /// The store is dropped: flush a last time and end.
    Stop,
}

/// The background thread: a flush every `flush_interval` (or when woken),
/// a prune every [`PRUNE_EVERY`], a last flush on [`Signal::Stop`] (or when
/// the store's sender is gone).
pub(super) fn run(inner: Arc<Inner>, signals: Receiver<Signal>) {
    let mut last_prune = Instant::now();
    loop {
        let stop = match signals.recv_timeout(inner.embedded.flush_interval) {
            Ok(Signal::Wake) | Err(RecvTimeoutError::Timeout) => false,
            Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => true,
        };
        // Failures are logged and counted by `flush`; the next tick retries.
        let _ = inner.flush();
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            let _ = inner.prune();
        }
        if stop {
            return;
        }
    }
}

impl Inner {
    /// Writes every pending change in one transaction. A failed flush puts
    /// the ids back (what no longer fits is counted as dropped).
    pub(super) fn flush(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = lock(&self.db);
        // Taken under the connection lock: a write-through (revoke, delete)
        // holds it too, so a flush never writes back a session it removed.
        let (ids, statics) = self.pending.take();
        let nonces = std::mem::take(&mut *lock(&self.pending.nonces));
        let abuse = self.abuse.take_dirty();
        if ids.is_empty() && statics.is_empty() && nonces.is_empty() && AbuseState::is_clean(&abuse)
        {
            return Ok(());
        }
        let now = self.now();
        let retention = self.retention_secs();
        let written = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            for id in &ids {
                // Gone from memory (deleted, evicted, dead): nothing to write.
                if let Some((record, token)) = self.local.persisted(id, now) {
                    let sealer = self.sealer.as_ref();
                    self.written
                        .put(&tx, &record, token.as_ref(), retention, sealer)?;
                }
            }
            for s in &statics {
                let ip = s.client_ip.to_string();
                let sealer = self.sealer.as_ref();
                rows::put_static(&tx, &s.digest, &ip, s.first_seen, s.purge_at, sealer)?;
            }
            for n in &nonces {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO nonces (key, answer, purge_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(rusqlite::params![&*n.key, &n.value, n.purge_at])?;
            }
            self.abuse.write(&tx, &abuse, self.sealer.as_ref())?;
            tx.commit()
        })();
        drop(conn);
        self.observe_duration("flush", started);
        written.map_err(|err| {
            // Rolled back: what the rows hold is no longer known.
            self.written.forget_all();
            let mut dropped = 0u64;
            for id in &ids {
                dropped += u64::from(!self.pending.mark(id));
            }
            for s in statics {
                dropped += u64::from(!self.pending.add_static(s));
            }
            // Nonces are not requeued: a retry after a crash is then
            // delivered again, never refused.
            dropped += nonces.len() as u64;
            self.abuse.requeue(abuse);
            self.count_error("flush_dropped", dropped);
            self.failed("flush", err)
        })
    }

    /// Deletes rows past their end (and forgets the rows of sessions no
    /// longer in memory).
    pub(super) fn prune(&self) -> Result<usize, StoreError> {
        let conn = lock(&self.db);
        let now = self.now();
        self.written
            .retain(|id| self.local.persisted(id, now).is_some());
        schema::prune(&conn, now).map_err(|err| self.failed("prune", err))
    }
}
