//! The durable ingest spool (`[spool]`): with it on, an admitted, prepared
//! export is committed to an SQLite file before telegate answers 200 (200
//! means durably accepted), and a forwarder drains the file to the
//! collector in order, at least once, across restarts.
//!
//! - [`store`]: the file, its schema and statements.
//! - [`writer`]: the one writer thread and its group commit.
//! - [`drain`]: the forwarder task (backoff, `Retry-After`, dead letters).
//! - [`metrics`]: the `{ns}_spool_*` series.
//!
//! Bounded: `spool.max_bytes` of bodies (tracked in memory, recounted at
//! open) and `spool.max_age_secs` for the oldest export; past either, a new
//! export is refused with 503 `spool_full` + `Retry-After`, never dropped.

mod drain;
pub mod metrics;
pub mod store;
mod writer;

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::HeaderValue;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::error::IngestError;
use super::forward::{Accepted, Outgoing};
use crate::config::{CollectorSettings, SpoolSettings};
use crate::protocol::signal::Media;
use metrics::SpoolMetrics;
use store::{DeadLetter, NewExport};

/// Milliseconds since the Unix epoch; injected so tests can age the spool.
pub type MsClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Appends waiting for the writer at most; beyond, a request waits to queue.
const QUEUE: usize = 4096;
/// Most dead letters one page of the admin route lists.
pub const MAX_PAGE: usize = 500;

/// The wall clock in milliseconds.
pub fn system_ms() -> MsClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}

/// Why the writer did not take an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_bytes` or `max_age_secs` reached.
    Full,
    /// The commit failed (disk full, I/O error).
    Unavailable,
}

/// What is in the spool, in memory.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Backlog {
    pub exports: u64,
    pub bytes: u64,
    pub oldest_ms: Option<i64>,
}

/// What the writer, the forwarder and the handle share.
pub(crate) struct Shared {
    pub settings: SpoolSettings,
    pub metrics: SpoolMetrics,
    pub now_ms: MsClock,
    backlog: Mutex<Backlog>,
    /// The writer committed: the forwarder may have work.
    pub wake: Notify,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the gauges from `backlog` (called with its lock held).
    pub fn publish(&self, backlog: &Backlog, now_ms: i64) {
        self.metrics.exports.set(backlog.exports as i64);
        self.metrics.bytes.set(backlog.bytes as i64);
        self.metrics
            .oldest_age_seconds
            .set(age_secs(backlog, now_ms) as i64);
    }
}

fn age_secs(backlog: &Backlog, now_ms: i64) -> u64 {
    backlog.oldest_ms.map_or(0, |oldest| {
        (now_ms.saturating_sub(oldest).max(0) / 1000) as u64
    })
}

/// The backlog as `/ready`, the status page and the gauges show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BacklogView {
    pub exports: u64,
    pub bytes: u64,
    pub oldest_age_secs: u64,
}

/// The handle in the shared state. Dropping it stops the writer (once the
/// queue is empty) and the forwarder.
pub struct Spool {
    queue: mpsc::Sender<writer::Request>,
    shared: Arc<Shared>,
    reader: Arc<Mutex<Connection>>,
    retry_after_secs: u64,
    _closed: watch::Sender<bool>,
}

