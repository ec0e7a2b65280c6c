//! The request pipeline: the stages every signed or token-bearing request
//! passes, composed once ([`admission::admit`]) and observed once
//! ([`observe`]). Depends on the protocol and the leaves only; the session
//! store is reached through the trait it defines ([`session_gate`]).
//!
//! - [`policy`]: which policy a route asks for.
//! - [`client_ip`]: who is asking: the socket peer, or `X-Forwarded-For` from a trusted proxy.
//! - [`rate_limit`]: per-client-IP GCRA limiter (governor), with idle keys purged.
//! - [`signature`]: the credential stages for a signature: parse, build policy, window, verify, static headers.
//! - [`body`]: the body stage: capped, within a deadline, after the credential.
//! - [`budget`]: the process-wide budget every body and inflation holds bytes of.
//! - [`access`]: a policy's path rules (excluded paths) and the roles and permissions it requires.
//! - [`session`]: the session stage: a token's session, or the signed session recorded.
//! - [`abuse`]: quotas, escalating bans, key states, client-version and network filters (stages of admission).
//! - [`admission`]: the one function that runs the stages in their one order.
//! - [`observe`]: the one observation step: metrics, the decision log line, the status board.
//! - [`session_gate`]: what the stages ask of a session store.
//! - [`metrics`]: the Prometheus registry and every series.
//! - [`metric_names`]: the naming scheme (`_total`, or the original's names) and the build info.
//! - [`board`]: the status board the status pages read.

pub mod abuse;
pub mod access;
pub mod admission;
pub mod board;
pub mod body;
pub mod budget;
pub mod client_ip;
pub mod ingest_metrics;
pub mod metric_names;
pub mod metrics;
pub mod observe;
pub mod policy;
pub mod rate_limit;
pub mod session;
pub mod session_gate;
pub mod signature;

use crate::config::Settings;
use crate::protocol::keyring::SharedKeyring;
use abuse::Abuse;
use budget::MemoryBudget;
use rate_limit::RateLimits;
use session_gate::SessionGate;

/// What the stages read, and nothing else: borrowed from the shared state
/// for one request.
#[derive(Clone, Copy)]
pub struct Stages<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) keyring: &'a SharedKeyring,
    pub(crate) limits: &'a RateLimits,
    pub(crate) abuse: &'a Abuse,
    pub(crate) sessions: &'a dyn SessionGate,
    pub(crate) budget: &'a MemoryBudget,
}
