//! Tests of the `X-KMS-*` header parse: both spellings, the bounds, and
//! each refusal with its reason.

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
    // Every byte in every place reads as the hex crate reads it.
    for at in [0, 1, 62, 63] {
        for b in 0u8..=255 {
            let mut text = SIG.as_bytes().to_vec();
            text[at] = b;
            let Ok(text) = String::from_utf8(text) else {
                continue;
            };
            let mut expected = [0u8; 32];
            let expected = hex::decode_to_slice(&text, &mut expected).map(|()| expected);
            assert_eq!(parse_signature(&text).ok(), expected.ok(), "{text:?}");
        }
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
