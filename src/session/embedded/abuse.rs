//! The abuse controls' durable half for one node ([`SharedAbuse`] on the
//! embedded store): the quota windows a replica leases from and the bans in
//! force survive a restart, so a client cannot earn a fresh daily quota or
//! shed its ban by waiting for (or causing) one.
//!
//! As for sessions, memory answers and the file is the durable copy: a
//! lease is counted in a bounded map (no disk on the request path) and the
//! window is written behind with the next flush ([`super::behind`]); a ban
//! too. Lifting a ban (the operator's `DELETE /bans/{subject}`) is written
//! through before it answers, as a revocation is. A crash forgets at most
//! the last flush interval of counting, never a lift.
//!
//! Tables: `quota_windows (quota, value, window, used, purge_at)` and
//! `bans (subject, until, purge_at, seal)`, pruned with the rest at
//! `purge_at`. With `[sessions.encryption]` a ban's subject (a client
//! address or a session id) is sealed deterministically, so it stays the
//! row's key (`seal` names the storage key), and a window's scope hash is
//! keyed by the storage key (a plain hash of an address is reversed by
//! trying every address); rows in clear or under an old key are written
//! again at the start, as sessions are. Windows are not: a window under
//! another key is simply not found, so turning encryption on or rotating
//! the key restarts the windows in progress once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, Transaction};

use super::{lock, rows, Inner};
use crate::pipeline::abuse::shared::{LeaseKey, SharedAbuse};
use crate::pipeline::session_gate::BoxFuture;
use crate::session::seal::{self, SealError, Sealer, BAN_FIELD};

/// Quota windows counted at most; past it (after dropping the ended ones)
/// a lease fails and the local buckets apply, counted as a fallback.
const MAX_WINDOWS: usize = 1 << 18;
/// Bans kept at most (the pipeline's own maps hold as many per kind).
const MAX_BANS: usize = 200_000;
/// Longest ban subject stored (an address or `session:` and a session id).
const MAX_SUBJECT_BYTES: usize = 512;

/// Created beside the versioned schema: a file from before this table
/// existed gains it on open, and an older build ignores it.
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS quota_windows (
    quota INTEGER NOT NULL,
    value INTEGER NOT NULL,
    window INTEGER NOT NULL,
    used INTEGER NOT NULL,
    purge_at INTEGER NOT NULL,
    PRIMARY KEY (quota, value, window)
);
CREATE TABLE IF NOT EXISTS bans (
    subject TEXT PRIMARY KEY,
    until INTEGER NOT NULL,
    purge_at INTEGER NOT NULL,
    seal TEXT
);
";

/// A `bans` table made before sealing gains its `seal` column in place.
pub(super) fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
    let present: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('bans') WHERE name = 'seal'",
        [],
        |row| row.get(0),
    )?;
    if present == 0 {
        conn.execute_batch("ALTER TABLE bans ADD COLUMN seal TEXT")?;
    }
    Ok(())
}

/// A ban's row key and `seal` column as stored.
fn ban_row(sealer: Option<&Sealer>, subject: &str) -> (String, Option<String>) {
    match sealer {
        Some(sealer) => (
            sealer.seal_lookup(BAN_FIELD, subject),
            Some(sealer.key_id().to_string()),
        ),
        None => (subject.to_string(), None),
    }
}

const PUT_BAN: &str =
    "INSERT OR REPLACE INTO bans (subject, until, purge_at, seal) VALUES (?1, ?2, ?2, ?3)";

type WindowKey = (usize, u64, i64);

#[derive(Debug, Clone, Copy)]
struct Window {
    used: u64,
    purge_at: i64,
}

/// The live counts and bans, and which of them changed since the last flush.
#[derive(Default)]
pub(super) struct AbuseState {
    windows: Mutex<HashMap<WindowKey, Window>>,
    bans: Mutex<HashMap<String, i64>>,
    dirty_windows: Mutex<HashSet<WindowKey>>,
    dirty_bans: Mutex<HashSet<String>>,
}

/// What one flush writes.
pub(super) struct Dirty {
    windows: HashSet<WindowKey>,
    bans: HashSet<String>,
}

