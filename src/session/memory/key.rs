//! Session ids as the memory store keys its signed table and address
//! lists: a lowercase GUID (what clients send) as its 16 bytes, anything
//! else as text. A [`KeyRef`] borrows the id, so a lookup allocates nothing.

use std::hash::{Hash, Hasher};

use indexmap::Equivalent;

use crate::protocol::signed_request::hex_digit;

/// A session id: 16 bytes for a lowercase GUID (what clients send), text
/// otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    Guid([u8; 16]),
    Text(Box<str>),
}

/// A borrowed [`Key`], to look up without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyRef<'a> {
    Guid([u8; 16]),
    Text(&'a str),
}

impl<'a> KeyRef<'a> {
    pub(super) fn new(id: &'a str) -> KeyRef<'a> {
        parse_guid(id).map_or(KeyRef::Text(id), KeyRef::Guid)
    }

    pub(super) fn to_owned(self) -> Key {
        match self {
            KeyRef::Guid(bytes) => Key::Guid(bytes),
            KeyRef::Text(text) => Key::Text(text.into()),
        }
    }
}

impl Key {
    pub(super) fn as_ref(&self) -> KeyRef<'_> {
        match self {
            Key::Guid(bytes) => KeyRef::Guid(*bytes),
            Key::Text(text) => KeyRef::Text(text),
        }
    }

    pub(super) fn render(&self) -> String {
        match self {
            Key::Guid(b) => {
                let h = hex::encode(b);
                format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            }
            Key::Text(text) => text.to_string(),
        }
    }
}

// One hash for both forms, so a KeyRef finds its Key.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state)
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            KeyRef::Guid(bytes) => {
                state.write_u8(0);
                state.write(bytes);
            }
            KeyRef::Text(text) => {
                state.write_u8(1);
                text.hash(state);
            }
        }
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self == key.as_ref()
    }
}

/// The 16 bytes of a canonical lowercase GUID (`8-4-4-4-12` hex), which
/// render back to exactly the same text. One pass over the 36 bytes: this
/// runs on every signed request.
fn parse_guid(id: &str) -> Option<[u8; 16]> {
    let bytes: &[u8; 36] = id.as_bytes().try_into().ok()?;
    let mut out = [0u8; 16];
    let mut at = 0;
    for (n, byte) in out.iter_mut().enumerate() {
        // A dash before bytes 4, 6, 8 and 10 (text offsets 8, 13, 18, 23).
        if matches!(n, 4 | 6 | 8 | 10) {
            if bytes[at] != b'-' {
                return None;
            }
            at += 1;
        }
        *byte = (lower_hex(bytes[at])? << 4) | lower_hex(bytes[at + 1])?;
        at += 2;
    }
    Some(out)
}

/// A lowercase hex digit's value (uppercase would not render back).
fn lower_hex(b: u8) -> Option<u8> {
    hex_digit(b).filter(|_| !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_ids_are_kept_as_bytes_and_render_back() {
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let key = KeyRef::new(id).to_owned();
        assert!(matches!(key, Key::Guid(_)));
        assert_eq!(key.render(), id);
        for other in [
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "0f8fad5bd9cb469fa16570867728950e",
            "s1",
            "0f8fad5b-d9cb-469f-a165-70867728950g",
            "0f8fad5b-d9cb-469f-a165x70867728950e",
            "0f8fad5b-d9cb-469f-a16-570867728950e",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "0f8fad5b-d9cb-469f-a165-70867728950e0",
            "0f8fad5b-d9cb-469f-a165-7086772895\u{e9}",
        ] {
            let key = KeyRef::new(other).to_owned();
            assert!(matches!(key, Key::Text(_)), "{other}");
            assert_eq!(key.render(), other);
        }
    }
}
