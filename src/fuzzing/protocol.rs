//! Harnesses for the client protocol: the `X-KMS-*` headers (v1, v2), the
//! canonical messages with sign-then-verify, and the client address.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};

use super::request_head;
use crate::ip::{canonical as canonical_ip, TrustedProxies};
use crate::pipeline::client_ip::{limit_key, parse_hop, resolve};
use crate::protocol::canonical::{sign_v1, MessageV1};
use crate::protocol::headers::{header_values, X_FORWARDED_FOR};
use crate::protocol::keyring::{Key, KeyId, Keyring};
use crate::protocol::reject::Reject;
use crate::protocol::signature_v2::{self, MessageV2, V2Fields, V2Names};
use crate::protocol::signed_request::{
    parse, parse_signature, signed_path, HeaderNames, ParseOptions, SignedRequest, MAX_FIELD_LEN,
};
use crate::protocol::verify::verify;
use crate::secret::Secret;

/// The key the harnesses sign with (any text is a valid HMAC key).
const SECRET: &str = "fuzz-secret";

fn ring(id: &str) -> Keyring {
    let secret = Secret::from_text(SECRET).expect("a non-empty secret");
    Keyring::new(vec![Key::new(KeyId::new(id), &secret, None)])
}

/// v1 header parse over a request head (`METHOD PATH`, then headers; see
/// [`super::request_head`]). When it parses: the fields are within their
/// bounds, the message is exactly `METHOD|PATH|TS|SESSION`, the signature
/// verifies if and only if it is the tag of that message, and parsing with
/// an optional session id gives the same request.
pub fn header_v1(data: &[u8]) {
    let (method, path, headers) = request_head(data);
    let path = signed_path(&path);
    let names = HeaderNames::default();
    let required = parse(&names, &headers, &method, path, ParseOptions::default());
    let optional = parse(
        &names,
        &headers,
        &method,
        path,
        ParseOptions {
            require_session_id: false,
        },
    );
    match (&required, &optional) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(Reject::MissingSessionId), _) | (Err(_), Err(_)) => {}
        (a, b) => panic!("an optional session id changed {a:?} into {b:?}"),
    }
    let Ok(request) = optional else { return };
    assert!(!request.session_id.contains('|'));
    assert!(request.session_id.len() <= MAX_FIELD_LEN);
    assert!(request
        .client_version
        .is_none_or(|v| v.len() <= MAX_FIELD_LEN));
    assert!(request.build.is_none_or(|v| v.len() <= MAX_FIELD_LEN));
    assert!(request.timestamp >= 0);
    assert_eq!(request.signature_prefix().len(), 8);
    let message = request.message().to_bytes();
    let expected = format!(
        "{method}|{path}|{}|{}",
        request.timestamp, request.session_id
    );
    assert_eq!(message, expected.into_bytes());
    signs_and_verifies(&request);
}

/// Re-signs `request` with the harness key: that signature verifies, the
/// request's own only if it is the same tag.
fn signs_and_verifies(request: &SignedRequest<'_>) {
    let ring = ring("fuzz");
    let secret = Secret::from_text(SECRET).expect("a non-empty secret");
    let signed = SignedRequest {
        signature: parse_signature(&sign_v1(&secret, &request.message()))
            .expect("sign_v1 writes 64 hex characters"),
        ..request.clone()
    };
    assert!(verify(&signed, &ring, None, 0).is_ok());
    let own = verify(request, &ring, None, 0);
    assert_eq!(own.is_ok(), signed.signature == request.signature);
}

