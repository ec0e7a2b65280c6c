//! The header names telegate reads from the proxy in front (Traefik, Caddy,
//! nginx) and answers with, and the
//! two ways it reads a header value (one value as text, every value in
//! order). The `X-KMS-*` names are configurable and live in
//! [`crate::protocol::signed_request::HeaderNames`].

use http::{HeaderMap, HeaderName};

pub const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_AUTH_SESSION_ID: HeaderName = HeaderName::from_static("x-auth-session-id");
pub const X_AUTH_CLIENT_VERSION: HeaderName = HeaderName::from_static("x-auth-client-version");
pub const X_AUTH_KEY_ID: HeaderName = HeaderName::from_static("x-auth-key-id");
pub const X_AUTH_STATUS: HeaderName = HeaderName::from_static("x-auth-status");
pub const X_AUTH_USER: HeaderName = HeaderName::from_static("x-auth-user");
pub const X_AUTH_SIGNAL: HeaderName = HeaderName::from_static("x-auth-signal");
/// A session token's roles / permissions, comma-separated (absent: none).
pub const X_AUTH_ROLES: HeaderName = HeaderName::from_static("x-auth-roles");
pub const X_AUTH_PERMISSIONS: HeaderName = HeaderName::from_static("x-auth-permissions");
/// Monitor mode: the reason a request would have been refused.
pub const X_AUTH_MONITOR: HeaderName = HeaderName::from_static("x-auth-monitor");

/// The headers a forwardAuth request names the original method and URI in
/// (`auth.forwarded_method_header`, `auth.forwarded_uri_header`): Traefik's
/// and Caddy's `X-Forwarded-*` by default; nginx's `auth_request` sends
/// whatever its `proxy_set_header` lines say (`X-Original-URI` by
/// convention). Exactly one name each: nginx passes the client's own
/// headers to the subrequest, so a second accepted name would let a client
/// choose the path its signature is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedNames {
    pub method: HeaderName,
    pub uri: HeaderName,
}

impl Default for ForwardedNames {
    fn default() -> Self {
        ForwardedNames {
            method: X_FORWARDED_METHOD,
            uri: X_FORWARDED_URI,
        }
    }
}

/// One header's value as text; `None` when absent or not visible ASCII.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every value of a header, as text, in the order received.
pub fn header_values<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl DoubleEndedIterator<Item = &'a str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
}

/// `name=value` from a query string (no percent-decoding: policy names are plain).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// At most `max` bytes of `text`, cut on a character boundary: for log
/// fields that come from outside.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` with every byte `keep` refuses written `%XX` (gRPC's
/// `grpc-message`, a password in a URL: each has its own `keep`).
pub fn percent_encode(text: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if keep(byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_param_finds_the_policy() {
        assert_eq!(query_param(Some("policy=app"), "policy"), Some("app"));
        assert_eq!(query_param(Some("a=1&policy=x&b"), "policy"), Some("x"));
        assert_eq!(query_param(Some("policyx=1"), "policy"), None);
        assert_eq!(query_param(None, "policy"), None);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
