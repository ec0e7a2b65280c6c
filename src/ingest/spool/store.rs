//! The spool's SQLite file (`spool.db` under `spool.dir`): the schema, the
//! pragmas and every statement. No hand-written format: an operator can
//! read it with the `sqlite3` CLI.
//!
//! - `exports`: one row per export not yet acknowledged, in arrival order
//!   (`id`, AUTOINCREMENT so an id is never reused and order is arrival).
//! - `dead_letters`: what the collector rejected (metadata only, the newest
//!   [`MAX_DEAD_LETTERS`]), never retried.
//!
//! WAL journal; the writer's connection commits with `synchronous=FULL`
//! (the commit is the fsync), the forwarder's with `NORMAL` (a delete lost
//! to a power cut means one redelivery: at least once still holds).
//! `auto_vacuum=INCREMENTAL` so freed pages can go back to the OS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::protocol::signal::Signal;

/// The file inside `spool.dir`.
pub const FILE_NAME: &str = "spool.db";
/// Dead letters kept (the oldest are trimmed): a bound on their table.
pub const MAX_DEAD_LETTERS: i64 = 10_000;
/// The WAL is truncated to this after a checkpoint.
const JOURNAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS exports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    signal TEXT NOT NULL,
    content_type TEXT NOT NULL,
    gzipped INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    client_version TEXT,
    enqueued_ms INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    signal TEXT NOT NULL,
    session_id TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    dead_lettered_ms INTEGER NOT NULL
);
";

/// One export as stored: its row id and what was appended.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub export: NewExport,
}

/// One dead letter as listed (never the payload).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub signal: String,
    pub bytes: i64,
    pub status: u16,
    pub reason: String,
    pub enqueued_ms: i64,
    pub dead_lettered_ms: i64,
}

/// What is left in the spool, as counted at open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub exports: u64,
    pub bytes: u64,
    pub oldest_ms: Option<i64>,
}

/// The spool file could not be opened: the path, and what SQLite said.
#[derive(Debug, thiserror::Error)]
#[error("spool {path}: {detail}")]
pub struct OpenError {
    pub path: PathBuf,
    pub detail: String,
}

/// Opens (creating) `dir/spool.db`; `durable`: the writer's connection.
pub fn open(dir: &Path, durable: bool) -> Result<Connection, OpenError> {
    let path = dir.join(FILE_NAME);
    let fail = |detail: String| OpenError {
        path: path.clone(),
        detail,
    };
    std::fs::create_dir_all(dir).map_err(|err| OpenError {
        path: dir.to_path_buf(),
        detail: format!("cannot create the folder: {err}"),
    })?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&path, flags).map_err(|e| fail(e.to_string()))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| fail(e.to_string()))?;
    let sync = if durable { "FULL" } else { "NORMAL" };
    // auto_vacuum only takes effect before the first table exists.
    conn.execute_batch(&format!(
        "PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {sync};
         PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT};"
    ))
    .map_err(|e| fail(format!("not a usable SQLite database: {e}")))?;
    conn.execute_batch(SCHEMA)
        .map_err(|e| fail(format!("cannot create the tables: {e}")))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| fail(format!("integrity check failed: {e}")))?;
    if check != "ok" {
        return Err(fail(format!("integrity check failed: {check}")));
    }
    Ok(conn)
}

/// Counts what is left (at open; afterwards the spool keeps it in memory).
pub fn totals(conn: &Connection) -> rusqlite::Result<Totals> {
    let (exports, bytes): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM exports",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(Totals {
        exports: exports.max(0) as u64,
        bytes: bytes.max(0) as u64,
        oldest_ms: oldest_ms(conn)?,
    })
}

/// The enqueue time of the first export left, if any.
pub fn oldest_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT enqueued_ms FROM exports ORDER BY id LIMIT 1",
        [],
        |row| row.get(0),
    )
    .optional()
}

/// An export to append.
#[derive(Debug, Clone)]
pub struct NewExport {
    pub signal: Signal,
    pub content_type: String,
    pub gzipped: bool,
    pub session_id: String,
    pub client_version: Option<String>,
    pub enqueued_ms: i64,
    pub body: Bytes,
}

/// Appends every export in one transaction: one commit, one fsync.
pub fn append(conn: &mut Connection, exports: &[&NewExport]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO exports (signal, content_type, gzipped, session_id, client_version, \
             enqueued_ms, bytes, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for export in exports {
            insert.execute(params![
                export.signal.as_str(),
                export.content_type,
                export.gzipped,
                export.session_id,
                export.client_version,
                export.enqueued_ms,
                export.body.len() as i64,
                &export.body[..],
            ])?;
        }
    }
    tx.commit()
}

