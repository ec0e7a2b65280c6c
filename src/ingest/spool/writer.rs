//! The one writer: a thread that owns the appending SQLite connection.
//! Requests queue on a bounded channel; the writer takes everything queued
//! (up to a cap), checks each against the limits, writes them in ONE
//! transaction and commits (`synchronous=FULL`: the commit is the fsync),
//! then answers every waiter. With `fsync = "always"` each export is its
//! own transaction. A waiter hears `Ok` only after its commit.

use std::sync::Arc;
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::store::{self, NewExport};
use super::{Refusal, Shared};
use crate::config::Fsync;

/// Most exports, and body bytes, one group commit takes.
const MAX_GROUP: usize = 1024;
const MAX_GROUP_BYTES: usize = 32 * 1024 * 1024;

/// One queued append and the waiter to answer.
pub struct Request {
    pub export: NewExport,
    pub reply: oneshot::Sender<Result<(), Refusal>>,
}

/// Runs until every sender is gone.
pub fn run(mut conn: Connection, mut queue: mpsc::Receiver<Request>, shared: Arc<Shared>) {
    let group_cap = match shared.settings.fsync {
        Fsync::Batch => MAX_GROUP,
        Fsync::Always => 1,
    };
    let mut group = Vec::with_capacity(64);
    while let Some(first) = queue.blocking_recv() {
        let mut group_bytes = first.export.body.len();
        group.push(first);
        while group.len() < group_cap && group_bytes < MAX_GROUP_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    group_bytes += next.export.body.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        commit_group(&mut conn, &shared, &mut group);
    }
}

/// Admits what fits, commits it, answers everyone; empties `group`.
fn commit_group(conn: &mut Connection, shared: &Shared, group: &mut Vec<Request>) {
    let now_ms = (shared.now_ms)();
    let (held_bytes, oldest_ms) = {
        let backlog = shared.lock();
        (backlog.bytes, backlog.oldest_ms)
    };
    let too_old = oldest_ms.is_some_and(|oldest| {
        now_ms.saturating_sub(oldest) > shared.settings.max_age.as_millis() as i64
    });
    let mut taken_bytes = 0u64;
    let mut accepted = Vec::with_capacity(group.len());
    let mut refused = Vec::new();
    for request in group.drain(..) {
        let size = request.export.body.len() as u64;
        let fits = held_bytes + taken_bytes + size <= shared.settings.max_bytes;
        if too_old || !fits {
            refused.push(request);
        } else {
            taken_bytes += size;
            accepted.push(request);
        }
    }
    for request in refused {
        let _ = request.reply.send(Err(Refusal::Full));
    }
    if accepted.is_empty() {
        return;
    }
    let exports: Vec<&NewExport> = accepted.iter().map(|r| &r.export).collect();
    let started = Instant::now();
    let written = store::append(conn, &exports);
    shared
        .metrics
        .commit_duration_seconds
        .observe(started.elapsed().as_secs_f64());
    match written {
        Ok(()) => {
            {
                let mut backlog = shared.lock();
                backlog.exports += accepted.len() as u64;
                backlog.bytes += taken_bytes;
                if backlog.oldest_ms.is_none() {
                    backlog.oldest_ms = exports.first().map(|e| e.enqueued_ms);
                }
                shared.publish(&backlog, now_ms);
            }
            shared.wake.notify_one();
            for request in accepted {
                let _ = request.reply.send(Ok(()));
            }
        }
        Err(err) => {
            tracing::error!(error = %err, exports = accepted.len(), "spool commit failed");
            for request in accepted {
                let _ = request.reply.send(Err(Refusal::Unavailable));
            }
        }
    }
}
