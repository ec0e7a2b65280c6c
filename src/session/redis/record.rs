//! A session as a Redis hash, and back. Fields (short: one hash per
//! session): `kind` (`signed` | `issued`), `first`, `last` (Unix seconds),
//! `exp` (issued: the absolute end), `req`, `bytes`, `ip`, `ua`, `ver`,
//! `key` (key id), `rev` (revoked at), and for issued sessions `user`,
//! `meta` (JSON), `roles` and `perms` (comma-joined names), `ipk` (the address key it counts against) and `tok` (hex
//! SHA-256 of the current token: never the token). The pet name is derived
//! from the id on read.

use std::collections::HashMap;

use crate::session::{petname, Grants, SessionKind, SessionRecord};

/// A hash as Redis returns it (`HGETALL`, or a script's flat list).
pub type Fields = HashMap<String, String>;

/// The record stored under `id`, or `None` for a missing or damaged hash.
pub fn decode(id: &str, fields: &Fields, idle: i64) -> Option<SessionRecord> {
    let kind = match fields.get("kind")?.as_str() {
        "signed" => SessionKind::Signed,
        "issued" => SessionKind::Issued,
        _ => return None,
    };
    let int = |name: &str| fields.get(name).and_then(|v| v.parse::<i64>().ok());
    let text = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
    let last_seen = int("last")?;
    let (expires_at, idle_expires_at) = match kind {
        SessionKind::Signed => (last_seen.saturating_add(idle), None),
        SessionKind::Issued => (int("exp")?, Some(last_seen.saturating_add(idle))),
    };
    Some(SessionRecord {
        session_id: id.to_string(),
        kind,
        pet_name: petname::pet_name(id),
        first_seen: int("first").unwrap_or(last_seen),
        last_seen,
        expires_at,
        idle_expires_at,
        user_id: text("user"),
        metadata: fields
            .get("meta")
            .and_then(|json| serde_json::from_str(json).ok()),
        grants: Grants::from_stored(
            fields.get("roles").map(String::as_str),
            fields.get("perms").map(String::as_str),
        ),
        requests: int("req").map_or(0, |n| n.max(0) as u64),
        bytes: int("bytes").map_or(0, |n| n.max(0) as u64),
        client_ip: text("ip"),
        user_agent: text("ua"),
        client_version: text("ver"),
        key_id: text("key"),
        revoked_at: int("rev"),
    })
}

/// A flat `field, value, ...` list (a script's answer after its leading
/// items) as fields.
pub fn pairs(flat: &[String]) -> Fields {
    flat.chunks_exact(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_hash_decodes_and_damage_is_unknown() {
        let flat: Vec<String> = [
            "kind",
            "signed",
            "first",
            "10",
            "last",
            "20",
            "req",
            "3",
            "ip",
            "192.0.2.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let record = decode("s1", &pairs(&flat), 100).unwrap();
        assert_eq!(record.kind, SessionKind::Signed);
        assert_eq!((record.first_seen, record.last_seen), (10, 20));
        assert_eq!((record.expires_at, record.idle_expires_at), (120, None));
        assert_eq!((record.requests, record.bytes), (3, 0));
        assert_eq!(record.client_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(record.pet_name, petname::pet_name("s1"));
        let mut broken = pairs(&flat);
        broken.insert("last".into(), "soon".into());
        assert_eq!(decode("s1", &broken, 100), None);
        assert_eq!(decode("s1", &Fields::new(), 100), None);
    }
}