impl Spool {
    /// Opens `spool.dir/spool.db` (creating it), counts what is left, starts
    /// the writer thread and the forwarder task (needs a tokio runtime).
    pub fn open(
        settings: &SpoolSettings,
        collector: &CollectorSettings,
        metrics: SpoolMetrics,
        now_ms: MsClock,
    ) -> Result<Spool, String> {
        let writer_conn = store::open(&settings.dir, true).map_err(|e| e.to_string())?;
        let reader_conn = store::open(&settings.dir, false).map_err(|e| e.to_string())?;
        let path = settings.dir.join(store::FILE_NAME);
        let totals = store::totals(&reader_conn)
            .map_err(|e| format!("spool {}: cannot count the backlog: {e}", path.display()))?;
        let backlog = Backlog {
            exports: totals.exports,
            bytes: totals.bytes,
            oldest_ms: totals.oldest_ms,
        };
        let shared = Arc::new(Shared {
            settings: settings.clone(),
            metrics,
            now_ms,
            backlog: Mutex::new(backlog),
            wake: Notify::new(),
        });
        shared.publish(&backlog, (shared.now_ms)());
        let (queue, receiver) = mpsc::channel(QUEUE);
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer::run(writer_conn, receiver, writer_shared))
            .map_err(|e| format!("spool {}: cannot start the writer: {e}", path.display()))?;
        let reader = Arc::new(Mutex::new(reader_conn));
        let (closed, closed_rx) = watch::channel(false);
        let forwarder =
            drain::Forwarder::new(collector, shared.clone(), reader.clone(), closed_rx)?;
        tokio::spawn(forwarder.run());
        if totals.exports > 0 {
            tracing::info!(
                path = %path.display(), exports = totals.exports, bytes = totals.bytes,
                "spool opened with a backlog; draining it"
            );
        }
        Ok(Spool {
            queue,
            shared,
            reader,
            retry_after_secs: collector.retry_after_secs,
            _closed: closed,
        })
    }

    /// Commits one prepared export; `Ok` (an empty Export*ServiceResponse
    /// in `media`) only once it is on disk.
    pub async fn append(&self, out: Outgoing<'_>, media: Media) -> Result<Accepted, IngestError> {
        let export = NewExport {
            signal: out.signal,
            content_type: out
                .content_type
                .to_str()
                .unwrap_or("application/x-protobuf")
                .to_string(),
            gzipped: out.gzipped,
            session_id: out.session_id.to_string(),
            client_version: out.client_version.map(str::to_string),
            enqueued_ms: (self.shared.now_ms)(),
            body: out.body,
        };
        let unavailable = IngestError::SpoolUnavailable {
            retry_after_secs: self.retry_after_secs,
        };
        let (reply, answer) = oneshot::channel();
        if self
            .queue
            .send(writer::Request { export, reply })
            .await
            .is_err()
        {
            return Err(unavailable);
        }
        match answer.await {
            Ok(Ok(())) => Ok(empty_response(media)),
            Ok(Err(Refusal::Full)) => Err(IngestError::SpoolFull {
                retry_after_secs: self.retry_after_secs,
            }),
            Ok(Err(Refusal::Unavailable)) | Err(_) => Err(unavailable),
        }
    }

    /// Exports, bytes and the oldest's age, now; refreshes the gauges.
    pub fn backlog(&self) -> BacklogView {
        let now_ms = (self.shared.now_ms)();
        let backlog = self.shared.lock();
        self.shared.publish(&backlog, now_ms);
        BacklogView {
            exports: backlog.exports,
            bytes: backlog.bytes,
            oldest_age_secs: age_secs(&backlog, now_ms),
        }
    }

    /// Exports dead-lettered since this process started.
    pub fn dead_lettered_total(&self) -> u64 {
        self.shared.metrics.dead_lettered_total.get()
    }

    /// One page of dead letters after id `after`, oldest first.
    pub async fn dead_letters(&self, after: i64, limit: usize) -> Result<Vec<DeadLetter>, String> {
        let reader = self.reader.clone();
        let limit = limit.min(MAX_PAGE);
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            store::dead_letters(&conn, after, limit).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// An empty Export*ServiceResponse: no partial success to report.
fn empty_response(media: Media) -> Accepted {
    match media {
        Media::Protobuf => Accepted {
            content_type: Some(HeaderValue::from_static("application/x-protobuf")),
            body: Bytes::new(),
        },
        Media::Json => Accepted {
            content_type: Some(HeaderValue::from_static("application/json")),
            body: Bytes::from_static(b"{}"),
        },
    }
}

#[cfg(test)]
mod tests;
