//! The embedded store's file: open it (WAL, a busy timeout, full sync so a
//! committed revocation survives a power cut), create or check the schema
//! (versioned with `PRAGMA user_version`), and prune rows past their end.
//!
//! Every table has a `purge_at` (Unix seconds): past it the row is dead and
//! a prune deletes it, so the file stays bounded by what is live.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use crate::session::StoreError;

/// The schema this build writes; a file with a newer one is refused, an
/// older one is brought up to it ([`UPGRADES`]).
pub(super) const VERSION: i64 = 3;

/// The file inside `sessions.data_dir`.
pub(super) const FILE: &str = "sessions.sqlite3";

const SCHEMA: &str = "
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    kind INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    idle_expires_at INTEGER,
    user_id TEXT,
    metadata TEXT,
    requests INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    client_ip TEXT,
    user_agent TEXT,
    client_version TEXT,
    key_id TEXT,
    revoked_at INTEGER,
    token BLOB,
    purge_at INTEGER NOT NULL,
    seal TEXT,
    sealed BLOB
);
CREATE INDEX sessions_purge ON sessions (purge_at);
CREATE INDEX sessions_user ON sessions (user_id) WHERE user_id IS NOT NULL;
CREATE TABLE revocations (
    id TEXT PRIMARY KEY,
    revoked_at INTEGER NOT NULL,
    purge_at INTEGER NOT NULL
);
CREATE TABLE tokens (
    hash BLOB PRIMARY KEY,
    session_id TEXT NOT NULL,
    purge_at INTEGER NOT NULL
);
CREATE INDEX tokens_session ON tokens (session_id);
CREATE TABLE statics (
    digest BLOB PRIMARY KEY,
    client_ip TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    purge_at INTEGER NOT NULL,
    seal TEXT
);
CREATE TABLE nonces (
    key TEXT PRIMARY KEY,
    answer BLOB,
    purge_at INTEGER NOT NULL
);
";

/// From version N to N+1, in order: `UPGRADES[0]` takes a version 1 file
/// to version 2. Version 2: the `seal` column (the storage key id of a row
/// whose private fields are sealed, `session::seal`; NULL in clear).
/// Version 3: a session's `sealed` column (its address, user agent and
/// metadata as one sealed value, `session::seal::StoredRow`); an older
/// telegate would not read it, so it must refuse the file.
const UPGRADES: [&str; 2] = [
    "ALTER TABLE sessions ADD COLUMN seal TEXT; ALTER TABLE statics ADD COLUMN seal TEXT;",
    "ALTER TABLE sessions ADD COLUMN sealed BLOB;",
];

/// Tables with a `purge_at`.
const TABLES: [&str; 7] = [
    "sessions",
    "revocations",
    "tokens",
    "statics",
    "nonces",
    "quota_windows",
    "bans",
];

/// Any failure here names the file: the operator must know which one.
pub(super) fn fail(path: &Path, what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError(format!(
        "embedded session store {}: {what}: {err}",
        path.display()
    ))
}

/// Creates `data_dir` if needed and opens (or creates) the store in it.
/// `sealed` (encryption at rest on): freed cells are zeroed, so a row
/// written again leaves no old copy in the file.
pub(super) fn open(data_dir: &Path, sealed: bool) -> Result<(Connection, PathBuf), StoreError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|err| fail(data_dir, "cannot create the data directory", err))?;
    let path = data_dir.join(FILE);
    let conn = Connection::open(&path).map_err(|err| fail(&path, "cannot open", err))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|err| fail(&path, "cannot set a busy timeout", err))?;
    // The first read of the file: a file that is not a database fails here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|err| fail(&path, "cannot switch to WAL", err))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(fail(
            &path,
            "cannot switch to WAL",
            format!("mode is {mode}"),
        ));
    }
    conn.execute_batch("PRAGMA synchronous = FULL")
        .map_err(|err| fail(&path, "cannot set synchronous", err))?;
    // SQLite's default page cache is 2 MiB: past about 10,000 sessions a
    // flush re-reads B-tree pages from the OS on every row. 16 MiB (a bound,
    // allocated as used) keeps the working set of a flush in memory.
    conn.execute_batch("PRAGMA cache_size = -16384")
        .map_err(|err| fail(&path, "cannot set cache_size", err))?;
    if sealed {
        conn.execute_batch("PRAGMA secure_delete = ON")
            .map_err(|err| fail(&path, "cannot set secure_delete", err))?;
    }
    migrate(&conn).map_err(|err| fail(&path, "schema", err))?;
    conn.execute_batch(super::abuse::TABLES)
        .map_err(|err| fail(&path, "schema", err))?;
    super::abuse::upgrade(&conn).map_err(|err| fail(&path, "schema", err))?;
    add_grant_columns(&conn).map_err(|err| fail(&path, "schema", err))?;
    Ok((conn, path))
}

/// Creates the schema in an empty file, accepts this version, upgrades an
/// older one, refuses anything else (a newer telegate's file, or not a
/// telegate file).
fn migrate(conn: &Connection) -> Result<(), String> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|err| err.to_string())?;
    match version {
        VERSION => Ok(()),
        1..VERSION => {
            let steps: String = UPGRADES[version as usize - 1..].concat();
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {steps} PRAGMA user_version = {VERSION}; COMMIT;"
            ))
            .map_err(|err| err.to_string())
        }
        0 => {
            let tables: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
                .map_err(|err| err.to_string())?;
            if tables > 0 {
                return Err("not a telegate session store (tables without a version)".into());
            }
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {VERSION}; COMMIT;"
            ))
            .map_err(|err| err.to_string())
        }
        newer => Err(format!(
            "schema version {newer} is not {VERSION} (written by another telegate version)"
        )),
    }
}

/// The issued sessions' `roles` and `permissions` (comma-joined names):
/// added in place to a file made before them, so a version-1 file opens
/// without a migration step (an older telegate ignores the two columns).
fn add_grant_columns(conn: &Connection) -> Result<(), String> {
    for column in ["roles", "permissions"] {
        let present: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('sessions') WHERE name = ?1",
                [column],
                |row| row.get(0),
            )
            .map_err(|err| err.to_string())?;
        if present == 0 {
            conn.execute_batch(&format!("ALTER TABLE sessions ADD COLUMN {column} TEXT"))
                .map_err(|err| err.to_string())?;
        }
    }
    Ok(())
}

/// Deletes every row dead at `now`; returns how many.
pub(super) fn prune(conn: &Connection, now: i64) -> rusqlite::Result<usize> {
    let mut deleted = 0;
    for table in TABLES {
        deleted += conn.execute(&format!("DELETE FROM {table} WHERE purge_at < ?1"), [now])?;
    }
    Ok(deleted)
}
