//! Load on open: everything still live on disk goes back into the memory
//! store (rows past their end are pruned first, so they are neither read
//! nor kept). Sessions load oldest first, so a user's list keeps its order
//! and, past `max_sessions`, the oldest are the ones evicted.

use std::net::IpAddr;
use std::time::Duration;

use rusqlite::Connection;

use super::{rows, schema};
use crate::session::{MemoryStore, StaticSighting};

/// What was loaded, for the startup log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loaded {
    pub sessions: u64,
    pub revocations: u64,
    pub tokens: u64,
    pub statics: u64,
    pub pruned: u64,
}

pub(super) fn load(conn: &Connection, local: &MemoryStore, now: i64) -> rusqlite::Result<Loaded> {
    let mut loaded = Loaded {
        pruned: schema::prune(conn, now)? as u64,
        ..Loaded::default()
    };
    let mut sessions = conn.prepare(&format!(
        "SELECT {} FROM sessions ORDER BY first_seen",
        rows::COLUMNS
    ))?;
    let mut found = sessions.query([])?;
    while let Some(row) = found.next()? {
        let (record, token) = rows::read(row)?;
        local.restore(record, token, now);
        loaded.sessions += 1;
    }
    let mut tokens = conn.prepare("SELECT hash, session_id FROM tokens")?;
    let mut found = tokens.query([])?;
    while let Some(row) = found.next()? {
        let hash: Vec<u8> = row.get(0)?;
        let id: String = row.get(1)?;
        if let Some(hash) = rows::token_hash(&hash) {
            local.restore_token(hash, &id);
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
        conn.prepare("SELECT digest, client_ip, first_seen, purge_at FROM statics")?;
    let mut found = statics.query([])?;
    while let Some(row) = found.next()? {
        let digest: Vec<u8> = row.get(0)?;
        let ip: String = row.get(1)?;
        let purge_at: i64 = row.get(3)?;
        let (Ok(digest), Ok(client_ip)) = (<[u8; 32]>::try_from(digest), ip.parse::<IpAddr>())
        else {
            continue;
        };
        let sighting = StaticSighting {
            client_ip,
            first_seen: row.get(2)?,
        };
        let left = Duration::from_secs(purge_at.saturating_sub(now).max(0) as u64);
        local.restore_static(digest, sighting, left);
        loaded.statics += 1;
    }
    Ok(loaded)
}
