//! Write-behind and catching up: the batch flush of signed-session deltas
//! and static sightings, the poll of the `revocations` change log (and the
//! wipe epoch, and the live issued count), the prune, and the background
//! task that runs them.
//!
//! A flush that fails puts its deltas back (merged under newer ones), up to
//! [`MAX_PENDING`] sessions; what does not fit is dropped and counted
//! (`store_errors_total{op="flush_dropped"}`). A batch whose answer was lost
//! may be applied twice: counters are at least once.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::{sql, Inner};
use crate::session::redis::sync::Delta;
use crate::session::{HeaderSet, Lookup, SessionGate, StaticSighting, StoreError};

/// Most sessions with deltas waiting.
pub const MAX_PENDING: usize = 100_000;
/// Sessions per flush statement.
const BATCH: usize = 500;
/// The longest time between two polls, whatever `flush_interval` is.
const POLL_AT_LEAST: Duration = Duration::from_secs(1);
/// Change-log entries read per poll; a longer backlog is read on the next.
const POLL_ROWS: i64 = 10_000;
/// How often rows past their end are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The background task, until the store is dropped: a poll at least every
/// second, a flush every `flush_interval`, a prune every [`PRUNE_EVERY`].
pub async fn run(store: Weak<Inner>) {
    let Some(flush_every) = store.upgrade().map(|s| s.postgres.flush_interval) else {
        return;
    };
    let poll_every = flush_every.min(POLL_AT_LEAST);
    let mut tick = tokio::time::interval(poll_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since_flush = flush_every;
    let mut last_prune: Option<Instant> = None;
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
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            let now = inner.now();
            let _ = inner
                .run("prune", |client| async move {
                    for statement in sql::PRUNE {
                        client.execute(statement, &[&now]).await?;
                    }
                    Ok(())
                })
                .await;
        }
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
        if !self.resealed.load(Ordering::Relaxed) && self.reseal_batch().await? == 0 {
            self.resealed.store(true, Ordering::Relaxed);
        }
        flushed
    }

    /// Writes this replica's pending deltas (API reads call this first).
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        let _flushing = self.flushing.lock().await;
        self.flush_locked().await
    }

    /// [`Self::flush`] when `id` has a delta waiting; either way, waits for
    /// a batch in flight, which may hold it.
    pub(super) async fn flush_for(&self, id: &str) -> Result<(), StoreError> {
        let _flushing = self.flushing.lock().await;
        if self.pending.contains(id) {
            self.flush_locked().await?;
        }
        Ok(())
    }

    async fn flush_locked(&self) -> Result<(), StoreError> {
        let mut deltas: Vec<(Box<str>, Delta)> = self.pending.take().into_iter().collect();
        // One lock order for every replica's batches: no deadlock.
        deltas.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut sent = 0;
        for batch in deltas.chunks(BATCH) {
            if let Err(err) = self.flush_batch(batch).await {
                let idle = self.idle_secs();
                self.count_flush_dropped(self.pending.restore(deltas.drain(sent..), idle));
                return Err(err);
            }
            sent += batch.len();
        }
        self.flush_statics_locked().await
    }

    async fn flush_batch(&self, batch: &[(Box<str>, Delta)]) -> Result<(), StoreError> {
        let store_ip = self.settings.store_ip;
        let ids: Vec<&str> = batch.iter().map(|(id, _)| &**id).collect();
        let since: Vec<i64> = batch.iter().map(|(_, d)| d.since).collect();
        let last: Vec<i64> = batch.iter().map(|(_, d)| d.last).collect();
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let requests: Vec<i64> = batch.iter().map(|(_, d)| count(d.requests)).collect();
        let bytes: Vec<i64> = batch.iter().map(|(_, d)| count(d.bytes)).collect();
        let sealer = self.sealer.as_deref();
        // Sealed under each session's id when encryption is on.
        let private = |id: &str, field: &str, value: Option<&str>| match (sealer, value) {
            (Some(sealer), Some(value)) => Some(sealer.seal(id, field, value)),
            (_, value) => value.map(str::to_string),
        };
        let ips: Vec<Option<String>> = batch
            .iter()
            .map(|(id, d)| private(id, "client_ip", store_ip.apply(d.ip).as_deref()))
            .collect();
        let agents: Vec<Option<String>> = batch
            .iter()
            .map(|(id, d)| private(id, "user_agent", d.user_agent.as_deref()))
            .collect();
        let seal = sealer.map(|s| s.key_id().to_string());
        let versions: Vec<Option<&str>> = batch
            .iter()
            .map(|(_, d)| d.client_version.as_deref())
            .collect();
        let keys: Vec<&str> = batch.iter().map(|(_, d)| d.key_id.as_str()).collect();
        let (idle, retention) = (self.idle_secs(), self.retention_secs());
        self.run("flush", |client| async move {
            client
                .execute(
                    sql::FLUSH,
                    &[
                        &ids, &since, &last, &requests, &bytes, &ips, &agents, &versions, &keys,
                        &idle, &retention, &seal,
                    ],
                )
                .await
        })
        .await
        .map(drop)
    }

    /// Writes the queued first sightings (after the session deltas, so a
    /// reader finds the session too).
    async fn flush_statics_locked(&self) -> Result<(), StoreError> {
        let queued = self.statics.take();
        if queued.is_empty() {
            return Ok(());
        }
        let digests: Vec<&[u8]> = queued.iter().map(|q| &q.digest[..]).collect();
        let sealer = self.sealer.as_deref();
        let ips: Vec<String> = queued
            .iter()
            .map(|q| {
                let ip = q.client_ip.to_string();
                match sealer {
                    Some(sealer) => sealer.seal(&hex::encode(q.digest), "client_ip", &ip),
                    None => ip,
                }
            })
            .collect();
        let seal = sealer.map(|s| s.key_id().to_string());
        let first: Vec<i64> = queued.iter().map(|q| q.first_seen).collect();
        let purge: Vec<i64> = queued
            .iter()
            .map(|q| q.first_seen.saturating_add_unsigned(q.max_age))
            .collect();
        let outcome = self
            .run("flush", |client| async move {
                client
                    .execute(sql::FLUSH_STATICS, &[&digests, &ips, &first, &purge, &seal])
                    .await
            })
            .await;
        if outcome.is_err() {
            self.count_flush_dropped(self.statics.restore(queued));
        }
        outcome.map(drop)
    }

    /// Applies the revocations made anywhere since the last poll and reads
    /// the epoch and the live issued count. A new epoch (a wipe through
    /// another replica) clears this replica's local state first.
    async fn poll_locked(&self) -> Result<(), StoreError> {
        let (now, idle) = (self.now(), self.idle_secs());
        let (epoch, live): (Option<String>, i64) = self
            .run("poll", |client| async move {
                let row = client.query_one(sql::STATE, &[&now, &idle]).await?;
                Ok((row.try_get(0)?, row.try_get(1)?))
            })
            .await?;
        let wiped = {
            let mut known = super::sync_lock(&self.epoch);
            let wiped = known.is_some() && *known != epoch;
            *known = epoch;
            wiped
        };
        if wiped {
            tracing::warn!("session store wiped through another replica: local state cleared");
            self.pending.clear();
            self.statics.clear();
            self.local.clear();
            self.seq.store(0, Ordering::Relaxed);
        }
        self.issued_live
            .store(u64::try_from(live).unwrap_or(0), Ordering::Relaxed);
        let after = self.seq.load(Ordering::Relaxed);
        let rows = self
            .run("poll", |client| async move {
                client.query(sql::POLL, &[&after, &POLL_ROWS]).await
            })
            .await?;
        for row in rows {
            let (seq, id, until): (i64, String, i64) = (row.get(0), row.get(1), row.get(2));
            self.local.remember_revocation(&id, now, until);
            self.seq.fetch_max(seq, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Local first; the queue only sees a set this replica did not know.
    pub(super) fn remember_static(
        &self,
        set: &HeaderSet<'_>,
        client_ip: IpAddr,
        now: i64,
        max_age: Duration,
    ) {
        if !self
            .statics
            .remember(&self.local, set, client_ip, now, max_age)
        {
            self.count_flush_dropped(1);
        }
    }

    /// The local cache first; on a miss (a set first seen by another
    /// replica, or before a restart) the database, and the session must be
    /// live there. A failure answers `None`: strict.
    pub(super) async fn static_sighting(
        &self,
        set: &HeaderSet<'_>,
        now: i64,
    ) -> Option<StaticSighting> {
        if let Some(found) = self.local.static_sighting(set, now).await {
            return Some(found);
        }
        if self.local.is_revoked(set.session_id, now) {
            return None;
        }
        let digest = set.digest().to_vec();
        let row = self
            .run("static", |client| async move {
                client.query_opt(sql::STATIC, &[&digest, &now]).await
            })
            .await
            .ok()??;
        let (ip, first_seen, purge_at): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
        let seal: Option<String> = row.get(3);
        // Strict: a sighting that does not open is no sighting.
        let ip = match (seal, self.sealer.as_deref()) {
            (None, _) => ip,
            (Some(_), Some(sealer)) => sealer
                .open(&hex::encode(set.digest()), "client_ip", &ip)
                .ok()?,
            (Some(_), None) => return None,
        };
        let first = StaticSighting {
            client_ip: ip.parse().ok()?,
            first_seen,
        };
        match self.lookup(set.session_id, now).await.ok()? {
            Lookup::Live(record) if record.is_active(now) => {}
            _ => return None,
        }
        let left = purge_at - now;
        if left > 0 {
            self.local.remember_static_new(
                set,
                first.client_ip,
                first.first_seen,
                Duration::from_secs(left.unsigned_abs()),
            );
        }
        Some(first)
    }
}
