//! The one connection to PostgreSQL and its reconnect: a `tokio-postgres`
//! client in a slot, replaced when it breaks. Concurrent queries share it
//! (the protocol pipelines them); every API change is a single statement
//! (a function call), so no caller needs the client for itself.
//!
//! Connecting is bounded by [`IO_TIMEOUT`] and each operation, a reconnect
//! included, by [`OP_TIMEOUT`] (the Redis store's bounds); the server also
//! aborts a statement past `statement_timeout`. After a failed connect the
//! next attempt waits [`RETRY_AFTER`], so an outage costs callers a fast
//! 503, not a connect timeout each. On connect the schema is created or
//! checked (`sql::SETUP_LOCK`, `sql::SCHEMA`).
//!
//! No TLS in this version (`NoTls`): `sslmode=require` is refused by the
//! config; reach the server over a private network. The password (from
//! `sessions.postgres_password_file`) is set on the connection config only,
//! never logged, and errors never carry it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, Config, NoTls};

use super::sql;
use crate::session::seal::Sealer;
use crate::session::{PostgresSettings, StoreError};

/// Connecting, and each answer, may take this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on one store operation, a reconnect included.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// The wait after a failed connect before the next attempt.
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// Why an operation failed.
pub enum Failure {
    /// The server could not be reached or the connection broke.
    Unreachable(String),
    /// The server answered with an error (a bug, or a damaged schema).
    Query(String),
    /// The database holds rows this key list cannot open: no retry helps,
    /// the configuration must change.
    Sealing(String),
    /// The server refused telegate's credentials (SQLSTATE class 28: a
    /// wrong password or user), which no retry mends.
    Refused(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(err: tokio_postgres::Error) -> Failure {
        match err.as_db_error() {
            Some(db) if db.code().code().starts_with("28") => {
                Failure::Refused(format!("{}: {}", db.code().code(), db.message()))
            }
            // An error the server sent; shortage of connections or a
            // server shutting down is still an outage.
            Some(db)
                if !db.code().code().starts_with("08") && !db.code().code().starts_with("57") =>
            {
                Failure::Query(format!("{}: {}", db.code().code(), db.message()))
            }
            _ => Failure::Unreachable(err.to_string()),
        }
    }
}

pub struct Conn {
    config: Config,
    /// The live client; `None` until connected, or after it broke.
    slot: tokio::sync::Mutex<Slot>,
    /// Checked against the sealed rows on each connect ([`super::reseal`]).
    sealer: Option<Arc<Sealer>>,
}

#[derive(Default)]
struct Slot {
    client: Option<Arc<Client>>,
    failed_at: Option<Instant>,
    /// The last connect's refusal of the key list: answered again while
    /// the next attempt waits, so the start's check sees the reason.
    sealing: Option<String>,
}

impl Conn {
    /// Parses the URL and reads the password file (the path is named in an
    /// error, the content never). Connects lazily.
    pub fn new(
        settings: &PostgresSettings,
        sealer: Option<Arc<Sealer>>,
    ) -> Result<Conn, StoreError> {
        let mut config: Config = settings
            .url
            .parse()
            .map_err(|_| StoreError("sessions.postgres_url: not a postgres URL".into()))?;
        if let Some(path) = &settings.password_file {
            let text = crate::secret_file::read_text(path).map_err(|err| {
                StoreError(format!(
                    "sessions.postgres_password_file {}: {err}",
                    path.display()
                ))
            })?;
            config.password(text.trim());
        }
        config.connect_timeout(IO_TIMEOUT);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("telegate");
        }
        let timeout = format!("-c statement_timeout={}", OP_TIMEOUT.as_millis());
        let options = match config.get_options() {
            Some(given) => format!("{given} {timeout}"),
            None => timeout,
        };
        config.options(&options);
        Ok(Conn {
            config,
            sealer,
            slot: tokio::sync::Mutex::new(Slot::default()),
        })
    }

    /// The live client, connecting (and setting the schema up) if needed.
    pub async fn client(&self) -> Result<Arc<Client>, Failure> {
        let mut slot = self.slot.lock().await;
        if let Some(client) = slot.client.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        slot.client = None;
        if slot.failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
            return Err(match &slot.sealing {
                Some(reason) => Failure::Sealing(reason.clone()),
                None => Failure::Unreachable("reconnecting".into()),
            });
        }
        match self.connect().await {
            Ok(client) => {
                let client = Arc::new(client);
                slot.client = Some(client.clone());
                slot.failed_at = None;
                slot.sealing = None;
                Ok(client)
            }
            Err(failure) => {
                slot.failed_at = Some(Instant::now());
                slot.sealing = match &failure {
                    Failure::Sealing(reason) => Some(reason.clone()),
                    _ => None,
                };
                Err(failure)
            }
        }
    }

    /// Forgets a client that failed, so the next operation reconnects.
    pub async fn broken(&self, client: &Arc<Client>) {
        let mut slot = self.slot.lock().await;
        if slot.client.as_ref().is_some_and(|c| Arc::ptr_eq(c, client)) {
            slot.client = None;
        }
    }

    async fn connect(&self) -> Result<Client, Failure> {
        let (client, connection) = tokio::time::timeout(IO_TIMEOUT, self.config.connect(NoTls))
            .await
            .map_err(|_| Failure::Unreachable(format!("no connection within {IO_TIMEOUT:?}")))??;
        // The connection task ends when the client is dropped or it breaks.
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "session store (postgres) connection ended");
            }
        });
        tokio::time::timeout(OP_TIMEOUT, setup(&client, self.sealer.as_deref()))
            .await
            .map_err(|_| {
                Failure::Unreachable(format!("no schema setup within {OP_TIMEOUT:?}"))
            })??;
        Ok(client)
    }
}

/// Creates the schema (or checks it) in one transaction that holds an
/// advisory lock, so replicas starting together do not race. A newer
/// schema is refused: this build must not rewrite its functions.
async fn setup(client: &Client, sealer: Option<&Sealer>) -> Result<(), Failure> {
    client.batch_execute(sql::SETUP_LOCK).await?;
    let version: i64 = client.query_one(sql::VERSION, &[]).await?.try_get(0)?;
    if version > sql::SCHEMA_VERSION {
        client.batch_execute("ROLLBACK").await?;
        return Err(Failure::Query(format!(
            "schema version {version} is newer than this build's {}",
            sql::SCHEMA_VERSION
        )));
    }
    client.batch_execute(sql::SCHEMA).await?;
    super::reseal::check(client, sealer).await
}
