//! Delivered v2 nonces kept across a restart, for the replay cache
//! (`ingest::replay`) when sessions use the embedded store.
//!
//! The hot path stays in memory: a delivered nonce is queued (bounded) and
//! written behind with the next flush, as sessions are; at start the replay
//! cache is seeded with every nonce still inside its window. So an SDK
//! retry that arrives after a restart is answered from the first outcome
//! instead of being delivered twice; only nonces delivered in the last
//! flush interval before a crash can be forgotten. The stored value is
//! opaque to the store (the replay cache's print and answer).

use std::sync::Arc;

use super::{lock, Inner};
use crate::session::StoreError;

/// Most delivered nonces waiting for a flush; past it one is dropped and
/// counted (`store_errors_total{op="flush_dropped"}`): its retry after a
/// crash would be delivered again, never refused.
pub(super) const MAX_PENDING_NONCES: usize = 10_000;
/// Largest value kept (a collector's answer is small; a large one is not
/// worth the disk).
pub const MAX_NONCE_VALUE_BYTES: usize = 16 * 1024;

/// One delivered nonce waiting to be written.
pub(super) struct PendingNonce {
    pub key: Box<str>,
    pub value: Vec<u8>,
    pub purge_at: i64,
}

/// The replay cache's handle on the embedded store (cheap to clone).
#[derive(Clone)]
pub struct PersistedNonces {
    pub(super) inner: Arc<Inner>,
}

impl PersistedNonces {
    /// Queues a delivered nonce, kept for `ttl_secs` from now (the store's clock).
    pub fn remember(&self, key: &str, value: Vec<u8>, ttl_secs: u64) {
        if value.len() > MAX_NONCE_VALUE_BYTES {
            return;
        }
        let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX);
        let purge_at = self.inner.now().saturating_add(ttl);
        let mut pending = lock(&self.inner.pending.nonces);
        if pending.len() >= MAX_PENDING_NONCES {
            drop(pending);
            self.inner.count_error("flush_dropped", 1);
            return;
        }
        pending.push(PendingNonce {
            key: key.into(),
            value,
            purge_at,
        });
    }

    /// Every nonce still inside its window: (key, value). Blocking: called
    /// once, at start.
    pub fn live(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let now = self.inner.now();
        let conn = lock(&self.inner.db);
        let read = || -> rusqlite::Result<Vec<(String, Vec<u8>)>> {
            let mut statement = conn.prepare(
                "SELECT key, answer FROM nonces WHERE purge_at > ?1 AND answer IS NOT NULL",
            )?;
            let rows = statement.query_map([now], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        };
        read().map_err(|err| self.inner.failed("load_nonces", err))
    }
}
