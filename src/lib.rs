//! telegate: an auth gateway in front of an OpenTelemetry collector.
//!
//! The modules follow a request through the pipeline:
//!
//! - [`server`]: accept loop, per-connection hyper service, graceful shutdown.
//! - [`router`]: maps method and path to a handler (`/auth`, `/health`, ...).
//! - [`client_ip`]: who is asking: the socket peer, or `X-Forwarded-For` from a trusted proxy.
//! - [`rate_limit`]: per-client-IP GCRA limiter (governor), with idle keys purged.
//! - [`signed_request`]: parses the `X-KMS-*` headers into a typed request.
//! - [`window`]: the timestamp window check, in both directions.
//! - [`canonical`]: the canonical v1 message and its HMAC-SHA256.
//! - [`signature_v2`]: the body-bound v2 headers, message and key-id verification.
//! - [`verify`]: checks a signature against every live key of the ring.
//! - [`session`]: records each verified session, issues and checks session tokens; refuses revoked ones and address floods.
//! - [`auth`]: composes the stages into one forwardAuth decision.
//! - [`ingest`]: direct OTLP/HTTP routes: the same stages, then the body is checked, decoded and forwarded.
//! - [`reject`]: every rejection reason, and the one place that maps it to HTTP.
//! - [`respond`]: JSON bodies and response builders.
//! - [`status`]: the `/` and `/waiting` HTML status pages (live figures, templates).
//!
//! Around the pipeline: [`config`] (TOML + env overrides, validated once),
//! [`env`] (the environment, read through a trait tests fill), [`ip`] (address
//! forms and the trusted proxy set),
//! [`keyring`] (rotating secrets, atomic reload), [`secret`] (a secret that cannot
//! be printed), [`metrics`] (Prometheus registry), [`state`] (the shared handle),
//! [`logging`] (tracing setup), [`startup`] (what `serve` does before the
//! accept loop), [`cli`] (the `telegate` command) and [`healthcheck`] (its
//! container health probe).
#![forbid(unsafe_code)]

pub mod auth;
pub mod canonical;
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod env;
pub mod healthcheck;
pub mod ingest;
pub mod ip;
pub mod keyring;
pub mod logging;
pub mod metrics;
pub mod rate_limit;
pub mod reject;
pub mod respond;
pub mod router;
pub mod secret;
pub mod server;
pub mod session;
pub mod signature_v2;
pub mod signed_request;
pub mod startup;
pub mod state;
pub mod status;
#[cfg(test)]
mod test_support;
pub mod verify;
pub mod window;
