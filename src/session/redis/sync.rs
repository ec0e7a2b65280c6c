//! Write-behind and catching up: the pending deltas of signed sessions, the
//! batch flush, the revocation poll, and the background task that runs both
//! every `flush_interval`.
//!
//! A flush that fails puts its deltas back (merged under newer ones), up to
//! [`MAX_PENDING`] sessions; what does not fit is dropped and counted. A
//! batch whose answer was lost may be applied twice: counters are at least
//! once, never lost while Redis is merely slow.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, Weak};

use super::Inner;
use crate::session::{Sighting, StoreError};

/// Most sessions with deltas waiting (about 200 bytes each).
pub const MAX_PENDING: usize = 100_000;
/// Sessions per flush script.
const BATCH: usize = 500;
/// The longest time between two polls, whatever `flush_interval` is: it
/// bounds how late a revocation from another replica and a change of
/// reachability (`/ready`) are seen.
const POLL_AT_LEAST: std::time::Duration = std::time::Duration::from_secs(1);
/// Index entries checked per tick by the sweep.
const SWEEP: usize = 500;
/// Entries the revocation change log keeps; a replica further behind
/// reloads every revocation.
pub(super) const REVLOG_CAP: u64 = 100_000;

/// What one session did since the last flush.
/// (Shared with the PostgreSQL store, which writes the same deltas.)
#[derive(Debug, Clone)]
pub(crate) struct Delta {
    /// The first sighting in this batch.
    pub since: i64,
    pub last: i64,
    pub requests: u64,
    pub bytes: u64,
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    pub client_version: Option<String>,
    pub key_id: String,
}

impl Delta {
    fn new(sighting: &Sighting<'_>) -> Delta {
        Delta {
            since: sighting.now,
            last: sighting.now,
            requests: 1,
            bytes: sighting.bytes,
            ip: sighting.client_ip,
            user_agent: sighting.user_agent.map(str::to_string),
            client_version: sighting.client_version.map(str::to_string),
            key_id: sighting.key_id.to_string(),
        }
    }

    /// Adds a later sighting; allocates only when the client changed.
    fn add(&mut self, sighting: &Sighting<'_>) {
        self.last = self.last.max(sighting.now);
        self.requests += 1;
        self.bytes += sighting.bytes;
        self.ip = sighting.client_ip;
        if self.user_agent.as_deref() != sighting.user_agent {
            self.user_agent = sighting.user_agent.map(str::to_string);
        }
        if self.client_version.as_deref() != sighting.client_version {
            self.client_version = sighting.client_version.map(str::to_string);
        }
        if self.key_id != sighting.key_id {
            self.key_id = sighting.key_id.to_string();
        }
    }
}

pub(crate) type Deltas = HashMap<Box<str>, Delta>;

