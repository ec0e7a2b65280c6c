//! The http layer: hyper in, responses out. Domain modules hold no
//! handlers; every handler here admits through the one pipeline and renders
//! refusals through the one renderer.
//!
//! - [`server`]: accept loop, per-connection hyper service, graceful shutdown.
//! - [`conn`]: per-connection bounds: connections per address, the idle timeout.
//! - [`listener`]: `ops_listen`: which routes the main and the operations listener answer.
//! - [`router`]: maps method and path to a handler.
//! - [`auth`]: `/auth` (and `/` with `X-Forwarded-Uri`): Traefik's forwardAuth.
//! - [`ingest`]: `POST /v1/traces|metrics|logs` and `POST /`: OTLP ingest.
//! - [`grpc`], [`grpc_body`]: `ingest.grpc_listen`: the OTLP/gRPC Export methods, through [`ingest`].
//! - [`sessions`]: `/sessions` and `/users/{user}/sessions`: the session API.
//! - [`spool`]: `GET /spool/dead-letters` (admin, through the session API's gate).
//! - [`bans`]: `GET /bans`, `DELETE /bans/{subject}`: the escalating bans, for an admin.
//! - [`status`]: the `/` and `/waiting` HTML status pages.
//! - [`ops`]: `/health`, `/ready`, `/metrics`.
//! - [`error`]: the one error renderer (JSON or `google.rpc.Status`).
//! - [`respond`]: JSON bodies and response builders.
//! - [`state`]: the shared handle every request gets.

pub mod auth;
pub mod bans;
pub mod conn;
pub mod error;
pub mod grpc;
pub mod grpc_body;
pub mod ingest;
pub mod listener;
pub mod ops;
pub mod respond;
pub mod router;
pub mod server;
pub mod sessions;
pub mod spool;
pub mod state;
pub mod status;
