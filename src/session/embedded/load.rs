//! Load on open: everything still live on disk goes back into the memory
//! store (rows past their end are pruned first, so they are neither read
//! nor kept). Sessions load oldest first, so a user's list keeps its order
//! and, past `max_sessions`, the oldest are the ones evicted.
//!
//! With `[sessions.encryption]` every sealed row must open (else the load,
//! and so the start, fails with the reason), and rows in clear (written
//! before encryption was turned on), sealed under an old key, or sealed
//! in the earlier per-value format are written again under the sealing
//! key, as one sealed value per row, before the load returns: after a
//! start with a key, the tables hold no private field in clear
//! (`secure_delete` zeroes the old cells, and the WAL is checkpointed and
//! truncated).

use std::net::IpAddr;
use std::time::Duration;

use rusqlite::Connection;

use super::written::Written;
use super::{rows, schema};
use crate::session::seal::Sealer;
use crate::session::{MemoryStore, StaticSighting};

/// What was loaded, for the startup log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loaded {
    pub sessions: u64,
    pub revocations: u64,
    pub tokens: u64,
    pub statics: u64,
    pub pruned: u64,
    /// Rows written again under the sealing key.
    pub resealed: u64,
}

pub(super) fn load(
    conn: &Connection,
    local: &MemoryStore,
    now: i64,
    retention: i64,
    sealer: Option<&Sealer>,
    written: &Written,
) -> rusqlite::Result<Loaded> {
    let mut loaded = Loaded {
        pruned: schema::prune(conn, now)? as u64,
        ..Loaded::default()
    };
    let mut sessions = conn.prepare(&format!(
        "SELECT {} FROM sessions ORDER BY first_seen",
        rows::COLUMNS
    ))?;
    let mut found = sessions.query([])?;
    let mut reseal = Vec::new();
    while let Some(row) = found.next()? {
        let read = rows::read(row, sealer)?;
        if read.reseal {
            reseal.push((read.record.clone(), read.token));
        } else {
            written.loaded(&read.record);
        }
        local.restore(read.record, read.token, now);
        loaded.sessions += 1;
    }
    let mut tokens = conn.prepare("SELECT hash, session_id, purge_at FROM tokens")?;
    let mut found = tokens.query([])?;
    while let Some(row) = found.next()? {
        let hash: Vec<u8> = row.get(0)?;
        let id: String = row.get(1)?;
        if let Some(hash) = rows::token_hash(&hash) {
            local.restore_token(hash, &id, row.get(2)?, now);
            loaded.tokens += 1;
        }
    }
    // After the sessions: a revocation also marks its signed record.
    let mut revocations = conn.prepare("SELECT id, revoked_at, purge_at FROM revocations")?;
    let mut found = revocations.query([])?;
    while let Some(row) = found.next()? {
        let id: String = row.get(0)?;
        local.remember_revocation(&id, row.get(1)?, row.get(2)?);
        loaded.revocations += 1;
    }
    let mut statics =
        conn.prepare("SELECT digest, client_ip, first_seen, purge_at, seal FROM statics")?;
    let mut found = statics.query([])?;
    let mut reseal_statics = Vec::new();
    while let Some(row) = found.next()? {
        let digest: Vec<u8> = row.get(0)?;
        let stored: String = row.get(1)?;
        let purge_at: i64 = row.get(3)?;
        let seal: Option<String> = row.get(4)?;
        let Ok(digest) = <[u8; 32]>::try_from(digest) else {
            continue;
        };
        let (ip, again) = rows::open_static(&digest, stored, seal.as_deref(), sealer)?;
        let Ok(client_ip) = ip.parse::<IpAddr>() else {
            continue;
        };
        if again {
            reseal_statics.push((digest, ip, row.get::<_, i64>(2)?, purge_at));
        }
        let sighting = StaticSighting {
            client_ip,
            first_seen: row.get(2)?,
        };
        let left = Duration::from_secs(purge_at.saturating_sub(now).max(0) as u64);
        local.restore_static(digest, sighting, left);
        loaded.statics += 1;
    }
    if let Some(sealer) = sealer {
        loaded.resealed = (reseal.len() + reseal_statics.len()) as u64;
        if loaded.resealed > 0 {
            let tx = conn.unchecked_transaction()?;
            for (record, token) in &reseal {
                written.put(&tx, record, token.as_ref(), retention, Some(sealer))?;
            }
            for (digest, ip, first_seen, purge_at) in &reseal_statics {
                tx.execute("DELETE FROM statics WHERE digest = ?1", [&digest[..]])?;
                rows::put_static(&tx, digest, ip, *first_seen, *purge_at, Some(sealer))?;
            }
            tx.commit()?;
            // The clear copies may still be in the WAL's frames.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
    }
    Ok(loaded)
}
