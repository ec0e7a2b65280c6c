//! What the admission asks of the session store, on the request path: the
//! signed hot path (record a verified request, is this session revoked,
//! static-header sightings) and the check of a presented session token.
//! The pipeline defines it and the stores in [`crate::session`] implement
//! it, so the pipeline never depends on a store.
//!
//! `observe` and `is_revoked` are synchronous and local, so an HMAC-signed
//! decision never waits on a network round trip (a remote store writes
//! behind in batches); a token check may ask a remote store (one round trip)
//! and may fail with [`StoreError`]. Tokens reach a store only as
//! [`TokenHash`]es.

use std::net::IpAddr;
use std::time::Duration;

use http::HeaderMap;

use crate::protocol::grants::Grants;
use crate::protocol::headers::{header_str, truncate};
use crate::protocol::token::TokenHash;

/// Longest User-Agent a store keeps, in bytes. Every other string a session
/// keeps is bounded where it enters (the session id and client version by
/// the header parse, key ids by the config, `user_id` and `metadata` by the
/// API); the User-Agent is the one free-form header, and a 15 KB one per
/// session would multiply `max_sessions` by 15 KB.
pub const MAX_USER_AGENT_BYTES: usize = 256;

/// The request's User-Agent as every store keeps it: cut to
/// [`MAX_USER_AGENT_BYTES`] on a character boundary (`None`: absent or not
/// visible ASCII). The one reading of the header for [`Sighting`],
/// [`TokenUse`] and an issued session.
pub fn user_agent(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, &http::header::USER_AGENT).map(|ua| truncate(ua, MAX_USER_AGENT_BYTES))
}

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// An answer that is already there, as a store's future: the memory store
/// answers every call at once.
pub fn answered<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

/// The store could not answer (a remote store is down): 503 `store_unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session store unavailable: {0}")]
pub struct StoreError(pub String);

pub trait SessionGate: Send + Sync {
    /// Records a verified request (true: a new session), or refuses its session.
    fn observe(&self, sighting: &Sighting<'_>) -> Result<bool, Refusal>;
    fn is_revoked(&self, session_id: &str, now: i64) -> bool;

    /// `/auth` with a token: which session it opens; a live one is touched
    /// (idle timer, request count, client). The memory store answers at
    /// once; a remote one asks its server (one round trip).
    fn authenticate<'a>(
        &'a self,
        token: &'a TokenHash,
        seen: &'a TokenUse<'a>,
    ) -> BoxFuture<'a, Result<TokenCheck, StoreError>>;

    /// Static-header sessions (hot path, local): records the first use of a
    /// header set verified inside the window, with its session. A later call
    /// for the same set keeps the first sighting (and its address). Kept at
    /// most `max_age`. The default keeps nothing: a store without it leaves
    /// the mode strict.
    fn remember_static(&self, set: &HeaderSet<'_>, client_ip: IpAddr, now: i64, max_age: Duration) {
        let _ = (set, client_ip, now, max_age);
    }

    /// The first sighting of a header set, while its session is still
    /// tracked (live) and not revoked; `None` otherwise. Async because a
    /// shared store may have to ask its server (only on the rare
    /// stale-timestamp path); the memory store answers at once.
    fn static_sighting<'a>(
        &'a self,
        set: &'a HeaderSet<'a>,
        now: i64,
    ) -> BoxFuture<'a, Option<StaticSighting>> {
        let _ = (set, now);
        answered(None)
    }
}

/// What one verified request tells about its session.
#[derive(Debug, Clone, Copy)]
pub struct Sighting<'a> {
    pub session_id: &'a str,
    pub client_ip: IpAddr,
    /// At most [`MAX_USER_AGENT_BYTES`] (see [`user_agent`]).
    pub user_agent: Option<&'a str>,
    pub client_version: Option<&'a str>,
    pub key_id: &'a str,
    pub bytes: u64,
    pub now: i64,
}

/// One v1 header set as a client signed it once (static-header sessions):
/// what identifies it, never stored in the clear (see [`HeaderSet::digest`]).
#[derive(Debug, Clone, Copy)]
pub struct HeaderSet<'a> {
    pub key_id: &'a str,
    pub session_id: &'a str,
    /// The path the signature covers (the detected one on `/`).
    pub signed_path: &'a str,
    pub timestamp: i64,
    pub signature: &'a [u8; 32],
}

impl HeaderSet<'_> {
    /// SHA-256 over the fields, length-prefixed: the store's key for the set.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for field in [self.key_id, self.session_id, self.signed_path] {
            hash.update((field.len() as u64).to_be_bytes());
            hash.update(field.as_bytes());
        }
        hash.update(self.timestamp.to_be_bytes());
        hash.update(self.signature);
        hash.finalize().into()
    }
}

/// The first use of a header set while its timestamp was inside the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticSighting {
    pub client_ip: IpAddr,
    pub first_seen: i64,
}

/// Why a verified request's session is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Revoked,
    TooManyForIp,
}

/// The session a token opens: what `/auth` hands upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub session_id: String,
    pub user_id: Option<String>,
    /// What the admin granted it: the policy's `require_*` check these,
    /// and `/auth` hands them upstream.
    pub grants: Grants,
}

/// Which session a token belongs to, and in what state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Live(TokenOwner),
    Expired(TokenOwner),
    /// Deleted by an operator, its id revoked.
    Revoked {
        session_id: String,
    },
    Unknown,
}

/// A request that presented a token to `/auth`.
#[derive(Debug, Clone, Copy)]
pub struct TokenUse<'a> {
    pub client_ip: IpAddr,
    /// At most [`MAX_USER_AGENT_BYTES`] (see [`user_agent`]).
    pub user_agent: Option<&'a str>,
    pub now: i64,
}
