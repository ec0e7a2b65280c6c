//! The embedded store's sealed row: a session's client address, user agent
//! and metadata sealed together as ONE value (one nonce, one AEAD call, one
//! tag), stored as a BLOB in the row's `sealed` column; the user id stays
//! in its own column, sealed deterministically so it is found by equality.
//! Per row that is one AEAD call instead of one per field, and about 30
//! bytes of overhead instead of 45 per field in base64 text.
//!
//! The blob is `FORMAT || nonce (12) || ciphertext || tag (16)`, the
//! plaintext the three fields in order, each a LEB128 varint of its length
//! plus one (0: absent) and its bytes. The associated data binds the
//! row's session id, so a blob copied into another row does not open. The
//! key id is the row's `seal` column.
//!
//! Format 3 (written) is AES-256-GCM; format 2 (read) is the same layout
//! under ChaCha20-Poly1305, which cost about 2 us per row on AES-NI boxes
//! against 0.3 us (poly1305's AVX2 backend computes its key powers for
//! every message; docs/benchmarks.md, issue 14). Each format has its own
//! subkey, so the byte cannot make a blob open under the other cipher.
//! Format 3's subkey seals nothing but these blobs, so its associated data
//! is the bare session id (the subkey already names what is sealed: no
//! labels to hash, nothing to allocate); format 2's is
//! `telegate/seal/v1\0row_private\0` and the session id.
//! Format 2 rows, rows of the earlier per-value format (each field
//! `KEYID:base64`, no blob) and rows in clear still read; all ask to be
//! written again, so a start with a key leaves every row in format 3.
//! PostgreSQL keeps the per-value format (its fields are written by
//! different statements).

use chacha20poly1305::aead::AeadInPlace;

use super::{associated, from_row, Private, SealError, Sealer, NONCE_BYTES, USER_FIELD};

/// The first byte of a blob: its format (the per-value one had no blob):
/// AES-256-GCM, sealed and read.
const FORMAT: u8 = 3;
/// ChaCha20-Poly1305, as the release before wrote it: read only.
const FORMAT_CHACHA: u8 = 2;
const TAG_BYTES: usize = 16;
/// Format 2's associated data's field name for the whole private part.
const ROW_FIELD: &str = "row_private";
/// A length's varint is at most this long (a u64).
const MAX_VARINT: usize = 10;

/// A session row's private part as its columns hold it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredRow {
    /// The `seal` column: the sealing key's id, `None` in clear.
    pub seal: Option<String>,
    /// The per-field columns: in clear; or, sealed, only the user id
    /// (deterministic), the rest in the blob (or, in rows of the earlier
    /// format, each field sealed on its own).
    pub columns: Private,
    /// The `sealed` column: address, user agent and metadata as one value.
    pub blob: Option<Vec<u8>>,
}

/// How a session row's private part is stored.
pub fn to_stored(sealer: Option<&Sealer>, row: &str, private: Private) -> StoredRow {
    let Some(sealer) = sealer else {
        return StoredRow {
            seal: None,
            columns: private,
            blob: None,
        };
    };
    StoredRow {
        seal: Some(sealer.key_id().to_string()),
        blob: Some(sealer.seal_row(row, &private)),
        columns: Private {
            user_id: private.user_id.as_deref().map(|u| sealer.seal_user(u)),
            ..Private::default()
        },
    }
}

/// A session row's private part in clear, and whether the row should be
/// written again (in clear with a key, sealed under an old key, or in the
/// earlier per-value format). A blob that does not open is an error.
pub fn from_stored(
    sealer: Option<&Sealer>,
    row: &str,
    stored: StoredRow,
) -> Result<(Private, bool), SealError> {
    let Some(blob) = stored.blob else {
        let sealed = stored.seal.is_some();
        let (private, again) = from_row(sealer, stored.seal.as_deref(), row, stored.columns)?;
        return Ok((private, again || sealed));
    };
    let Some(id) = stored.seal else {
        return Err(SealError::Unmarked);
    };
    let Some(sealer) = sealer else {
        return Err(SealError::NoKey(id));
    };
    let ((client_ip, user_agent, metadata), current) = sealer.open_row(&id, row, &blob)?;
    let user_id = stored
        .columns
        .user_id
        .map(|v| sealer.open(row, USER_FIELD, &v))
        .transpose()?;
    let again = !current || id != sealer.key_id();
    let private = Private {
        client_ip,
        user_agent,
        user_id,
        metadata,
    };
    Ok((private, again))
}

