//! Encryption at rest for the persistent stores (`[sessions.encryption]`):
//! the privacy-sensitive fields of a stored session (client address, user
//! agent, metadata, user id) and of a static sighting (client address) are
//! sealed with an AEAD before they reach a row, and opened when a row is
//! read: AES-256-GCM for the embedded store's session rows ([`row`]),
//! ChaCha20-Poly1305 for everything else. Session ids, token hashes,
//! digests, counters and times stay in the clear: they are the lookups and
//! the prune.
//!
//! A storage key is 32 random bytes in a file (`telegate keygen --purpose
//! storage`; [`keys`]: one subkey per cipher); its id is the first 4 bytes
//! of a SHA-256 over it (8 hex characters), stored with each row in its
//! `seal` column. The first key
//! seals, every key opens: a rotated list (new key first) still reads old
//! rows, and the stores re-seal them under the new key.
//!
//! Each sealed value is `KEYID:base64(nonce || ciphertext || tag)` with a
//! unique 96-bit nonce ([`nonce`]: a random base per sealer and a counter;
//! the key id per value too: a PostgreSQL row's fields are written by
//! different statements, possibly under different keys); its associated
//! data names the field and the row's lookup key (session id, sighting
//! digest), so a sealed value moved to another row or column does not
//! open. The embedded store seals a session row's fields as one blob
//! instead ([`row`]). The user id is the exception: it must be
//! found by equality (a user's sessions), so it is sealed deterministically
//! (a synthetic nonce, an HMAC of the value under a key of its own) and
//! bound to its field only; rows of one user show as equal to each other,
//! never the user. A row that does not open, or was sealed with a key not
//! in the list, or sealed while no key is configured, fails the start with
//! that reason: never a plaintext fallback.

use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

mod keys;
mod nonce;
mod row;

pub use keys::{new_key_text, KEY_PREFIX};
pub use row::{from_stored, to_stored, StoredRow};

const NONCE_BYTES: usize = 12;

/// Why a stored value could not be opened; each fails the start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("a row is sealed with storage key {0}, which is not in sessions.encryption.key_files")]
    UnknownKey(String),
    #[error("a row is sealed with storage key {0}, but sessions.encryption is not configured")]
    NoKey(String),
    #[error(
        "a row sealed with storage key {0} does not open (altered, or moved from another row)"
    )]
    DoesNotOpen(String),
    #[error("a row holds a sealed value but names no storage key (altered)")]
    Unmarked,
}

struct StorageKey {
    id: String,
    /// The per-value format, the deterministic seals, and the embedded
    /// row blobs of format 2 (read only).
    aead: ChaCha20Poly1305,
    /// The embedded row blobs of format 3 (sealed and read).
    row: Aes256Gcm,
    /// The user id's synthetic nonce is an HMAC under this.
    lookup: Zeroizing<[u8; 32]>,
}

/// The configured storage keys; the first seals.
pub struct Sealer {
    keys: Vec<StorageKey>,
    nonces: nonce::Nonces,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        write!(f, "Sealer({ids:?})")
    }
}

/// The privacy-sensitive part of a row, as stored (sealed or clear).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Private {
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub user_id: Option<String>,
    /// The metadata object as JSON text.
    pub metadata: Option<String>,
}

fn associated(field: &str, row: &str) -> Vec<u8> {
    const DOMAIN: &[u8] = b"telegate/seal/v1\0";
    let mut aad = Vec::with_capacity(DOMAIN.len() + field.len() + 1 + row.len());
    aad.extend_from_slice(DOMAIN);
    aad.extend_from_slice(field.as_bytes());
    aad.push(0);
    aad.extend_from_slice(row.as_bytes());
    aad
}

