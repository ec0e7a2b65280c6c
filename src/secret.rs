//! A signing secret that cannot reach a log by accident.
//!
//! `Secret` has no `Display`, its `Debug` prints `Secret(***)`, and its bytes are
//! zeroized when it is dropped. The only way to the bytes is [`Secret::expose`],
//! which makes every use easy to find.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The SHA-256 of the development key shipped in `config/dev-signing.key`.
/// A ring holding this secret is flagged so the server can warn loudly.
const DEV_KEY_SHA256: &str = "db9ceae0783b2d89779fa8a9f1b77f0bb3d7f86d42dd6dcb2c79828e1c61b1ff";

#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Builds a secret from the text of a key file or variable.
    ///
    /// The client uses the secret *string's* UTF-8 bytes as the HMAC key (not the
    /// hex-decoded bytes), so we keep the text itself, trimmed of surrounding
    /// whitespace and newlines.
    pub fn from_text(text: &str) -> Option<Secret> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return None;
        }
        Some(Secret(Zeroizing::new(trimmed.as_bytes().to_vec())))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// True when this is the development key that ships in `config/`.
    pub fn is_development_key(&self) -> bool {
        hex::encode(Sha256::digest(self.expose())) == DEV_KEY_SHA256
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let secret = Secret::from_text("hunter2-very-secret").unwrap();
        let printed = format!("{secret:?} {:?}", Some(&secret));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }

    #[test]
    fn text_is_trimmed_and_kept_as_text_bytes() {
        let secret = Secret::from_text("  abcd\n").unwrap();
        assert_eq!(secret.expose(), b"abcd");
        assert!(Secret::from_text(" \n").is_none());
    }

    #[test]
    fn the_shipped_development_key_is_recognised() {
        let shipped = include_str!("../config/dev-signing.key");
        assert!(Secret::from_text(shipped).unwrap().is_development_key());
        assert!(!Secret::from_text("another").unwrap().is_development_key());
    }
}
