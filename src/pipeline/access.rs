//! The access stages of a policy (`[policies.NAME]`): its path rules, and
//! the roles and permissions a credential must carry.
//!
//! Path rules (forwardAuth only, before the credential): the forwarded path
//! in normal form ([`crate::protocol::path`]) under an `excluded_paths`
//! prefix, and under no longer (or equal) `protected_paths` one, is allowed
//! without a credential; everything else needs one. A path without a
//! normal form (an encoded slash, a `..` above the root) is never excluded.
//!
//! Grants (after the credential): a session needs one of `require_roles`
//! and all of `require_permissions` (403 `insufficient_role`, then
//! `insufficient_permission`). A signed client holds none: every client
//! holds the signing secret, so a signature proves no role.

use http::HeaderMap;

use crate::config::Policy;
use crate::protocol::grants::Grants;
use crate::protocol::headers::X_FORWARDED_URI;
use crate::protocol::path;
use crate::protocol::reject::Reject;

/// Whether the forwarded path is excluded from credentials under `policy`.
pub fn excluded(policy: &Policy, headers: &HeaderMap) -> bool {
    let rules = &policy.access;
    if rules.excluded_paths.is_empty() {
        return false;
    }
    let Some(uri) = headers.get(&X_FORWARDED_URI).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(normal) = path::normalize(uri) else {
        return false;
    };
    let longest = |prefixes: &[String]| {
        prefixes
            .iter()
            .filter(|prefix| path::under(&normal, prefix))
            .map(String::len)
            .max()
    };
    match (
        longest(&rules.excluded_paths),
        longest(&rules.protected_paths),
    ) {
        (Some(excluded), Some(protected)) => excluded > protected,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The credential's grants against the policy's requirements; `None`: a
/// signed request (no grants).
pub fn require(policy: &Policy, grants: Option<&Grants>) -> Result<(), Reject> {
    let rules = &policy.access;
    if rules.require_roles.is_empty() && rules.require_permissions.is_empty() {
        return Ok(());
    }
    let none = Grants::default();
    let grants = grants.unwrap_or(&none);
    if !grants.has_any_role(&rules.require_roles) {
        return Err(Reject::InsufficientRole);
    }
    if !grants.has_all_permissions(&rules.require_permissions) {
        return Err(Reject::InsufficientPermission);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Access;

    fn policy(access: Access) -> Policy {
        Policy {
            name: "admin".into(),
            max_skew_secs: 300,
            rate_limit: None,
            key_ids: None,
            require_build: None,
            methods: [crate::config::AuthMethod::Session].into(),
            min_signature_version: 1,
            forward_body: false,
            filters: Default::default(),
            access,
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn forwarded(uri: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_URI, uri.parse().unwrap());
        headers
    }

    #[test]
    fn excluded_prefixes_do_not_leak_into_protected_ones() {
        let policy = policy(Access {
            excluded_paths: strings(&["/public", "/health"]),
            protected_paths: strings(&["/public/admin"]),
            ..Access::default()
        });
        for uri in [
            "/public",
            "/public/x?y=1",
            "/health",
            "//public//x",
            "/public/%2e/x",
        ] {
            assert!(excluded(&policy, &forwarded(uri)), "{uri}");
        }
        for uri in [
            "/admin",
            "/healthz",
            "/public/admin",
            "/public/admin/x",
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/public/%2E%2e/admin/",
            "/public/..%2fadmin",
            "/public//admin",
            "/public/./admin",
            "/public/x/../admin",
            "/public/%61dmin",
        ] {
            assert!(!excluded(&policy, &forwarded(uri)), "{uri}");
        }
        assert!(!excluded(&policy, &HeaderMap::new()));
    }

    #[test]
    fn any_role_then_all_permissions() {
        let policy = policy(Access {
            require_roles: strings(&["admin", "ops"]),
            require_permissions: strings(&["write"]),
            ..Access::default()
        });
        let grants = |roles: &[&str], permissions: &[&str]| Grants {
            roles: strings(roles),
            permissions: strings(permissions),
        };
        assert_eq!(
            require(&policy, Some(&grants(&["ops"], &["write"]))),
            Ok(())
        );
        assert_eq!(
            require(&policy, Some(&grants(&["dev"], &["write"]))),
            Err(Reject::InsufficientRole)
        );
        assert_eq!(
            require(&policy, Some(&grants(&["admin"], &["read"]))),
            Err(Reject::InsufficientPermission)
        );
        assert_eq!(require(&policy, None), Err(Reject::InsufficientRole));
        let open = self::policy(Access::default());
        assert_eq!(require(&open, None), Ok(()));
    }
}
