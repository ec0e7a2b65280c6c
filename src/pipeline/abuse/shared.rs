//! What the abuse stages ask of a store shared by replicas (the Redis
//! store implements it, so the pipeline never depends on a store): quota
//! leases from per-window counters, and the bans in force.
//!
//! Nothing here is on the hot path per request: a replica leases quota in
//! blocks and spends them locally ([`super::quota`]), publishes a ban once
//! when it imposes it, and refreshes the bans it enforces on a timer.

use crate::pipeline::session_gate::BoxFuture;

/// One quota window's shared counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseKey {
    /// The quota's index in `[[quotas]]`.
    pub quota: usize,
    /// The scope value's hash (stable across replicas of one build).
    pub value: u64,
    /// `now / period_secs`.
    pub window: i64,
}

pub trait SharedAbuse: Send + Sync {
    /// Takes up to `want` of the window's `limit` (atomically); returns what
    /// was granted (0 when the window is spent). `ttl_secs` outlives the window.
    fn lease(
        &self,
        key: LeaseKey,
        want: u64,
        limit: u64,
        ttl_secs: u64,
    ) -> BoxFuture<'_, Result<u64, String>>;

    /// Publishes a ban on `subject` (`address:..`, `session:..`) until `until`.
    fn ban(&self, subject: String, until: i64) -> BoxFuture<'_, Result<(), String>>;

    /// Lifts a published ban.
    fn lift(&self, subject: String) -> BoxFuture<'_, Result<(), String>>;

    /// The bans in force at `now` (subject, until), at most `limit`.
    fn bans(&self, now: i64, limit: usize) -> BoxFuture<'_, Result<Vec<(String, i64)>, String>>;
}
