//! One session as a row of the `sessions` table, both ways, and the other
//! rows the store writes: revocations, the tokens of revoked sessions, and
//! static sightings. Tokens are stored as their SHA-256 only, like
//! everywhere else. With `[sessions.encryption]` the private fields go
//! through [`seal`] on the way in and out (the `seal` column names the key;
//! a session's address, user agent and metadata are one sealed value in its
//! `sealed` column, [`seal::StoredRow`]). A session whose private fields
//! did not change since it was written is updated by [`touch`] instead.

use rusqlite::{params, Connection, Row, ToSql};

use crate::session::seal::{self, Private, Sealer, StoredRow};
use crate::session::{grants, petname, Grants, SessionKind, SessionRecord, TokenHash};

/// The clear columns are `?1`..`?15` as in [`TOUCH`] ([`Clear`]), the
/// private ones and their seal `?16`..`?21`.
const UPSERT: &str = "
INSERT INTO sessions (id, kind, first_seen, last_seen, expires_at, idle_expires_at, requests,
    bytes, client_version, key_id, revoked_at, token, purge_at, roles, permissions, user_id,
    metadata, client_ip, user_agent, seal, sealed)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
    ?21)
ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, first_seen = excluded.first_seen,
    last_seen = excluded.last_seen, expires_at = excluded.expires_at,
    idle_expires_at = excluded.idle_expires_at, user_id = excluded.user_id,
    metadata = excluded.metadata, requests = excluded.requests, bytes = excluded.bytes,
    client_ip = excluded.client_ip, user_agent = excluded.user_agent,
    client_version = excluded.client_version, key_id = excluded.key_id,
    revoked_at = excluded.revoked_at, token = excluded.token, purge_at = excluded.purge_at,
    roles = excluded.roles, permissions = excluded.permissions, seal = excluded.seal,
    sealed = excluded.sealed";

/// Every clear column but the private ones: what a sighting changes.
const TOUCH: &str = "
UPDATE sessions SET kind = ?2, first_seen = ?3, last_seen = ?4, expires_at = ?5,
    idle_expires_at = ?6, requests = ?7, bytes = ?8, client_version = ?9, key_id = ?10,
    revoked_at = ?11, token = ?12, purge_at = ?13, roles = ?14, permissions = ?15
WHERE id = ?1";

/// A record's clear columns as [`UPSERT`] and [`TOUCH`] bind them.
struct Clear<'a> {
    record: &'a SessionRecord,
    kind: i64,
    requests: i64,
    bytes: i64,
    token: Option<&'a [u8]>,
    purge_at: i64,
    roles: Option<String>,
    permissions: Option<String>,
}

impl<'a> Clear<'a> {
    fn of(record: &'a SessionRecord, token: Option<&'a TokenHash>, retention: i64) -> Self {
        Clear {
            record,
            kind: kind_code(record.kind),
            requests: count(record.requests),
            bytes: count(record.bytes),
            token: token.map(|t| &t.as_bytes()[..]),
            purge_at: record.live_until().saturating_add(retention),
            roles: grants::join(&record.grants.roles),
            permissions: grants::join(&record.grants.permissions),
        }
    }

    /// `?1`..`?15`.
    fn params(&self) -> [&dyn ToSql; 15] {
        let r = self.record;
        [
            &r.session_id,
            &self.kind,
            &r.first_seen,
            &r.last_seen,
            &r.expires_at,
            &r.idle_expires_at,
            &self.requests,
            &self.bytes,
            &r.client_version,
            &r.key_id,
            &r.revoked_at,
            &self.token,
            &self.purge_at,
            &self.roles,
            &self.permissions,
        ]
    }
}

/// The columns [`read`] expects, in order.
pub(super) const COLUMNS: &str = "id, kind, first_seen, last_seen, expires_at, idle_expires_at, \
    user_id, metadata, requests, bytes, client_ip, user_agent, client_version, key_id, \
    revoked_at, token, roles, permissions, seal, sealed";

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
    sealer: Option<&Sealer>,
) -> rusqlite::Result<()> {
    let private = Private {
        client_ip: record.client_ip.clone(),
        user_agent: record.user_agent.clone(),
        user_id: record.user_id.clone(),
        metadata: record.metadata.as_ref().map(|m| m.to_string()),
    };
    let stored = seal::to_stored(sealer, &record.session_id, private);
    let private = stored.columns;
    let clear = Clear::of(record, token, retention);
    let mut params = clear.params().to_vec();
    params.extend([
        &private.user_id as &dyn ToSql,
        &private.metadata,
        &private.client_ip,
        &private.user_agent,
        &stored.seal,
        &stored.blob,
    ]);
    conn.prepare_cached(UPSERT)?.execute(&params[..])?;
    Ok(())
}

