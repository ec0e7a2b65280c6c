//! Decisions over the last five minutes, for the status page: five
//! one-minute buckets of atomics, no lock on the hot path.
//!
//! A bucket belongs to one minute (Unix seconds / 60); the first decision of
//! a new minute claims the bucket that minute maps to (`minute % 5`) with a
//! compare-and-swap and zeroes it. A decision landing on that bucket between
//! the swap and the zeroing can be lost: a handful at most, once a minute,
//! on a page that shows approximate live figures (Prometheus has the exact
//! counters).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::protocol::reject::Reject;

const BUCKETS: usize = 5;
const BUCKET_SECS: i64 = 60;
/// One slot per known reason, plus one for a reason not in the list.
const SLOTS: usize = Reject::REASONS.len() + 1;

struct Bucket {
    minute: AtomicI64,
    allowed: AtomicU64,
    denied: [AtomicU64; SLOTS],
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            minute: AtomicI64::new(i64::MIN),
            allowed: AtomicU64::new(0),
            denied: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn clear(&self) {
        self.allowed.store(0, Ordering::Relaxed);
        for slot in &self.denied {
            slot.store(0, Ordering::Relaxed);
        }
    }
}

/// Counts of the last [`RollingWindow::SPAN_SECS`] seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowCounts {
    pub allowed: u64,
    /// `(reason, count)` for every reason with a refusal in the window, most first.
    pub denied: Vec<(&'static str, u64)>,
}

impl WindowCounts {
    pub fn denied_total(&self) -> u64 {
        self.denied.iter().map(|(_, n)| n).sum()
    }

    pub fn total(&self) -> u64 {
        self.allowed + self.denied_total()
    }

    /// Allowed / all decisions, `None` when there were none.
    pub fn success_ratio(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.allowed as f64 / total as f64)
    }
}

pub struct RollingWindow {
    buckets: [Bucket; BUCKETS],
}

impl Default for RollingWindow {
    fn default() -> Self {
        RollingWindow {
            buckets: std::array::from_fn(|_| Bucket::new()),
        }
    }
}

impl RollingWindow {
    pub const SPAN_SECS: i64 = BUCKETS as i64 * BUCKET_SECS;

    pub fn allow(&self, now: i64) {
        self.bucket(now).allowed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn deny(&self, reason: &str, now: i64) {
        let slot = Reject::REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(SLOTS - 1);
        self.bucket(now).denied[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// The bucket of `now`'s minute, claimed and zeroed if it still holds an
    /// older minute.
    fn bucket(&self, now: i64) -> &Bucket {
        let minute = now.div_euclid(BUCKET_SECS);
        let bucket = &self.buckets[minute.rem_euclid(BUCKETS as i64) as usize];
        let held = bucket.minute.load(Ordering::Acquire);
        if held < minute
            && bucket
                .minute
                .compare_exchange(held, minute, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            bucket.clear();
        }
        bucket
    }

    /// Sums the buckets of the current minute and the four before it.
    pub fn counts(&self, now: i64) -> WindowCounts {
        let current = now.div_euclid(BUCKET_SECS);
        let mut allowed = 0;
        let mut denied = [0u64; SLOTS];
        for bucket in &self.buckets {
            let minute = bucket.minute.load(Ordering::Acquire);
            if minute > current || minute <= current - BUCKETS as i64 {
                continue;
            }
            allowed += bucket.allowed.load(Ordering::Relaxed);
            for (sum, slot) in denied.iter_mut().zip(&bucket.denied) {
                *sum += slot.load(Ordering::Relaxed);
            }
        }
        let mut by_reason: Vec<(&'static str, u64)> = denied
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (Reject::REASONS.get(i).copied().unwrap_or("other"), *n))
            .collect();
        by_reason.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        WindowCounts {
            allowed,
            denied: by_reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of a minute (1_800_000_000 is a multiple of 60).
    const T: i64 = 1_800_000_000;

    #[test]
    fn counts_the_last_five_minutes_only() {
        let window = RollingWindow::default();
        window.allow(T);
        window.allow(T + 59);
        window.deny("bad_signature", T + 60);
        window.deny("stale_timestamp", T + 4 * 60);
        window.deny("bad_signature", T + 4 * 60 + 59);

        let at_end = window.counts(T + 4 * 60 + 59);
        assert_eq!(at_end.allowed, 2);
        assert_eq!(
            at_end.denied,
            [("bad_signature", 2), ("stale_timestamp", 1)]
        );
        assert_eq!(at_end.total(), 5);
        assert_eq!(at_end.success_ratio(), Some(0.4));

        // One minute later the first minute has left the window.
        let later = window.counts(T + 5 * 60);
        assert_eq!(later.allowed, 0);
        assert_eq!(later.denied_total(), 3);
        // Ten minutes later nothing is left.
        assert_eq!(window.counts(T + 10 * 60), WindowCounts::default());
        assert_eq!(window.counts(T + 10 * 60).success_ratio(), None);
    }

    #[test]
    fn a_bucket_is_zeroed_when_its_slot_comes_round_again() {
        let window = RollingWindow::default();
        for _ in 0..3 {
            window.allow(T);
        }
        // Same slot (minute + 5): the old minute's counts must not leak in.
        window.allow(T + 5 * 60);
        assert_eq!(window.counts(T + 5 * 60).allowed, 1);
    }

    #[test]
    fn unknown_reasons_are_counted_as_other() {
        let window = RollingWindow::default();
        window.deny("not_a_reason", T);
        assert_eq!(window.counts(T).denied, [("other", 1)]);
    }

    #[test]
    fn concurrent_decisions_are_all_counted_within_a_minute() {
        let window = std::sync::Arc::new(RollingWindow::default());
        // The minute's first decision claims the bucket.
        window.allow(T + 1);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let window = window.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        window.allow(T + 1);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(window.counts(T + 1).allowed, 4001);
    }
}
