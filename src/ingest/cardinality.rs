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
//! Windows rotate: a series seen in the previous window is still known
//! (and moves to the current one when seen); both windows together hold
//! at most the bound, so a series counts until it has been quiet for one
//! to two windows, like an active series in Prometheus. Local to a
//! replica: with several replicas each admits up to the bound.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

use crate::config::CardinalitySettings;

/// Characters of a metric name kept for display.
const DISPLAY_CHARS: usize = 128;

/// Series hashes are already keyed SipHash outputs: hash them no further.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Hashes = HashSet<u64, BuildHasherDefault<Identity>>;

struct Series {
    name: Box<str>,
    current: Hashes,
    previous: Hashes,
}

struct State {
    window_start: i64,
    metrics: HashMap<u64, Series, BuildHasherDefault<Identity>>,
    /// hash(session, metric) -> new series it added this window.
    sessions: HashMap<u64, u32, BuildHasherDefault<Identity>>,
}

pub struct Guard {
    settings: CardinalitySettings,
    keys: RandomState,
    state: Mutex<State>,
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
        }
    }

    /// Opens one export's admission at `now` (unix seconds) for `session`;
    /// the lock is held until the returned value drops.
    pub fn begin(&self, now: i64, session: &str) -> Admit<'_> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.settings.window.as_secs() as i64;
        if state.window_start == i64::MIN || now < state.window_start {
            state.window_start = now;
        } else if now - state.window_start >= window {
            let long_quiet = now - state.window_start >= 2 * window;
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
            state.window_start = now;
        }
        Admit {
            guard: self,
            session: self.keys.hash_one(session),
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
    state: MutexGuard<'g, State>,
}

impl Admit<'_> {
    /// The resource's part of its points' series.
    pub fn resource(&self, attributes: &[KeyValue]) -> u64 {
        let keys = &self.guard.settings.resource_keys;
        self.sum(attributes.iter().filter(|kv| keys.contains(&kv.key)))
    }

    /// Whether a point of `metric` with `attributes` under a resource with
    /// part `resource` is admitted.
    pub fn point(&mut self, metric: &str, attributes: &[KeyValue], resource: u64) -> bool {
        let settings = &self.guard.settings;
        let keys = &self.guard.keys;
        let metric_hash = keys.hash_one(metric);
        let series = keys.hash_one((metric_hash, self.sum(attributes.iter()), resource));
        let session = keys.hash_one((self.session, metric_hash));
        let State {
            metrics, sessions, ..
        } = &mut *self.state;
        let full = metrics.len() >= settings.max_metrics;
        let entry = match metrics.entry(metric_hash) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(_) if full => return false,
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(Series {
                name: metric
                    .chars()
                    .take(DISPLAY_CHARS)
                    .collect::<String>()
                    .into(),
                current: Hashes::default(),
                previous: Hashes::default(),
            }),
        };
        if entry.current.contains(&series) {
            return true;
        }
        if entry.previous.remove(&series) {
            entry.current.insert(series);
            return true;
        }
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

    /// Order-free hash of attributes: the sum of each pair's keyed hash.
    fn sum<'a>(&self, attributes: impl Iterator<Item = &'a KeyValue>) -> u64 {
        attributes.fold(0u64, |sum, kv| {
            let mut h = self.guard.keys.build_hasher();
            kv.key.hash(&mut h);
            hash_value(kv.value.as_ref(), &mut h);
            sum.wrapping_add(h.finish())
        })
    }
}

fn hash_value(value: Option<&AnyValue>, h: &mut impl Hasher) {
    use any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        None => h.write_u8(0),
        Some(Value::StringValue(s)) => {
            h.write_u8(1);
            s.hash(h);
        }
        Some(Value::BoolValue(b)) => {
            h.write_u8(2);
            b.hash(h);
        }
        Some(Value::IntValue(i)) => {
            h.write_u8(3);
            i.hash(h);
        }
        Some(Value::DoubleValue(d)) => {
            h.write_u8(4);
            d.to_bits().hash(h);
        }
        Some(Value::BytesValue(b)) => {
            h.write_u8(5);
            b.hash(h);
        }
        Some(Value::ArrayValue(a)) => {
            h.write_u8(6);
            h.write_usize(a.values.len());
            for v in &a.values {
                hash_value(Some(v), h);
            }
        }
        Some(Value::KvlistValue(kv)) => {
            h.write_u8(7);
            h.write_usize(kv.values.len());
            for kv in &kv.values {
                kv.key.hash(h);
                hash_value(kv.value.as_ref(), h);
            }
        }
    }
}

#[cfg(test)]
mod tests;
