//! Sessions: every signed client session is seen, counted, listable and
//! revocable.
//!
//! A verified `/auth` request records or refreshes its session
//! ([`SessionStore::observe`], on the hot path, no network round trip): first
//! and last seen, request count, bytes where known, last client IP (per the
//! privacy setting), user agent, client version, key id, and a pet name. An
//! operator can revoke a session id; `/auth` then refuses it with 403
//! `session_revoked` until the revocation expires. One client address can
//! hold at most `max_per_ip` live sessions (429 `too_many_sessions`).
//!
//! Issued sessions are the other kind: `POST /sessions` hands out a 256-bit
//! token ([`token`]) that `/auth` accepts under a policy with
//! `methods = ["session"]`; the store keeps only its SHA-256. They expire
//! absolutely (`ttl_secs`, extendable up to `max_lifetime_secs`) and when idle
//! (`idle_secs`), and one user holds at most `max_per_user`.
//!
//! [`memory`] is the in-process store (moka, per-entry expiry, LRU so a new
//! session is never silently refused); [`embedded`] keeps that store on the
//! hot path and a SQLite copy on disk for restarts (written behind; the
//! API's changes written through); [`redis`] is shared by replicas (a local
//! memory cache for the signed hot path, written behind); [`postgres`] is
//! the same model on PostgreSQL, for operators who run it and not Redis.
//! The session API
//! is served by `http::sessions`.

#[cfg(test)]
pub(crate) mod conformance;
pub mod embedded;
mod health;
pub mod memory;
pub mod petname;
pub mod postgres;
pub mod redis;
pub mod seal;

use std::net::IpAddr;

use serde::Serialize;

pub use crate::config::{
    EmbeddedSettings, PerUserLimit, PostgresSettings, RedisSettings, SessionSettings, StoreBackend,
    StoreIp,
};
pub use crate::pipeline::session_gate::{
    answered, BoxFuture, HeaderSet, Refusal, SessionGate, Sighting, StaticSighting, StoreError,
    TokenCheck, TokenOwner, TokenUse,
};
pub use crate::protocol::grants::{self, Grants};
pub use crate::protocol::token::{self, Token, TokenHash};
pub use embedded::EmbeddedStore;
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use redis::{RedisStore, StoreMetrics};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// Seen through a verified `X-KMS-*` signature.
    Signed,
    /// Issued a token through `POST /sessions`.
    Issued,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Signed => "signed",
            SessionKind::Issued => "issued",
        }
    }
}

/// One record, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    pub session_id: String,
    pub kind: SessionKind,
    pub pet_name: String,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Signed: `last_seen + idle`. Issued: the absolute end (TTL, extendable).
    pub expires_at: i64,
    /// Issued only: `last_seen + idle`; the session ends at the earlier of the two.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_expires_at: Option<i64>,
    /// Issued only: whom the session was issued for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Issued only, and only with `store_metadata = true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Issued only: the roles and permissions an admin granted (`roles`,
    /// `permissions` in the JSON, absent when empty).
    #[serde(flatten)]
    pub grants: Grants,
    pub requests: u64,
    pub bytes: u64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub client_version: Option<String>,
    pub key_id: Option<String>,
    /// Set when an operator revoked it; a revoked session is not active.
    pub revoked_at: Option<i64>,
}

impl SessionRecord {
    /// The last second (inclusive) the session is live, absent new activity.
    pub fn live_until(&self) -> i64 {
        self.idle_expires_at
            .map_or(self.expires_at, |idle| idle.min(self.expires_at))
    }

    pub fn is_live(&self, now: i64) -> bool {
        self.live_until() >= now
    }

    /// Live and not revoked.
    pub fn is_active(&self, now: i64) -> bool {
        self.is_live(now) && self.revoked_at.is_none()
    }
}

/// A read of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Live(SessionRecord),
    Expired(SessionRecord),
    Unknown,
}

/// Counts for `GET /sessions/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub active: std::collections::BTreeMap<&'static str, u64>,
    pub by_client_version: std::collections::BTreeMap<String, u64>,
    pub created_last_hour: u64,
    pub revoked: u64,
}

impl Stats {
    /// Every kind present, at zero.
    pub fn zero() -> Stats {
        let mut stats = Stats::default();
        for kind in [SessionKind::Signed, SessionKind::Issued] {
            stats.active.insert(kind.as_str(), 0);
        }
        stats
    }

    /// Counts one record, as every store does.
    pub fn count(&mut self, record: SessionRecord, now: i64) {
        if record.revoked_at.is_some() {
            self.revoked += 1;
        }
        if record.first_seen >= now - 3600 {
            self.created_last_hour += 1;
        }
        if record.is_active(now) {
            *self.active.entry(record.kind.as_str()).or_default() += 1;
            let version = record.client_version.unwrap_or_else(|| "unknown".into());
            *self.by_client_version.entry(version).or_default() += 1;
        }
    }
}

/// A page of `GET /sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page {
    pub sessions: Vec<SessionRecord>,
    pub next_cursor: Option<String>,
}

