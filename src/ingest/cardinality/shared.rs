//! The series guard shared by replicas through the Redis store
//! (`session::redis::series`): one bound per metric for all of them.
//!
//! The request path: a series known here (either window) flows with no
//! round trip. The walk keeps a point whose series is new here and notes
//! it ([`Ask`]); after the walk, every such series of the export, of all
//! its metrics, goes to the store in **one** atomic script call, which says
//! per series "known" (another replica admitted it), "added" (a slot was
//! free) or "refused"; the refused points are then dropped by a second
//! pass ([`Recheck`]). Batching per export rather than leasing slots in
//! blocks keeps series comparable across replicas (a series admitted on
//! one replica is known to the others, so it keeps flowing on all of them,
//! and never takes two slots); leasing would spend a slot per replica for
//! the same series. So steady traffic (known series) costs no Redis call,
//! and an export with new series costs exactly one. A series this replica
//! knows from the previous window is sent too (a refresh, so it counts in
//! the store's current window), but an export with only refreshes does
//! not wait for the answer.
//!
//! The hash key is read from the store (created there once by whichever
//! replica asks first) before the first export that needs it. Store down
//! or slow (its own timeouts): the local guard decides, for a second
//! before the store is asked again; each export so judged is counted in
//! `{ns}_cardinality_fallback_total`. What the local guard admitted then
//! stays known here (it is not in the store): at most the bound more per
//! replica and window.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use prometheus::IntCounter;

use super::hash::{self, SharedKeys};
use super::{admit_new, display, Guard, Hashes, Judge, Part};
use crate::session::redis::series::{MetricAsk, SeriesVerdict, SeriesWindow, SharedSeries};

/// The guard's link to the store.
pub struct Shared {
    link: SharedSeries,
    keys: OnceLock<SharedKeys>,
    /// Unix seconds before which the store is not asked (it just failed).
    down_until: AtomicI64,
    fallback: IntCounter,
}

impl Shared {
    pub fn new(link: SharedSeries, fallback: IntCounter) -> Shared {
        Shared {
            link,
            keys: OnceLock::new(),
            down_until: AtomicI64::new(0),
            fallback,
        }
    }

    /// The shared keys when the store is to be asked now.
    pub(super) fn asking(&self, now: i64) -> Option<SharedKeys> {
        if now < self.down_until.load(Ordering::Relaxed) {
            return None;
        }
        self.keys.get().copied()
    }

    /// One export judged by the local guard because the store failed.
    pub(super) fn fell_back(&self) {
        self.fallback.inc();
    }

    fn down(&self, now: i64, why: &str) {
        let before = self.down_until.swap(now + 1, Ordering::Relaxed);
        if before == 0 || now > before + 1 {
            tracing::warn!(
                error = why,
                "shared series store unavailable: the local cardinality bound applies"
            );
        }
    }
}

impl Guard {
    /// Before an export's walk: reads the shared hash key once (so the walk
    /// can ask the store). On failure the export is judged locally.
    pub async fn ready(&self, now: i64) {
        let Some(shared) = &self.shared else { return };
        if shared.keys.get().is_some() || now < shared.down_until.load(Ordering::Relaxed) {
            return;
        }
        match shared.link.hash_key().await {
            Ok(key) => {
                let _ = shared.keys.set(SharedKeys::from_bytes(key));
            }
            Err(err) => shared.down(now, &err.to_string()),
        }
    }

    /// After the walk: the store's verdict on the series `ask` noted (the
    /// local guard's when the store fails); returns the refused series.
    pub async fn resolve(&self, ask: Ask, now: i64) -> Refused {
        let mut refused = Hashes::default();
        let Some(shared) = &self.shared else {
            return Refused(refused);
        };
        let span = self.settings.window.as_secs().max(1);
        let limits = SeriesWindow {
            window: now.div_euclid(span as i64),
            window_secs: span,
            bound: self.settings.max_series_per_metric,
            max_metrics: self.settings.max_metrics,
        };
        let asks = self.allowances(&ask);
        if ask.metrics.iter().all(|m| m.new.is_empty()) {
            // Only refreshes: nothing to drop, so do not wait.
            let link = shared.link.clone();
            tokio::spawn(async move {
                let _ = link.admit(limits, &asks).await;
            });
            return Refused(refused);
        }
        let verdicts = match shared.link.admit(limits, &asks).await {
            Ok(verdicts) => verdicts,
            Err(err) => {
                shared.down(now, &err.to_string());
                shared.fallback.inc();
                self.decide_locally(&ask, &mut refused);
                return Refused(refused);
            }
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let super::State {
            metrics, sessions, ..
        } = &mut *state;
        for (metric, verdicts) in ask.metrics.iter().zip(verdicts) {
            let session = self.keys.hash_one((ask.session, metric.local));
            let mut entry = metrics.get_mut(&metric.local);
            for ((series, _), verdict) in metric.new.iter().zip(verdicts) {
                if verdict == SeriesVerdict::Refused {
                    refused.insert(*series);
                    continue;
                }
                if verdict == SeriesVerdict::Added {
                    if let Some(added) = sessions.get_mut(&session) {
                        *added += 1;
                    } else if sessions.len() < self.settings.max_sessions {
                        sessions.insert(session, 1);
                    }
                }
                // Known from now on (while this replica has room for it).
                if let Some(entry) = entry.as_deref_mut() {
                    if entry.current.len() + entry.previous.len()
                        < self.settings.max_series_per_metric
                    {
                        entry.current.insert(*series);
                    }
                }
            }
        }
        drop(state);
        Refused(refused)
    }

    /// Each metric's ask, with what the session may still add to it.
    fn allowances(&self, ask: &Ask) -> Vec<MetricAsk> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let per_session = self.settings.max_series_per_session;
        ask.metrics
            .iter()
            .map(|m| {
                let session = self.keys.hash_one((ask.session, m.local));
                let added = state.sessions.get(&session).copied().unwrap_or(0) as usize;
                MetricAsk {
                    metric: m.shared,
                    allowance: per_session.saturating_sub(added).min(u32::MAX as usize) as u32,
                    refresh: m.refresh.clone(),
                    new: m.new.iter().map(|(_, shared)| *shared).collect(),
                }
            })
            .collect()
    }

