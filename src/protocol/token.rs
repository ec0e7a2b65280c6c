//! Session tokens: 256 bits from the OS RNG, URL-safe base64 without
//! padding, handed to the client once. The store keeps only their SHA-256
//! ([`TokenHash`]); a lookup by hash is safe without a constant-time compare
//! because nobody can choose an input that lands near a 256-bit random
//! token's hash.
//!
//! Also here: where a request presents a token (`Authorization: Bearer`,
//! `X-Session-ID`, a cookie), and the ids of issued sessions (random,
//! GUID-shaped, unrelated to the token).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub const X_SESSION_ID: HeaderName = HeaderName::from_static("x-session-id");

/// Random bytes in a token.
pub const TOKEN_BYTES: usize = 32;

/// A freshly issued token. Its `Debug` never shows it; it is zeroized on drop.
pub struct Token(Zeroizing<String>);

impl Token {
    pub fn generate() -> Result<Token, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        getrandom::fill(&mut bytes[..])?;
        Ok(Token(Zeroizing::new(URL_SAFE_NO_PAD.encode(&bytes[..]))))
    }

    /// The text to hand to the client, once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// SHA-256 of a token's text: what the store keys tokens by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of whatever a client presented (any text: an unknown token
    /// simply matches nothing).
    pub fn of(presented: &str) -> TokenHash {
        TokenHash(Sha256::digest(presented.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A hash a persistent store kept (it never sees the token).
    pub fn from_bytes(bytes: [u8; 32]) -> TokenHash {
        TokenHash(bytes)
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}..)", hex::encode(&self.0[..4]))
    }
}

/// A new issued session id: 128 random bits shaped like a GUID (v4), as the
/// signed clients' own session ids are.
pub fn new_session_id() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// The value of `Authorization: Bearer <value>` (scheme case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty()).then_some(rest)
}

/// `X-Session-ID: <token>`.
pub fn session_header(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(X_SESSION_ID)?.to_str().ok()?.trim();
    (!value.is_empty()).then_some(value)
}

/// The value of cookie `name`, from any `Cookie` header.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// A token as `/auth` accepts it: bearer, then `X-Session-ID`, then the cookie.
pub fn presented<'a>(headers: &'a HeaderMap, cookie_name: &str) -> Option<&'a str> {
    bearer(headers)
        .or_else(|| session_header(headers))
        .or_else(|| cookie(headers, cookie_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::header_map as headers;

    #[test]
    fn tokens_are_256_bit_url_safe_and_distinct() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_eq!(a.expose().len(), 43);
        assert!(a
            .expose()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a.expose(), b.expose());
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
        assert_eq!(format!("{a:?}"), "Token(***)");
        assert_eq!(a.hash(), TokenHash::of(a.expose()));
        assert!(!format!("{:?}", a.hash()).contains(a.expose()));
    }

    #[test]
    fn the_hash_is_sha256_of_the_text() {
        // printf abc | sha256sum
        assert_eq!(
            hex::encode(TokenHash::of("abc").as_bytes()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn session_ids_are_guid_shaped_v4() {
        let id = new_session_id().unwrap();
        assert_eq!(id.len(), 36);
        let parts: Vec<_> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_session_id().unwrap());
    }

    #[test]
    fn where_a_token_is_found() {
        let map = headers(&[("Authorization", "bearer  tok1 ")]);
        assert_eq!(presented(&map, "c"), Some("tok1"));
        let map = headers(&[("Authorization", "Basic xyz"), ("X-Session-ID", "tok2")]);
        assert_eq!(presented(&map, "c"), Some("tok2"));
        let map = headers(&[("Cookie", "a=1; c=tok3"), ("Cookie", "d=4")]);
        assert_eq!(presented(&map, "c"), Some("tok3"));
        assert_eq!(cookie(&map, "d"), Some("4"));
        assert_eq!(presented(&map, "other"), None);
        let map = headers(&[("Authorization", "Bearer ")]);
        assert_eq!(bearer(&map), None);
    }
}
