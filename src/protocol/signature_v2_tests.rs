//! Signature v2 against the golden vectors and every header rule.

use super::*;
use crate::protocol::signed_request::parse_signature;
use crate::test_support::header_map;

fn request<'a>(v: &'a golden::Vector, signature: &str) -> SignedRequest<'a> {
    SignedRequest {
        method: v.method,
        path: v.path,
        timestamp: v.timestamp,
        session_id: v.session_id,
        client_version: None,
        build: None,
        signature: parse_signature(signature).unwrap(),
    }
}

fn fields(v: &golden::Vector) -> V2Fields<'_> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(v.content_sha256, &mut hash).unwrap();
    V2Fields {
        key_id: v.key_id,
        nonce: v.nonce,
        content_sha256_hex: v.content_sha256,
        content_sha256: hash,
    }
}

fn ring_with(v: &golden::Vector) -> Keyring {
    Keyring::new(vec![
        Key::new(
            KeyId::new("decoy"),
            &Secret::from_text("decoy").unwrap(),
            None,
        ),
        Key::new(
            KeyId::new(v.key_id),
            &Secret::from_text(v.secret).unwrap(),
            None,
        ),
    ])
}

#[test]
fn golden_vectors_match_openssl() {
    let vectors = golden::vectors();
    assert!(vectors.len() >= 4);
    for v in &vectors {
        let body = hex::decode(v.body_hex).unwrap();
        assert_eq!(content_sha256(&body), v.content_sha256, "{}", v.message);
        let fields = fields(v);
        assert!(fields.body_matches(&body));
        let message = MessageV2::of(&request(v, v.signature), &fields);
        assert_eq!(message.to_bytes(), v.message.as_bytes());
        let secret = Secret::from_text(v.secret).unwrap();
        assert_eq!(sign(&secret, &message), v.signature, "{}", v.message);
        let ring = ring_with(v);
        let key = verify(&request(v, v.signature), &fields, &ring, None, 0).unwrap();
        assert_eq!(key.id.as_str(), v.key_id);
    }
}

#[test]
fn the_key_id_selects_the_key_and_every_field_is_covered() {
    let v = &golden::vectors()[0];
    let ring = ring_with(v);
    let good = fields(v);
    assert!(verify(&request(v, v.signature), &good, &ring, None, 0).is_ok());
    let decoy = V2Fields {
        key_id: "decoy",
        ..good
    };
    assert_eq!(
        verify(&request(v, v.signature), &decoy, &ring, None, 0).unwrap_err(),
        Reject::BadSignature
    );
    let unknown = V2Fields {
        key_id: "nope",
        ..good
    };
    assert_eq!(
        verify(&request(v, v.signature), &unknown, &ring, None, 0).unwrap_err(),
        Reject::BadSignature
    );
    let other_nonce = V2Fields {
        nonce: "ffffffffffffffffffffffffffffffff",
        ..good
    };
    assert_eq!(
        verify(&request(v, v.signature), &other_nonce, &ring, None, 0).unwrap_err(),
        Reject::BadSignature
    );
    let other_hash = V2Fields {
        content_sha256_hex: "0000000000000000000000000000000000000000000000000000000000000000",
        ..good
    };
    assert_eq!(
        verify(&request(v, v.signature), &other_hash, &ring, None, 0).unwrap_err(),
        Reject::BadSignature
    );
    let mut moved = request(v, v.signature);
    moved.path = "/v1/other";
    assert!(verify(&moved, &good, &ring, None, 0).is_err());
    let only_decoy = [KeyId::new("decoy")];
    assert!(verify(&request(v, v.signature), &good, &ring, Some(&only_decoy), 0).is_err());
    assert_eq!(
        verify(
            &request(v, v.signature),
            &good,
            &Keyring::default(),
            None,
            0
        )
        .unwrap_err(),
        Reject::NoLiveKey
    );
}

#[test]
fn a_changed_body_does_not_match() {
    let v = &golden::vectors()[0];
    let body = hex::decode(v.body_hex).unwrap();
    let fields = fields(v);
    assert!(fields.body_matches(&body));
    let mut tampered = body.clone();
    tampered.push(0);
    assert!(!fields.body_matches(&tampered));
}

#[test]
fn header_parsing() {
    let names = V2Names::default();
    let hash = content_sha256(b"x");
    let nonce = "0123456789abcdef0123456789ABCDEF";
    let ok = header_map(&[
        ("X-KMS-Signature-Version", "2"),
        ("X-KMS-Key-Id", "k-1.a"),
        ("X-KMS-Nonce", nonce),
        ("X-KMS-Content-SHA256", &hash),
    ]);
    assert_eq!(version(&names, &ok), Ok(2));
    let fields = parse(&names, &ok).unwrap();
    assert_eq!(fields.key_id, "k-1.a");
    assert_eq!(fields.nonce_prefix(), "01234567");
    assert!(fields.body_matches(b"x"));
    assert_eq!(version(&names, &HeaderMap::new()), Ok(1));
    assert_eq!(
        version(&names, &header_map(&[("X-KMS-Signature-Version", "3")])),
        Err(Reject::MalformedHeader)
    );
    let short_nonce = "0123456789abcdef0123456789abcde";
    let long_nonce = "a".repeat(MAX_NONCE_HEX + 1);
    let long_id = "k".repeat(MAX_KEY_ID_LEN + 1);
    let cases: &[(&str, &str)] = &[
        ("X-KMS-Nonce", short_nonce),
        ("X-KMS-Nonce", &long_nonce),
        ("X-KMS-Nonce", "zz23456789abcdef0123456789abcdef"),
        ("X-KMS-Key-Id", "a|b"),
        ("X-KMS-Key-Id", &long_id),
        ("X-KMS-Key-Id", ""),
        ("X-KMS-Content-SHA256", "abcd"),
        ("X-KMS-Content-SHA256", &hash.replace('a', "g")),
    ];
    for (name, value) in cases {
        let mut map = ok.clone();
        map.insert(HeaderName::try_from(*name).unwrap(), value.parse().unwrap());
        assert_eq!(
            parse(&names, &map),
            Err(Reject::MalformedHeader),
            "{name}: {value}"
        );
    }
    for missing in ["X-KMS-Key-Id", "X-KMS-Nonce", "X-KMS-Content-SHA256"] {
        let mut map = ok.clone();
        map.remove(missing);
        assert_eq!(
            parse(&names, &map),
            Err(Reject::MalformedHeader),
            "{missing}"
        );
    }
}
