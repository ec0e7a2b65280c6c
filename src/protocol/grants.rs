//! Roles and permissions: what an admin grants an issued session
//! (`POST /sessions` `roles` / `permissions`), what a policy may require of
//! it (`require_roles`, any of; `require_permissions`, all of), and how the
//! names travel (`X-Auth-Roles` / `X-Auth-Permissions`, comma-separated;
//! the same joined text in every store).
//!
//! A name is short and plain (1-64 of `[A-Za-z0-9._:-]`), so a joined list
//! is a valid header value and splits back without escaping; a list holds at
//! most [`MAX_NAMES`], so a session record stays small.

use serde::Serialize;

/// Most names one list may hold.
pub const MAX_NAMES: usize = 32;
/// Longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// The rule, as every error names it.
pub const NAME_RULE: &str = "1-64 characters of [A-Za-z0-9._:-]";

/// The roles and permissions of one session (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Grants {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
}

/// Whether `name` follows [`NAME_RULE`].
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// A list as given (API body or config): every name valid, at most
/// [`MAX_NAMES`], duplicates dropped (first kept, order kept).
pub fn checked(list: Vec<String>) -> Result<Vec<String>, &'static str> {
    if list.len() > MAX_NAMES {
        return Err("holds more than 32 names");
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for name in list {
        if !valid_name(&name) {
            return Err("names must be 1-64 characters of [A-Za-z0-9._:-]");
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// The stored (and header) form: names joined by commas; `None` for none.
pub fn join(names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| names.join(","))
}

/// The stored form back. A store reads only what [`join`] wrote; anything
/// else (a hand-edited row) loses its invalid names rather than failing the
/// read, and never grants more than [`MAX_NAMES`].
pub fn split(stored: Option<&str>) -> Vec<String> {
    stored
        .unwrap_or_default()
        .split(',')
        .filter(|name| valid_name(name))
        .take(MAX_NAMES)
        .map(str::to_string)
        .collect()
}

impl Grants {
    /// Both lists from their stored forms.
    pub fn from_stored(roles: Option<&str>, permissions: Option<&str>) -> Grants {
        Grants {
            roles: split(roles),
            permissions: split(permissions),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.permissions.is_empty()
    }

    /// Holds at least one of `required` (true when nothing is required).
    pub fn has_any_role(&self, required: &[String]) -> bool {
        required.is_empty() || required.iter().any(|role| self.roles.contains(role))
    }

    /// Holds every one of `required`.
    pub fn has_all_permissions(&self, required: &[String]) -> bool {
        required
            .iter()
            .all(|permission| self.permissions.contains(permission))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_are_short_and_plain() {
        assert!(valid_name("admin") && valid_name("metrics:read") && valid_name("a.b_c-1"));
        for bad in ["", "a,b", "a b", "é", "x\n", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(checked(names(&["a", "b", "a"])), Ok(names(&["a", "b"])));
        assert!(checked(names(&["a,b"])).is_err());
        assert!(checked(vec!["r".into(); 33]).is_err());
    }

    #[test]
    fn stored_form_round_trips() {
        let roles = names(&["admin", "dev"]);
        assert_eq!(join(&roles).as_deref(), Some("admin,dev"));
        assert_eq!(join(&[]), None);
        assert_eq!(split(join(&roles).as_deref()), roles);
        assert!(split(None).is_empty() && split(Some("")).is_empty());
        assert_eq!(split(Some("ok,b@d,,x")), names(&["ok", "x"]));
    }

    #[test]
    fn any_role_all_permissions() {
        let grants = Grants {
            roles: names(&["dev"]),
            permissions: names(&["read", "write"]),
        };
        assert!(grants.has_any_role(&[]));
        assert!(grants.has_any_role(&names(&["admin", "dev"])));
        assert!(!grants.has_any_role(&names(&["admin"])));
        assert!(grants.has_all_permissions(&names(&["read", "write"])));
        assert!(!grants.has_all_permissions(&names(&["read", "delete"])));
        assert!(Grants::default().has_all_permissions(&[]));
    }
}
