//! `policies.NAME.{require_roles, require_permissions, protected_paths,
//! excluded_paths}`: what a session must hold under the policy, and which
//! forwarded paths need no credential at all. Names follow the one rule of
//! [`crate::protocol::grants`]; path prefixes must be in the normal form
//! of [`crate::protocol::path`] (`/admin`, not `/admin/../x` or
//! `/a%2Fb`; a trailing `/` is dropped), at most [`MAX_PATH_RULES`] each.

use serde::Serialize;

use crate::config::raw::PolicySection;
use crate::config::ConfigError;
use crate::protocol::grants;
use crate::protocol::path;

/// Most prefixes one list may hold.
pub const MAX_PATH_RULES: usize = 64;

/// A policy's access rules (all empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Access {
    /// Any one of these roles (empty: no role needed).
    pub require_roles: Vec<String>,
    /// Every one of these permissions.
    pub require_permissions: Vec<String>,
    /// Normal prefixes that need a credential, even under an excluded one.
    pub protected_paths: Vec<String>,
    /// Normal prefixes allowed without a credential.
    pub excluded_paths: Vec<String>,
}

pub(super) fn access(name: &str, section: &PolicySection) -> Result<Access, ConfigError> {
    let key = |field: &str| format!("policies.{name}.{field}");
    let names = |field: &str, list: &Option<Vec<String>>| {
        grants::checked(list.clone().unwrap_or_default()).map_err(|message| {
            ConfigError::invalid(
                key(field),
                format!("{message} (each {})", grants::NAME_RULE),
            )
        })
    };
    let prefixes = |field: &str, list: &Option<Vec<String>>| {
        let list = list.as_deref().unwrap_or_default();
        if list.len() > MAX_PATH_RULES {
            return Err(ConfigError::invalid(
                key(field),
                format!("holds more than {MAX_PATH_RULES} prefixes"),
            ));
        }
        list.iter()
            .map(|prefix| match path::normalize(prefix) {
                Some(normal) if !prefix.contains(['?', '#', '%']) && same(prefix, &normal) => {
                    Ok(normal.into_owned())
                }
                _ => Err(ConfigError::invalid(
                    key(field),
                    format!(
                        "{prefix:?} is not a plain path prefix (starts with /, no ., .., //, %, ? or \\)"
                    ),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Access {
        require_roles: names("require_roles", &section.require_roles)?,
        require_permissions: names("require_permissions", &section.require_permissions)?,
        protected_paths: prefixes("protected_paths", &section.protected_paths)?,
        excluded_paths: prefixes("excluded_paths", &section.excluded_paths)?,
    })
}

/// The prefix as written is its normal form (a trailing `/` aside).
fn same(written: &str, normal: &str) -> bool {
    written == normal || written.strip_suffix('/') == Some(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> PolicySection {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn rules_are_checked_and_named() {
        let ok = access(
            "admin",
            &section(
                r#"require_roles = ["admin", "ops"]
                   require_permissions = ["write"]
                   protected_paths = ["/public/secret"]
                   excluded_paths = ["/public/", "/health"]"#,
            ),
        )
        .unwrap();
        assert_eq!(ok.require_roles, ["admin", "ops"]);
        assert_eq!(ok.excluded_paths, ["/public", "/health"]);
        for (text, field) in [
            (r#"require_roles = ["a b"]"#, "require_roles"),
            (r#"require_permissions = ["x,y"]"#, "require_permissions"),
            (r#"excluded_paths = ["public"]"#, "excluded_paths"),
            (r#"excluded_paths = ["/a/../b"]"#, "excluded_paths"),
            (r#"excluded_paths = ["/a%2Fb"]"#, "excluded_paths"),
            (r#"protected_paths = ["//a"]"#, "protected_paths"),
            (r#"protected_paths = ["/a?x"]"#, "protected_paths"),
        ] {
            let err = access("p", &section(text)).unwrap_err().to_string();
            assert!(
                err.contains(&format!("policies.p.{field}")),
                "{text}: {err}"
            );
        }
    }
}