    /// The store failed: the local bounds, as without it.
    fn decide_locally(&self, ask: &Ask, refused: &mut Hashes) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let full = state.metrics.len() >= self.settings.max_metrics;
        let super::State {
            metrics, sessions, ..
        } = &mut *state;
        for metric in &ask.metrics {
            let session = self.keys.hash_one((ask.session, metric.local));
            let entry = match metrics.get_mut(&metric.local) {
                Some(entry) => entry,
                None if full => {
                    refused.extend(metric.new.iter().map(|(local, _)| *local));
                    continue;
                }
                None => metrics.entry(metric.local).or_insert(super::Series {
                    name: metric.name.clone(),
                    current: Hashes::default(),
                    previous: Hashes::default(),
                }),
            };
            for (series, _) in &metric.new {
                if !admit_new(&self.settings, entry, sessions, session, *series) {
                    refused.insert(*series);
                }
            }
        }
    }

    /// The second pass over the export, dropping `refused`.
    pub fn recheck<'a>(&'a self, refused: &'a Refused) -> Recheck<'a> {
        Recheck {
            guard: self,
            refused: &refused.0,
        }
    }
}

/// One metric's series noted during the walk.
struct Asked {
    local: u64,
    shared: u64,
    name: Box<str>,
    refresh: Vec<u64>,
    /// (local hash, shared hash), each once.
    new: Vec<(u64, u64)>,
}

/// The series of one export this replica has not seen (or only in the
/// previous window), for one call to the store.
pub struct Ask {
    keys: SharedKeys,
    session: u64,
    metrics: Vec<Asked>,
    /// Local metric hash -> its index in `metrics`.
    index: HashMap<u64, usize>,
    /// Local series hashes already noted (a series sent twice in one
    /// export is asked once).
    seen: Hashes,
}

impl Ask {
    pub(super) fn new(keys: SharedKeys, session: u64) -> Ask {
        Ask {
            keys,
            session,
            metrics: Vec::new(),
            index: HashMap::new(),
            seen: Hashes::default(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    pub(super) fn resource<'a>(&self, counted: impl Iterator<Item = &'a KeyValue>) -> u64 {
        hash::sum(&self.keys, counted)
    }

    fn metric(&mut self, name: &str, local: u64) -> &mut Asked {
        let keys = self.keys;
        let next = self.metrics.len();
        let at = *self.index.entry(local).or_insert(next);
        if at == next {
            self.metrics.push(Asked {
                local,
                shared: keys.hash_one(name),
                name: display(name),
                refresh: Vec::new(),
                new: Vec::new(),
            });
        }
        &mut self.metrics[at]
    }

    pub(super) fn refresh(&mut self, name: &str, local: u64, attributes: &[KeyValue], part: u64) {
        let keys = self.keys;
        let asked = self.metric(name, local);
        let series = hash::series(&keys, asked.shared, attributes, part);
        asked.refresh.push(series);
    }

    pub(super) fn note_new(
        &mut self,
        name: &str,
        local: u64,
        series: u64,
        attributes: &[KeyValue],
        part: u64,
    ) {
        if !self.seen.insert(series) {
            return;
        }
        let keys = self.keys;
        let asked = self.metric(name, local);
        let shared = hash::series(&keys, asked.shared, attributes, part);
        asked.new.push((series, shared));
    }
}

/// The series the store refused (local hashes).
#[derive(Default)]
pub struct Refused(Hashes);

impl Refused {
    /// Nothing to drop: the second pass is skipped.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The second pass: drops the points whose series the store refused.
pub struct Recheck<'g> {
    guard: &'g Guard,
    refused: &'g Hashes,
}

impl Judge for Recheck<'_> {
    fn resource(&self, attributes: &[KeyValue]) -> Part {
        let keys = &self.guard.settings.resource_keys;
        let counted = attributes.iter().filter(|kv| keys.contains(&kv.key));
        Part {
            local: hash::sum(&self.guard.keys, counted),
            shared: 0,
        }
    }

    fn point(&mut self, metric: &str, attributes: &[KeyValue], resource: Part) -> bool {
        let keys = &self.guard.keys;
        let series = hash::series(keys, keys.hash_one(metric), attributes, resource.local);
        !self.refused.contains(&series)
    }
}
