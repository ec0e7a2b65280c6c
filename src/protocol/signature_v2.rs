//! Signature v2, body-bound and replay-safe (pure).
//!
//! Extra headers: `X-KMS-Signature-Version: 2`, `X-KMS-Key-Id`, `X-KMS-Nonce`
//! (>= 128 bits, hex) and `X-KMS-Content-SHA256` (hex SHA-256 of the body as
//! sent, i.e. after gzip). The signed message is
//! `v2|METHOD|PATH|TIMESTAMP|SESSION|NONCE|KEY_ID|CONTENT_SHA256`, every field
//! as sent. The key id selects the key directly; the body hash is recomputed
//! by whoever holds the body (403 `body_mismatch`). See docs/protocol.md.

use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::protocol::canonical::HmacSha256;
use crate::protocol::keyring::{Key, KeyId, Keyring};
use crate::protocol::reject::Reject;
use crate::protocol::signed_request::SignedRequest;
use crate::secret::Secret;

/// Shortest nonce: 128 bits as hex.
pub const MIN_NONCE_HEX: usize = 32;
/// Longest nonce we keep (and remember in the replay cache).
pub const MAX_NONCE_HEX: usize = 128;
/// Longest key id (as `auth.keys[].id`).
pub const MAX_KEY_ID_LEN: usize = 64;

/// The v2 header names, from the configured prefix.
#[derive(Debug, Clone)]
pub struct V2Names {
    pub version: HeaderName,
    pub key_id: HeaderName,
    pub nonce: HeaderName,
    pub content_sha256: HeaderName,
}

impl V2Names {
    pub fn with_prefix(prefix: &str) -> Result<V2Names, http::header::InvalidHeaderName> {
        let name = |suffix: &str| HeaderName::try_from(format!("{prefix}-{suffix}"));
        Ok(V2Names {
            version: name("Signature-Version")?,
            key_id: name("Key-Id")?,
            nonce: name("Nonce")?,
            content_sha256: name("Content-SHA256")?,
        })
    }
}

impl Default for V2Names {
    fn default() -> Self {
        V2Names::with_prefix("X-KMS").expect("X-KMS is a valid header prefix")
    }
}

/// The v2 fields of a request, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Fields<'a> {
    pub key_id: &'a str,
    pub nonce: &'a str,
    /// The hex text as sent (it is part of the message).
    pub content_sha256_hex: &'a str,
    pub content_sha256: [u8; 32],
}

impl V2Fields<'_> {
    /// The first 8 characters of the nonce: enough to correlate log lines.
    pub fn nonce_prefix(&self) -> &str {
        &self.nonce[..8.min(self.nonce.len())]
    }

    /// Whether `body` is the body that was signed (constant time).
    pub fn body_matches(&self, body: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(body).into();
        bool::from(digest.ct_eq(&self.content_sha256))
    }
}

/// `1` when the version header is absent, `2` for v2; anything else is malformed.
pub fn version(names: &V2Names, headers: &HeaderMap) -> Result<u8, Reject> {
    match headers.get(&names.version) {
        None => Ok(1),
        Some(value) => match value.to_str().map(str::trim) {
            Ok("1") => Ok(1),
            Ok("2") => Ok(2),
            _ => Err(Reject::MalformedHeader),
        },
    }
}