impl AbuseState {
    /// Reads every live window and ban back (after the prune on open); a
    /// sealed ban that does not open fails the load, as a session does.
    pub(super) fn load(
        conn: &Connection,
        now: i64,
        sealer: Option<&Sealer>,
    ) -> rusqlite::Result<AbuseState> {
        let state = AbuseState::default();
        {
            let mut windows = lock(&state.windows);
            let mut rows = conn.prepare(
                "SELECT quota, value, window, used, purge_at FROM quota_windows WHERE purge_at > ?1",
            )?;
            let mut found = rows.query([now])?;
            while let Some(row) = found.next()? {
                if windows.len() >= MAX_WINDOWS {
                    break;
                }
                let (quota, value): (i64, i64) = (row.get(0)?, row.get(1)?);
                let (Ok(quota), Ok(used)) =
                    (usize::try_from(quota), u64::try_from(row.get::<_, i64>(3)?))
                else {
                    continue;
                };
                // The hash is stored as the same 64 bits, signed.
                let key = (quota, value as u64, row.get(2)?);
                windows.insert(
                    key,
                    Window {
                        used,
                        purge_at: row.get(4)?,
                    },
                );
            }
        }
        let mut stale = false;
        {
            let mut bans = lock(&state.bans);
            let mut rows =
                conn.prepare("SELECT subject, until, seal FROM bans WHERE until > ?1")?;
            let mut found = rows.query([now])?;
            while let Some(row) = found.next()? {
                if bans.len() >= MAX_BANS {
                    break;
                }
                let stored: String = row.get(0)?;
                let subject = match (sealer, row.get::<_, Option<String>>(2)?) {
                    (_, None) => {
                        stale |= sealer.is_some();
                        stored
                    }
                    (None, Some(id)) => return Err(rows::sealing(SealError::NoKey(id))),
                    (Some(sealer), Some(id)) => {
                        stale |= id != sealer.key_id();
                        sealer.open("", BAN_FIELD, &stored).map_err(rows::sealing)?
                    }
                };
                bans.insert(subject, row.get(1)?);
            }
        }
        if let (true, Some(sealer)) = (stale, sealer) {
            // Every ban again under the sealing key; secure_delete zeroes
            // the old cells, the checkpoint empties the WAL of them.
            let tx = conn.unchecked_transaction()?;
            tx.execute("DELETE FROM bans", [])?;
            for (subject, until) in lock(&state.bans).iter() {
                let (key, seal) = ban_row(Some(sealer), subject);
                tx.execute(PUT_BAN, params![key, until, seal])?;
            }
            tx.commit()?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(state)
    }

    /// How many windows and bans were loaded (for the startup log line).
    pub(super) fn counts(&self) -> (usize, usize) {
        (lock(&self.windows).len(), lock(&self.bans).len())
    }

    /// Grants `min(want, limit - used)` of the window and counts it.
    fn lease(
        &self,
        key: LeaseKey,
        want: u64,
        limit: u64,
        purge_at: i64,
        now: i64,
    ) -> Result<u64, String> {
        let key = (key.quota, key.value, key.window);
        let mut windows = lock(&self.windows);
        if !windows.contains_key(&key) && windows.len() >= MAX_WINDOWS {
            windows.retain(|_, w| w.purge_at > now);
            if windows.len() >= MAX_WINDOWS {
                return Err(format!("more than {MAX_WINDOWS} quota windows held"));
            }
        }
        let window = windows.entry(key).or_insert(Window { used: 0, purge_at });
        let grant = want.min(limit.saturating_sub(window.used));
        if grant > 0 {
            window.used += grant;
            window.purge_at = window.purge_at.max(purge_at);
            drop(windows);
            lock(&self.dirty_windows).insert(key);
        }
        Ok(grant)
    }

    /// Keeps the longer of a ban already held and the new one.
    fn ban(&self, subject: String, until: i64, now: i64) -> Result<(), String> {
        if subject.len() > MAX_SUBJECT_BYTES {
            return Err("ban subject too long to keep".into());
        }
        let mut bans = lock(&self.bans);
        if !bans.contains_key(&subject) && bans.len() >= MAX_BANS {
            bans.retain(|_, end| *end > now);
            if bans.len() >= MAX_BANS {
                return Err(format!("more than {MAX_BANS} bans held"));
            }
        }
        let held = bans.entry(subject.clone()).or_insert(until);
        if until > *held {
            *held = until;
        }
        drop(bans);
        lock(&self.dirty_bans).insert(subject);
        Ok(())
    }

    fn in_force(&self, now: i64, limit: usize) -> Vec<(String, i64)> {
        let mut bans = lock(&self.bans);
        bans.retain(|_, end| *end > now);
        bans.iter()
            .take(limit)
            .map(|(subject, end)| (subject.clone(), *end))
            .collect()
    }

    /// Takes what changed; called under the connection lock by the flush.
    pub(super) fn take_dirty(&self) -> Dirty {
        Dirty {
            windows: std::mem::take(&mut *lock(&self.dirty_windows)),
            bans: std::mem::take(&mut *lock(&self.dirty_bans)),
        }
    }

    /// Writes the current value of everything in `dirty` (gone: skipped).
    pub(super) fn write(
        &self,
        tx: &Transaction<'_>,
        dirty: &Dirty,
        sealer: Option<&Sealer>,
    ) -> rusqlite::Result<()> {
        let windows: Vec<(WindowKey, Window)> = {
            let held = lock(&self.windows);
            dirty
                .windows
                .iter()
                .filter_map(|key| held.get(key).map(|w| (*key, *w)))
                .collect()
        };
        for ((quota, value, window), w) in windows {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO quota_windows (quota, value, window, used, purge_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                quota as i64,
                value as i64,
                window,
                i64::try_from(w.used).unwrap_or(i64::MAX),
                w.purge_at
            ])?;
        }
        let bans: Vec<(String, i64)> = {
            let held = lock(&self.bans);
            dirty
                .bans
                .iter()
                .filter_map(|s| held.get(s).map(|end| (s.clone(), *end)))
                .collect()
        };
        for (subject, until) in bans {
            let (key, seal) = ban_row(sealer, &subject);
            tx.prepare_cached(PUT_BAN)?
                .execute(params![key, until, seal])?;
        }
        Ok(())
    }

