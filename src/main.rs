//! `telegate`: parse the CLI, load config, set up tracing, bind, serve.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use telegate::cli::{self, Cli, Command, EXIT_CONFIG};
use telegate::config::{self, ProcessEnv};
use telegate::keyring::{reload::Reloader, Keyring, SharedKeyring};
use telegate::{logging, metrics::Metrics, server, state};

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => serve(cli::config_source(config)),
        Command::CheckConfig { config } => {
            cli::check_config(&cli::config_source(config), &ProcessEnv)
        }
        Command::Keygen => print(cli::keygen()),
        Command::Healthcheck {
            config,
            addr,
            timeout_secs,
        } => telegate::healthcheck::run(
            &cli::config_source(config),
            &ProcessEnv,
            addr,
            std::time::Duration::from_secs(timeout_secs),
        ),
        Command::Sign {
            secret_file,
            path,
            method,
            session,
            timestamp,
            client_version,
            v2,
            body,
            key_id,
            nonce,
        } => print(cli::sign(
            &secret_file,
            &path,
            &method,
            session,
            timestamp,
            &client_version,
            cli::V2Options::from_args(v2, body, key_id, nonce),
        )),
    }
}

fn print(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("telegate: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(source: config::ConfigSource) -> ExitCode {
    let settings = match config::load(&source, &ProcessEnv) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!(
                "telegate: invalid configuration ({}): {err}",
                source.describe()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let _log_guard = logging::init(settings.log_format, &settings.log_level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let metrics = match Metrics::new(&settings.metrics_namespace) {
            Ok(metrics) => metrics,
            Err(err) => {
                tracing::error!(error = %err, "cannot register metrics");
                return ExitCode::FAILURE;
            }
        };
        let keyring = SharedKeyring::new(Keyring::default());
        let mut reloader = Reloader::new(
            source,
            Arc::new(ProcessEnv),
            keyring.clone(),
            metrics.clone(),
        );
        reloader.reload(true);
        let _reload_task = reloader.spawn(settings.reload_poll);
        let listener = match tokio::net::TcpListener::bind(settings.listen).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::error!(listen = %settings.listen, error = %err, "cannot bind");
                return ExitCode::FAILURE;
            }
        };
        let bound = listener
            .local_addr()
            .map_or_else(|_| settings.listen.to_string(), |a| a.to_string());
        tracing::info!(listen = %bound, version = env!("CARGO_PKG_VERSION"), "telegate serving");
        let admin_token = match cli::read_admin_token(&settings) {
            Ok(token) => token,
            Err(message) => {
                tracing::error!(error = %message, "cannot read the admin token");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let app = match state::AppState::new(
            settings,
            keyring,
            metrics,
            admin_token,
            state::system_clock(),
        ) {
            Ok(app) => app,
            Err(err) => {
                tracing::error!(error = %err, "cannot set up the session store");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let _purge_task = app.spawn_rate_limit_purger();
        server::run(listener, app, server::shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}
