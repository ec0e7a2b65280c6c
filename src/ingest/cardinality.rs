//! The series guard (`[cardinality]`): per metric name, at most
//! `max_series_per_metric` distinct series admitted in a window, and at
//! most `max_series_per_session` new ones from one session; a new series
//! past either bound is dropped (and reported through partial success),
//! a known one keeps flowing.
//!
//! A series is the metric name, the point's attributes (order does not
//! matter) and the resource attributes in `resource_keys` (by default the
//! ones the collector's Prometheus exporter turns into `job` / `instance`),
//! hashed to a u64 with keys random per process, so a client cannot aim at
//! a known series' hash. Memory is bounded: each metric holds at most
//! `max_series_per_metric` hashes, at most `max_metrics` names are tracked
//! (past it a new name is over its bound) and at most `max_sessions`
//! per-session counters (past it only the overall bound holds). Names are
//! tracked by hash; only a short display copy is kept for the status page.
//!
//! Windows rotate, on boundaries every replica agrees on (`now /
//! window_secs`): a series seen in the previous window is still known (and
//! moves to the current one when seen); both windows together hold at most
//! the bound, so a series counts until it has been quiet for one to two
//! windows, like an active series in Prometheus.
//!
//! With the Redis store ([`shared`]) the per-metric bound holds across
//! replicas: a series known here flows with no round trip; the series of
//! one export this replica has not seen are judged together by one script
//! call after the walk, and the refused ones dropped then. The per-session
//! bound stays local to a replica.

mod hash;
pub mod shared;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use opentelemetry_proto::tonic::common::v1::KeyValue;

use crate::config::CardinalitySettings;
use crate::prehashed::{PrehashedMap, PrehashedSet};
use shared::{Ask, Shared};

/// Characters of a metric name kept for display.
const DISPLAY_CHARS: usize = 128;

type Hashes = PrehashedSet;

/// What judges an export's metric points (the guard's [`Admit`], or the
/// second pass that drops what the shared store refused).
pub trait Judge {
    /// The resource's part of its points' series.
    fn resource(&self, attributes: &[KeyValue]) -> Part;
    /// Whether a point of `metric` with `attributes` under a resource with
    /// part `resource` stays.
    fn point(&mut self, metric: &str, attributes: &[KeyValue], resource: Part) -> bool;
}

/// A resource's part of a series, under the local key and (with the Redis
/// store) the shared one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Part {
    local: u64,
    shared: u64,
}

struct Series {
    name: Box<str>,
    current: Hashes,
    previous: Hashes,
}

struct State {
    window_start: i64,
    metrics: PrehashedMap<Series>,
    /// hash(session, metric) -> new series it added this window.
    sessions: PrehashedMap<u32>,
}

pub struct Guard {
    settings: CardinalitySettings,
    keys: RandomState,
    state: Mutex<State>,
    /// The store replicas share the bound through (Redis).
    shared: Option<Shared>,
}

/// A metric's use of its bound, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub metric: String,
    pub series: usize,
    pub bound: usize,
}

impl Guard {
    pub fn new(settings: CardinalitySettings) -> Guard {
        Guard {
            settings,
            keys: RandomState::new(),
            state: Mutex::new(State {
                window_start: i64::MIN,
                metrics: HashMap::default(),
                sessions: HashMap::default(),
            }),
            shared: None,
        }
    }

    /// Shares the per-metric bound through `shared` (the Redis store).
    pub fn with_shared(mut self, shared: Shared) -> Guard {
        self.shared = Some(shared);
        self
    }

