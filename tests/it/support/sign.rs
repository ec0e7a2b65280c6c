//! Signed request headers, made with the crate's own signers (sign and
//! verify are symmetric, so a test signs and the gateway verifies): v1 as
//! the shipped client and Traefik send it, v2 with its body binding.

use telegate::protocol::canonical::{sign_v1, MessageV1};
use telegate::secret::Secret;

use super::server::{NOW, SECRET_A, SESSION};

/// A request's headers as `(name, value)` pairs, in the order they are sent.
pub type Headers = Vec<(&'static str, String)>;

/// The four KMS headers a client sends: a v1 signature over `method path`
/// at `timestamp` for `session`, the timestamp, the session and the
/// client version. The signature comes first (tests forge it by index).
pub fn kms_headers(
    secret: &str,
    method: &str,
    path: &str,
    timestamp: i64,
    session: &str,
) -> Headers {
    let message = MessageV1 {
        method,
        path,
        timestamp,
        session_id: session,
    };
    let signature = sign_v1(
        &Secret::from_text(secret).expect("non-empty secret"),
        &message,
    );
    vec![
        ("X-KMS-Signature", signature),
        ("X-KMS-Timestamp", timestamp.to_string()),
        ("X-KMS-Session-ID", session.to_string()),
        ("X-KMS-Client-Version", "2.0.0.0".to_string()),
    ]
}

/// The four KMS headers plus Traefik's X-Forwarded-Method/-Uri.
pub fn signed(secret: &str, method: &str, uri: &str, timestamp: i64, session: &str) -> Headers {
    let path = uri.split('?').next().unwrap_or(uri);
    let mut headers = vec![
        ("X-Forwarded-Method", method.to_string()),
        ("X-Forwarded-Uri", uri.to_string()),
    ];
    headers.extend(kms_headers(secret, method, path, timestamp, session));
    headers
}

/// The eight v2 headers for `POST path` with `body` (as sent) under `key_id`.
pub fn signed_v2(
    secret: &str,
    key_id: &str,
    path: &str,
    timestamp: i64,
    session: &str,
    nonce: &str,
    body: &[u8],
) -> Headers {
    let content_sha256 = telegate::protocol::signature_v2::content_sha256(body);
    let message = telegate::protocol::signature_v2::MessageV2 {
        method: "POST",
        path,
        timestamp,
        session_id: session,
        nonce,
        key_id,
        content_sha256_hex: &content_sha256,
    };
    let signature = telegate::protocol::signature_v2::sign(
        &Secret::from_text(secret).expect("non-empty secret"),
        &message,
    );
    vec![
        ("X-KMS-Signature-Version", "2".to_string()),
        ("X-KMS-Key-Id", key_id.to_string()),
        ("X-KMS-Nonce", nonce.to_string()),
        ("X-KMS-Content-SHA256", content_sha256),
        ("X-KMS-Signature", signature),
        ("X-KMS-Timestamp", timestamp.to_string()),
        ("X-KMS-Session-ID", session.to_string()),
        ("X-KMS-Client-Version", "2.0.0.0".to_string()),
    ]
}

/// A valid request for `/v1/metrics` under key `a` at [`NOW`].
pub fn valid() -> Headers {
    signed(SECRET_A, "POST", "/v1/metrics", NOW, SESSION)
}

/// Replaces or removes (`None`) one header of a list.
pub fn with(mut headers: Headers, name: &'static str, value: Option<&str>) -> Headers {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    if let Some(value) = value {
        headers.push((name, value.to_string()));
    }
    headers
}