/// Rows after `after`, in order: at most `max_rows`, and stopping once
/// `max_bytes` of bodies are read (at least one row), so a backlog is never
/// loaded whole.
pub fn read_batch(
    conn: &Connection,
    after: i64,
    max_rows: usize,
    max_bytes: usize,
) -> rusqlite::Result<Vec<Row>> {
    let mut select = conn.prepare_cached(
        "SELECT id, signal, content_type, gzipped, session_id, client_version, enqueued_ms, body \
         FROM exports WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let mut rows = select.query(params![after, max_rows as i64])?;
    let mut out = Vec::new();
    let mut bytes = 0;
    while let Some(row) = rows.next()? {
        let signal: String = row.get(1)?;
        let Some(signal) = signal_of(&signal) else {
            // Not written by this version: skipped past, kept for an operator.
            tracing::error!(
                id = row.get::<_, i64>(0)?,
                signal,
                "spooled export of an unknown signal"
            );
            continue;
        };
        let body: Vec<u8> = row.get(7)?;
        bytes += body.len();
        out.push(Row {
            id: row.get(0)?,
            export: NewExport {
                signal,
                content_type: row.get(2)?,
                gzipped: row.get(3)?,
                session_id: row.get(4)?,
                client_version: row.get(5)?,
                enqueued_ms: row.get(6)?,
                body: Bytes::from(body),
            },
        });
        if bytes >= max_bytes {
            break;
        }
    }
    Ok(out)
}

/// Deletes the acknowledged rows; returns their count and body bytes.
pub fn delete(conn: &mut Connection, ids: &[i64]) -> rusqlite::Result<(u64, u64)> {
    let tx = conn.transaction()?;
    let mut count = 0;
    let mut bytes = 0;
    {
        let mut delete = tx.prepare_cached("DELETE FROM exports WHERE id = ?1 RETURNING bytes")?;
        for id in ids {
            let gone: Option<i64> = delete.query_row([id], |row| row.get(0)).optional()?;
            if let Some(size) = gone {
                count += 1;
                bytes += size.max(0) as u64;
            }
        }
    }
    tx.commit()?;
    Ok((count, bytes))
}

/// Moves one row to the dead letters (without its payload); returns its
/// body bytes, or `None` if it was gone already.
pub fn dead_letter(
    conn: &mut Connection,
    id: i64,
    status: u16,
    reason: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<u64>> {
    let tx = conn.transaction()?;
    let moved = tx.execute(
        "INSERT OR REPLACE INTO dead_letters \
         (id, signal, session_id, bytes, status, reason, enqueued_ms, dead_lettered_ms) \
         SELECT id, signal, session_id, bytes, ?2, ?3, enqueued_ms, ?4 FROM exports WHERE id = ?1",
        params![id, status, reason, now_ms],
    )?;
    let bytes: Option<i64> = tx
        .query_row(
            "DELETE FROM exports WHERE id = ?1 RETURNING bytes",
            [id],
            |row| row.get(0),
        )
        .optional()?;
    tx.execute(
        "DELETE FROM dead_letters WHERE id <= \
         (SELECT id FROM dead_letters ORDER BY id DESC LIMIT 1 OFFSET ?1)",
        [MAX_DEAD_LETTERS],
    )?;
    tx.commit()?;
    Ok(bytes.filter(|_| moved > 0).map(|b| b.max(0) as u64))
}

/// Dead letters after id `after`, oldest first, at most `limit`.
pub fn dead_letters(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<DeadLetter>> {
    let mut select = conn.prepare_cached(
        "SELECT id, signal, bytes, status, reason, enqueued_ms, dead_lettered_ms \
         FROM dead_letters WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = select.query_map(params![after, limit as i64], |row| {
        Ok(DeadLetter {
            id: row.get(0)?,
            signal: row.get(1)?,
            bytes: row.get(2)?,
            status: row.get(3)?,
            reason: row.get(4)?,
            enqueued_ms: row.get(5)?,
            dead_lettered_ms: row.get(6)?,
        })
    })?;
    rows.collect()
}

/// Gives free pages back to the OS once many are free (the file shrinks).
pub fn shrink(conn: &Connection) -> rusqlite::Result<()> {
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |row| row.get(0))?;
    if free > 0 {
        conn.execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")?;
    }
    Ok(())
}

fn signal_of(name: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|s| s.as_str() == name)
}