    /// Puts a failed flush's changes back for the next one.
    pub(super) fn requeue(&self, dirty: Dirty) {
        lock(&self.dirty_windows).extend(dirty.windows);
        lock(&self.dirty_bans).extend(dirty.bans);
    }

    pub(super) fn is_clean(dirty: &Dirty) -> bool {
        dirty.windows.is_empty() && dirty.bans.is_empty()
    }
}

/// The abuse stages' handle on the embedded store (see [`SharedAbuse`]).
pub struct EmbeddedAbuse {
    pub(super) inner: Arc<Inner>,
}

impl SharedAbuse for EmbeddedAbuse {
    fn lease(
        &self,
        key: LeaseKey,
        want: u64,
        limit: u64,
        ttl_secs: u64,
    ) -> BoxFuture<'_, Result<u64, String>> {
        let now = self.inner.now();
        let purge_at = now.saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX));
        let key = match &self.inner.sealer {
            Some(sealer) => LeaseKey {
                value: sealer.keyed_hash(key.value),
                ..key
            },
            None => key,
        };
        let granted = self.inner.abuse.lease(key, want, limit, purge_at, now);
        Box::pin(async move { granted })
    }

    fn ban(&self, subject: String, until: i64) -> BoxFuture<'_, Result<(), String>> {
        let done = self.inner.abuse.ban(subject, until, self.inner.now());
        Box::pin(async move { done })
    }

    /// Written through: an operator's lift holds across a crash.
    fn lift(&self, subject: String) -> BoxFuture<'_, Result<(), String>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let work = move || {
                let conn = lock(&inner.db);
                // Under the connection lock: a flush cannot write it back.
                lock(&inner.abuse.bans).remove(&subject);
                lock(&inner.abuse.dirty_bans).remove(&subject);
                // However it was stored: in clear, or under any key.
                seal::lookup_columns(inner.sealer.as_ref(), BAN_FIELD, &subject)
                    .iter()
                    .try_for_each(|key| {
                        conn.execute("DELETE FROM bans WHERE subject = ?1", [key])
                            .map(drop)
                    })
                    .map_err(|err| inner.failed("lift_ban", err).to_string())
            };
            tokio::task::spawn_blocking(work)
                .await
                .map_err(|err| err.to_string())?
        })
    }

    fn bans(&self, now: i64, limit: usize) -> BoxFuture<'_, Result<Vec<(String, i64)>, String>> {
        let list = self.inner.abuse.in_force(now, limit);
        Box::pin(async move { Ok(list) })
    }
}
