//! What the abuse stages ask of a store shared by replicas (the Redis
//! store implements it, so the pipeline never depends on a store): quota
//! leases from per-window counters, and the bans in force.
//!
//! Nothing here is on the hot path per request: a replica leases quota in
//! blocks and spends them locally ([`super::quota`]), publishes a ban once
//! when it imposes it, refreshes the bans it enforces on a timer, and adds
//! its refusals to the shared counts in batches ([`super::bans_shared`]).

use crate::config::BanSettings;
use crate::pipeline::session_gate::BoxFuture;

/// Refusals of one subject not yet in the shared count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalDelta {
    /// `address:..` or `session:..`.
    pub subject: String,
    pub count: u32,
    /// This replica banned the subject on its own count: the shared count
    /// starts over and the shared escalation counts the ban.
    pub banned_here: bool,
}

/// A ban the shared count imposed (or, for `banned_here`, recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedTrip {
    pub subject: String,
    pub ban_secs: u64,
    /// Bans this subject had, this one included (shared escalation).
    pub bans: u32,
    pub banned_here: bool,
}

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

    /// Whether refusals are counted across replicas ([`SharedAbuse::refusals`]).
    /// A store for one node (embedded) has nothing to add to the local count.
    fn counts_refusals(&self) -> bool {
        false
    }

    /// Adds `deltas` to the subjects' shared counts (a window of
    /// `within_secs` from the first); bans (published as by
    /// [`SharedAbuse::ban`]) each subject whose count reaches `refusals`.
    fn refusals(
        &self,
        deltas: Vec<RefusalDelta>,
        rules: BanSettings,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<SharedTrip>, String>> {
        let _ = (deltas, rules, now);
        Box::pin(async { Ok(Vec::new()) })
    }
}
