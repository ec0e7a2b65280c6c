//! The forwarder: drains the spool to the collector in row order, one
//! export at a time, with its own pooled client ([`Collector`]). A row is
//! deleted only after the collector answered 2xx (at least once: a crash
//! between the answer and the delete sends it again). A retryable failure
//! (429, 5xx, refused connection, timeout) waits `max(Retry-After,
//! backoff)`, the backoff doubling up to [`MAX_BACKOFF`], and retries the
//! same row; with no answer at all (a collector restarting refuses the
//! connection) there is no Retry-After to honour, and the backoff stops at
//! [`MAX_PROBE_BACKOFF`]: a refused connection costs nothing, and the
//! backlog starts draining within a second of the collector's return; a rejection (400, 413: the data itself is refused) moves the
//! row to the dead letters. Rows are read a small batch at a time, so
//! memory does not grow with the backlog. After a restart it starts from
//! whatever rows are left.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;
use rusqlite::Connection;
use tokio::sync::watch;

use super::store::{self, Row};
use super::Shared;
use crate::config::CollectorSettings;
use crate::ingest::error::IngestError;
use crate::ingest::forward::{Collector, Outgoing};

/// Rows, and body bytes, read per batch.
const BATCH_ROWS: usize = 64;
const BATCH_BYTES: usize = 1024 * 1024;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait while the collector does not answer at all.
pub const MAX_PROBE_BACKOFF: Duration = Duration::from_secs(1);
/// Checked for new rows this often even without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(1);

pub struct Forwarder {
    collector: Collector,
    shared: Arc<Shared>,
    conn: Arc<Mutex<Connection>>,
    closed: watch::Receiver<bool>,
}

/// How one row ended.
enum Sent {
    Acked,
    Dead { status: u16, reason: &'static str },
    Closed,
}

impl Forwarder {
    pub fn new(
        settings: &CollectorSettings,
        shared: Arc<Shared>,
        conn: Arc<Mutex<Connection>>,
        closed: watch::Receiver<bool>,
    ) -> Result<Forwarder, String> {
        Ok(Forwarder {
            collector: Collector::new(settings)?,
            shared,
            conn,
            closed,
        })
    }

    /// Runs until the spool handle is dropped.
    pub async fn run(mut self) {
        let mut after = 0i64;
        loop {
            let batch = match self
                .blocking(move |c| store::read_batch(c, after, BATCH_ROWS, BATCH_BYTES))
                .await
            {
                Ok(batch) => batch,
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the spool");
                    if !self.pause(MAX_BACKOFF).await {
                        return;
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                let _ = self.blocking(|c| store::shrink(c)).await;
                tokio::select! {
                    _ = self.shared.wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = self.closed.changed() => return,
                }
                continue;
            }
            let mut acked = Vec::with_capacity(batch.len());
            for row in batch {
                match self.send(&row).await {
                    Sent::Acked => acked.push(row.id),
                    Sent::Dead { status, reason } => {
                        self.settle(std::mem::take(&mut acked)).await;
                        self.dead_letter(&row, status, reason).await;
                    }
                    Sent::Closed => {
                        self.settle(acked).await;
                        return;
                    }
                }
                after = row.id;
            }
            self.settle(acked).await;
        }
    }

    /// Sends one row until the collector takes or rejects it.
    async fn send(&mut self, row: &Row) -> Sent {
        let (id, row) = (row.id, &row.export);
        let content_type = HeaderValue::from_str(&row.content_type)
            .unwrap_or(HeaderValue::from_static("application/x-protobuf"));
        let mut backoff = FIRST_BACKOFF;
        loop {
            let answer = self
                .collector
                .send(Outgoing {
                    signal: row.signal,
                    body: row.body.clone(),
                    content_type: content_type.clone(),
                    gzipped: row.gzipped,
                    session_id: &row.session_id,
                    client_version: row.client_version.as_deref(),
                })
                .await;
            let err = match answer {
                Ok(_) => return Sent::Acked,
                Err(err @ IngestError::CollectorRejected { status }) => {
                    return Sent::Dead {
                        status,
                        reason: err.reason(),
                    }
                }
                Err(err) => err,
            };
            let wait = match err {
                IngestError::CollectorUnavailable {
                    unreachable: true, ..
                } => backoff.min(MAX_PROBE_BACKOFF),
                _ => Duration::from_secs(err.retry_after().unwrap_or(1)).max(backoff),
            };
            tracing::debug!(
                id,
                reason = err.reason(),
                wait_ms = wait.as_millis() as u64,
                "spool drain waits"
            );
            if !self.pause(wait).await {
                return Sent::Closed;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Deletes the acknowledged rows and counts them delivered.
    async fn settle(&self, acked: Vec<i64>) {
        if acked.is_empty() {
            return;
        }
        let shared = self.shared.clone();
        let done = self
            .blocking(move |conn| {
                let (count, bytes) = store::delete(conn, &acked)?;
                let oldest = store::oldest_ms(conn)?;
                let mut backlog = shared.lock();
                backlog.exports = backlog.exports.saturating_sub(count);
                backlog.bytes = backlog.bytes.saturating_sub(bytes);
                backlog.oldest_ms = oldest;
                // Counted under the backlog's lock: whoever sees the rows
                // gone from the backlog sees them delivered too.
                shared.metrics.delivered_total.inc_by(count);
                shared.publish(&backlog, (shared.now_ms)());
                Ok(())
            })
            .await;
        if let Err(err) = done {
            tracing::error!(error = %err, "cannot delete delivered spool rows; they will be sent again");
        }
    }

    async fn dead_letter(&self, row: &Row, status: u16, reason: &'static str) {
        let shared = self.shared.clone();
        let id = row.id;
        let done = self
            .blocking(move |conn| {
                let now_ms = (shared.now_ms)();
                let bytes = store::dead_letter(conn, id, status, reason, now_ms)?;
                let oldest = store::oldest_ms(conn)?;
                let mut backlog = shared.lock();
                if let Some(bytes) = bytes {
                    backlog.exports = backlog.exports.saturating_sub(1);
                    backlog.bytes = backlog.bytes.saturating_sub(bytes);
                }
                backlog.oldest_ms = oldest;
                shared.publish(&backlog, now_ms);
                Ok(())
            })
            .await;
        match done {
            Ok(()) => {
                self.shared.metrics.dead_lettered_total.inc();
                tracing::warn!(
                    id,
                    status,
                    signal = row.export.signal.as_str(),
                    bytes = row.export.body.len(),
                    "the collector rejected a spooled export; moved to the dead letters"
                );
            }
            Err(err) => tracing::error!(id, error = %err, "cannot dead-letter a spool row"),
        }
    }

    /// Runs `f` on the forwarder's connection, on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .unwrap_or_else(|err| Err(rusqlite::Error::ToSqlConversionFailure(Box::new(err))))
    }

    /// Waits `wait`; `false` when the spool was closed meanwhile.
    async fn pause(&mut self, wait: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = self.closed.changed() => false,
        }
    }
}
