//! `[ingest]`: the direct OTLP/HTTP routes. The section as written (serde,
//! defaults) and its validation, with `[collector]` (`collector.rs`),
//! into [`IngestSettings`], kept out of `raw.rs`/`validate` so the ingest
//! feature stays in one place.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::collector::{collector_settings, CollectorSection, CollectorSettings};
use super::raw::by_name;
use super::{show, ConfigError};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// Serve the OTLP/HTTP routes at all.
    pub enabled: bool,
    /// `passthrough`, `validate` or `enrich`.
    #[serde(deserialize_with = "by_name")]
    pub mode: IngestMode,
    pub traces_path: String,
    pub metrics_path: String,
    pub logs_path: String,
    /// Paths besides `/` where a v1 export's signal is found from the
    /// signed path (the shipped client posts to the bare origin).
    pub detect_paths: Vec<String>,
    /// Most bytes of a request body as sent (compressed).
    pub max_body_bytes: usize,
    /// Most bytes of a gzip body once decompressed.
    pub max_decompressed_bytes: usize,
    /// A request body must arrive within this time (also for `/auth` bodies).
    pub body_timeout_secs: u64,
    /// Attribute keys removed everywhere in `enrich` mode (privacy).
    pub drop_attributes: Vec<String>,
    /// The policy (`[policies.NAME]`) the ingest routes check; absent: the default.
    pub policy: Option<String>,
    /// Most (key id, nonce) pairs the v2 replay cache holds.
    pub replay_capacity: u64,
    /// The OTLP/gRPC listener (`127.0.0.1:4317`-style); absent: off.
    pub grpc_listen: Option<String>,
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            enabled: true,
            mode: IngestMode::Validate,
            traces_path: "/v1/traces".into(),
            metrics_path: "/v1/metrics".into(),
            logs_path: "/v1/logs".into(),
            detect_paths: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            max_decompressed_bytes: 20 * 1024 * 1024,
            body_timeout_secs: 30,
            drop_attributes: Vec::new(),
            policy: None,
            replay_capacity: 1_000_000,
            grpc_listen: None,
        }
    }
}

/// What the ingest routes do with a verified payload (`ingest.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestMode {
    /// Bytes forwarded untouched (sizes still checked).
    Passthrough,
    /// Decoded and counted; the original bytes are forwarded.
    Validate,
    /// Decoded, resource attributes added, configured keys dropped, re-encoded.
    Enrich,
}

impl IngestMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IngestMode::Passthrough => "passthrough",
            IngestMode::Validate => "validate",
            IngestMode::Enrich => "enrich",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestSettings {
    pub enabled: bool,
    pub mode: IngestMode,
    pub traces_path: String,
    pub metrics_path: String,
    pub logs_path: String,
    /// `/` and `ingest.detect_paths`: the signal comes from the signed path.
    pub detect_paths: Vec<String>,
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    #[serde(serialize_with = "show::duration")]
    pub body_timeout: Duration,
    pub drop_attributes: Vec<String>,
    pub policy: Option<String>,
    pub replay_capacity: u64,
    /// The OTLP/gRPC listener, when on.
    pub grpc_listen: Option<std::net::SocketAddr>,
    pub collector: CollectorSettings,
}

