//! `[sessions.encryption]`: encryption at rest of the persistent session
//! stores (embedded, PostgreSQL). The section as written and the typed key
//! list the stores open with; reading and checking the key files is the
//! store's job at start (`session::seal`), so `check-config` and `serve`
//! fail the same way on a bad file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sessions::StoreKind;
use super::store_backend::StoreBackend;
use super::ConfigError;

/// Most key files: one sealing key and a few old ones still opening.
pub const MAX_KEY_FILES: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionSection {
    /// Files each holding one key from `telegate keygen --purpose storage`:
    /// the first seals, every one opens (rotation). Empty: no encryption.
    pub key_files: Vec<String>,
}

/// The storage keys' files, in order (relative ones from the config file's
/// folder, like `auth.keys[].file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EncryptionSettings {
    pub key_files: Vec<PathBuf>,
}

impl EncryptionSettings {
    /// The encryption of the configured store, if it has one.
    pub fn of(backend: &StoreBackend) -> Option<&EncryptionSettings> {
        match backend {
            StoreBackend::Embedded(embedded) => embedded.encryption.as_ref(),
            StoreBackend::Postgres(postgres) => postgres.encryption.as_ref(),
            _ => None,
        }
    }
}

/// `None` when no key file is listed; refused for a store that keeps
/// nothing at rest that it could seal.
pub(super) fn encryption_settings(
    section: &EncryptionSection,
    store: StoreKind,
    base_dir: &Path,
) -> Result<Option<EncryptionSettings>, ConfigError> {
    const KEY: &str = "sessions.encryption.key_files";
    if section.key_files.is_empty() {
        return Ok(None);
    }
    if !matches!(store, StoreKind::Embedded | StoreKind::Postgres) {
        return Err(ConfigError::invalid(
            KEY,
            "only the embedded and postgres stores encrypt at rest (memory keeps nothing on disk; redis: not supported)",
        ));
    }
    if section.key_files.len() > MAX_KEY_FILES {
        return Err(ConfigError::invalid(
            KEY,
            format!(
                "at most {MAX_KEY_FILES} files (one sealing key and the old ones still opening)"
            ),
        ));
    }
    let mut key_files = Vec::with_capacity(section.key_files.len());
    for file in &section.key_files {
        let file = file.trim();
        if file.is_empty() || file.contains('\0') {
            return Err(ConfigError::invalid(KEY, "each entry must name a file"));
        }
        let path = base_dir.join(file);
        if key_files.contains(&path) {
            return Err(ConfigError::invalid(
                KEY,
                format!("{} is listed twice", path.display()),
            ));
        }
        key_files.push(path);
    }
    Ok(Some(EncryptionSettings { key_files }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(files: &[&str]) -> EncryptionSection {
        EncryptionSection {
            key_files: files.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn key_files_resolve_from_the_config_folder_and_are_checked() {
        let base = Path::new("/etc/telegate");
        let off = encryption_settings(&section(&[]), StoreKind::Memory, base).unwrap();
        assert_eq!(off, None);
        let on = encryption_settings(&section(&["k1", "/abs/k2"]), StoreKind::Embedded, base);
        assert_eq!(
            on.unwrap().unwrap().key_files,
            vec![PathBuf::from("/etc/telegate/k1"), PathBuf::from("/abs/k2")]
        );
        for (files, store, needle) in [
            (
                vec!["k1"],
                StoreKind::Memory,
                "only the embedded and postgres",
            ),
            (
                vec!["k1"],
                StoreKind::Redis,
                "only the embedded and postgres",
            ),
            (vec!["k1", " k1 "], StoreKind::Postgres, "listed twice"),
            (vec![" "], StoreKind::Embedded, "must name a file"),
            (vec!["k"; 9], StoreKind::Embedded, "at most 8"),
        ] {
            let err = encryption_settings(&section(&files), store, base).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("sessions.encryption.key_files") && text.contains(needle),
                "{text}"
            );
        }
    }
}