impl Sealer {
    /// The id of the sealing key (the first), stored in each row's `seal`.
    pub fn key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key's id, sealing first (the start's log line).
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Whether `value` names one of the configured keys (PostgreSQL's
    /// token check sees a user id without its row's `seal`).
    pub fn names_a_key(&self, value: &str) -> bool {
        value
            .split_once(':')
            .is_some_and(|(id, _)| self.key(id).is_some())
    }

    fn key(&self, id: &str) -> Option<&StorageKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Seals `plain` for `field` of `row` under the sealing key.
    pub fn seal(&self, row: &str, field: &str, plain: &str) -> String {
        let nonce = self.nonces.next();
        self.seal_with(&self.keys[0], nonce, &associated(field, row), plain)
    }

    /// Seals the user id deterministically: equal ids, equal values.
    pub fn seal_user(&self, user: &str) -> String {
        self.seal_lookup(USER_FIELD, user)
    }

    /// A value found by equality: deterministic, bound to `field`, not to
    /// a row (the user id; PostgreSQL's `ip_key`, the address a
    /// per-address limit counts by, never read back; an embedded ban's
    /// subject, opened by [`Self::open`] with the field).
    pub fn seal_lookup(&self, field: &str, value: &str) -> String {
        seal_deterministic(&self.keys[0], field, value)
    }

    /// A 64-bit hash of `value` keyed by the sealing key: a quota
    /// window's scope hash (a plain hash of an address can be reversed by
    /// trying every address) as the embedded store keeps it.
    pub fn keyed_hash(&self, value: u64) -> u64 {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.keys[0].lookup[..])
            .expect("any key length");
        mac.update(b"quota_window\0");
        mac.update(&value.to_le_bytes());
        let mut out = [0u8; 8];
        out.copy_from_slice(&mac.finalize().into_bytes()[..8]);
        u64::from_le_bytes(out)
    }

    fn seal_with(
        &self,
        key: &StorageKey,
        nonce: [u8; NONCE_BYTES],
        aad: &[u8],
        plain: &str,
    ) -> String {
        let payload = Payload {
            msg: plain.as_bytes(),
            aad,
        };
        // Encryption fails only past 256 GiB of plaintext.
        let sealed = key
            .aead
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("bounded plaintext");
        encode(key, &nonce, &sealed)
    }

    /// Opens what [`Self::seal`] (or [`Self::seal_user`] for the field
    /// `user_id`) made under key `key_id`.
    pub fn open(&self, row: &str, field: &str, sealed: &str) -> Result<String, SealError> {
        let (key_id, text) = sealed.split_once(':').unwrap_or(("", sealed));
        let key = self
            .key(key_id)
            .ok_or_else(|| SealError::UnknownKey(key_id.to_string()))?;
        let bad = || SealError::DoesNotOpen(key_id.to_string());
        let bytes = STANDARD_NO_PAD.decode(text).map_err(|_| bad())?;
        if bytes.len() < NONCE_BYTES {
            return Err(bad());
        }
        let (nonce, body) = bytes.split_at(NONCE_BYTES);
        // Deterministic values are bound to their field only.
        let aad = if LOOKUP_FIELDS.contains(&field) {
            associated(field, "")
        } else {
            associated(field, row)
        };
        let plain = key
            .aead
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }

    /// Seals every present field of `row`.
    pub fn seal_private(&self, row: &str, private: &Private) -> Private {
        let seal = |field: &str, value: &Option<String>| {
            value.as_deref().map(|v| self.seal(row, field, v))
        };
        Private {
            client_ip: seal("client_ip", &private.client_ip),
            user_agent: seal("user_agent", &private.user_agent),
            user_id: private.user_id.as_deref().map(|u| self.seal_user(u)),
            metadata: seal("metadata", &private.metadata),
        }
    }

    /// Opens every present field of `row`.
    pub fn open_private(&self, row: &str, private: Private) -> Result<Private, SealError> {
        let open = |field: &str, value: Option<String>| {
            value.map(|v| self.open(row, field, &v)).transpose()
        };
        Ok(Private {
            client_ip: open("client_ip", private.client_ip)?,
            user_agent: open("user_agent", private.user_agent)?,
            user_id: open(USER_FIELD, private.user_id)?,
            metadata: open("metadata", private.metadata)?,
        })
    }
}

const USER_FIELD: &str = "user_id";
/// An embedded store ban's subject (`address:..`, `session:..`).
pub const BAN_FIELD: &str = "ban_subject";
/// Fields sealed deterministically (found by equality).
const LOOKUP_FIELDS: [&str; 3] = [USER_FIELD, "ip_key", BAN_FIELD];

/// A synthetic nonce (an HMAC of field and value under the key's lookup
/// key): the same value seals the same, different values never share one.
fn seal_deterministic(key: &StorageKey, field: &str, value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.lookup[..]).expect("any key length");
    mac.update(field.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    let mut nonce = [0u8; NONCE_BYTES];
    nonce.copy_from_slice(&mac.finalize().into_bytes()[..NONCE_BYTES]);
    let payload = Payload {
        msg: value.as_bytes(),
        aad: &associated(field, ""),
    };
    let sealed = key
        .aead
        .encrypt(Nonce::from_slice(&nonce), payload)
        .expect("bounded plaintext");
    encode(key, &nonce, &sealed)
}

fn encode(key: &StorageKey, nonce: &[u8], sealed: &[u8]) -> String {
    let mut out = String::with_capacity(9 + (nonce.len() + sealed.len()) * 4 / 3 + 4);
    out.push_str(&key.id);
    out.push(':');
    STANDARD_NO_PAD.encode_string([nonce, sealed].concat(), &mut out);
    out
}

/// How a row is stored: its `seal` column (the key id, `None` in clear)
/// and its private fields as they go to the columns.
pub fn to_row(sealer: Option<&Sealer>, row: &str, private: Private) -> (Option<String>, Private) {
    match sealer {
        Some(sealer) => (
            Some(sealer.key_id().to_string()),
            sealer.seal_private(row, &private),
        ),
        None => (None, private),
    }
}

/// A row's private fields in clear, and whether the row should be written
/// again (in clear but a key is configured, or sealed with an old key).
pub fn from_row(
    sealer: Option<&Sealer>,
    seal: Option<&str>,
    row: &str,
    private: Private,
) -> Result<(Private, bool), SealError> {
    match (sealer, seal) {
        (None, None) => Ok((private, false)),
        (Some(_), None) => Ok((private, true)),
        (None, Some(id)) => Err(SealError::NoKey(id.to_string())),
        (Some(sealer), Some(id)) => {
            let opened = sealer.open_private(row, private)?;
            Ok((opened, id != sealer.key_id()))
        }
    }
}

/// Every value `user`'s rows may hold in a `user_id` column: in clear,
/// and sealed under each key (PostgreSQL rows are not all sealed again at
/// a rotation).
pub fn user_columns(sealer: Option<&Sealer>, user: &str) -> Vec<String> {
    lookup_columns(sealer, USER_FIELD, user)
}

/// Every value a deterministically sealed `field` holding `value` may be
/// stored as: in clear, and sealed under each key.
pub fn lookup_columns(sealer: Option<&Sealer>, field: &str, value: &str) -> Vec<String> {
    let mut values = vec![value.to_string()];
    if let Some(sealer) = sealer {
        values.extend(
            sealer
                .keys
                .iter()
                .map(|key| seal_deterministic(key, field, value)),
        );
    }
    values
}

/// The value of the `user_id` column that finds `user`'s rows.
pub fn user_column(sealer: Option<&Sealer>, user: &str) -> String {
    match sealer {
        Some(sealer) => sealer.seal_user(user),
        None => user.to_string(),
    }
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;
