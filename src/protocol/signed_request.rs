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
    let mut tag = [0u8; TAG_LEN];
    if text.len() != TAG_LEN * 2 {
        return Err(Reject::BadSignature);
    }
    hex::decode_to_slice(text, &mut tag).map_err(|_| Reject::BadSignature)?;
    Ok(tag)
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
mod tests {
    use super::*;

    const SIG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    use crate::test_support::header_map as headers;

    fn parse_with(
        pairs: &[(&str, &str)],
        options: ParseOptions,
    ) -> Result<SignedRequest<'static>, Reject> {
        let map: &'static HeaderMap = Box::leak(Box::new(headers(pairs)));
        parse(&HeaderNames::default(), map, "POST", "/v1/metrics", options)
    }

    fn parse_default(pairs: &[(&str, &str)]) -> Result<SignedRequest<'static>, Reject> {
        parse_with(pairs, ParseOptions::default())
    }

    #[test]
    fn the_client_spelling_parses() {
        let request = parse_default(&[
            ("X-KMS-Signature", SIG),
            ("X-KMS-Timestamp", "1697234567"),
            ("X-KMS-Session-ID", "abc"),
            ("X-KMS-Client-Version", "2.0.0.0"),
        ])
        .unwrap();
        assert_eq!(request.timestamp, 1697234567);
        assert_eq!(request.session_id, "abc");
        assert_eq!(request.client_version, Some("2.0.0.0"));
        assert_eq!(request.build, None);
        assert_eq!(request.signature_prefix(), "01234567");
    }

    #[test]
    fn the_guide_spelling_parses_and_headers_are_case_insensitive() {
        let request = parse_default(&[
            ("x-kms-signature", &SIG.to_uppercase()),
            ("X-Kms-Timestamp", "1697234567"),
            ("X-Kms-Session", "guide-session"),
            ("X-Kms-Version", "1.9"),
            ("X-Kms-Build", "official"),
        ])
        .unwrap();
        assert_eq!(request.session_id, "guide-session");
        assert_eq!(request.client_version, Some("1.9"));
        assert_eq!(request.build, Some("official"));
        assert_eq!(request.signature[0], 0x01);
    }

    #[test]
    fn the_primary_spelling_wins_when_both_are_sent() {
        let request = parse_default(&[
            ("X-KMS-Signature", SIG),
            ("X-KMS-Timestamp", "1"),
            ("X-KMS-Session-ID", "primary"),
            ("X-KMS-Session", "alt"),
        ])
        .unwrap();
        assert_eq!(request.session_id, "primary");
    }

    #[test]
    fn missing_headers_each_have_their_reason() {
        assert_eq!(
            parse_default(&[("X-KMS-Timestamp", "1"), ("X-KMS-Session-ID", "s")]),
            Err(Reject::MissingSignature)
        );
        assert_eq!(
            parse_default(&[("X-KMS-Signature", SIG), ("X-KMS-Session-ID", "s")]),
            Err(Reject::MissingTimestamp)
        );
        assert_eq!(
            parse_default(&[("X-KMS-Signature", SIG), ("X-KMS-Timestamp", "1")]),
            Err(Reject::MissingSessionId)
        );
        assert_eq!(
            parse_default(&[
                ("X-KMS-Signature", ""),
                ("X-KMS-Timestamp", "1"),
                ("X-KMS-Session-ID", "s")
            ]),
            Err(Reject::MissingSignature)
        );
    }

    #[test]
    fn an_optional_session_id_is_the_empty_string() {
        let request = parse_with(
            &[("X-KMS-Signature", SIG), ("X-KMS-Timestamp", "1")],
            ParseOptions {
                require_session_id: false,
            },
        )
        .unwrap();
        assert_eq!(request.session_id, "");
    }

    #[test]
    fn malformed_values() {
        for bad in [
            "",
            "-5",
            "+5",
            "1.5",
            "12a",
            " ",
            "9999999999999999999",
            "01697234567",
            "00",
            " 1697234567",
            "1697234567 ",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_timestamp("0"), Ok(0));
        for bad in [&SIG[..63], &format!("{SIG}0"), &SIG.replace('a', "g"), ""] {
            assert_eq!(parse_signature(bad), Err(Reject::BadSignature), "{bad:?}");
        }
        let long = "x".repeat(MAX_FIELD_LEN + 1);
        for (name, value) in [
            ("X-KMS-Session-ID", "a|b"),
            ("X-KMS-Session-ID", long.as_str()),
        ] {
            assert_eq!(
                parse_default(&[
                    ("X-KMS-Signature", SIG),
                    ("X-KMS-Timestamp", "1"),
                    (name, value)
                ]),
                Err(Reject::MalformedHeader)
            );
        }
        assert_eq!(
            parse_default(&[
                ("X-KMS-Signature", SIG),
                ("X-KMS-Timestamp", "1"),
                ("X-KMS-Session-ID", "s"),
                ("X-KMS-Client-Version", long.as_str()),
            ]),
            Err(Reject::MalformedHeader)
        );
        assert_eq!(
            parse_default(&[
                ("X-KMS-Signature", SIG),
                ("X-KMS-Timestamp", "x"),
                ("X-KMS-Session-ID", "s")
            ]),
            Err(Reject::MalformedTimestamp)
        );
    }

    #[test]
    fn a_utf8_session_id_parses_and_url_structure_does_not() {
        // Built as raw header values: the test helper takes visible ASCII only.
        let session = |id: &str| -> Result<String, Reject> {
            let mut map = headers(&[("X-KMS-Signature", SIG), ("X-KMS-Timestamp", "1")]);
            let value = HeaderValue::from_str(id).unwrap();
            map.insert(HeaderName::from_static("x-kms-session-id"), value);
            let names = HeaderNames::default();
            parse(&names, &map, "POST", "/", ParseOptions::default()).map(|r| r.session_id.into())
        };
        assert_eq!(session("séssion"), Ok("séssion".into()));
        for bad in ["evil/one", "a?b", "a#b", "a b", "a%2Fb", "a\u{85}b"] {
            assert_eq!(session(bad), Err(Reject::MalformedHeader), "{bad:?}");
        }
    }

    #[test]
    fn non_utf8_header_is_malformed() {
        let mut map = headers(&[("X-KMS-Signature", SIG), ("X-KMS-Timestamp", "1")]);
        map.insert(
            HeaderName::from_static("x-kms-session-id"),
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        let result = parse(
            &HeaderNames::default(),
            &map,
            "POST",
            "/",
            ParseOptions::default(),
        );
        assert_eq!(result, Err(Reject::MalformedHeader));
    }

    #[test]
    fn signed_path_drops_query_and_fragment() {
        assert_eq!(signed_path("/v1/metrics?x=1"), "/v1/metrics");
        assert_eq!(signed_path("/v1/logs#frag"), "/v1/logs");
        assert_eq!(signed_path("/"), "/");
        assert_eq!(signed_path(""), "");
    }

    #[test]
    fn custom_prefix() {
        let names = HeaderNames::with_prefix("X-Acme").unwrap();
        assert_eq!(names.signature.as_str(), "x-acme-signature");
        assert!(HeaderNames::with_prefix("bad prefix").is_err());
    }
}
