//! The `telegate` command: `serve`, `sign`, `keygen`, `check-config`, `healthcheck`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::hazards::{hazards, Hazard, Severity};
use crate::config::{self, ConfigError, ConfigSource};
use crate::env::Env;
use crate::protocol::canonical::{self, MessageV1};
use crate::protocol::keyring::Keyring;
use crate::protocol::signature_v2::{self, MessageV2};
use crate::secret::Secret;

/// Exit status for a configuration error (EX_USAGE from sysexits.h).
pub const EXIT_CONFIG: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "telegate",
    version,
    about = "Auth gateway for an OpenTelemetry collector"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (default: the embedded config/telegate.toml).
        #[arg(long, env = "TELEGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the signed headers for one request, one per line (curl -H @file).
    Sign {
        #[arg(long)]
        secret_file: PathBuf,
        /// The path being signed, e.g. /v1/metrics (a query is ignored, as the gateway does).
        #[arg(long)]
        path: String,
        #[arg(long, default_value = "POST")]
        method: String,
        /// Session id (default: a fresh random one).
        #[arg(long)]
        session: Option<String>,
        /// Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        #[arg(long, default_value = concat!("telegate-sign/", env!("CARGO_PKG_VERSION")))]
        client_version: String,
        /// Print body-bound v2 headers (needs --body and --key-id).
        #[arg(long, requires_all = ["body", "key_id"])]
        v2: bool,
        /// v2: the file holding the body exactly as it will be sent (after gzip).
        #[arg(long)]
        body: Option<PathBuf>,
        /// v2: the id of the key in the gateway's ring (`auth.keys[].id`).
        #[arg(long)]
        key_id: Option<String>,
        /// v2: the nonce, hex, at least 32 characters (default: 128 random bits).
        #[arg(long)]
        nonce: Option<String>,
    },
    /// Print a new key: a signing secret (64 hex characters from the OS
    /// RNG), or with `--purpose storage` a `[sessions.encryption]` key.
    Keygen {
        #[arg(long, value_enum, default_value_t = KeyPurpose::Signing)]
        purpose: KeyPurpose,
    },
    /// Validate a config (and read its keys) without serving.
    CheckConfig {
        #[arg(long, env = "TELEGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// GET /health of the running gateway (the container HEALTHCHECK): exit 0 or 1.
    Healthcheck {
        /// Config whose `listen` is asked (0.0.0.0 is asked on 127.0.0.1).
        #[arg(long, env = "TELEGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Ask this address instead of the config's `listen`.
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
}

/// What `telegate keygen` makes a key for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyPurpose {
    /// An `auth.keys[]` signing secret.
    Signing,
    /// A `[sessions.encryption]` storage key file's text.
    Storage,
}

pub fn config_source(path: Option<PathBuf>) -> ConfigSource {
    path.map(ConfigSource::File)
        .unwrap_or(ConfigSource::Embedded)
}

/// What `telegate sign --v2` adds.
#[derive(Debug, Clone)]
pub struct V2Options {
    pub body_file: PathBuf,
    pub key_id: String,
    pub nonce: Option<String>,
}

impl V2Options {
    /// From `--v2 --body --key-id [--nonce]` (clap requires the first three together).
    pub fn from_args(
        v2: bool,
        body: Option<PathBuf>,
        key_id: Option<String>,
        nonce: Option<String>,
    ) -> Option<V2Options> {
        match (v2, body, key_id) {
            (true, Some(body_file), Some(key_id)) => Some(V2Options {
                body_file,
                key_id,
                nonce,
            }),
            _ => None,
        }
    }
}