/// The bounded map of deltas waiting for the next flush.
pub struct Pending {
    map: Mutex<Deltas>,
    cap: usize,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pending {
    pub fn new(cap: usize) -> Pending {
        Pending {
            map: Mutex::new(HashMap::new()),
            cap,
        }
    }

    /// Adds one sighting; false when it was dropped (the map is full).
    pub fn record(&self, sighting: &Sighting<'_>, idle: i64) -> bool {
        let mut map = lock(&self.map);
        let full = map.len() >= self.cap;
        match map.get_mut(sighting.session_id) {
            // Idle past its end within the batch: the session starts over.
            Some(delta) if delta.last.saturating_add(idle) < sighting.now => {
                *delta = Delta::new(sighting)
            }
            Some(delta) => delta.add(sighting),
            None if full => return false,
            None => {
                map.insert(sighting.session_id.into(), Delta::new(sighting));
            }
        }
        true
    }

    pub(crate) fn take(&self) -> Deltas {
        std::mem::take(&mut *lock(&self.map))
    }

    /// Puts back the deltas of a failed flush under any newer ones;
    /// returns how many did not fit and were dropped.
    pub(crate) fn restore(
        &self,
        failed: impl Iterator<Item = (Box<str>, Delta)>,
        idle: i64,
    ) -> u64 {
        let mut map = lock(&self.map);
        let mut dropped = 0;
        for (id, old) in failed {
            let full = map.len() >= self.cap;
            match map.get_mut(&id) {
                // The newer delta is a later life of the session: the old
                // one cannot be merged into it.
                Some(newer) if old.last.saturating_add(idle) < newer.since => dropped += 1,
                Some(newer) => {
                    newer.since = newer.since.min(old.since);
                    newer.requests += old.requests;
                    newer.bytes += old.bytes;
                }
                None if full => dropped += 1,
                None => {
                    map.insert(id, old);
                }
            }
        }
        dropped
    }

    pub fn clear(&self) {
        lock(&self.map).clear();
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        lock(&self.map).contains_key(id)
    }
}

/// Where this replica is in the revocation change log.
#[derive(Debug)]
pub struct PollState {
    /// The last sequence number applied; -1: load everything.
    pub seq: i64,
    /// The wipe epoch seen last; a change means another replica wiped.
    pub epoch: Option<String>,
    /// Where the sweep of the `ids` index goes on ('': from the start).
    pub swept_to: String,
}

impl Default for PollState {
    fn default() -> Self {
        PollState {
            seq: -1,
            epoch: None,
            swept_to: String::new(),
        }
    }
}

/// The background task, until the store is dropped: a poll (revocations,
/// reachability, the sweep) at least every second, and a flush every
/// `flush_interval`.
pub(super) async fn run(store: Weak<Inner>) {
    let Some(flush_every) = store.upgrade().map(|s| s.redis.flush_interval) else {
        return;
    };
    let poll_every = flush_every.min(POLL_AT_LEAST);
    let mut tick = tokio::time::interval(poll_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since_flush = flush_every;
    loop {
        tick.tick().await;
        let Some(inner) = store.upgrade() else {
            return;
        };
        let flush = since_flush >= flush_every;
        since_flush = if flush {
            poll_every
        } else {
            since_flush + poll_every
        };
        // Failures are counted and logged by `run`; the next tick retries.
        let _ = inner.tick(flush).await;
    }
}

impl Inner {
    async fn tick(&self, flush: bool) -> Result<(), StoreError> {
        let _flushing = self.flushing.lock().await;
        let flushed = if flush {
            self.flush_locked().await
        } else {
            Ok(())
        };
        self.poll_locked().await?;
        self.sweep_locked().await?;
        flushed
    }

    /// Drops one slice of index entries whose records expired out of Redis
    /// (reads drop the ones they meet, too), so the indices stay bounded.
    async fn sweep_locked(&self) -> Result<(), StoreError> {
        let after = lock(&self.poll).swept_to.clone();
        let now = self.now();
        let mut conn = self.conn.clone();
        let next: String = self
            .run("sweep", async {
                self.scripts
                    .sweep
                    .arg(&self.redis.prefix)
                    .arg(&after)
                    .arg(SWEEP)
                    .arg(now)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        lock(&self.poll).swept_to = next;
        Ok(())
    }

    /// Writes this replica's pending deltas (API reads call this first).
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        let _flushing = self.flushing.lock().await;
        self.flush_locked().await
    }

    /// [`Self::flush`] when `id` has a delta waiting (reads of one
    /// session); either way, waits for a batch in flight, which may hold it.
    pub(super) async fn flush_for(&self, id: &str) -> Result<(), StoreError> {
        let _flushing = self.flushing.lock().await;
        if self.pending.contains(id) {
            self.flush_locked().await?;
        }
        Ok(())
    }

    async fn flush_locked(&self) -> Result<(), StoreError> {
        self.flush_deltas_locked().await?;
        self.flush_statics_locked().await
    }

    async fn flush_deltas_locked(&self) -> Result<(), StoreError> {
        let taken = self.pending.take();
        if taken.is_empty() {
            return Ok(());
        }
        let mut deltas: Vec<(Box<str>, Delta)> = taken.into_iter().collect();
        let mut sent = 0;
        let mut outcome = Ok(());
        for batch in deltas.chunks(BATCH) {
            if let Err(err) = self.flush_batch(batch).await {
                outcome = Err(err);
                break;
            }
            sent += batch.len();
        }
        if outcome.is_err() {
            self.count_flush_dropped(self.pending.restore(deltas.drain(sent..), self.idle_secs()));
        }
        outcome
    }

    /// Writes that a failed flush could not put back in a full queue.
    pub(super) fn count_flush_dropped(&self, dropped: u64) {
        if dropped > 0 {
            self.metrics
                .errors
                .with_label_values(&["flush_dropped"])
                .inc_by(dropped);
        }
    }

    async fn flush_batch(&self, batch: &[(Box<str>, Delta)]) -> Result<(), StoreError> {
        let store_ip = self.settings.store_ip;
        let mut invocation = self.scripts.flush.prepare_invoke();
        invocation
            .arg(&self.redis.prefix)
            .arg(self.idle_secs())
            .arg(self.retention_secs());
        for (id, delta) in batch {
            invocation
                .arg(&**id)
                .arg(delta.since)
                .arg(delta.last)
                .arg(delta.requests)
                .arg(delta.bytes)
                .arg(store_ip.apply(delta.ip).unwrap_or_default())
                .arg(delta.user_agent.as_deref().unwrap_or_default())
                .arg(delta.client_version.as_deref().unwrap_or_default())
                .arg(&delta.key_id);
        }
        let mut conn = self.conn.clone();
        self.run("flush", async {
            invocation.invoke_async::<i64>(&mut conn).await
        })
        .await
        .map(drop)
    }

    /// Applies the revocations other replicas made since the last poll (all
    /// of them on the first poll, or after a wipe), and refreshes the live
    /// issued count. A wipe elsewhere (a new epoch) clears this replica.
    async fn poll_locked(&self) -> Result<(), StoreError> {
        for _ in 0..2 {
            let after = lock(&self.poll).seq;
            let now = self.now();
            let mut conn = self.conn.clone();
            let reply: Vec<String> = self
                .run("poll", async {
                    self.scripts
                        .poll
                        .arg(&self.redis.prefix)
                        .arg(after)
                        .arg(now)
                        .invoke_async(&mut conn)
                        .await
                })
                .await?;
            let [epoch, seq, live, _full, revoked @ ..] = &reply[..] else {
                return Err(StoreError(format!(
                    "redis poll: unexpected reply {reply:?}"
                )));
            };
            let mut state = lock(&self.poll);
            if state.epoch.as_ref().is_some_and(|known| known != epoch) {
                tracing::warn!("session store wiped through another replica: local state cleared");
                self.pending.clear();
                self.statics.clear();
                self.local.clear();
                self.issued_live.store(0, Ordering::Relaxed);
                *state = PollState {
                    epoch: Some(epoch.clone()),
                    ..PollState::default()
                };
                continue;
            }
            for pair in revoked.chunks_exact(2) {
                if let Some(until) = score(&pair[1]) {
                    self.local.remember_revocation(&pair[0], now, until);
                }
            }
            state.seq = seq.parse().unwrap_or(state.seq);
            state.epoch = Some(epoch.clone());
            self.issued_live
                .store(live.parse().unwrap_or(0), Ordering::Relaxed);
            return Ok(());
        }
        Ok(())
    }
}

/// A sorted-set score (Unix seconds) as Redis prints it.
fn score(text: &str) -> Option<i64> {
    text.parse::<i64>()
        .ok()
        .or_else(|| text.parse::<f64>().ok().map(|f| f as i64))
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
