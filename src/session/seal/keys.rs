//! Storage keys: reading the key files of `[sessions.encryption]`, the
//! key id, and the subkeys each cipher uses. A storage key is 32 random
//! bytes in a file (`telegate keygen --purpose storage`); every subkey is
//! an HMAC-SHA256 of a label under it, so one key file serves every format
//! and no two ciphers ever share a key (a nonce of one cipher meeting a
//! nonce of the other is then no event at all).

use aes_gcm::Aes256Gcm;
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{ChaCha20Poly1305, Key};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{nonce, Sealer, StorageKey};
use crate::config::EncryptionSettings;
use crate::session::StoreError;

/// What `telegate keygen --purpose storage` writes before the key's hex,
/// so a signing secret given by mistake is refused.
pub const KEY_PREFIX: &str = "telegate-storage-key-v1:";

fn derive(master: &[u8; 32], label: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master).expect("any key length");
    mac.update(label);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

impl Sealer {
    /// Reads every key file (regular, bounded, like the signing keys).
    pub fn load(settings: &EncryptionSettings) -> Result<Sealer, StoreError> {
        let mut keys = Vec::with_capacity(settings.key_files.len());
        for path in &settings.key_files {
            let fail = |why: String| {
                StoreError(format!(
                    "sessions.encryption.key_files {}: {why}",
                    path.display()
                ))
            };
            let bytes =
                Zeroizing::new(crate::protocol::keyring::read_key_file(path).map_err(fail)?);
            let key = std::str::from_utf8(&bytes)
                .ok()
                .and_then(parse_key)
                .ok_or_else(|| {
                    fail(format!(
                        "not a storage key (`telegate keygen --purpose storage` writes {KEY_PREFIX} and 64 hex characters)"
                    ))
                })?;
            keys.push(key);
        }
        Sealer::from_keys(&keys.iter().map(|k| **k).collect::<Vec<_>>())
    }

    /// From raw keys, the sealing one first (tests, benchmarks).
    pub fn from_keys(keys: &[[u8; 32]]) -> Result<Sealer, StoreError> {
        let mut out: Vec<StorageKey> = Vec::with_capacity(keys.len());
        for master in keys {
            let id = hex::encode(
                &Sha256::digest([b"telegate/seal/id\0".as_slice(), master].concat())[..4],
            );
            if out.iter().any(|k| k.id == id) {
                return Err(StoreError(format!(
                    "sessions.encryption.key_files: storage key {id} is listed twice"
                )));
            }
            let enc = derive(master, b"telegate/seal/v1/encrypt");
            let row = derive(master, b"telegate/seal/v1/aes-256-gcm");
            out.push(StorageKey {
                aead: ChaCha20Poly1305::new(Key::from_slice(&enc[..])),
                row: Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(&row[..])),
                lookup: derive(master, b"telegate/seal/v1/lookup"),
                id,
            });
        }
        if out.is_empty() {
            return Err(StoreError("sessions.encryption.key_files is empty".into()));
        }
        Ok(Sealer {
            keys: out,
            nonces: nonce::Nonces::new(),
        })
    }
}

/// A key file's text: [`KEY_PREFIX`] and 64 hex characters, trimmed.
fn parse_key(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let hex_text = text.trim().strip_prefix(KEY_PREFIX)?;
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_text, &mut key[..]).ok()?;
    Some(key)
}

/// A new storage key file's text (`telegate keygen --purpose storage`).
pub fn new_key_text() -> Result<String, String> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut key[..]).map_err(|err| format!("OS RNG failed: {err}"))?;
    Ok(format!("{KEY_PREFIX}{}", hex::encode(&key[..])))
}
