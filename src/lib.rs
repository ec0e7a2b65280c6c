//! telegate: an auth gateway in front of an OpenTelemetry collector.
//!
//! The modules are listed in the direction of their dependencies: each one
//! uses only those above it. `docs/architecture.md` follows each route
//! through them.
//!
//! Leaves:
//! - [`clock`]: the injected wall clock (`now` is read once per request).
//! - [`env`]: environment variables, read through a trait tests can fill.
//! - [`ip`]: address forms and the trusted proxy set.
//! - [`prehashed`]: maps keyed by values that are already keyed hashes.
//! - [`secret`]: a secret that cannot be printed.
//! - [`secret_file`]: a secret read from a file (bounded, regular), and `NAME_FILE` variables.
//!
//! The client protocol, pure:
//! - [`protocol`]: `X-KMS-*` parsing (v1, v2), canonical messages, the
//!   window, the keyring, verification, tokens, signals, every [`protocol::reject::Reject`].
//!
//! Settings:
//! - [`config`]: TOML + env overrides, validated once into typed settings.
//!
//! The pipeline:
//! - [`pipeline`]: policy, client IP, rate limit, signature, body, session,
//!   composed once ([`pipeline::admission::admit`]) and observed once
//!   ([`pipeline::observe`]); metrics and the status board.
//!
//! What comes after admission:
//! - [`session`]: the session stores (memory, Redis) and their conformance suite.
//! - [`ingest`]: replay cache, prepare per mode (content policy, series guard),
//!   forward to the collector, partial success.
//!
//! HTTP:
//! - [`http`]: server, router, one handler module per route family, the one
//!   error renderer, the shared state.
//!
//! Start-up:
//! - [`reload`]: the keyring reloaded on SIGHUP and on a poll.
//! - [`logging`]: tracing setup.
//! - [`startup`]: what `serve` does before the accept loop.
//! - [`cli`]: the `telegate` command; [`healthcheck`]: its container probe.
//! - `fuzzing` (hidden): the fuzz harnesses, shared by `fuzz/` and the
//!   corpus replay test.
#![forbid(unsafe_code)]

pub mod clock;
pub mod env;
pub mod ip;
pub mod prehashed;
pub mod secret;
pub mod secret_file;

pub mod protocol;

pub mod config;

pub mod pipeline;

pub mod ingest;
pub mod session;

pub mod http;

pub mod cli;
#[doc(hidden)]
pub mod fuzzing;
pub mod healthcheck;
pub mod logging;
pub mod reload;
pub mod startup;

#[cfg(test)]
mod test_support;
