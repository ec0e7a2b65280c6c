//! Harnesses for the session API's paths and bodies, and the config loader.

use std::path::PathBuf;

use crate::config::{from_text, ConfigSource, MapEnv};
use crate::http::sessions::fuzzing::{
    create_body, extend_body, percent_decode, route_segments, MAX_USER_ID_CHARS,
};
use crate::http::sessions::handles;

/// A session API path (the input as UTF-8, lossy). The segments a route
/// takes are non-empty pieces of the path without a `/`; percent-decoding
/// (path and query flavour) never grows the text, leaves text without
/// escapes alone, and inverts a full re-encoding.
pub fn session_path(data: &[u8]) {
    let path = String::from_utf8_lossy(data);
    let _ = handles(&path);
    for segment in route_segments(&path).unwrap_or_default() {
        assert!(!segment.is_empty() && !segment.contains('/'), "{segment:?}");
        assert!(path.contains(segment));
    }
    for plus_is_space in [false, true] {
        let Some(decoded) = percent_decode(&path, plus_is_space) else {
            continue;
        };
        assert!(decoded.len() <= path.len());
        let escaped = path.contains('%') || (plus_is_space && path.contains('+'));
        if !escaped {
            assert_eq!(decoded, path);
        }
        let encoded: String = decoded.bytes().map(|b| format!("%{b:02X}")).collect();
        assert_eq!(percent_decode(&encoded, plus_is_space), Some(decoded));
    }
}

/// A session API body, read both as `POST /sessions` and as `extend`: an
/// accepted user id is 1-128 characters without a control character, and a
/// blank body is no user (create) and refused (extend).
pub fn session_body(data: &[u8]) {
    let blank = data.iter().all(u8::is_ascii_whitespace);
    if let Ok(Some(user)) = create_body(data) {
        let chars = user.chars().count();
        assert!((1..=MAX_USER_ID_CHARS).contains(&chars));
        assert!(!user.chars().any(char::is_control));
    }
    if blank {
        assert!(matches!(create_body(data), Ok(None)));
        assert!(extend_body(data).is_err());
    }
}

/// The config loader over TOML text: everything before a line `#env` is
/// the file, every `NAME=VALUE` line after it an environment variable (so
/// `TELEGATE_*` overrides and the legacy variables are fuzzed too). Nothing
/// panics, every error names something, and settings that validate print
/// (what `check-config` shows) as TOML.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, vars) = text.split_once("\n#env\n").unwrap_or((text, ""));
    let mut env = MapEnv::default();
    for line in vars.lines() {
        if let Some((name, value)) = line.split_once('=') {
            env.set(name, value);
        }
    }
    // A path that does not exist: relative key paths resolve beside it.
    let source = ConfigSource::File(PathBuf::from("/nonexistent/telegate/telegate.toml"));
    match from_text(toml, &source, &env) {
        Ok(settings) => {
            let shown = settings.effective_toml().expect("valid settings print");
            assert!(shown.parse::<toml::Table>().is_ok(), "{shown}");
        }
        Err(err) => assert!(!err.to_string().is_empty()),
    }
}
