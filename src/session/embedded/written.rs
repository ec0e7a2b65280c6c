//! What each session row on disk holds in its private columns, as a hash,
//! so a session written again with the same client address, user agent,
//! user id and metadata (a signed session seen again: only its counters and
//! times changed) is an UPDATE of its clear columns ([`rows::touch`]): no
//! sealing, a smaller write. The clear and the sealed store take the same
//! path; only the full write seals.
//!
//! The hash is SipHash-1-3 under this process's random keys, in memory
//! only, never stored. It can be stale but never wrong in a way that
//! matters: every full write goes through [`Written::put`]; a row that is
//! gone (deleted, pruned) makes the UPDATE change nothing, and the full
//! write follows; a failed transaction forgets everything
//! ([`Written::forget_all`]), since its rows may not be on disk. Two
//! different private parts hashing alike (a 2^-64 chance per change)
//! would leave the earlier one on disk until the next change, never
//! anything in clear. Bounded: at most [`Written::new`]'s `cap` ids, ids
//! no longer in memory dropped at each prune.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Mutex;

use rusqlite::Connection;

use super::{lock, rows};
use crate::session::seal::Sealer;
use crate::session::{SessionRecord, TokenHash};

pub(super) struct Written {
    hasher: RandomState,
    rows: Mutex<HashMap<Box<str>, u64>>,
    cap: usize,
}

impl Written {
    /// Remembers at most `cap` rows (past it, it starts over: every row
    /// is then written in full once).
    pub(super) fn new(cap: usize) -> Written {
        Written {
            hasher: RandomState::new(),
            rows: Mutex::new(HashMap::new()),
            cap: cap.max(1),
        }
    }

    /// The hash of what `record`'s private columns hold.
    fn digest(&self, record: &SessionRecord) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        record.client_ip.hash(&mut hasher);
        record.user_agent.hash(&mut hasher);
        record.user_id.hash(&mut hasher);
        match &record.metadata {
            // As `rows::put` stores it (its JSON text), without a copy.
            Some(metadata) => {
                hasher.write_u8(1);
                let _ = std::fmt::Write::write_fmt(
                    &mut HashWriter(&mut hasher),
                    format_args!("{metadata}"),
                );
            }
            None => hasher.write_u8(0),
        }
        hasher.finish()
    }

    /// Writes `record`'s row: only its clear columns when its private
    /// ones are as last written, else in full (sealed with a sealer).
    pub(super) fn put(
        &self,
        conn: &Connection,
        record: &SessionRecord,
        token: Option<&TokenHash>,
        retention: i64,
        sealer: Option<&Sealer>,
    ) -> rusqlite::Result<()> {
        let digest = self.digest(record);
        let mut rows = lock(&self.rows);
        let same = rows.get(record.session_id.as_str()) == Some(&digest);
        if same && rows::touch(conn, record, token, retention)? {
            return Ok(());
        }
        rows::put(conn, record, token, retention, sealer)?;
        if !same {
            if rows.len() >= self.cap {
                rows.clear();
            }
            rows.insert(record.session_id.as_str().into(), digest);
        }
        Ok(())
    }

    /// `record` is on disk as it is (read at the load, or written again).
    pub(super) fn loaded(&self, record: &SessionRecord) {
        let digest = self.digest(record);
        let mut rows = lock(&self.rows);
        if rows.len() < self.cap {
            rows.insert(record.session_id.as_str().into(), digest);
        }
    }

    /// `id`'s row is deleted.
    pub(super) fn forget(&self, id: &str) {
        lock(&self.rows).remove(id);
    }

    /// A transaction failed (or every row was deleted): nothing is known.
    pub(super) fn forget_all(&self) {
        lock(&self.rows).clear();
    }

    /// Keeps only the ids `keep` says are still in memory.
    pub(super) fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        lock(&self.rows).retain(|id, _| keep(id));
    }
}

/// Feeds formatted text into a hasher.
struct HashWriter<'a, H: Hasher>(&'a mut H);

impl<H: Hasher> std::fmt::Write for HashWriter<'_, H> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.write(text.as_bytes());
        Ok(())
    }
}
