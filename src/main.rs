//! `telegate`: parse the CLI, load config, set up tracing, bind, serve.

use std::process::ExitCode;

use clap::Parser;
use telegate::cli::{self, Cli, Command, EXIT_CONFIG};
use telegate::config::{self, ProcessEnv};
use telegate::logging;
use telegate::startup::{self, StartError};

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
    match runtime.block_on(startup::serve(settings, source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(message)) => {
            tracing::error!(error = %message, "invalid configuration");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(StartError::Other(err)) => {
            tracing::error!(error = format!("{err:#}"), "cannot start");
            ExitCode::FAILURE
        }
    }
}