/// The v2 headers of a request that declared version 2. Missing or
/// malformed: 401 `malformed_header`.
pub fn parse<'a>(names: &V2Names, headers: &'a HeaderMap) -> Result<V2Fields<'a>, Reject> {
    let text = |name: &HeaderName| -> Result<&'a str, Reject> {
        headers
            .get(name)
            .ok_or(Reject::MalformedHeader)?
            .to_str()
            .map(str::trim)
            .map_err(|_| Reject::MalformedHeader)
    };
    let key_id = text(&names.key_id)?;
    let key_id_ok = !key_id.is_empty()
        && key_id.len() <= MAX_KEY_ID_LEN
        && key_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    let nonce = text(&names.nonce)?;
    let nonce_ok = (MIN_NONCE_HEX..=MAX_NONCE_HEX).contains(&nonce.len())
        && nonce.bytes().all(|b| b.is_ascii_hexdigit());
    let content_sha256_hex = text(&names.content_sha256)?;
    let mut content_sha256 = [0u8; 32];
    let hash_ok = content_sha256_hex.len() == 64
        && hex::decode_to_slice(content_sha256_hex, &mut content_sha256).is_ok();
    if !(key_id_ok && nonce_ok && hash_ok) {
        return Err(Reject::MalformedHeader);
    }
    Ok(V2Fields {
        key_id,
        nonce,
        content_sha256_hex,
        content_sha256,
    })
}

/// The fields of a v2 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageV2<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub timestamp: i64,
    pub session_id: &'a str,
    pub nonce: &'a str,
    pub key_id: &'a str,
    pub content_sha256_hex: &'a str,
}

impl MessageV2<'_> {
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "v2|{}|{}|{}|{}|{}|{}|{}",
            self.method,
            self.path,
            self.timestamp,
            self.session_id,
            self.nonce,
            self.key_id,
            self.content_sha256_hex
        )
        .into_bytes()
    }

    /// The v2 message of a parsed request.
    pub fn of<'a>(request: &SignedRequest<'a>, v2: &V2Fields<'a>) -> MessageV2<'a> {
        MessageV2 {
            method: request.method,
            path: request.path,
            timestamp: request.timestamp,
            session_id: request.session_id,
            nonce: v2.nonce,
            key_id: v2.key_id,
            content_sha256_hex: v2.content_sha256_hex,
        }
    }
}

/// Signs a v2 message: the lowercase hex signature a client sends.
pub fn sign(secret: &Secret, message: &MessageV2<'_>) -> String {
    use hmac::Mac;
    let mut mac =
        HmacSha256::new_from_slice(secret.expose()).expect("HMAC takes keys of any length");
    mac.update(&message.to_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Hex SHA-256 of a body, as `X-KMS-Content-SHA256` carries it.
pub fn content_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Verifies a v2 signature with the key its id names (live, and allowed by
/// the policy). An unknown key id is a bad signature like any other.
pub fn verify<'k>(
    request: &SignedRequest<'_>,
    v2: &V2Fields<'_>,
    ring: &'k Keyring,
    allowed: Option<&[KeyId]>,
    now: i64,
) -> Result<&'k Key, Reject> {
    let key = ring
        .candidates(allowed, now)?
        .find(|key| key.id.as_str() == v2.key_id)
        .ok_or(Reject::BadSignature)?;
    let tag = key.tag(&MessageV2::of(request, v2).to_bytes());
    if bool::from(tag.ct_eq(&request.signature)) {
        Ok(key)
    } else {
        Err(Reject::BadSignature)
    }
}

/// The golden table (`tests/vectors/v2.tsv`), computed with `openssl` by
/// `scripts/gen-vectors`, independently of this code.
#[cfg(test)]
pub(crate) mod golden {
    pub struct Vector {
        pub secret: &'static str,
        pub key_id: &'static str,
        pub method: &'static str,
        pub path: &'static str,
        pub timestamp: i64,
        pub session_id: &'static str,
        pub nonce: &'static str,
        pub body_hex: &'static str,
        pub content_sha256: &'static str,
        pub message: &'static str,
        pub signature: &'static str,
    }

    pub fn vectors() -> Vec<Vector> {
        include_str!("../../tests/vectors/v2.tsv")
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                Vector {
                    secret: f[0],
                    key_id: f[1],
                    method: f[2],
                    path: f[3],
                    timestamp: f[4].parse().unwrap(),
                    session_id: f[5],
                    nonce: f[6],
                    body_hex: f[7],
                    content_sha256: f[8],
                    message: f[9],
                    signature: f[10],
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
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
}