/// Updates the clear columns of `record`'s row, leaving its private ones
/// (and their seal) as they are; false when there is no such row.
pub(super) fn touch(
    conn: &Connection,
    record: &SessionRecord,
    token: Option<&TokenHash>,
    retention: i64,
) -> rusqlite::Result<bool> {
    let clear = Clear::of(record, token, retention);
    let changed = conn.prepare_cached(TOUCH)?.execute(&clear.params()[..])?;
    Ok(changed > 0)
}

/// SQLite integers are signed: a counter saturates rather than wraps.
fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A session read back: its record, its token hash, and whether it should
/// be written again (sealed under an old key or in the earlier format, or
/// in clear with a key).
pub(super) struct Read {
    pub record: SessionRecord,
    pub token: Option<TokenHash>,
    pub reseal: bool,
}

/// A [`seal::SealError`] as the error the load reports (its own message).
pub(super) fn sealing(err: seal::SealError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(err))
}

/// One row of [`COLUMNS`] back as a record; a sealed row that does not
/// open is an error, never read in clear.
pub(super) fn read(row: &Row<'_>, sealer: Option<&Sealer>) -> rusqlite::Result<Read> {
    let session_id: String = row.get(0)?;
    let stored = StoredRow {
        columns: Private {
            user_id: row.get(6)?,
            metadata: row.get(7)?,
            client_ip: row.get(10)?,
            user_agent: row.get(11)?,
        },
        seal: row.get(18)?,
        blob: row.get(19)?,
    };
    let (private, reseal) = seal::from_stored(sealer, &session_id, stored).map_err(sealing)?;
    let kind = match row.get::<_, i64>(1)? {
        0 => SessionKind::Signed,
        _ => SessionKind::Issued,
    };
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
        user_id: private.user_id,
        // Written by `put` from a JSON value: unreadable only if edited by hand.
        metadata: private
            .metadata
            .and_then(|text| serde_json::from_str(&text).ok()),
        grants: Grants::from_stored(roles.as_deref(), permissions.as_deref()),
        requests: row.get::<_, i64>(8)?.max(0) as u64,
        bytes: row.get::<_, i64>(9)?.max(0) as u64,
        client_ip: private.client_ip,
        user_agent: private.user_agent,
        client_version: row.get(12)?,
        key_id: row.get(13)?,
        revoked_at: row.get(14)?,
    };
    Ok(Read {
        record,
        token: token.and_then(|bytes| token_hash(&bytes)),
        reseal,
    })
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

/// A static-header first sighting; its address sealed under the digest.
pub(super) fn put_static(
    conn: &Connection,
    digest: &[u8; 32],
    client_ip: &str,
    first_seen: i64,
    purge_at: i64,
    sealer: Option<&Sealer>,
) -> rusqlite::Result<()> {
    let (seal, ip) = match sealer {
        Some(sealer) => (
            Some(sealer.key_id()),
            sealer.seal(&hex::encode(digest), "client_ip", client_ip),
        ),
        None => (None, client_ip.to_string()),
    };
    conn.prepare_cached(
        "INSERT OR IGNORE INTO statics (digest, client_ip, first_seen, purge_at, seal)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![&digest[..], ip, first_seen, purge_at, seal])?;
    Ok(())
}

/// A stored sighting's address in clear (and whether to write it again).
pub(super) fn open_static(
    digest: &[u8; 32],
    client_ip: String,
    seal: Option<&str>,
    sealer: Option<&Sealer>,
) -> rusqlite::Result<(String, bool)> {
    let stored = Private {
        client_ip: Some(client_ip),
        ..Private::default()
    };
    let (private, reseal) =
        seal::from_row(sealer, seal, &hex::encode(digest), stored).map_err(sealing)?;
    Ok((private.client_ip.unwrap_or_default(), reseal))
}
