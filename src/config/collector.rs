//! `[collector]`: the collector the ingest routes forward to. The section as
//! written and its validation into [`CollectorSettings`], which
//! `ingest.rs` folds into the ingest settings.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::{show, ConfigError};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorSection {
    /// Base URL of the collector's OTLP/HTTP receiver; `/v1/{signal}` is appended.
    pub endpoint: String,
    pub connect_timeout_secs: u64,
    /// Whole exchange with the collector, response body included.
    pub request_timeout_secs: u64,
    /// Exports in flight to the collector at once; beyond: 503 + `Retry-After`.
    pub max_in_flight: usize,
    /// `Retry-After` when the collector is down or busy and says nothing itself.
    pub retry_after_secs: u64,
    /// Static headers added to every forwarded export.
    pub headers: BTreeMap<String, String>,
    /// Forward OTLP/gRPC exports over gRPC (h2c) to this `http://` URL;
    /// absent: over HTTP to `endpoint`.
    pub grpc_endpoint: Option<String>,
}

impl Default for CollectorSection {
    fn default() -> Self {
        CollectorSection {
            endpoint: "http://127.0.0.1:4318".into(),
            connect_timeout_secs: 2,
            request_timeout_secs: 10,
            max_in_flight: 64,
            retry_after_secs: 5,
            headers: BTreeMap::new(),
            grpc_endpoint: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CollectorSettings {
    /// Without a trailing slash.
    #[serde(serialize_with = "show::url")]
    pub endpoint: String,
    #[serde(serialize_with = "show::duration")]
    pub connect_timeout: Duration,
    #[serde(serialize_with = "show::duration")]
    pub request_timeout: Duration,
    pub max_in_flight: usize,
    pub retry_after_secs: u64,
    /// Shown by name only: a value may be a credential for the collector.
    #[serde(serialize_with = "show::header_map_names")]
    pub headers: HeaderMap,
    /// Without a trailing slash; plaintext HTTP/2 (h2c).
    pub grpc_endpoint: Option<String>,
}

pub(super) fn collector_settings(
    section: &CollectorSection,
) -> Result<CollectorSettings, ConfigError> {
    let endpoint = section.endpoint.trim_end_matches('/');
    let uri: http::Uri = endpoint.parse().map_err(|_| {
        ConfigError::invalid("collector.endpoint", format!("{endpoint:?} is not a URL"))
    })?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none() || uri.query().is_some() {
        return Err(ConfigError::invalid(
            "collector.endpoint",
            format!("{endpoint:?} must be an http:// or https:// URL without a query"),
        ));
    }
    for (key, value) in [
        (
            "collector.connect_timeout_secs",
            section.connect_timeout_secs,
        ),
        (
            "collector.request_timeout_secs",
            section.request_timeout_secs,
        ),
        ("collector.retry_after_secs", section.retry_after_secs),
        ("collector.max_in_flight", section.max_in_flight as u64),
    ] {
        if value == 0 {
            return Err(ConfigError::invalid(key, "must be greater than 0"));
        }
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &section.headers {
        let key = format!("collector.headers.{name}");
        let header = HeaderName::try_from(name.as_str())
            .map_err(|_| ConfigError::invalid(&key, "is not a header name"))?;
        if matches!(
            header.as_str(),
            "content-type" | "content-encoding" | "content-length" | "host" | "transfer-encoding"
        ) {
            return Err(ConfigError::invalid(&key, "is set by telegate itself"));
        }
        let value = HeaderValue::try_from(value.as_str())
            .map_err(|_| ConfigError::invalid(&key, "is not a valid header value"))?;
        headers.insert(header, value);
    }
    let grpc_endpoint = match &section.grpc_endpoint {
        None => None,
        Some(text) => {
            let text = text.trim_end_matches('/');
            let ok = text.parse::<http::Uri>().is_ok_and(|u| {
                u.scheme_str() == Some("http")
                    && u.host().is_some()
                    && u.path() == "/"
                    && u.query().is_none()
            });
            if !ok {
                return Err(ConfigError::invalid(
                    "collector.grpc_endpoint",
                    format!("{text:?} must be an http:// URL (plaintext HTTP/2) without a path"),
                ));
            }
            Some(text.to_string())
        }
    };
    Ok(CollectorSettings {
        grpc_endpoint,
        endpoint: endpoint.to_string(),
        connect_timeout: Duration::from_secs(section.connect_timeout_secs),
        request_timeout: Duration::from_secs(section.request_timeout_secs),
        max_in_flight: section.max_in_flight,
        retry_after_secs: section.retry_after_secs,
        headers,
    })
}
