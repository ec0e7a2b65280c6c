//! The one support module of the integration tests; every test module
//! imports from here (`use crate::support::*`).
//!
//! - [`server`]: the real server in process on 127.0.0.1:0, with its config
//!   in a temp dir, env keys in a `MapEnv` and an injected clock.
//! - [`sign`]: v1 and v2 signed headers, made with the crate's own signers.
//! - [`http`]: the loopback client, a refusal's status and `reason`, one
//!   Prometheus sample.
//! - [`collector`]: a scripted stand-in collector.
//! - [`faults`]: a fault-injecting TCP proxy (pause, delay, black hole,
//!   reset, close mid-response) in front of a real server.
//! - [`otlp`]: OTLP payloads and the wall clock.
//! - [`grpc`]: an OTLP/gRPC client (tonic) and what a gRPC refusal says.
//! - [`tools`]: the external tools of the end-to-end tests, or a loud skip.
//! - [`proc`]: work dirs, child processes, the telegate command.
//! - [`ports`]: loopback ports for children, safe beside in-process servers.
//! - [`stack`]: launchers for the real binaries (telegate, rotel, Traefik,
//!   Prometheus, Redis); [`postgres`]: a PostgreSQL cluster of its own;
//!   [`proxies`]: nginx and Caddy in front of telegate; [`sentinel`]: a
//!   Redis master, replica and sentinel.
//! - [`wait`]: bounded polls, in count and time.

pub mod collector;
pub mod faults;
pub mod grpc;
pub mod http;
pub mod otlp;
pub mod ports;
pub mod postgres;
pub mod proc;
pub mod proxies;
pub mod sentinel;
pub mod server;
pub mod sign;
pub mod stack;
pub mod tools;
pub mod wait;

pub use http::*;
pub use ports::*;
pub use proc::*;
pub use server::*;
pub use sign::*;
pub use tools::*;
pub use wait::*;
