//! What `telegate serve` does between a valid config and the accept loop:
//! metrics, the keyring and its reloader, the admin token, the session
//! store, the listener. Errors say which step failed and whether it is the
//! operator's configuration (exit 64) or the machine (exit 1).

use std::sync::Arc;

use anyhow::Context;

use crate::cli;
use crate::clock;
use crate::config::hazards::{hazards, Severity};
use crate::config::{ConfigSource, Settings, StoreBackend};
use crate::env::ProcessEnv;
use crate::http::state::AppState;
use crate::http::{listener, server};
use crate::pipeline::metrics::Metrics;
use crate::protocol::keyring::{Keyring, SharedKeyring};
use crate::reload::Reloader;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Exit 64: the configuration cannot work (unreadable admin token,
    /// unusable session store settings).
    #[error("{0}")]
    Config(String),
    /// Exit 1: the machine said no (cannot bind, cannot register metrics,
    /// cannot open the embedded session store's file).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Serves until SIGTERM/SIGINT, then drains within the grace period.
pub async fn serve(settings: Settings, source: ConfigSource) -> Result<(), StartError> {
    let metrics = Metrics::new(&settings.metrics_namespace).context("registering metrics")?;
    let admin_token = cli::read_admin_token(&settings).map_err(StartError::Config)?;
    let keyring = SharedKeyring::new(Keyring::default());
    let mut reloader = Reloader::new(
        source,
        Arc::new(ProcessEnv),
        keyring.clone(),
        metrics.clone(),
    );
    reloader.reload(true);
    for hazard in hazards(&settings, &keyring.current(), (clock::system_clock())()) {
        match hazard.severity {
            Severity::Warning => tracing::warn!(key = %hazard.key, "{}", hazard.message),
            Severity::Fatal => tracing::error!(key = %hazard.key, "{}", hazard.message),
        }
    }
    let _reload_task = reloader.spawn(settings.reload_poll);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let bound = listener
        .local_addr()
        .map_or_else(|_| settings.listen.to_string(), |a| a.to_string());
    let ops_listener = match settings.ops_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding ops_listen {addr}"))?,
        ),
        None => None,
    };
    let grpc_listener = match settings.ingest.grpc_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding ingest.grpc_listen {addr}"))?,
        ),
        None => None,
    };
    let grpc_bound = grpc_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.to_string());
    let ops_bound = ops_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.to_string());
    // The embedded store's settings were checked with the config: a file it
    // cannot open or use is the machine's problem (exit 1), not the config's.
    let on_disk = matches!(settings.sessions.backend, StoreBackend::Embedded(_));
    let app = AppState::new(
        settings,
        keyring,
        metrics,
        admin_token,
        clock::system_clock(),
    )
    .map_err(|err| match on_disk {
        true => StartError::Other(anyhow::anyhow!("session store: {err}")),
        false => StartError::Config(format!("session store: {err}")),
    })?
    .with_spool(crate::ingest::spool::system_ms())
    .map_err(|err| StartError::Other(anyhow::anyhow!(err)))?;
    // Before serving: a store that will never serve (rows sealed under a
    // key not configured here) ends the start with the reason, as the
    // embedded store's open already does.
    app.sessions()
        .check_at_start()
        .await
        .map_err(|err| StartError::Other(anyhow::anyhow!("session store: {err}")))?;
    tracing::info!(listen = %bound, ops_listen = ops_bound.as_deref(), grpc_listen = grpc_bound.as_deref(), version = env!("CARGO_PKG_VERSION"), "telegate serving");
    let _purge_task = app.spawn_rate_limit_purger();
    app.load_bans().await;
    let _ban_sync_task = app.spawn_ban_sync();
    listener::run(
        listener,
        ops_listener,
        grpc_listener,
        app,
        server::shutdown_signal(),
    )
    .await;
    Ok(())
}