/// `GET /sessions` filters.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub kind: Option<SessionKind>,
    /// Only sessions issued for this user.
    pub user: Option<String>,
    /// `Some(true)`: live only; `Some(false)`: expired only.
    pub active: Option<bool>,
    pub limit: usize,
    /// List ids strictly after this one (ids are listed in order).
    pub cursor: Option<String>,
}

/// A session to issue: the caller made the id and the token, the store
/// applies the lifetimes and the per-user limit.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub session_id: String,
    pub token_hash: TokenHash,
    pub user_id: Option<String>,
    /// Already dropped by the caller unless `store_metadata` is on.
    pub metadata: Option<serde_json::Value>,
    /// Set for a signed client: it counts against that address's
    /// `max_per_ip` like the signed sessions it opens.
    pub client_ip: Option<IpAddr>,
    /// At most [`crate::pipeline::session_gate::MAX_USER_AGENT_BYTES`].
    pub user_agent: Option<String>,
    pub client_version: Option<String>,
    pub key_id: Option<String>,
    /// Admin only (a signed client's request with them is refused).
    pub grants: Grants,
    /// `ttl_secs` asked for at creation; `None`: `sessions.ttl_secs`.
    pub ttl_secs: Option<u64>,
    pub now: i64,
}

impl NewSession {
    /// The absolute end: the asked-for or the configured TTL, never past
    /// `max_lifetime_secs` (every store applies this one rule).
    pub fn expires_at(&self, settings: &SessionSettings) -> i64 {
        let ttl = self
            .ttl_secs
            .map_or(settings.ttl, std::time::Duration::from_secs)
            .min(settings.max_lifetime);
        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        self.now.saturating_add(secs)
    }
}

/// The outcome of [`SessionStore::issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    /// Created; `evicted` older sessions of the same user were deleted for it.
    Created {
        record: Box<SessionRecord>,
        evicted: usize,
    },
    /// The user holds `max_per_user` and the limit is `refuse`.
    TooManyForUser,
    /// The signed client's address holds `max_per_ip` live sessions.
    TooManyForIp,
}

/// A change to one issued session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Restart the idle timer.
    Touch,
    /// Push the absolute expiry out by this many seconds, bounded by the
    /// max lifetime (also restarts the idle timer).
    Extend(u64),
    /// Replace the token: the old one is dead when this returns.
    Refresh(TokenHash),
}

/// The outcome of [`SessionStore::change`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    Done(Box<SessionRecord>),
    Expired,
    Unknown,
    /// A signed session: it has no token, idle timer or lifetime to change.
    NotIssued,
}

/// Issued sessions, for the session API: hand one out, find a token's
/// session without touching it, change or delete one. Async: a remote
/// store is their source of truth.
pub trait IssuedSessions: Send + Sync {
    /// Stores an issued session.
    fn issue(&self, new: NewSession) -> BoxFuture<'_, Result<Issue, StoreError>>;
    /// Which session a token belongs to, without touching it (owner checks).
    fn find_token<'a>(
        &'a self,
        token: &'a TokenHash,
        now: i64,
    ) -> BoxFuture<'a, Result<TokenCheck, StoreError>>;
    /// Touches, extends or refreshes a live issued session.
    fn change<'a>(
        &'a self,
        session_id: &'a str,
        change: Change,
        now: i64,
    ) -> BoxFuture<'a, Result<Changed, StoreError>>;
    /// Deletes a session and its token (logout); `Ok(false)` when unknown.
    fn delete<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// Administration, for the admin API, `/metrics` and `/ready`: read, list,
/// count, revoke and wipe.
pub trait SessionAdmin: Send + Sync {
    fn lookup<'a>(
        &'a self,
        session_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Lookup, StoreError>>;
    /// Revokes a known session and says which kind it was; `Ok(None)` when
    /// the id is unknown. A signed session stays readable (with `revoked_at`);
    /// an issued one is deleted, its id and token refused until the
    /// revocation expires.
    fn revoke<'a>(
        &'a self,
        session_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<SessionKind>, StoreError>>;
    fn list<'a>(
        &'a self,
        filter: &'a ListFilter,
        now: i64,
    ) -> BoxFuture<'a, Result<Page, StoreError>>;
    fn stats(&self, now: i64) -> BoxFuture<'_, Result<Stats, StoreError>>;
    /// Live sessions by kind, for the `sessions_active` gauge.
    fn active(&self, now: i64) -> Vec<(SessionKind, u64)>;
    /// Deletes every session issued for `user`; returns how many.
    fn delete_user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<u64, StoreError>>;
    /// Forgets everything: sessions, tokens, revocations, indices. Returns
    /// how many sessions were dropped.
    fn wipe(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Whether the store can answer now (`/ready`); a remote store says
    /// false while its server is unreachable.
    fn healthy(&self) -> bool {
        true
    }
    /// Checked once before the first request is served: a store that can
    /// tell now that it will never serve (PostgreSQL rows sealed under a
    /// key not configured here) fails the start with the reason. A server
    /// that is only unreachable is not an error here (it may come later).
    fn check_at_start(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// One store serving all three callers: what the shared state holds.
pub trait SessionStore: SessionGate + IssuedSessions + SessionAdmin {}

impl<T: SessionGate + IssuedSessions + SessionAdmin> SessionStore for T {}
