//! The forwarded path as a policy's path rules (`protected_paths`,
//! `excluded_paths`) see it: without query or fragment, unreserved
//! percent-escapes decoded (`%2e` is `.`, `%41` is `A`), then `.` and `..`
//! segments resolved and empty segments (`//`) dropped, the way Traefik
//! and the backends behind it resolve a path before routing it.
//!
//! What still looks like a way around a prefix has no normal form
//! ([`normalize`] answers `None`, and the caller treats the path as
//! protected): an encoded `/`, `\` or `%` (`%2f`, `%5c`, `%252e`), a raw
//! `\`, a broken escape, a `..` above the root, a path not starting with
//! `/`. So `/public/%2e%2e/admin` is `/admin`, and `/public/..%2fadmin` is
//! never "under /public".

use std::borrow::Cow;

/// Longest forwarded path the rules look at; a longer one is protected.
pub const MAX_PATH_BYTES: usize = 4096;

/// The normal form (`/a/b`, no trailing `/`; the root is `/`), or `None`.
/// A path already in normal form (no `%`, `\`, `//` or `/.`: what
/// browsers and clients send) is borrowed as it is, without allocating: the
/// common case on `/auth` costs one scan.
pub fn normalize(uri: &str) -> Option<Cow<'_, str>> {
    let bytes = uri.as_bytes();
    let end = bytes
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(bytes.len());
    let raw = &uri[..end];
    if !raw.starts_with('/') || raw.len() > MAX_PATH_BYTES {
        return None;
    }
    let plain = !raw.as_bytes().iter().any(|&b| b == b'%' || b == b'\\')
        && !raw
            .as_bytes()
            .windows(2)
            .any(|pair| pair[0] == b'/' && matches!(pair[1], b'/' | b'.'));
    if plain {
        let trimmed = raw.trim_end_matches('/');
        return Some(Cow::Borrowed(if trimmed.is_empty() {
            "/"
        } else {
            trimmed
        }));
    }
    resolve(raw).map(Cow::Owned)
}

/// The slow path of [`normalize`]: decode, then resolve segment by segment.
fn resolve(raw: &str) -> Option<String> {
    let decoded = decode_unreserved(raw)?;
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// `%XX` of an unreserved character decoded; any other escape kept, its hex
/// in upper case. `None` for a broken escape, an escaped `/`, `\` or `%`,
/// or a raw `\`.
fn decode_unreserved(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let byte = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                if matches!(byte, b'/' | b'\\' | b'%') {
                    return None;
                }
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    out.push(char::from(byte));
                } else {
                    out.push('%');
                    out.push_str(&format!("{byte:02X}"));
                }
                i += 3;
            }
            b'\\' => return None,
            _ => {
                // Copy the run up to the next escape or backslash at once
                // (keeps multi-byte characters whole).
                let run = bytes[i..]
                    .iter()
                    .position(|b| matches!(b, b'%' | b'\\'))
                    .map_or(bytes.len(), |n| i + n);
                out.push_str(&raw[i..run]);
                i = run;
            }
        }
    }
    Some(out)
}

/// Whether normal path `path` is `prefix` or below it, segment-wise
/// (`/admin` covers `/admin` and `/admin/x`, not `/administrator`).
pub fn under(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(uri: &str) -> Option<String> {
        normalize(uri).map(Cow::into_owned)
    }

    #[test]
    fn dot_segments_and_escapes_resolve() {
        let cases = [
            ("/", "/"),
            ("/a/b?x=1#f", "/a/b"),
            ("/a/b/", "/a/b"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2e/admin", "/admin"),
            ("/public/.%2E/admin/", "/admin"),
            ("/%61dmin", "/admin"),
            ("/a%20b", "/a%20b"),
            ("/a%3fb", "/a%3Fb"),
            ("/caf\u{e9}", "/caf\u{e9}"),
            ("/public/x/..", "/public"),
            ("/a/.hidden/b", "/a/.hidden/b"),
            ("/a/b..c", "/a/b..c"),
            ("///", "/"),
        ];
        for (uri, normal) in cases {
            assert_eq!(norm(uri).as_deref(), Some(normal), "{uri}");
        }
    }

    #[test]
    fn what_still_looks_like_an_escape_has_no_normal_form() {
        for uri in [
            "/public/..%2fadmin",
            "/public%2F..%2Fadmin",
            "/public/%5c../admin",
            "/public\\..\\admin",
            "/public/%252e%252e/admin",
            "/public/%zz",
            "/public/%2",
            "/..",
            "/a/../../admin",
            "admin",
            "",
        ] {
            assert_eq!(norm(uri), None, "{uri}");
        }
        assert_eq!(norm(&format!("/{}", "a".repeat(MAX_PATH_BYTES))), None);
    }

    #[test]
    fn prefixes_are_segments() {
        assert!(under("/admin", "/admin") && under("/admin/x", "/admin"));
        assert!(!under("/administrator", "/admin"));
        assert!(under("/anything", "/"));
    }
}
