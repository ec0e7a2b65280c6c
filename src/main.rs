//! `telegate`: parse the CLI, load config, set up tracing, bind, serve.

use std::process::ExitCode;

use clap::Parser;
use telegate::cli::{self, Cli, Command, EXIT_CONFIG};
use telegate::config::{self, ProcessEnv};
use telegate::logging;
use telegate::startup::{self, StartError};

fn main() -> ExitCode {
    tune_allocator();
    match Cli::parse().command {
        Command::Serve { config } => serve(cli::config_source(config)),
        Command::CheckConfig { config } => {
            cli::check_config(&cli::config_source(config), &ProcessEnv)
        }
        Command::Keygen { purpose } => print(cli::keygen_for(purpose)),
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

/// glibc's malloc raises its mmap threshold each time a large block is
/// freed (up to 32 MiB), so after the first burst of big bodies or
/// inflations those are carved from per-thread arenas instead: growing one
/// then copies it, and what is freed stays in the arena, so the process
/// keeps its peak. Measured with 100 concurrent gzip bombs
/// (`scripts/bench-gzip-bombs`): see docs/benchmarks.md. Fixing the
/// threshold keeps every block of 128 KiB and more in its own mapping
/// (grown by mremap, given back on free), and fewer arenas bound what
/// small blocks can strand. No allocator dependency is needed for that.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
        const ARENA_MAX: libc::c_int = 4;
        // SAFETY: mallopt only sets allocator parameters; it is called
        // first thing in main, before any thread exists, and a failure
        // (return 0) just leaves glibc's defaults in place.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
        }
    }
}
