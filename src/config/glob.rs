//! Name globs for the content policy (`content.metric_names`, attribute key
//! lists, ...): `*` matches any run of characters (none included), `?`
//! exactly one, everything else itself. Compiled once at config load into
//! the cheapest form that matches the same names: an exact name, a prefix
//! (`kotormodsync.*`) or a general pattern.
//!
//! Bounded: a pattern is at most [`MAX_PATTERN_BYTES`] long and a list at
//! most [`MAX_PATTERNS`] patterns, and the general matcher is the greedy
//! two-pointer one (backtracking only to the last `*`), so matching one
//! name costs at most `name length x pattern length` steps, never
//! exponential, whatever the client sends.

use serde::Serialize;

/// Longest pattern accepted.
pub const MAX_PATTERN_BYTES: usize = 256;
/// Most patterns in one list.
pub const MAX_PATTERNS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Form {
    Exact(Box<str>),
    Prefix(Box<str>),
    /// Chars of a pattern with `*` or `?` elsewhere than one trailing `*`.
    General(Box<[char]>),
}

/// One compiled pattern; serializes as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: Box<str>,
    form: Form,
}

impl Serialize for Glob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl Glob {
    /// Compiles `pattern`, or says why it is not one.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("a pattern is empty".into());
        }
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(format!(
                "a pattern is longer than {MAX_PATTERN_BYTES} bytes"
            ));
        }
        let wild = |c: char| c == '*' || c == '?';
        let form = match pattern.strip_suffix('*') {
            _ if !pattern.contains(wild) => Form::Exact(pattern.into()),
            Some(prefix) if !prefix.contains(wild) => Form::Prefix(prefix.into()),
            _ => Form::General(pattern.chars().collect()),
        };
        Ok(Glob {
            text: pattern.into(),
            form,
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        match &self.form {
            Form::Exact(exact) => name == &**exact,
            Form::Prefix(prefix) => name.starts_with(&**prefix),
            Form::General(pattern) => general(pattern, name),
        }
    }
}

/// The greedy matcher: on a mismatch, retry from the last `*` one
/// character further into `name`.
fn general(pattern: &[char], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some('?') => {
                p += 1;
                n += 1;
            }
            Some(c) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// A list of globs: a name passes when any matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Globs(Vec<Glob>);

impl Globs {
    /// Compiles `patterns`; an error names `key` and the offending entry.
    pub fn new(key: &str, patterns: &[String]) -> Result<Globs, super::ConfigError> {
        if patterns.len() > MAX_PATTERNS {
            return Err(super::ConfigError::invalid(
                key,
                format!("at most {MAX_PATTERNS} patterns"),
            ));
        }
        patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Glob::new(p).map_err(|m| super::ConfigError::invalid(format!("{key}[{i}]"), m))
            })
            .collect::<Result<_, _>>()
            .map(Globs)
    }

    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|g| g.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn forms_match_as_written() {
        assert!(m("modsync.requests", "modsync.requests"));
        assert!(!m("modsync.requests", "modsync.requests2"));
        assert!(m("kotormodsync.*", "kotormodsync.install.count"));
        assert!(m("kotormodsync.*", "kotormodsync."));
        assert!(!m("kotormodsync.*", "kotormodsync"));
        assert!(!m("kotormodsync.*", "evil.kotormodsync.x"));
        assert!(m("*.count", "a.b.count"));
        assert!(!m("*.count", "a.b.counts"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("*", ""));
        assert!(m("é?", "éß"), "characters, not bytes");
    }

    #[test]
    fn adversarial_names_stay_linear_per_star() {
        let name = "a".repeat(20_000);
        assert!(!m("*a*a*a*a*b", &name));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Glob::new("").is_err());
        assert!(Glob::new(&"x".repeat(MAX_PATTERN_BYTES + 1)).is_err());
        let err = Globs::new("content.metric_names", &["ok".into(), String::new()]).unwrap_err();
        assert!(
            err.to_string().starts_with("content.metric_names[1]"),
            "{err}"
        );
    }
}