/// Validates both sections; `policies` are the configured policy names.
pub fn validate_ingest<'a>(
    ingest: &IngestSection,
    collector: &CollectorSection,
    mut policies: impl Iterator<Item = &'a String>,
) -> Result<IngestSettings, ConfigError> {
    let paths = [
        ("ingest.traces_path", &ingest.traces_path),
        ("ingest.metrics_path", &ingest.metrics_path),
        ("ingest.logs_path", &ingest.logs_path),
    ];
    for (i, (key, path)) in paths.iter().enumerate() {
        let ok = path.starts_with('/')
            && !path.contains(['?', '#', '|', ' '])
            && !RESERVED.contains(&path.as_str())
            && !path.starts_with("/sessions")
            && !path.starts_with("/users/");
        if !ok {
            return Err(ConfigError::invalid(
                *key,
                format!("{path:?} must start with / and not be a telegate route"),
            ));
        }
        if paths[..i].iter().any(|(_, other)| other == path) {
            return Err(ConfigError::invalid(*key, "is used by another signal"));
        }
    }
    let mut detect_paths = vec!["/".to_string()];
    for (i, path) in ingest.detect_paths.iter().enumerate() {
        let key = format!("ingest.detect_paths[{i}]");
        let ok = path.starts_with('/')
            && !path.contains(['?', '#', '|', ' '])
            && (path == "/" || !RESERVED.contains(&path.as_str()))
            && !path.starts_with("/sessions")
            && !path.starts_with("/users/");
        if !ok {
            return Err(ConfigError::invalid(
                key,
                format!("{path:?} must start with / and not be a telegate route"),
            ));
        }
        if paths.iter().any(|(_, signal_path)| *signal_path == path) {
            return Err(ConfigError::invalid(key, "is already a signal's path"));
        }
        if !detect_paths.contains(path) {
            detect_paths.push(path.clone());
        }
    }
    if !(1024..=256 * 1024 * 1024).contains(&ingest.max_body_bytes) {
        return Err(ConfigError::invalid(
            "ingest.max_body_bytes",
            "must be between 1024 and 268435456",
        ));
    }
    if ingest.max_decompressed_bytes < ingest.max_body_bytes
        || ingest.max_decompressed_bytes > 1024 * 1024 * 1024
    {
        return Err(ConfigError::invalid(
            "ingest.max_decompressed_bytes",
            "must be at least ingest.max_body_bytes and at most 1073741824",
        ));
    }
    if let Some(name) = &ingest.policy {
        if !policies.any(|p| p == name) {
            return Err(ConfigError::invalid(
                "ingest.policy",
                format!("no [policies.{name}] is configured"),
            ));
        }
    }
    if ingest.body_timeout_secs == 0 {
        return Err(ConfigError::invalid(
            "ingest.body_timeout_secs",
            "must be greater than 0",
        ));
    }
    if ingest.replay_capacity == 0 {
        return Err(ConfigError::invalid(
            "ingest.replay_capacity",
            "must be greater than 0",
        ));
    }
    let grpc_listen = match &ingest.grpc_listen {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| {
            ConfigError::invalid(
                "ingest.grpc_listen",
                format!("{text:?} is not an address:port"),
            )
        })?),
    };
    Ok(IngestSettings {
        grpc_listen,
        enabled: ingest.enabled,
        mode: ingest.mode,
        traces_path: ingest.traces_path.clone(),
        metrics_path: ingest.metrics_path.clone(),
        logs_path: ingest.logs_path.clone(),
        detect_paths,
        max_body_bytes: ingest.max_body_bytes,
        max_decompressed_bytes: ingest.max_decompressed_bytes,
        body_timeout: Duration::from_secs(ingest.body_timeout_secs),
        drop_attributes: ingest.drop_attributes.clone(),
        policy: ingest.policy.clone(),
        replay_capacity: ingest.replay_capacity,
        collector: collector_settings(collector)?,
    })
}

