//! The canonical v1 message and its HMAC-SHA256 tag (pure).
//!
//! `{METHOD}|{PATH}|{TIMESTAMP}|{SESSION_ID}`, UTF-8, no trailing newline, keyed
//! with the secret text's own bytes. This is the byte-for-byte contract with the
//! shipped KOTORModSync clients (PROTOCOL.md), so sign and verify share it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

pub type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 tag in bytes.
pub const TAG_LEN: usize = 32;

/// The fields of a v1 signature, borrowed from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageV1<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub timestamp: i64,
    pub session_id: &'a str,
}

impl MessageV1<'_> {
    /// Writes the canonical message into `buf` (cleared first), so the hot path
    /// can reuse one allocation.
    pub fn write_into(&self, buf: &mut Vec<u8>) {
        // By hand rather than `write!`: the formatting machinery cost more
        // than the rest of building the message, on every signed request.
        buf.clear();
        buf.extend_from_slice(self.method.as_bytes());
        buf.push(b'|');
        buf.extend_from_slice(self.path.as_bytes());
        buf.push(b'|');
        write_decimal(buf, self.timestamp);
        buf.push(b'|');
        buf.extend_from_slice(self.session_id.as_bytes());
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf =
            Vec::with_capacity(self.method.len() + self.path.len() + self.session_id.len() + 24);
        self.write_into(&mut buf);
        buf
    }
}

/// `n` in decimal, as `Display` writes it (a `-` for a negative value).
fn write_decimal(buf: &mut Vec<u8>, n: i64) {
    if n < 0 {
        buf.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        // rest % 10 < 10: the cast keeps it exactly.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

/// A keyed HMAC state, computed once per key so each request only clones it.
pub fn keyed_mac(secret: &Secret) -> HmacSha256 {
    // HMAC accepts keys of any length; this never fails.
    HmacSha256::new_from_slice(secret.expose()).expect("HMAC takes keys of any length")
}

/// The tag of `message` under an already keyed state.
pub fn tag(keyed: &HmacSha256, message: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = keyed.clone();
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Signs a v1 message and returns the lowercase hex signature the client sends.
pub fn sign_v1(secret: &Secret, message: &MessageV1<'_>) -> String {
    hex::encode(tag(&keyed_mac(secret), &message.to_bytes()))
}

/// The golden table (`tests/vectors/v1.tsv`), computed with
/// `openssl dgst -sha256 -hmac` by `scripts/gen-vectors`, independently of
/// this code.
#[cfg(test)]
pub(crate) mod golden {
    pub struct Vector {
        pub secret: &'static str,
        pub method: &'static str,
        pub path: &'static str,
        pub timestamp: i64,
        pub session_id: &'static str,
        pub message: &'static str,
        pub signature: &'static str,
    }

    pub fn vectors() -> Vec<Vector> {
        include_str!("../../tests/vectors/v1.tsv")
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                Vector {
                    secret: f[0],
                    method: f[1],
                    path: f[2],
                    timestamp: f[3].parse().unwrap(),
                    session_id: f[4],
                    message: f[5],
                    signature: f[6],
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_display_writes_them() {
        for n in [
            0,
            7,
            10,
            1_700_000_000,
            -1,
            -1_700_000_000,
            i64::MAX,
            i64::MIN,
        ] {
            let mut buf = Vec::new();
            write_decimal(&mut buf, n);
            assert_eq!(buf, n.to_string().as_bytes());
        }
    }

    #[test]
    fn golden_vectors_match_openssl() {
        let vectors = golden::vectors();
        assert!(vectors.len() >= 6);
        for v in vectors {
            let message = MessageV1 {
                method: v.method,
                path: v.path,
                timestamp: v.timestamp,
                session_id: v.session_id,
            };
            assert_eq!(message.to_bytes(), v.message.as_bytes());
            let secret = Secret::from_text(v.secret).unwrap();
            assert_eq!(sign_v1(&secret, &message), v.signature, "{}", v.message);
        }
    }

    #[test]
    fn message_is_pipe_separated_without_trailing_newline() {
        let message = MessageV1 {
            method: "POST",
            path: "/v1/metrics",
            timestamp: 1697234567,
            session_id: "abc123-def456-session-id",
        };
        assert_eq!(
            message.to_bytes(),
            b"POST|/v1/metrics|1697234567|abc123-def456-session-id"
        );
    }

    #[test]
    fn write_into_reuses_and_clears_the_buffer() {
        let mut buf = b"left over".to_vec();
        MessageV1 {
            method: "GET",
            path: "/",
            timestamp: 0,
            session_id: "",
        }
        .write_into(&mut buf);
        assert_eq!(buf, b"GET|/|0|");
    }
}