    /// Opens one export's admission at `now` (unix seconds) for `session`;
    /// the lock is held until the returned value drops.
    pub fn begin(&self, now: i64, session: &str) -> Admit<'_> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.settings.window.as_secs().max(1) as i64;
        let start = now - now.rem_euclid(window);
        if state.window_start == i64::MIN || now < state.window_start {
            state.window_start = start;
        } else if now - state.window_start >= window {
            let long_quiet = start - state.window_start >= 2 * window;
            state.metrics.retain(|_, series| {
                series.previous = if long_quiet {
                    Hashes::default()
                } else {
                    std::mem::take(&mut series.current)
                };
                series.current = Hashes::default();
                !series.previous.is_empty()
            });
            state.sessions = HashMap::default();
            state.window_start = start;
        }
        let session = self.keys.hash_one(session);
        let ask = self.shared.as_ref().and_then(|shared| {
            let keys = shared.asking(now);
            if keys.is_none() {
                shared.fell_back();
            }
            keys.map(|keys| Ask::new(keys, session))
        });
        Admit {
            guard: self,
            session,
            ask,
            state,
        }
    }

    /// The `n` metrics nearest their bound, nearest first.
    pub fn nearest(&self, n: usize) -> Vec<Usage> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<Usage> = state
            .metrics
            .values()
            .map(|s| Usage {
                metric: s.name.to_string(),
                series: s.current.len() + s.previous.len(),
                bound: self.settings.max_series_per_metric,
            })
            .collect();
        all.sort_by(|a, b| b.series.cmp(&a.series).then(a.metric.cmp(&b.metric)));
        all.truncate(n);
        all
    }

    /// (metric names, series hashes) held now.
    pub fn tracked(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let series = state
            .metrics
            .values()
            .map(|s| s.current.len() + s.previous.len())
            .sum();
        (state.metrics.len(), series)
    }
}

/// One export's admission (holds the guard's lock).
pub struct Admit<'g> {
    guard: &'g Guard,
    session: u64,
    /// With the shared store up: the series this replica has not seen,
    /// asked of it after the walk ([`Admit::into_ask`]).
    ask: Option<Ask>,
    state: MutexGuard<'g, State>,
}

impl Admit<'_> {
    /// The series to ask the shared store about, if any; releases the lock.
    pub fn into_ask(self) -> Option<Ask> {
        self.ask.filter(|ask| !ask.is_empty())
    }
}

impl Judge for Admit<'_> {
    fn resource(&self, attributes: &[KeyValue]) -> Part {
        let keys = &self.guard.settings.resource_keys;
        let counted = || attributes.iter().filter(|kv| keys.contains(&kv.key));
        Part {
            local: hash::sum(&self.guard.keys, counted()),
            shared: self.ask.as_ref().map_or(0, |ask| ask.resource(counted())),
        }
    }

    fn point(&mut self, metric: &str, attributes: &[KeyValue], resource: Part) -> bool {
        let settings = &self.guard.settings;
        let keys = &self.guard.keys;
        let metric_hash = keys.hash_one(metric);
        let series = hash::series(keys, metric_hash, attributes, resource.local);
        let State {
            metrics, sessions, ..
        } = &mut *self.state;
        let full = metrics.len() >= settings.max_metrics;
        let entry = match metrics.entry(metric_hash) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(_) if full => return false,
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(Series {
                name: display(metric),
                current: Hashes::default(),
                previous: Hashes::default(),
            }),
        };
        if entry.current.contains(&series) {
            return true;
        }
        if entry.previous.remove(&series) {
            entry.current.insert(series);
            if let Some(ask) = &mut self.ask {
                ask.refresh(metric, metric_hash, attributes, resource.shared);
            }
            return true;
        }
        if let Some(ask) = &mut self.ask {
            // Kept for now: the store's verdict comes after the walk.
            ask.note_new(metric, metric_hash, series, attributes, resource.shared);
            return true;
        }
        let session = keys.hash_one((self.session, metric_hash));
        admit_new(settings, entry, sessions, session, series)
    }
}

/// The local verdict on a series not known here: within the metric's
/// bound and the session's, it is added.
fn admit_new(
    settings: &CardinalitySettings,
    entry: &mut Series,
    sessions: &mut PrehashedMap<u32>,
    session: u64,
    series: u64,
) -> bool {
    if entry.current.len() + entry.previous.len() >= settings.max_series_per_metric {
        return false;
    }
    let room = sessions.len() < settings.max_sessions;
    match sessions.get_mut(&session) {
        Some(added) if *added as usize >= settings.max_series_per_session => return false,
        Some(added) => *added += 1,
        None if room => {
            sessions.insert(session, 1);
        }
        None => {}
    }
    entry.current.insert(series);
    true
}

fn display(metric: &str) -> Box<str> {
    metric
        .chars()
        .take(DISPLAY_CHARS)
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests;
