//! Ban refusal counts shared by replicas (`[bans]` with the Redis store):
//! each replica still counts and bans on its own (no round trip on the
//! request path), and also adds its refusals to one count per subject in
//! the shared store, so refusals spread over replicas ban too.
//!
//! Not one round trip per refusal: a subject's refusals wait here and go
//! to the store in one batch when they reach a fifth of `refusals` (so a
//! subject costs at most about five calls per ban, however fast it is
//! refused), and whatever is left goes on the one-second ban timer
//! ([`super::Abuse::sync_bans`]). The slack: a ban triggers once the
//! refusals across replicas reach `refusals` within `within_secs`, at the
//! latest a second later (the timer), or earlier on one replica's own
//! count. The store bans the subject (the shared escalation doubles per
//! ban), the replica whose batch tripped it counts it in `{ns}_bans_total`
//! and writes the log line, and every replica enforces it at once here or
//! from its next refresh. Store errors are counted by the store
//! (`{ns}_store_errors_total{op="ban_count"}`) and the deltas dropped:
//! the local counts still ban.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::IntCounter;

use super::bans::Remote;
use super::shared::{RefusalDelta, SharedAbuse, SharedTrip};
use crate::config::BanSettings;

/// Subjects waiting at most; past it a new subject counts locally only.
const MAX_PENDING: usize = 10_000;
/// Subjects per script call.
const BATCH: usize = 256;

/// What a trip found in the store changes here (all cheap handles, so a
/// spawned flush can apply it).
#[derive(Clone)]
pub(super) struct Sink {
    pub remote: Arc<Mutex<Remote>>,
    pub any: Arc<AtomicBool>,
    pub bans_total: IntCounter,
}

pub(super) struct SharedCounts {
    link: Arc<dyn SharedAbuse>,
    settings: BanSettings,
    /// A subject's refusals are sent once this many wait.
    step: u32,
    pending: Mutex<HashMap<String, (u32, bool)>>,
    sink: Sink,
}

impl SharedCounts {
    pub fn new(link: Arc<dyn SharedAbuse>, settings: BanSettings, sink: Sink) -> SharedCounts {
        SharedCounts {
            link,
            settings,
            step: (settings.refusals / 5).max(1),
            pending: Mutex::new(HashMap::new()),
            sink,
        }
    }

    /// One refusal of `subject`; `banned_here`: it just banned it locally.
    /// Sends the subject's batch (in the background) once it is due.
    pub fn add(self: &Arc<Self>, subject: String, banned_here: bool, now: i64) {
        let due = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if !pending.contains_key(&subject) && pending.len() >= MAX_PENDING {
                return;
            }
            let entry = pending.entry(subject.clone()).or_insert((0, false));
            entry.0 += 1;
            entry.1 |= banned_here;
            if entry.0 < self.step && !entry.1 {
                return;
            }
            let (count, banned_here) = *entry;
            pending.remove(&subject);
            RefusalDelta {
                subject,
                count,
                banned_here,
            }
        };
        let counts = self.clone();
        tokio::spawn(async move { counts.send(vec![due], now).await });
    }

    /// Sends every subject still waiting (the ban timer).
    pub async fn flush(&self, now: i64) {
        let all: Vec<RefusalDelta> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending
                .drain()
                .map(|(subject, (count, banned_here))| RefusalDelta {
                    subject,
                    count,
                    banned_here,
                })
                .collect()
        };
        let mut all = all.into_iter().peekable();
        while all.peek().is_some() {
            self.send(all.by_ref().take(BATCH).collect(), now).await;
        }
    }

    async fn send(&self, deltas: Vec<RefusalDelta>, now: i64) {
        match self.link.refusals(deltas, self.settings, now).await {
            Ok(trips) => {
                for trip in trips {
                    self.apply(trip, now);
                }
            }
            Err(err) => tracing::debug!(error = %err, "could not share refusal counts"),
        }
    }

    /// A ban the shared count imposed: enforced here at once; counted and
    /// logged here when this batch tripped it (a local ban was counted
    /// already).
    fn apply(&self, trip: SharedTrip, now: i64) {
        let until = now.saturating_add(i64::try_from(trip.ban_secs).unwrap_or(i64::MAX));
        if let Some(subject) = super::bans::Subject::parse(&trip.subject) {
            let mut remote = self.sink.remote.lock().unwrap_or_else(|e| e.into_inner());
            remote.insert(subject, until);
        }
        self.sink.any.store(true, Ordering::Relaxed);
        if trip.banned_here {
            return;
        }
        self.sink.bans_total.inc();
        tracing::warn!(
            target: "telegate::ban",
            subject = %trip.subject,
            ban_secs = trip.ban_secs,
            bans = trip.bans,
            refusals = self.settings.refusals,
            within_secs = self.settings.within_secs,
            shared = true,
            "banned after repeated refusals"
        );
    }
}
