//! A row of the `sessions` table as a record, with `[sessions.encryption]`
//! its private fields opened (`session::seal`), and the sealed write of a
//! token check's client (`telegate_token` does not know the session id the
//! values are sealed under, so it leaves them empty and this follows).

use tokio_postgres::Row;

use super::{sql, Inner};
use crate::session::seal::{self, Private, Sealer};
use crate::session::{petname, Grants, SessionKind, SessionRecord, StoreError};

/// A row of `sql::record_columns!` as a record, its private fields opened;
/// `Ok(None)` when damaged, an error when a sealed row does not open
/// (answered 503, never in clear).
pub(super) fn record(
    row: &Row,
    idle: i64,
    sealer: Option<&Sealer>,
) -> Result<Option<SessionRecord>, StoreError> {
    let Some(mut record) = clear_record(row, idle) else {
        return Ok(None);
    };
    let seal: Option<String> = row.try_get(16).ok().flatten();
    let stored = Private {
        client_ip: record.client_ip.take(),
        user_agent: record.user_agent.take(),
        user_id: record.user_id.take(),
        metadata: row.try_get::<_, Option<String>>(13).ok().flatten(),
    };
    let (private, _) = seal::from_row(sealer, seal.as_deref(), &record.session_id, stored)
        .map_err(|err| StoreError(format!("postgres: {err}")))?;
    record.client_ip = private.client_ip;
    record.user_agent = private.user_agent;
    record.user_id = private.user_id;
    record.metadata = private
        .metadata
        .and_then(|json| serde_json::from_str(&json).ok());
    Ok(Some(record))
}

/// The rows' records (damaged rows skipped); the first that does not open
/// fails the read.
pub(super) fn records(
    rows: &[Row],
    idle: i64,
    sealer: Option<&Sealer>,
) -> Result<Vec<SessionRecord>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.extend(record(row, idle, sealer)?);
    }
    Ok(out)
}

fn clear_record(row: &Row, idle: i64) -> Option<SessionRecord> {
    let id: String = row.try_get(0).ok()?;
    let kind = match row.try_get::<_, &str>(1).ok()? {
        "signed" => SessionKind::Signed,
        "issued" => SessionKind::Issued,
        _ => return None,
    };
    let last_seen: i64 = row.try_get(3).ok()?;
    let (expires_at, idle_expires_at) = match kind {
        SessionKind::Signed => (last_seen.saturating_add(idle), None),
        SessionKind::Issued => (
            row.try_get::<_, Option<i64>>(4).ok()??,
            Some(last_seen.saturating_add(idle)),
        ),
    };
    let count = |i: usize| row.try_get::<_, i64>(i).map_or(0, |n| n.max(0) as u64);
    let text = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
    Some(SessionRecord {
        pet_name: petname::pet_name(&id),
        session_id: id,
        kind,
        first_seen: row.try_get(2).ok()?,
        last_seen,
        expires_at,
        idle_expires_at,
        requests: count(5),
        bytes: count(6),
        client_ip: text(7),
        user_agent: text(8),
        client_version: text(9),
        key_id: text(10),
        revoked_at: row.try_get(11).ok()?,
        user_id: text(12),
        metadata: None,
        grants: Grants::from_stored(text(14).as_deref(), text(15).as_deref()),
    })
}

impl Inner {
    /// The client of a token check, sealed under the session's id. A
    /// failure is counted and logged by `run`; the check still holds.
    pub(super) async fn touch_sealed(
        &self,
        sealer: &Sealer,
        id: &str,
        ip: Option<String>,
        agent: Option<&str>,
    ) {
        let ip = ip.map(|ip| sealer.seal(id, "client_ip", &ip));
        let agent = agent.map(|agent| sealer.seal(id, "user_agent", agent));
        let key = sealer.key_id();
        let _ = self
            .run("authenticate", |client| {
                let (ip, agent) = (&ip, &agent);
                async move {
                    client
                        .execute(sql::TOUCH_SEALED, &[&id, ip, agent, &key])
                        .await
                }
            })
            .await;
    }
}
