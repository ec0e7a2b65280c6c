//! The seal layer on its own: round trips, rotation, and each reason a
//! sealed value does not open.

use super::*;
use crate::config::EncryptionSettings;

const OLD: [u8; 32] = [7; 32];
const NEW: [u8; 32] = [9; 32];

fn private() -> Private {
    Private {
        client_ip: Some("203.0.113.9".into()),
        user_agent: Some("KOTORModSync/2.0".into()),
        user_id: Some("alice".into()),
        metadata: Some(r#"{"team":"red"}"#.into()),
    }
}

#[test]
fn sealed_fields_hide_the_values_and_open_again() {
    let sealer = Sealer::from_keys(&[OLD]).unwrap();
    let (seal, stored) = to_row(Some(&sealer), "s1", private());
    assert_eq!(seal.as_deref(), Some(sealer.key_id()));
    for (clear, sealed) in [
        ("203.0.113.9", &stored.client_ip),
        ("KOTORModSync", &stored.user_agent),
        ("alice", &stored.user_id),
        ("red", &stored.metadata),
    ] {
        assert!(!sealed.as_deref().unwrap().contains(clear), "{sealed:?}");
    }
    let (opened, again) = from_row(Some(&sealer), seal.as_deref(), "s1", stored).unwrap();
    assert_eq!(opened, private());
    assert!(!again);
    // A random nonce per value: the same record seals differently.
    assert_ne!(
        sealer.seal("s1", "client_ip", "x"),
        sealer.seal("s1", "client_ip", "x")
    );
}

#[test]
fn a_value_moved_to_another_row_or_field_does_not_open() {
    let sealer = Sealer::from_keys(&[OLD]).unwrap();
    let id = sealer.key_id().to_string();
    let sealed = sealer.seal("s1", "client_ip", "203.0.113.9");
    assert!(sealed.starts_with(&format!("{id}:")), "{sealed}");
    assert_eq!(
        sealer.open("s1", "client_ip", &sealed).unwrap(),
        "203.0.113.9"
    );
    assert_eq!(
        sealer.open("s2", "client_ip", &sealed),
        Err(SealError::DoesNotOpen(id.clone()))
    );
    assert_eq!(
        sealer.open("s1", "user_agent", &sealed),
        Err(SealError::DoesNotOpen(id.clone()))
    );
    let bad = format!("{id}:not base64!");
    assert_eq!(
        sealer.open("s1", "client_ip", &bad),
        Err(SealError::DoesNotOpen(id))
    );
    assert!(matches!(
        sealer.open("s1", "client_ip", "in clear"),
        Err(SealError::UnknownKey(_))
    ));
    assert!(sealer.names_a_key(&sealed) && !sealer.names_a_key("org:alice"));
}

#[test]
fn the_user_id_is_deterministic_so_it_can_be_looked_up() {
    let sealer = Sealer::from_keys(&[OLD]).unwrap();
    assert_eq!(
        user_column(Some(&sealer), "alice"),
        sealer.seal_user("alice")
    );
    assert_ne!(sealer.seal_user("alice"), sealer.seal_user("bob"));
    assert_eq!(user_column(None, "alice"), "alice");
    let rotated = Sealer::from_keys(&[NEW, OLD]).unwrap();
    let all = user_columns(Some(&rotated), "alice");
    assert_eq!(all.len(), 3, "in clear and under each key");
    assert!(all.contains(&"alice".to_string()) && all.contains(&sealer.seal_user("alice")));
    // The address key is deterministic too, and bound to its field.
    assert_eq!(
        sealer.seal_lookup("ip_key", "a"),
        sealer.seal_lookup("ip_key", "a")
    );
    assert_eq!(
        sealer
            .open("", "ip_key", &sealer.seal_lookup("ip_key", "a"))
            .unwrap(),
        "a"
    );
    assert!(sealer
        .open("", "user_id", &sealer.seal_lookup("ip_key", "a"))
        .is_err());
    let rotated = Sealer::from_keys(&[NEW, OLD]).unwrap();
    let all = user_columns(Some(&rotated), "alice");
    assert!(all.contains(&"alice".to_string()) && all.contains(&sealer.seal_user("alice")));
    let other = Sealer::from_keys(&[NEW]).unwrap();
    assert_ne!(other.seal_user("alice"), sealer.seal_user("alice"));
}

#[test]
fn a_rotated_list_opens_old_rows_and_asks_for_a_reseal() {
    let old = Sealer::from_keys(&[OLD]).unwrap();
    let (seal, stored) = to_row(Some(&old), "s1", private());
    let rotated = Sealer::from_keys(&[NEW, OLD]).unwrap();
    assert_ne!(rotated.key_id(), old.key_id());
    let (opened, again) = from_row(Some(&rotated), seal.as_deref(), "s1", stored.clone()).unwrap();
    assert_eq!(opened, private());
    assert!(
        again,
        "sealed with the old key: written again under the new one"
    );
    let wrong = Sealer::from_keys(&[NEW]).unwrap();
    assert_eq!(
        from_row(Some(&wrong), seal.as_deref(), "s1", stored.clone()),
        Err(SealError::UnknownKey(old.key_id().to_string()))
    );
    let err = from_row(None, seal.as_deref(), "s1", stored).unwrap_err();
    assert_eq!(err, SealError::NoKey(old.key_id().to_string()));
    assert!(
        err.to_string()
            .contains("sessions.encryption is not configured"),
        "{err}"
    );
}

#[test]
fn rows_in_clear_are_read_and_marked_for_sealing() {
    let sealer = Sealer::from_keys(&[OLD]).unwrap();
    assert_eq!(
        from_row(Some(&sealer), None, "s1", private()),
        Ok((private(), true))
    );
    assert_eq!(
        from_row(None, None, "s1", private()),
        Ok((private(), false))
    );
    assert_eq!(to_row(None, "s1", private()), (None, private()));
}

#[test]
fn key_files_are_checked_like_signing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let good = write("k1", &format!("{}\n", new_key_text().unwrap()));
    let load =
        |files: Vec<std::path::PathBuf>| Sealer::load(&EncryptionSettings { key_files: files });
    let sealer = load(vec![good.clone()]).unwrap();
    assert_eq!(sealer.key_id().len(), 8);
    assert!(!format!("{sealer:?}").contains(&std::fs::read_to_string(&good).unwrap()[30..40]));
    let signing = write("signing", &"ab".repeat(32));
    let err = load(vec![signing]).unwrap_err();
    assert!(err.0.contains("not a storage key"), "{err}");
    let err = load(vec![dir.path().to_path_buf()]).unwrap_err();
    assert!(err.0.contains("not a regular file"), "{err}");
    let big = write("big", &"a".repeat(70 * 1024));
    assert!(load(vec![big]).unwrap_err().0.contains("larger than"));
    let err = load(vec![dir.path().join("missing")]).unwrap_err();
    assert!(err.0.contains("missing"), "{err}");
    let err = load(vec![
        good.clone(),
        write("k1-copy", &std::fs::read_to_string(&good).unwrap()),
    ])
    .unwrap_err();
    assert!(err.0.contains("listed twice"), "{err}");
}
