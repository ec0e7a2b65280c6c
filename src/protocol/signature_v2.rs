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
#[path = "signature_v2_golden.rs"]
pub(crate) mod golden;

#[cfg(test)]
#[path = "signature_v2_tests.rs"]
mod tests;
