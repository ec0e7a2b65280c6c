//! The names the abuse controls answer with (pure): a key's lifecycle
//! state, the scope a quota is counted in, and the headers that tell a
//! client its key is deprecated or which quota it ran into. The stages
//! that use them live in `pipeline::abuse`.

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

/// `X-Telegate-Key-Deprecated: true` on an answer signed with a deprecated key.
pub const X_TELEGATE_KEY_DEPRECATED: HeaderName =
    HeaderName::from_static("x-telegate-key-deprecated");
/// The scope of the quota a 429 `quota_exceeded` ran into.
pub const X_QUOTA_SCOPE: HeaderName = HeaderName::from_static("x-quota-scope");
/// The `Warning` text beside [`X_TELEGATE_KEY_DEPRECATED`] (RFC 7234's
/// "miscellaneous persistent warning", which clients and proxies log).
pub const DEPRECATED_WARNING: &str =
    "299 telegate \"this client's signing key is deprecated: update the client\"";

/// Marks an answer to a request signed with a deprecated key: the client
/// (or, on forwardAuth, Traefik's `authResponseHeaders`) sees it.
pub fn mark_deprecated(headers: &mut HeaderMap) {
    headers.insert(X_TELEGATE_KEY_DEPRECATED, HeaderValue::from_static("true"));
    headers.insert(
        http::header::WARNING,
        HeaderValue::from_static(DEPRECATED_WARNING),
    );
}

/// A key's place in its lifecycle (`auth.keys[].state`), changed by editing
/// the config and reloading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    #[default]
    Active,
    /// Still verifies, under its own quotas, and the answer says to update.
    Deprecated,
    /// Refused at once (403 `key_revoked`), even when the signature holds.
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Deprecated => "deprecated",
            KeyState::Revoked => "revoked",
        }
    }
}

/// What a quota counts per (`quotas[].scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaScope {
    Session,
    Key,
    ClientVersion,
    /// The client address: IPv4 by address, IPv6 by `rate_limit.ipv6_prefix` (/64).
    Address,
    Signal,
}

impl QuotaScope {
    pub const ALL: [QuotaScope; 5] = [
        QuotaScope::Session,
        QuotaScope::Key,
        QuotaScope::ClientVersion,
        QuotaScope::Address,
        QuotaScope::Signal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QuotaScope::Session => "session",
            QuotaScope::Key => "key",
            QuotaScope::ClientVersion => "client_version",
            QuotaScope::Address => "address",
            QuotaScope::Signal => "signal",
        }
    }

    /// Its index in [`QuotaScope::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}
