//! telegate's integration tests, one module per area, in one test binary
//! (`cargo test --test it`): one link instead of one per file, and the
//! helpers in [`support`] compiled once.
//!
//! The modules share one process, so none of them may touch process-wide
//! state: no environment or current-directory changes (env overrides go
//! through `MapEnv`, children get their own `Command::env`), no global
//! subscriber, no fixed port (in-process servers bind 127.0.0.1:0, children
//! get [`support::free_port`]).

mod support;

mod abuse_http;
mod auth_http;
mod body_budget;
mod cli;
mod client_compat;
mod config_hazards;
mod content_http;
mod deploy_files;
mod deploy_metrics;
mod docs;
mod e2e_auth_headers;
mod e2e_content;
mod e2e_faults;
mod e2e_grpc;
mod e2e_ingest;
mod e2e_observe;
mod e2e_postgres;
mod e2e_proxies;
mod e2e_redis;
mod e2e_redis_abuse;
mod e2e_redis_series;
mod e2e_roles;
mod e2e_sentinel;
mod e2e_shipped_client;
mod e2e_spool;
mod e2e_stack;
mod e2e_store_auth;
mod e2e_traefik;
mod fault_proxy;
mod fuzz_corpus;
mod grpc_ingest;
mod healthcheck_cli;
mod ingest_http;
mod layers;
mod leak_signals;
mod metric_naming;
mod nonce_binding;
mod ops_listener;
mod roles_http;
mod secret_files;
mod server;
mod sessions_http;
mod signed_sessions_http;
mod spool_http;
mod status_page;
mod store_restart;
mod store_sealed;
mod store_sealed_pg;
mod tokens_http;
