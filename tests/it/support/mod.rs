//! The one support module of the integration tests.
//!
//! - [`server`]: the real server in process on 127.0.0.1:0 with an injected
//!   clock, signed request headers, Prometheus samples.
//! - [`collector`]: a scripted stand-in collector.
//! - [`e2e`]: tools, work dirs, free ports, child processes, bounded waits.
//! - [`stack`]: launchers for the real binaries (telegate, rotel, Traefik,
//!   Prometheus, Redis).
//! - [`otlp`]: OTLP payloads and the wall clock.

pub mod collector;
pub mod e2e;
pub mod otlp;
pub mod server;
pub mod stack;

pub use e2e::*;
pub use server::*;
