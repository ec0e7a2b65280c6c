//! What a session id may contain: the one rule, applied where an id enters
//! (the signed headers) and relied on where one is named again (the session
//! API's paths), so every id that passes `/auth` can be read and revoked.
//!
//! An id is 1-128 bytes of UTF-8 (the docs and the v2 vectors use `séssion`),
//! without the characters that would change its meaning on the way: `|`
//! separates the signed fields; `/`, `?`, `#`, `%` and `\` are URL structure
//! (a path segment, the query, the fragment, an escape, a slash to some
//! normalisers); whitespace and control characters split or hide it in
//! paths and log lines. Anything else is refused as `malformed_header`.

use crate::protocol::reject::Reject;

/// Longest id, in bytes. A GUID is 36.
pub const MAX_LEN: usize = 128;

/// The characters an id never contains, besides whitespace and controls.
pub const FORBIDDEN: &[char] = &['|', '/', '?', '#', '%', '\\'];

/// Whether `id` is a session id a client may sign (the empty string is not:
/// a missing id is the caller's business).
pub fn is_valid(id: &str) -> bool {
    if id.is_empty() || id.len() > MAX_LEN {
        return false;
    }
    // Ids are nearly always ASCII (GUIDs): one table load per byte, and
    // the character rule only once a byte past ASCII shows up.
    for b in id.bytes() {
        match ASCII_ALLOWED.get(usize::from(b)) {
            Some(true) => {}
            Some(false) => return false,
            None => return !id.chars().any(refused),
        }
    }
    true
}

/// The rule, per character.
fn refused(c: char) -> bool {
    c.is_control() || c.is_whitespace() || FORBIDDEN.contains(&c)
}

/// For each ASCII byte, whether [`refused`] lets it pass (computed at compile time).
const ASCII_ALLOWED: [bool; 128] = {
    let mut table = [false; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8 as char;
        // is_control / is_whitespace for ASCII, spelled out (const).
        let control = b < 0x20 || b == 0x7f;
        let whitespace = matches!(b, 0x09..=0x0d | 0x20);
        let mut forbidden = false;
        let mut i = 0;
        while i < FORBIDDEN.len() {
            forbidden |= FORBIDDEN[i] == c;
            i += 1;
        }
        table[b] = !(control || whitespace || forbidden);
        b += 1;
    }
    table
};

/// [`is_valid`] as the refusal the signed headers get.
pub fn check(id: &str) -> Result<(), Reject> {
    if is_valid(id) {
        Ok(())
    } else {
        Err(Reject::MalformedHeader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_words_and_utf8_are_ids() {
        for id in [
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "abc123-def456-session-id",
            "séssion",
            "セッション",
            "a.b_c:d@e+f~g=h;i,j!k*l'm(n)o[p]q{r}s$t&u",
        ] {
            assert!(is_valid(id), "{id}");
        }
        assert!(is_valid(&"x".repeat(MAX_LEN)));
    }

    #[test]
    fn structure_whitespace_and_controls_are_not() {
        for id in [
            "",
            "a|b",
            "evil/one",
            "a?b",
            "a#b",
            "a%2Fb",
            "a\\b",
            "a b",
            "a\tb",
            "a\u{0}b",
            "a\u{7f}b",
            "a\u{85}b",
            "a\u{a0}b",
            "a\u{2028}b",
        ] {
            assert!(!is_valid(id), "{id:?}");
            assert_eq!(check(id), Err(Reject::MalformedHeader));
        }
        assert!(!is_valid(&"x".repeat(MAX_LEN + 1)));
        // The ASCII table says what the character rule says, byte by byte.
        for b in 0u8..128 {
            let id = format!("a{}b", b as char);
            assert_eq!(is_valid(&id), !refused(b as char), "byte {b:#04x}");
        }
        assert!(
            !is_valid(&"é".repeat(MAX_LEN / 2 + 1)),
            "bytes, not characters"
        );
    }
}
