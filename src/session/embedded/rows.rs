//! One session as a row of the `sessions` table, both ways, and the other
//! rows the store writes: revocations, the tokens of revoked sessions, and
//! static sightings. Tokens are stored as their SHA-256 only, like
//! everywhere else.

use rusqlite::{params, Connection, Row};

use crate::session::{grants, petname, Grants, SessionKind, SessionRecord, TokenHash};

const UPSERT: &str = "
INSERT INTO sessions (id, kind, first_seen, last_seen, expires_at, idle_expires_at, user_id,
    metadata, requests, bytes, client_ip, user_agent, client_version, key_id, revoked_at, token,
    purge_at, roles, permissions)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, first_seen = excluded.first_seen,
    last_seen = excluded.last_seen, expires_at = excluded.expires_at,
    idle_expires_at = excluded.idle_expires_at, user_id = excluded.user_id,
    metadata = excluded.metadata, requests = excluded.requests, bytes = excluded.bytes,
    client_ip = excluded.client_ip, user_agent = excluded.user_agent,
    client_version = excluded.client_version, key_id = excluded.key_id,
    revoked_at = excluded.revoked_at, token = excluded.token, purge_at = excluded.purge_at,
    roles = excluded.roles, permissions = excluded.permissions";

/// The columns [`read`] expects, in order.
pub(super) const COLUMNS: &str = "id, kind, first_seen, last_seen, expires_at, idle_expires_at, \
    user_id, metadata, requests, bytes, client_ip, user_agent, client_version, key_id, \
    revoked_at, token, roles, permissions";

fn kind_code(kind: SessionKind) -> i64 {
    match kind {
        SessionKind::Signed => 0,
        SessionKind::Issued => 1,
    }
}

/// Writes (or replaces) one session; it may be pruned once it is
/// `retention` seconds past its end.
pub(super) fn put(
    conn: &Connection,
    record: &SessionRecord,
    token: Option<&TokenHash>,
    retention: i64,
) -> rusqlite::Result<()> {
    let metadata = record.metadata.as_ref().map(|m| m.to_string());
    let mut statement = conn.prepare_cached(UPSERT)?;
    statement.execute(params![
        record.session_id,
        kind_code(record.kind),
        record.first_seen,
        record.last_seen,
        record.expires_at,
        record.idle_expires_at,
        record.user_id,
        metadata,
        count(record.requests),
        count(record.bytes),
        record.client_ip,
        record.user_agent,
        record.client_version,
        record.key_id,
        record.revoked_at,
        token.map(|t| &t.as_bytes()[..]),
        record.live_until().saturating_add(retention),
        grants::join(&record.grants.roles),
        grants::join(&record.grants.permissions),
    ])?;
    Ok(())
}

/// SQLite integers are signed: a counter saturates rather than wraps.
fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// One row of [`COLUMNS`] back as a record and its token hash.
pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<(SessionRecord, Option<TokenHash>)> {
    let session_id: String = row.get(0)?;
    let kind = match row.get::<_, i64>(1)? {
        0 => SessionKind::Signed,
        _ => SessionKind::Issued,
    };
    let metadata: Option<String> = row.get(7)?;
    let token: Option<Vec<u8>> = row.get(15)?;
    let roles: Option<String> = row.get(16)?;
    let permissions: Option<String> = row.get(17)?;
    let record = SessionRecord {
        pet_name: petname::pet_name(&session_id),
        session_id,
        kind,
        first_seen: row.get(2)?,
        last_seen: row.get(3)?,
        expires_at: row.get(4)?,
        idle_expires_at: row.get(5)?,
        user_id: row.get(6)?,
        // Written by `put` from a JSON value: unreadable only if edited by hand.
        metadata: metadata.and_then(|text| serde_json::from_str(&text).ok()),
        grants: Grants::from_stored(roles.as_deref(), permissions.as_deref()),
        requests: row.get::<_, i64>(8)?.max(0) as u64,
        bytes: row.get::<_, i64>(9)?.max(0) as u64,
        client_ip: row.get(10)?,
        user_agent: row.get(11)?,
        client_version: row.get(12)?,
        key_id: row.get(13)?,
        revoked_at: row.get(14)?,
    };
    Ok((record, token.and_then(|bytes| token_hash(&bytes))))
}

/// A stored 32-byte hash (anything else is ignored: a hand-edited row).
pub(super) fn token_hash(bytes: &[u8]) -> Option<TokenHash> {
    <[u8; 32]>::try_from(bytes).ok().map(TokenHash::from_bytes)
}

/// A revocation, in force until `until`.
pub(super) fn put_revocation(
    conn: &Connection,
    id: &str,
    revoked_at: i64,
    until: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO revocations (id, revoked_at, purge_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET revoked_at = excluded.revoked_at,
             purge_at = excluded.purge_at",
    )?
    .execute(params![id, revoked_at, until])?;
    Ok(())
}

/// The token of a revoked issued session, kept so it is answered
/// `session_revoked` until `until`.
pub(super) fn put_token(
    conn: &Connection,
    token: &TokenHash,
    id: &str,
    until: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO tokens (hash, session_id, purge_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (hash) DO UPDATE SET session_id = excluded.session_id,
             purge_at = max(purge_at, excluded.purge_at)",
    )?
    .execute(params![&token.as_bytes()[..], id, until])?;
    Ok(())
}

/// Deletes a session and every token row that opens it.
pub(super) fn delete(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM sessions WHERE id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM tokens WHERE session_id = ?1")?
        .execute([id])?;
    Ok(())
}