/// Routes an ingest path may not shadow.
const RESERVED: &[&str] = &["/", "/auth", "/health", "/ready", "/metrics", "/waiting"];

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn check(ingest: IngestSection, collector: CollectorSection) -> Result<IngestSettings, String> {
        let policies = ["tele".to_string()];
        validate_ingest(&ingest, &collector, policies.iter()).map_err(|e| match e {
            ConfigError::Invalid { key, .. } => key,
            other => other.to_string(),
        })
    }

    #[test]
    fn defaults_are_valid() {
        let settings = check(IngestSection::default(), CollectorSection::default()).unwrap();
        assert_eq!(settings.mode, IngestMode::Validate);
        assert_eq!(settings.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(settings.max_decompressed_bytes, 20 * 1024 * 1024);
        assert_eq!(settings.collector.endpoint, "http://127.0.0.1:4318");
    }

    #[test]
    fn the_grpc_listener_and_endpoint_are_checked() {
        let on = IngestSection {
            grpc_listen: Some("127.0.0.1:4317".into()),
            ..Default::default()
        };
        let grpc = CollectorSection {
            grpc_endpoint: Some("http://127.0.0.1:4317/".into()),
            ..Default::default()
        };
        let settings = check(on, grpc).unwrap();
        assert_eq!(
            settings.grpc_listen,
            Some("127.0.0.1:4317".parse().unwrap())
        );
        let endpoint = settings.collector.grpc_endpoint.as_deref();
        assert_eq!(endpoint, Some("http://127.0.0.1:4317"));
        let off = check(IngestSection::default(), CollectorSection::default()).unwrap();
        assert_eq!((off.grpc_listen, off.collector.grpc_endpoint), (None, None));
        let bad = IngestSection {
            grpc_listen: Some("4317".into()),
            ..Default::default()
        };
        let err = check(bad, CollectorSection::default()).unwrap_err();
        assert_eq!(err, "ingest.grpc_listen");
        for endpoint in ["https://c:4317", "http://c:4317/v1", "c:4317"] {
            let bad = CollectorSection {
                grpc_endpoint: Some(endpoint.into()),
                ..Default::default()
            };
            let err = check(IngestSection::default(), bad).unwrap_err();
            assert_eq!(err, "collector.grpc_endpoint", "{endpoint}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let clash = IngestSection {
            logs_path: "/v1/traces".into(),
            ..Default::default()
        };
        assert_eq!(
            check(clash, CollectorSection::default()).unwrap_err(),
            "ingest.logs_path"
        );
        let shadow = IngestSection {
            metrics_path: "/metrics".into(),
            ..Default::default()
        };
        assert_eq!(
            check(shadow, CollectorSection::default()).unwrap_err(),
            "ingest.metrics_path"
        );
        let policy = IngestSection {
            policy: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(
            check(policy, CollectorSection::default()).unwrap_err(),
            "ingest.policy"
        );
        let small = IngestSection {
            max_decompressed_bytes: 10,
            ..Default::default()
        };
        assert_eq!(
            check(small, CollectorSection::default()).unwrap_err(),
            "ingest.max_decompressed_bytes"
        );
        for endpoint in ["ftp://x", "not a url", "http://x/?q=1"] {
            let collector = CollectorSection {
                endpoint: endpoint.into(),
                ..Default::default()
            };
            assert_eq!(
                check(IngestSection::default(), collector).unwrap_err(),
                "collector.endpoint",
                "{endpoint}"
            );
        }
        let mut headers = BTreeMap::new();
        headers.insert("Content-Type".to_string(), "x".to_string());
        let collector = CollectorSection {
            headers,
            ..Default::default()
        };
        assert_eq!(
            check(IngestSection::default(), collector).unwrap_err(),
            "collector.headers.Content-Type"
        );
    }

    #[test]
    fn static_headers_and_policy() {
        let mut headers = BTreeMap::new();
        headers.insert("X-Scope-OrgID".to_string(), "tenant-1".to_string());
        let collector = CollectorSection {
            endpoint: "https://collector.example:4318/".into(),
            headers,
            ..Default::default()
        };
        let ingest = IngestSection {
            policy: Some("tele".into()),
            mode: IngestMode::Enrich,
            ..Default::default()
        };
        let settings = check(ingest, collector).unwrap();
        assert_eq!(
            settings.collector.endpoint,
            "https://collector.example:4318"
        );
        assert_eq!(settings.collector.headers["x-scope-orgid"], "tenant-1");
        assert_eq!(settings.mode, IngestMode::Enrich);
    }
}
