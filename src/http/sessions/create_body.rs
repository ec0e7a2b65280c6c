//! The body of `POST /sessions`: `user_id`, `metadata`, and what only an
//! admin may set, `roles` and `permissions` (at most 32 names each, 1-64
//! characters of `[A-Za-z0-9._:-]`), plus `ttl_secs`, the session's own
//! absolute lifetime (at least 1, capped at `sessions.max_lifetime_secs`).

use serde::Deserialize;

use super::body;
use super::ApiError;
use crate::protocol::grants::{self, Grants};

/// Longest `user_id`, in characters.
pub const MAX_USER_ID_CHARS: usize = 128;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    #[serde(default)]
    pub(super) user_id: Option<String>,
    #[serde(default)]
    pub(super) metadata: Option<serde_json::Value>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
    #[serde(default)]
    pub(super) ttl_secs: Option<u64>,
}

impl CreateBody {
    /// A `POST /sessions` body (empty: no user, no metadata), its user id,
    /// names and TTL checked.
    pub(super) fn parse(bytes: &[u8]) -> Result<CreateBody, ApiError> {
        let mut request: CreateBody = body::object(bytes)?.unwrap_or_default();
        request.user_id = request.user_id.map(valid_user_id).transpose()?;
        if request.ttl_secs == Some(0) {
            return Err(ApiError::MalformedBody("ttl_secs must be at least 1"));
        }
        Ok(request)
    }

    /// Whether the body asks for roles or permissions (even empty lists:
    /// a signed client is told plainly that it may not).
    pub(super) fn asks_for_grants(&self) -> bool {
        self.roles.is_some() || self.permissions.is_some()
    }

    /// The roles and permissions asked for, checked (an admin's request).
    pub(super) fn grants(&mut self) -> Result<Grants, ApiError> {
        let roles = grants::checked(self.roles.take().unwrap_or_default())
            .map_err(|_| ApiError::MalformedBody(ROLES_RULE))?;
        let permissions = grants::checked(self.permissions.take().unwrap_or_default())
            .map_err(|_| ApiError::MalformedBody(PERMISSIONS_RULE))?;
        Ok(Grants { roles, permissions })
    }
}

const ROLES_RULE: &str = "roles: at most 32 names of 1-64 characters of [A-Za-z0-9._:-]";
const PERMISSIONS_RULE: &str =
    "permissions: at most 32 names of 1-64 characters of [A-Za-z0-9._:-]";

fn valid_user_id(user: String) -> Result<String, ApiError> {
    let chars = user.chars().count();
    if chars == 0 || chars > MAX_USER_ID_CHARS || user.chars().any(char::is_control) {
        return Err(ApiError::MalformedBody(
            "user_id must be 1-128 characters, no control characters",
        ));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_and_ttl_are_checked() {
        let mut body = CreateBody::parse(
            br#"{"roles":["admin","admin"],"permissions":["write"],"ttl_secs":60}"#,
        )
        .unwrap();
        assert!(body.asks_for_grants());
        assert_eq!(body.ttl_secs, Some(60));
        let grants = body.grants().unwrap();
        assert_eq!(grants.roles, ["admin"]);
        assert_eq!(grants.permissions, ["write"]);
        assert!(!CreateBody::parse(b"{}").unwrap().asks_for_grants());
        assert!(CreateBody::parse(br#"{"roles":[]}"#)
            .unwrap()
            .asks_for_grants());
        for bad in [&br#"{"roles":["a b"]}"#[..], br#"{"permissions":["x,y"]}"#] {
            let mut body = CreateBody::parse(bad).unwrap();
            assert!(matches!(body.grants(), Err(ApiError::MalformedBody(_))));
        }
        assert!(matches!(
            CreateBody::parse(br#"{"ttl_secs":0}"#),
            Err(ApiError::MalformedBody(_))
        ));
        assert!(CreateBody::parse(br#"{"ttl_secs":-1}"#).is_err());
    }
}