/// `telegate sign`: the four v1 headers, or with `v2` the eight v2 headers.
pub fn sign(
    secret_file: &std::path::Path,
    path: &str,
    method: &str,
    session: Option<String>,
    timestamp: Option<i64>,
    client_version: &str,
    v2: Option<V2Options>,
) -> Result<String, String> {
    let text = std::fs::read_to_string(secret_file)
        .map_err(|err| format!("cannot read {}: {err}", secret_file.display()))?;
    let secret =
        Secret::from_text(&text).ok_or_else(|| format!("{} is empty", secret_file.display()))?;
    let session = match session {
        Some(session) => session,
        None => random_session_id()?,
    };
    let timestamp = timestamp.unwrap_or_else(|| (crate::clock::system_clock())());
    let path = crate::protocol::signed_request::signed_path(path);
    let Some(v2) = v2 else {
        let message = MessageV1 {
            method,
            path,
            timestamp,
            session_id: &session,
        };
        let signature = canonical::sign_v1(&secret, &message);
        return Ok(format!(
            "X-KMS-Signature: {signature}\nX-KMS-Timestamp: {timestamp}\nX-KMS-Session-ID: {session}\nX-KMS-Client-Version: {client_version}\n"
        ));
    };
    let body = std::fs::read(&v2.body_file)
        .map_err(|err| format!("cannot read {}: {err}", v2.body_file.display()))?;
    let nonce = match v2.nonce {
        Some(nonce) => nonce,
        None => {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).map_err(|err| format!("OS RNG failed: {err}"))?;
            hex::encode(bytes)
        }
    };
    let content_sha256 = signature_v2::content_sha256(&body);
    let message = MessageV2 {
        method,
        path,
        timestamp,
        session_id: &session,
        nonce: &nonce,
        key_id: &v2.key_id,
        content_sha256_hex: &content_sha256,
    };
    let signature = signature_v2::sign(&secret, &message);
    Ok(format!(
        "X-KMS-Signature-Version: 2\nX-KMS-Key-Id: {key_id}\nX-KMS-Nonce: {nonce}\nX-KMS-Content-SHA256: {content_sha256}\nX-KMS-Signature: {signature}\nX-KMS-Timestamp: {timestamp}\nX-KMS-Session-ID: {session}\nX-KMS-Client-Version: {client_version}\n",
        key_id = v2.key_id
    ))
}

/// `telegate keygen [--purpose ..]`.
pub fn keygen_for(purpose: KeyPurpose) -> Result<String, String> {
    match purpose {
        KeyPurpose::Signing => keygen(),
        KeyPurpose::Storage => crate::session::seal::new_key_text(),
    }
}

/// 32 bytes from the OS RNG as 64 lowercase hex characters.
pub fn keygen() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|err| format!("OS RNG failed: {err}"))?;
    Ok(hex::encode(bytes))
}

/// A lowercase GUID-shaped id, like the shipped client's.
fn random_session_id() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|err| format!("OS RNG failed: {err}"))?;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The admin token from `admin.token_file` (trimmed text), if one is configured.
pub fn read_admin_token(settings: &config::Settings) -> Result<Option<Secret>, String> {
    let Some(path) = &settings.admin_token_file else {
        return Ok(None);
    };
    let text = crate::secret_file::read_text(path)
        .map_err(|err| format!("admin.token_file {}: {err}", path.display()))?;
    let token = Secret::from_text(&text)
        .ok_or_else(|| format!("admin.token_file {} is empty", path.display()))?;
    if token.expose().len() < 16 {
        return Err(format!(
            "admin.token_file {}: the token must be at least 16 characters",
            path.display()
        ));
    }
    Ok(Some(token))
}

/// `telegate check-config`: validates, reads every key, prints the
/// effective settings (no secret among them).
pub fn check_config(source: &ConfigSource, env: &dyn Env) -> ExitCode {
    match check(source, env) {
        Ok((summary, hazards)) => {
            println!("{summary}");
            for hazard in &hazards {
                eprintln!("telegate: {hazard}");
            }
            if hazards.iter().any(|h| h.severity == Severity::Fatal) {
                eprintln!("telegate: the gateway could not serve with this configuration");
                return ExitCode::from(EXIT_CONFIG);
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("telegate: invalid configuration: {message}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn check(source: &ConfigSource, env: &dyn Env) -> Result<(String, Vec<Hazard>), String> {
    let settings = config::load(source, env).map_err(|e: ConfigError| e.to_string())?;
    let ring = Keyring::load(&settings.keys, env).map_err(|e| e.to_string())?;
    read_admin_token(&settings)?;
    if let Some(encryption) = config::EncryptionSettings::of(&settings.sessions.backend) {
        crate::session::seal::Sealer::load(encryption).map_err(|err| err.0)?;
    }
    let mut summary = format!(
        "config OK: {}\n# Effective settings, after defaults and overrides. Keys show their id and\n# source, never a secret; collector headers show their names only.\n{}",
        source.describe(),
        settings.effective_toml()?
    );
    if ring.uses_development_key() {
        summary.push_str(
            "WARNING: the development key is in use; configure your own keys for production",
        );
    }
    let now = (crate::clock::system_clock())();
    Ok((summary, hazards(&settings, &ring, now)))
}
