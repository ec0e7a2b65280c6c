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
//! [`memory`] is the embedded store (moka, per-entry expiry, LRU so a new
//! session is never silently refused); [`api`] serves `/sessions`.

pub mod api;
#[cfg(test)]
pub(crate) mod conformance;
pub mod memory;
pub mod petname;

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

pub use memory::MemoryStore;

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

/// How much of a client's address is kept (seed 004: store no more than needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreIp {
    Full,
    /// IPv4 /24, IPv6 /48.
    Truncated,
    None,
}

impl StoreIp {
    pub fn apply(self, ip: IpAddr) -> Option<String> {
        match self {
            StoreIp::Full => Some(ip.to_string()),
            StoreIp::None => None,
            StoreIp::Truncated => {
                let prefix = if ip.is_ipv4() { 24 } else { 48 };
                ipnet::IpNet::new(ip, prefix)
                    .ok()
                    .map(|net| net.trunc().to_string())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// A signed session is forgotten after this long without a request.
    pub idle: Duration,
    /// Live sessions one client address may hold.
    pub max_per_ip: usize,
    /// Most sessions held; the least recently used goes first.
    pub max_sessions: u64,
    /// How long a revocation lasts.
    pub revocation_ttl: Duration,
    /// Expired records are kept this long so reads can say 410, not 404.
    pub expired_retention: Duration,
    pub store_ip: StoreIp,
}

/// One record, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    pub session_id: String,
    pub kind: SessionKind,
    pub pet_name: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub expires_at: i64,
    pub requests: u64,
    pub bytes: u64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub client_version: Option<String>,
    pub key_id: Option<String>,
    /// Set when an operator revoked it; a revoked session is not active.
    pub revoked_at: Option<i64>,
}

/// What one verified request tells about its session.
#[derive(Debug, Clone, Copy)]
pub struct Sighting<'a> {
    pub session_id: &'a str,
    pub client_ip: IpAddr,
    pub user_agent: Option<&'a str>,
    pub client_version: Option<&'a str>,
    pub key_id: &'a str,
    pub bytes: u64,
    pub now: i64,
}

/// Why a verified request's session is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Revoked,
    TooManyForIp,
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
    /// `Some(true)`: live only; `Some(false)`: expired only.
    pub active: Option<bool>,
    pub limit: usize,
    /// List ids strictly after this one (ids are listed in order).
    pub cursor: Option<String>,
}

/// The store could not answer (a remote store is down): 503 `store_unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session store unavailable: {0}")]
pub struct StoreError(pub String);

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The store behind sessions. The hot-path calls (`observe`, `is_revoked`)
/// are synchronous and local, so `/auth` never waits on a network round
/// trip; a remote store writes them behind in batches. The API calls are
/// async and may fail with [`StoreError`].
pub trait SessionStore: Send + Sync {
    /// Records a verified request (true: a new session), or refuses its session.
    fn observe(&self, sighting: &Sighting<'_>) -> Result<bool, Refusal>;
    fn is_revoked(&self, session_id: &str, now: i64) -> bool;
    fn lookup<'a>(
        &'a self,
        session_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Lookup, StoreError>>;
    /// Revokes a known session; `Ok(false)` when the id is unknown.
    fn revoke<'a>(
        &'a self,
        session_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn list<'a>(
        &'a self,
        filter: &'a ListFilter,
        now: i64,
    ) -> BoxFuture<'a, Result<Page, StoreError>>;
    fn stats(&self, now: i64) -> BoxFuture<'_, Result<Stats, StoreError>>;
    /// Live sessions by kind, for the `sessions_active` gauge.
    fn active(&self, now: i64) -> Vec<(SessionKind, u64)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_privacy_levels() {
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:1:2:3::9".parse().unwrap();
        assert_eq!(StoreIp::Full.apply(v4).as_deref(), Some("203.0.113.77"));
        assert_eq!(
            StoreIp::Truncated.apply(v4).as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            StoreIp::Truncated.apply(v6).as_deref(),
            Some("2001:db8:1::/48")
        );
        assert_eq!(StoreIp::None.apply(v4), None);
    }
}
