//! How the typed [`Settings`] print for `telegate check-config`: the
//! effective values after overrides and defaults, as TOML, and never a
//! secret. Keys show their id and where the secret is read from, collector
//! headers their names, URLs lose any credentials; the admin token is only
//! ever a file name. The `serialize_with` helpers below are named on the
//! fields they apply to.

use std::time::{Duration, UNIX_EPOCH};

use http::HeaderMap;
use serde::{Serialize, Serializer};

use super::Settings;
use crate::protocol::headers::ForwardedNames;
use crate::protocol::keyring::{KeyId, KeySource, KeySpec};
use crate::protocol::signature_v2::V2Names;
use crate::protocol::signed_request::HeaderNames;

/// What stands in for a hidden value.
const HIDDEN: &str = "***";

impl Settings {
    /// The effective settings as TOML (what `check-config` prints).
    pub fn effective_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|err| format!("cannot print the settings: {err}"))
    }
}

/// `10s`, `1h`, `250ms`: the unit travels with the number.
pub(super) fn duration<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*value))
}

/// A URL without its credentials: the user-info part (`user:password@`)
/// and `pass`/`password` query values (redis+unix) are hidden.
pub(super) fn url<S: Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(value))
}

fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{HIDDEN}@{host}"),
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if matches!(name, "pass" | "password") => {
                    format!("{name}={HIDDEN}")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// One `[[keys]]` entry: the id, the source's kind and place, and
/// `not_after` as RFC 3339. The secret is not in [`KeySpec`] at all.
#[derive(Serialize)]
struct KeyView<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<String>,
}

pub(super) fn keys<S: Serializer>(specs: &[KeySpec], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(specs.iter().map(|spec| {
        let (file, env) = match &spec.source {
            KeySource::File(path) => (Some(path.display().to_string()), None),
            KeySource::Env(var) => (None, Some(var.as_str())),
        };
        KeyView {
            id: spec.id.as_str(),
            file,
            env,
            not_after: spec.not_after.map(rfc3339),
        }
    }))
}

/// Unix seconds as `2026-12-31T00:00:00Z` (validation keeps them after 1970).
fn rfc3339(secs: i64) -> String {
    match u64::try_from(secs) {
        Ok(secs) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
        }
        Err(_) => secs.to_string(),
    }
}

pub(super) fn key_ids<S: Serializer>(ids: &Option<Vec<KeyId>>, s: S) -> Result<S::Ok, S::Error> {
    match ids {
        Some(ids) => s.collect_seq(ids.iter().map(KeyId::as_str)),
        None => s.serialize_none(),
    }
}

/// The headers `/auth` reads the original method and URI from.
pub(super) fn forwarded<S: Serializer>(names: &ForwardedNames, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map([
        ("method", names.method.as_str()),
        ("uri", names.uri.as_str()),
    ])
}

/// The header names `/auth` reads a v1 signature from.
pub(super) fn header_names<S: Serializer>(names: &HeaderNames, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        [
            &names.signature,
            &names.timestamp,
            &names.session_id,
            &names.session_alt,
            &names.client_version,
            &names.version_alt,
            &names.build,
        ]
        .map(|name| name.as_str()),
    )
}

/// The extra header names of a v2 signature.
pub(super) fn v2_names<S: Serializer>(names: &V2Names, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        [
            &names.version,
            &names.key_id,
            &names.nonce,
            &names.content_sha256,
        ]
        .map(|name| name.as_str()),
    )
}

/// Names only: a value may be a credential for the collector.
pub(super) fn header_map_names<S: Serializer>(
    headers: &HeaderMap,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(headers.keys().map(|name| name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_lose_their_credentials() {
        let cases = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:s3cret@db:6379/2", "redis://***@db:6379/2"),
            ("redis://user:s3cret@db/0", "redis://***@db/0"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=s3cret",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            ("http://collector:4318", "http://collector:4318"),
            ("https://u:p@collector/otlp", "https://***@collector/otlp"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