type Fields = (Option<String>, Option<String>, Option<String>);

impl Sealer {
    /// Seals `private`'s address, user agent and metadata for `row` as one
    /// blob under the sealing key (the user id is not in it).
    pub fn seal_row(&self, row: &str, private: &Private) -> Vec<u8> {
        let fields = [&private.client_ip, &private.user_agent, &private.metadata];
        let plain: usize = fields
            .iter()
            .map(|f| f.as_ref().map_or(0, String::len) + 2)
            .sum();
        let mut blob = Vec::with_capacity(1 + NONCE_BYTES + plain + TAG_BYTES);
        let nonce = self.nonces.next();
        blob.push(FORMAT);
        blob.extend_from_slice(&nonce);
        for field in fields {
            put_field(&mut blob, field.as_deref());
        }
        let start = 1 + NONCE_BYTES;
        // Encryption fails only past 256 GiB of plaintext.
        let tag = self.keys[0]
            .row
            .encrypt_in_place_detached((&nonce).into(), row.as_bytes(), &mut blob[start..])
            .expect("bounded plaintext");
        blob.extend_from_slice(&tag);
        blob
    }

    /// Opens what [`Self::seal_row`] (or the release before, format 2)
    /// made for `row` under key `id`; true when it is in [`FORMAT`].
    fn open_row(&self, id: &str, row: &str, blob: &[u8]) -> Result<(Fields, bool), SealError> {
        let key = self
            .key(id)
            .ok_or_else(|| SealError::UnknownKey(id.to_string()))?;
        let bad = || SealError::DoesNotOpen(id.to_string());
        let start = 1 + NONCE_BYTES;
        if blob.len() < start + TAG_BYTES {
            return Err(bad());
        }
        let (body, tag) = blob[start..].split_at(blob.len() - start - TAG_BYTES);
        let nonce = &blob[1..start];
        let mut plain = body.to_vec();
        let opened = match blob[0] {
            FORMAT => key.row.decrypt_in_place_detached(
                nonce.into(),
                row.as_bytes(),
                &mut plain,
                tag.into(),
            ),
            FORMAT_CHACHA => key.aead.decrypt_in_place_detached(
                nonce.into(),
                &associated(ROW_FIELD, row),
                &mut plain,
                tag.into(),
            ),
            _ => return Err(bad()),
        };
        opened.map_err(|_| bad())?;
        let mut input = plain.as_slice();
        let fields = (
            take_field(&mut input).ok_or_else(bad)?,
            take_field(&mut input).ok_or_else(bad)?,
            take_field(&mut input).ok_or_else(bad)?,
        );
        // It opened, so it is ours; trailing bytes would be a format error.
        if !input.is_empty() {
            return Err(bad());
        }
        Ok((fields, blob[0] == FORMAT))
    }
}

/// A field as its length plus one (LEB128; 0: absent) and its bytes.
fn put_field(out: &mut Vec<u8>, value: Option<&str>) {
    let mut n = value.map_or(0, |v| v.len() as u64 + 1);
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            break;
        }
        out.push(low | 0x80);
    }
    if let Some(value) = value {
        out.extend_from_slice(value.as_bytes());
    }
}

/// The next field of `input` (`None`: not a field of [`put_field`]).
fn take_field(input: &mut &[u8]) -> Option<Option<String>> {
    let mut n: u64 = 0;
    let mut used = 0;
    loop {
        let byte = *input.get(used)?;
        n |= u64::from(byte & 0x7f) << (7 * used);
        used += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if used == MAX_VARINT {
            return None;
        }
    }
    *input = &input[used..];
    let Some(len) = n.checked_sub(1) else {
        return Some(None);
    };
    let len = usize::try_from(len).ok().filter(|l| *l <= input.len())?;
    let (value, rest) = input.split_at(len);
    *input = rest;
    String::from_utf8(value.to_vec()).ok().map(Some)
}

#[cfg(test)]
#[path = "row_tests.rs"]
mod tests;
