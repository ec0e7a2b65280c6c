//! Parses the `X-KMS-*` headers into a typed [`SignedRequest`] (pure).
//!
//! Both spellings found in the wild are accepted: `X-KMS-Session-ID` or
//! `X-KMS-Session`, `X-KMS-Client-Version` or `X-KMS-Version`, plus
//! `X-KMS-Build`. Missing or malformed values are 401s; a signature that is not
//! 64 hex characters is a 403 like any other wrong signature (PROTOCOL.md).

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::protocol::canonical::{MessageV1, TAG_LEN};
use crate::protocol::reject::Reject;
use crate::protocol::session_id;

/// Longest version or build string we keep: bounds what a client can make us
/// store and log (the session id has its own rule, [`session_id`], with the
/// same bound).
pub const MAX_FIELD_LEN: usize = 128;

/// The header names, built once from the configured prefix (`X-KMS`).
#[derive(Debug, Clone)]
pub struct HeaderNames {
    pub signature: HeaderName,
    pub timestamp: HeaderName,
    pub session_id: HeaderName,
    pub session_alt: HeaderName,
    pub client_version: HeaderName,
    pub version_alt: HeaderName,
    pub build: HeaderName,
}

impl HeaderNames {
    pub fn with_prefix(prefix: &str) -> Result<HeaderNames, http::header::InvalidHeaderName> {
        let name = |suffix: &str| HeaderName::try_from(format!("{prefix}-{suffix}"));
        Ok(HeaderNames {
            signature: name("Signature")?,
            timestamp: name("Timestamp")?,
            session_id: name("Session-ID")?,
            session_alt: name("Session")?,
            client_version: name("Client-Version")?,
            version_alt: name("Version")?,
            build: name("Build")?,
        })
    }
}

impl Default for HeaderNames {
    fn default() -> Self {
        HeaderNames::with_prefix("X-KMS").expect("X-KMS is a valid header prefix")
    }
}

/// A request's claimed identity, before the signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub timestamp: i64,
    pub session_id: &'a str,
    pub client_version: Option<&'a str>,
    pub build: Option<&'a str>,
    pub signature: [u8; TAG_LEN],
}

impl SignedRequest<'_> {
    pub fn message(&self) -> MessageV1<'_> {
        MessageV1 {
            method: self.method,
            path: self.path,
            timestamp: self.timestamp,
            session_id: self.session_id,
        }
    }

    /// The first 8 hex characters: enough to correlate log lines, far too
    /// little to replay.
    pub fn signature_prefix(&self) -> String {
        hex::encode(&self.signature[..4])
    }
}

/// What parsing needs besides the headers.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// When false, a missing session id is signed as the empty string, as the
    /// original service did.
    pub require_session_id: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            require_session_id: true,
        }
    }
}

/// Parses the signed headers of a request whose method and path (as signed)
/// the caller has already determined.
pub fn parse<'a>(
    names: &HeaderNames,
    headers: &'a HeaderMap,
    method: &'a str,
    path: &'a str,
    options: ParseOptions,
) -> Result<SignedRequest<'a>, Reject> {
    let signature = text(headers, &names.signature)?.ok_or(Reject::MissingSignature)?;
    let timestamp = raw_text(headers, &names.timestamp)?.ok_or(Reject::MissingTimestamp)?;
    // The session id may be UTF-8 (the other fields are visible ASCII); what
    // it may contain is one rule, shared with the session API.
    let session_id = match first_of(headers, &names.session_id, &names.session_alt, utf8)? {
        Some(id) => {
            session_id::check(id)?;
            id
        }
        None if options.require_session_id => return Err(Reject::MissingSessionId),
        None => "",
    };
    let client_version = bounded(first_of(
        headers,
        &names.client_version,
        &names.version_alt,
        ascii,
    )?)?;
    let build = bounded(text(headers, &names.build)?)?;
    Ok(SignedRequest {
        method,
        path,
        timestamp: parse_timestamp(timestamp)?,
        session_id,
        client_version,
        build,
        signature: parse_signature(signature)?,
    })
}

/// Unix seconds as a plain decimal integer: no sign, no fraction, no spaces,
/// no leading zero (`0` itself aside), so one instant has one spelling.
pub fn parse_timestamp(text: &str) -> Result<i64, Reject> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Reject::MalformedTimestamp);
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(Reject::MalformedTimestamp);
    }
    text.parse().map_err(|_| Reject::MalformedTimestamp)
}

/// 64 hex characters, either case (the original compared case-insensitively).
/// Anything else cannot match, so it is a bad signature, not a missing one.
pub fn parse_signature(text: &str) -> Result<[u8; TAG_LEN], Reject> {
    let digits: &[u8; TAG_LEN * 2] = text
        .as_bytes()
        .try_into()
        .map_err(|_| Reject::BadSignature)?;
    let mut tag = [0u8; TAG_LEN];
    for (byte, pair) in tag.iter_mut().zip(digits.chunks_exact(2)) {
        let (Some(high), Some(low)) = (hex_digit(pair[0]), hex_digit(pair[1])) else {
            return Err(Reject::BadSignature);
        };
        *byte = (high << 4) | low;
    }
    Ok(tag)
}

/// One hex digit's value, either case (as the `hex` crate reads them).
pub fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The path a signature covers: the URI without query or fragment.
pub fn signed_path(uri: &str) -> &str {
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    &uri[..end]
}

/// How a header value becomes text: visible ASCII, or any UTF-8.
type Decode = fn(&HeaderValue) -> Option<&str>;

fn ascii(value: &HeaderValue) -> Option<&str> {
    value.to_str().ok()
}

fn utf8(value: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(value.as_bytes()).ok()
}

/// A trimmed visible-ASCII value, `None` when absent or blank.
fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, Reject> {
    decoded(headers, name, ascii)
}

fn decoded<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    decode: Decode,
) -> Result<Option<&'a str>, Reject> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => {
            let value = decode(value).ok_or(Reject::MalformedHeader)?.trim();
            Ok((!value.is_empty()).then_some(value))
        }
    }
}

/// A header's value exactly as received (no trimming), `None` when absent or
/// blank: for fields whose one spelling is part of the rule (the timestamp),
/// where whitespace an HTTP/2 peer left in is refused, not repaired.
fn raw_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, Reject> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => {
            let value = value.to_str().map_err(|_| Reject::MalformedHeader)?;
            Ok((!value.trim().is_empty()).then_some(value))
        }
    }
}

fn first_of<'a>(
    headers: &'a HeaderMap,
    preferred: &HeaderName,
    fallback: &HeaderName,
    decode: Decode,
) -> Result<Option<&'a str>, Reject> {
    match decoded(headers, preferred, decode)? {
        Some(value) => Ok(Some(value)),
        None => decoded(headers, fallback, decode),
    }
}

fn bounded(value: Option<&str>) -> Result<Option<&str>, Reject> {
    match value {
        Some(v) if v.len() > MAX_FIELD_LEN => Err(Reject::MalformedHeader),
        other => Ok(other),
    }
}

#[cfg(test)]
#[path = "signed_request_tests.rs"]
mod tests;
