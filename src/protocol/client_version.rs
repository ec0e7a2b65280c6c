//! Client-version filters (pure): a minimum version and a blocklist, per
//! policy and per key. Versions are compared by their leading dotted
//! numbers (`2.0.1` < `2.0.10`; missing parts are zero, so `2.0` = `2.0.0.0`);
//! a suffix after them (`-beta`) is ignored by the minimum. A blocked version
//! matches its text exactly (case-insensitive), so a leaked build can be named.

use serde::Serialize;

/// At most this many numeric parts are compared.
const PARTS: usize = 4;

/// A version's leading numbers, zero-padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Version([u32; PARTS]);

impl Version {
    /// `None` when the text does not start with a number.
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = [0u32; PARTS];
        let mut seen = 0;
        for (slot, piece) in parts.iter_mut().zip(text.trim().split('.')) {
            let digits: &str = match piece.find(|c: char| !c.is_ascii_digit()) {
                Some(end) => &piece[..end],
                None => piece,
            };
            let Ok(n) = digits.parse::<u32>() else { break };
            *slot = n;
            seen += 1;
            if digits.len() != piece.len() {
                break;
            }
        }
        (seen > 0).then_some(Version(parts))
    }
}

/// `min_client_version` and `blocked_client_versions` of a policy or a key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VersionFilter {
    pub min: Option<Version>,
    /// The text as configured, for `check-config`.
    pub min_text: Option<String>,
    /// Lowercased.
    pub blocked: Vec<String>,
}

impl VersionFilter {
    pub fn is_empty(&self) -> bool {
        self.min.is_none() && self.blocked.is_empty()
    }

    /// Whether `version` (the signed request's `X-KMS-Client-Version`)
    /// passes. Without a version header only a filter with no minimum passes.
    pub fn allows(&self, version: Option<&str>) -> bool {
        let Some(text) = version else {
            return self.min.is_none();
        };
        let text = text.trim();
        if self.blocked.iter().any(|b| b.eq_ignore_ascii_case(text)) {
            return false;
        }
        match self.min {
            None => true,
            Some(min) => Version::parse(text).is_some_and(|v| v >= min),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(min: Option<&str>, blocked: &[&str]) -> VersionFilter {
        VersionFilter {
            min: min.map(|m| Version::parse(m).unwrap()),
            min_text: min.map(str::to_string),
            blocked: blocked.iter().map(|b| b.to_lowercase()).collect(),
        }
    }

    #[test]
    fn versions_compare_by_their_numbers() {
        let v = |t| Version::parse(t).unwrap();
        assert!(v("2.0.1") < v("2.0.10"));
        assert_eq!(v("2.0"), v("2.0.0.0"));
        assert_eq!(v("1.9-beta"), v("1.9"));
        assert!(Version::parse("beta").is_none());
        assert!(Version::parse("").is_none());
    }

    #[test]
    fn the_minimum_and_the_blocklist() {
        let f = filter(Some("2.0"), &["2.1.0-LEAK"]);
        assert!(f.allows(Some("2.0.0.0")));
        assert!(f.allows(Some("3")));
        assert!(!f.allows(Some("1.9.9")));
        assert!(!f.allows(Some("2.1.0-leak")), "blocked, case-insensitive");
        assert!(!f.allows(Some("nonsense")));
        assert!(!f.allows(None), "no version under a minimum");
        let open = filter(None, &["1.0"]);
        assert!(open.allows(None));
        assert!(!open.allows(Some("1.0")));
        assert!(open.allows(Some("1.0.1")));
    }
}
