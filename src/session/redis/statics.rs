//! Static-header sightings shared through Redis, so a header set first seen
//! through one replica is accepted by the others and after a restart.
//!
//! `remember_static` records locally (the hot path, no round trip) and
//! queues the sighting; the write-behind flush writes it after the session
//! deltas as `SET {prefix}st:{hex digest} "{first_seen} {max_age} {ip}" NX
//! EX max_age`, so the first sighting anywhere wins and Redis expires it.
//! `static_sighting` answers from the local cache; on a miss (a header set
//! first seen elsewhere) it reads the key and the session's record (two
//! round trips, on the rare stale-timestamp path only) and caches the
//! answer locally. A Redis failure there answers `None`: strict.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use super::sync::lock;
use super::Inner;
use crate::session::{HeaderSet, Lookup, MemoryStore, SessionGate, StaticSighting, StoreError};

/// Most static sightings waiting for the next flush.
const MAX_QUEUED: usize = 10_000;

/// One first sighting to write.
/// (Shared with the PostgreSQL store.)
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub digest: [u8; 32],
    pub client_ip: IpAddr,
    pub first_seen: i64,
    pub max_age: u64,
}

/// The bounded queue of sightings to write behind.
#[derive(Default)]
pub struct StaticQueue(Mutex<Vec<Queued>>);

impl StaticQueue {
    /// False when the queue is full and the sighting was dropped.
    pub(crate) fn push(&self, item: Queued) -> bool {
        let mut queue = lock(&self.0);
        if queue.len() >= MAX_QUEUED {
            return false;
        }
        queue.push(item);
        true
    }

    pub(crate) fn take(&self) -> Vec<Queued> {
        std::mem::take(&mut *lock(&self.0))
    }

    /// Puts a failed batch back, as much as fits; returns how many were dropped.
    pub(crate) fn restore(&self, failed: Vec<Queued>) -> u64 {
        let mut queue = lock(&self.0);
        let room = MAX_QUEUED.saturating_sub(queue.len());
        let dropped = failed.len().saturating_sub(room) as u64;
        queue.extend(failed.into_iter().take(room));
        dropped
    }

    pub fn clear(&self) {
        lock(&self.0).clear();
    }

    /// Records a sighting in `local` and, when it is new there, queues it
    /// for the flush; false when the queue was full (count it as dropped).
    pub(crate) fn remember(
        &self,
        local: &MemoryStore,
        set: &HeaderSet<'_>,
        client_ip: IpAddr,
        now: i64,
        max_age: Duration,
    ) -> bool {
        if !local.remember_static_new(set, client_ip, now, max_age) {
            return true;
        }
        self.push(Queued {
            digest: set.digest(),
            client_ip,
            first_seen: now,
            max_age: max_age.as_secs().max(1),
        })
    }
}

fn hex(digest: &[u8; 32]) -> String {
    use std::fmt::Write;
    digest.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// `"{first_seen} {max_age} {ip}"` back into its parts.
fn decode(value: &str) -> Option<(StaticSighting, u64)> {
    let mut parts = value.splitn(3, ' ');
    let first_seen = parts.next()?.parse().ok()?;
    let max_age = parts.next()?.parse().ok()?;
    let client_ip = parts.next()?.parse().ok()?;
    Some((
        StaticSighting {
            client_ip,
            first_seen,
        },
        max_age,
    ))
}

impl Inner {
    fn static_key(&self, digest: &[u8; 32]) -> String {
        self.key(&format!("st:{}", hex(digest)))
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
            self.metrics
                .errors
                .with_label_values(&["flush_dropped"])
                .inc();
        }
    }

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
        let key = self.static_key(&set.digest());
        let mut conn = self.conn.clone();
        let value: Option<String> = self
            .run("static", async {
                redis::cmd("GET").arg(&key).query_async(&mut conn).await
            })
            .await
            .ok()?;
        let (first, max_age) = decode(&value?)?;
        match self.lookup(set.session_id, now).await.ok()? {
            Lookup::Live(record) if record.is_active(now) => {}
            _ => return None,
        }
        let left = first.first_seen.saturating_add_unsigned(max_age) - now;
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

    /// Writes the queued first sightings (after the session deltas, so a
    /// reader finds the session too).
    pub(super) async fn flush_statics_locked(&self) -> Result<(), StoreError> {
        let queued = self.statics.take();
        if queued.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for item in &queued {
            let value = format!("{} {} {}", item.first_seen, item.max_age, item.client_ip);
            pipe.cmd("SET")
                .arg(self.static_key(&item.digest))
                .arg(value)
                .arg("NX")
                .arg("EX")
                .arg(item.max_age)
                .ignore();
        }
        let mut conn = self.conn.clone();
        let outcome = self
            .run("flush", async { pipe.query_async::<()>(&mut conn).await })
            .await;
        if outcome.is_err() {
            self.count_flush_dropped(self.statics.restore(queued));
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let (first, max_age) = decode("1700000000 86400 2001:db8::1").unwrap();
        assert_eq!(first.first_seen, 1_700_000_000);
        assert_eq!(max_age, 86400);
        assert_eq!(first.client_ip, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert!(decode("garbage").is_none());
        assert_eq!(hex(&[0xab; 32]).len(), 64);
    }
}
