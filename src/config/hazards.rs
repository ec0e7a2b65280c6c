//! Configurations that load but are unsafe or cannot serve: each becomes a
//! [`Hazard`] that `serve` logs at start and `check-config` prints, so an
//! operator hears about a world-readable key file or a proxy list that
//! trusts the whole internet before an attacker does.
//!
//! A [`Severity::Fatal`] hazard is one where the gateway could not do its
//! job (no key is live, so every signed request is refused): `check-config`
//! exits non-zero for it. The rest are warnings: the gateway serves, but the
//! operator should change something.

use std::path::Path;

use super::Settings;
use crate::protocol::keyring::{KeySource, Keyring};

/// Secrets shorter than this are guessable offline from one signed request.
pub const MIN_SECRET_BYTES: usize = 16;
/// A window wider than this (the protocol's is 5 minutes) makes captured
/// requests replayable for that long.
pub const WIDE_SKEW_SECS: u64 = 900;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Fatal,
}

/// One finding: the config key it is about and a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hazard {
    pub severity: Severity,
    pub key: String,
    pub message: String,
}

impl Hazard {
    fn warning(key: impl Into<String>, message: impl Into<String>) -> Hazard {
        Hazard {
            severity: Severity::Warning,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Hazard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Warning => "WARNING",
            Severity::Fatal => "ERROR",
        };
        write!(f, "{level}: {}: {}", self.key, self.message)
    }
}

/// Everything unsafe about `settings` with the keys as loaded in `ring`.
pub fn hazards(settings: &Settings, ring: &Keyring, now: i64) -> Vec<Hazard> {
    let mut found = Vec::new();
    proxies(settings, &mut found);
    exposed_operations(settings, &mut found);
    windows(settings, &mut found);
    keys(settings, ring, now, &mut found);
    if let Some(path) = &settings.admin_token_file {
        readable_by_others("admin.token_file", path, &mut found);
    }
    for path in storage_key_files(settings) {
        readable_by_others("sessions.encryption.key_files", path, &mut found);
    }
    found
}

/// One listener beyond loopback serves `/metrics`, the status pages and
/// the admin API to whoever can reach the ingest port.
fn exposed_operations(settings: &Settings, found: &mut Vec<Hazard>) {
    if settings.ops_listen.is_none() && !settings.listen.ip().is_loopback() {
        found.push(Hazard::warning(
            "ops_listen",
            format!("{} serves /metrics, the status pages and the admin API beside /auth and ingest to everyone who can reach it; set ops_listen (e.g. 127.0.0.1:9090) to serve them on their own listener", settings.listen),
        ));
    }
}

fn proxies(settings: &Settings, found: &mut Vec<Hazard>) {
    for (i, net) in settings.trusted_proxies.nets().iter().enumerate() {
        // A /0 to /7 (v4) or /0 to /15 (v6) spans networks nobody operates
        // as one set of proxies: anyone could set X-Forwarded-For.
        let too_wide = match net {
            ipnet::IpNet::V4(v4) => v4.prefix_len() < 8,
            ipnet::IpNet::V6(v6) => v6.prefix_len() < 16,
        };
        if too_wide {
            found.push(Hazard::warning(
                format!("trusted_proxies[{i}]"),
                format!("{net} trusts X-Forwarded-For from most of the internet: any client can choose the address it is rate-limited, banned and pinned by; list only your proxies"),
            ));
        }
    }
}

fn windows(settings: &Settings, found: &mut Vec<Hazard>) {
    let policies = std::iter::once(("auth.max_skew_secs".to_string(), &settings.default_policy))
        .chain(
            settings
                .policies
                .iter()
                .map(|(name, policy)| (format!("policies.{name}.max_skew_secs"), policy)),
        );
    for (key, policy) in policies {
        if policy.max_skew_secs > WIDE_SKEW_SECS {
            found.push(Hazard::warning(
                key,
                format!("{} s lets a captured request be replayed for that long (the protocol's window is 300 s)", policy.max_skew_secs),
            ));
        }
    }
}

fn keys(settings: &Settings, ring: &Keyring, now: i64, found: &mut Vec<Hazard>) {
    if !ring.has_live_key(now) {
        found.push(Hazard {
            severity: Severity::Fatal,
            key: "auth.keys".into(),
            message: "no key is live now (none configured, or every not_after has passed): every signed request would be refused with no_live_key".into(),
        });
    }
    for (i, spec) in settings.keys.iter().enumerate() {
        let key = format!("auth.keys[{i}] ({})", spec.id.as_str());
        // The development key is public by design: neither warning applies.
        let Some(loaded) = ring.get(spec.id.as_str()).filter(|k| !k.development) else {
            continue;
        };
        if loaded.secret_len < MIN_SECRET_BYTES {
            found.push(Hazard::warning(
                key.clone(),
                format!("the secret is {} bytes; use at least {MIN_SECRET_BYTES} random bytes (`telegate keygen`)", loaded.secret_len),
            ));
        }
        if let KeySource::File(path) = &spec.source {
            readable_by_others(&key, path, found);
        }
    }
}

fn storage_key_files(settings: &Settings) -> &[std::path::PathBuf] {
    super::EncryptionSettings::of(&settings.sessions.backend).map_or(&[], |e| &e.key_files[..])
}

/// Group- or world-readable secret files leak to every local account.
fn readable_by_others(key: &str, path: &Path, found: &mut Vec<Hazard>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        found.push(Hazard::warning(
            key,
            format!(
                "{} is readable or writable by other accounts (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            ),
        ));
    }
}