/// v2 header parse: the version header, then the v2 fields. When they
/// parse: the key id, nonce and hash are within their alphabets and bounds,
/// the hash is the hex text it came from, and a v2 signature made with the
/// key the id names verifies (the request's own only if it is that tag).
pub fn header_v2(data: &[u8]) {
    let (method, path, headers) = request_head(data);
    let names = V2Names::default();
    let Ok(version) = signature_v2::version(&names, &headers) else {
        return;
    };
    assert!(version == 1 || version == 2);
    let Ok(v2) = signature_v2::parse(&names, &headers) else {
        return;
    };
    assert!((1..=signature_v2::MAX_KEY_ID_LEN).contains(&v2.key_id.len()));
    assert!(v2
        .key_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
    let nonce_len = signature_v2::MIN_NONCE_HEX..=signature_v2::MAX_NONCE_HEX;
    assert!(nonce_len.contains(&v2.nonce.len()));
    assert!(v2.nonce.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(v2.nonce_prefix().len() == 8);
    assert_eq!(
        hex::decode(v2.content_sha256_hex).ok().as_deref(),
        Some(&v2.content_sha256[..])
    );
    assert_eq!(
        v2.body_matches(b""),
        v2.content_sha256_hex
            .eq_ignore_ascii_case(&signature_v2::content_sha256(b""))
    );
    let v1 = parse(
        &HeaderNames::default(),
        &headers,
        &method,
        &path,
        ParseOptions::default(),
    );
    if let Ok(request) = v1 {
        v2_signs_and_verifies(&request, &v2);
    }
}

fn v2_signs_and_verifies(request: &SignedRequest<'_>, v2: &V2Fields<'_>) {
    let message = MessageV2::of(request, v2);
    let expected = format!(
        "v2|{}|{}|{}|{}|{}|{}|{}",
        request.method,
        request.path,
        request.timestamp,
        request.session_id,
        v2.nonce,
        v2.key_id,
        v2.content_sha256_hex
    );
    assert_eq!(message.to_bytes(), expected.into_bytes());
    let ring = ring(v2.key_id);
    let secret = Secret::from_text(SECRET).expect("a non-empty secret");
    let signed = SignedRequest {
        signature: parse_signature(&signature_v2::sign(&secret, &message))
            .expect("sign writes 64 hex characters"),
        ..request.clone()
    };
    assert!(signature_v2::verify(&signed, v2, &ring, None, 0).is_ok());
    let other = ring_named_other(v2.key_id);
    assert_eq!(
        signature_v2::verify(&signed, v2, &other, None, 0).err(),
        Some(Reject::BadSignature),
        "a key id that names no key"
    );
    let own = signature_v2::verify(request, v2, &ring, None, 0);
    assert_eq!(own.is_ok(), signed.signature == request.signature);
}

/// The same secret under another id: v2 must pick the key by id, not try all.
fn ring_named_other(id: &str) -> Keyring {
    ring(&format!("{id}-other"))
}

/// The canonical messages from raw fields: `\0`-separated method, path,
/// session id, nonce, key id, secret, body, then 8 bytes of timestamp (big
/// endian; missing bytes are zero). v1 is exactly `M|P|T|S` (and splits back
/// into its fields when none holds a `|`), `write_into` agrees with
/// `to_bytes`, and signing then verifying holds for v1 and v2 while any
/// other timestamp or body fails.
pub fn canonical(data: &[u8]) {
    let mut fields = data.splitn(8, |&b| b == 0);
    let mut next = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let (method, path, session_id) = (next(), next(), next());
    let (nonce, key_id, secret, body) = (next(), next(), next(), next());
    let mut stamp = [0u8; 8];
    let tail = fields.next().unwrap_or_default();
    let n = tail.len().min(8);
    stamp[..n].copy_from_slice(&tail[..n]);
    let timestamp = i64::from_be_bytes(stamp);
    let message = MessageV1 {
        method: &method,
        path: &path,
        timestamp,
        session_id: &session_id,
    };
    let bytes = message.to_bytes();
    assert_eq!(
        bytes,
        format!("{method}|{path}|{timestamp}|{session_id}").into_bytes()
    );
    let mut reused = b"left over".to_vec();
    message.write_into(&mut reused);
    assert_eq!(reused, bytes);
    if ![&method, &path, &session_id]
        .iter()
        .any(|f| f.contains('|'))
    {
        let text = String::from_utf8(bytes).expect("the message of UTF-8 fields");
        let parts: Vec<&str> = text.split('|').collect();
        let ts = timestamp.to_string();
        assert_eq!(parts, [method.as_str(), &path, &ts, &session_id]);
    }
    let Some(key) = Secret::from_text(&secret) else {
        return;
    };
    let ring = Keyring::new(vec![Key::new(KeyId::new(&key_id), &key, None)]);
    let signature = sign_v1(&key, &message);
    assert!(signature.len() == 64 && signature.bytes().all(|b| b"0123456789abcdef".contains(&b)));
    let request = SignedRequest {
        method: &method,
        path: &path,
        timestamp,
        session_id: &session_id,
        client_version: None,
        build: None,
        signature: parse_signature(&signature).expect("64 hex characters"),
    };
    assert!(verify(&request, &ring, None, 0).is_ok());
    let later = SignedRequest {
        timestamp: timestamp.wrapping_add(1),
        ..request.clone()
    };
    assert_eq!(
        verify(&later, &ring, None, 0).err(),
        Some(Reject::BadSignature)
    );
    let hash = signature_v2::content_sha256(body.as_bytes());
    let mut sha = [0u8; 32];
    hex::decode_to_slice(&hash, &mut sha).expect("64 hex characters");
    let v2 = V2Fields {
        key_id: &key_id,
        nonce: &nonce,
        content_sha256_hex: &hash,
        content_sha256: sha,
    };
    assert!(v2.body_matches(body.as_bytes()));
    assert!(!v2.body_matches(format!("{body}.").as_bytes()));
    let v2_signed = SignedRequest {
        signature: parse_signature(&signature_v2::sign(&key, &MessageV2::of(&request, &v2)))
            .expect("64 hex characters"),
        ..request.clone()
    };
    assert!(signature_v2::verify(&v2_signed, &v2, &ring, None, 0).is_ok());
    assert!(signature_v2::verify(&request, &v2, &ring, None, 0).is_err());
}

/// Client-address resolution: the first line is the socket peer, the
/// second the trusted proxies (comma-separated CIDRs), every further line
/// one `X-Forwarded-For` value. The client is the peer when the peer is not
/// trusted; otherwise it is the peer or a hop, and never a hop to the left
/// of an untrusted or unparsable one. Limit keys never panic.
pub fn client_ip(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let Some(Ok(peer)) = lines.next().map(|l| l.trim().parse::<IpAddr>()) else {
        return;
    };
    let nets = lines.next().unwrap_or_default().split(',');
    let trusted = TrustedProxies::new(nets.filter_map(|n| n.trim().parse().ok()).collect());
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Ok(value) = HeaderValue::from_bytes(line.as_bytes()) {
            headers.append(X_FORWARDED_FOR, value);
        }
    }
    let client = resolve(peer, header_values(&headers, &X_FORWARDED_FOR), &trusted);
    assert_eq!(client, canonical_ip(client), "the client is canonical");
    let peer = canonical_ip(peer);
    if !trusted.contains(peer) {
        assert_eq!(client, peer, "an untrusted peer is the client");
    }
    // The hops right to left, as resolution walks them.
    let hops: Vec<Option<IpAddr>> = header_values(&headers, &X_FORWARDED_FOR)
        .flat_map(|v| v.split(','))
        .map(parse_hop)
        .rev()
        .collect();
    if client != peer {
        let at = hops
            .iter()
            .position(|h| *h == Some(client))
            .expect("a client other than the peer is a hop");
        assert!(
            hops[..at]
                .iter()
                .all(|h| h.is_some_and(|ip| trusted.contains(ip))),
            "every hop right of the client is a trusted proxy"
        );
    }
    for prefix in [0, 32, 48, 56, 64, 128, 129] {
        if let (IpAddr::V6(ip), IpAddr::V6(key)) = (client, limit_key(client, prefix)) {
            let net = ipnet::Ipv6Net::new(ip, prefix.min(128)).expect("a prefix up to 128");
            assert!(net.contains(&key));
        }
    }
}
