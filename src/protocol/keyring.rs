//! The ring of signing keys: several live at once so secrets can rotate
//! without a restart.
//!
//! Each key is `{id, secret from file or env, not_after?}`. Every key whose
//! `not_after` has not passed verifies; the first live one signs. The ring is
//! swapped atomically on reload ([`crate::reload`]), so a request always sees one
//! consistent ring.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use crate::env::Env;
use crate::protocol::abuse::KeyState;
use crate::protocol::canonical::{self, HmacSha256, TAG_LEN};
use crate::protocol::client_version::VersionFilter;
use crate::protocol::reject::Reject;
use crate::secret::Secret;

/// A key's public name: it appears in logs, metrics and `X-Auth-Key-Id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Arc<str>);

impl KeyId {
    pub fn new(id: &str) -> KeyId {
        KeyId(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a key's secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Env(String),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(path) => write!(f, "file {}", path.display()),
            KeySource::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

/// A validated key entry from the configuration, before its secret is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub id: KeyId,
    pub source: KeySource,
    /// Unix seconds after which the key no longer verifies.
    pub not_after: Option<i64>,
    /// `auth.keys[].state`: active, deprecated or revoked.
    pub state: KeyState,
    /// `auth.keys[].min_client_version` and `blocked_client_versions`.
    pub versions: VersionFilter,
}

/// A loaded key. The keyed HMAC state is computed once here, so a
/// verification costs one clone and two compressions, not a re-keying.
#[derive(Clone)]
pub struct Key {
    pub id: KeyId,
    pub not_after: Option<i64>,
    pub development: bool,
    /// The secret's length in bytes (for the short-secret warning; the
    /// secret itself is not kept).
    pub secret_len: usize,
    pub state: KeyState,
    /// `None`: the key accepts every client version (the usual case, free).
    pub versions: Option<Arc<VersionFilter>>,
    mac: HmacSha256,
}

impl Key {
    pub fn new(id: KeyId, secret: &Secret, not_after: Option<i64>) -> Key {
        Key {
            id,
            not_after,
            development: secret.is_development_key(),
            secret_len: secret.expose().len(),
            state: KeyState::Active,
            versions: None,
            mac: canonical::keyed_mac(secret),
        }
    }

    /// The key's lifecycle state and client-version filter.
    pub fn with_lifecycle(mut self, state: KeyState, versions: &VersionFilter) -> Key {
        self.state = state;
        self.versions = (!versions.is_empty()).then(|| Arc::new(versions.clone()));
        self
    }

    pub fn is_live(&self, now: i64) -> bool {
        self.not_after.is_none_or(|end| now <= end)
    }

    pub fn tag(&self, message: &[u8]) -> [u8; TAG_LEN] {
        canonical::tag(&self.mac, message)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("not_after", &self.not_after)
            .field("development", &self.development)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<Key>,
    /// A digest of every (id, not_after, state, version filter, secret):
    /// equal rings, equal prints, so the poll sees a state change.
    fingerprint: [u8; 32],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    #[error("key {id}: cannot read {source_desc}: {detail}")]
    Unreadable {
        id: String,
        source_desc: String,
        detail: String,
    },
    #[error("key {id}: {source_desc} is empty")]
    Empty { id: String, source_desc: String },
    #[error("key {id}: {source_desc} is not UTF-8 text")]
    NotText { id: String, source_desc: String },
    #[error("key id {0} appears twice")]
    DuplicateId(String),
}

impl Keyring {
    pub fn new(keys: Vec<Key>) -> Keyring {
        Keyring {
            keys,
            fingerprint: [0; 32],
        }
    }

    /// Reads every key's secret. Any failure fails the whole load, so a reload
    /// never half-applies.
    pub fn load(specs: &[KeySpec], env: &dyn Env) -> Result<Keyring, KeyringError> {
        let mut keys: Vec<Key> = Vec::with_capacity(specs.len());
        let mut print = Sha256::new();
        for spec in specs {
            if keys.iter().any(|k| k.id == spec.id) {
                return Err(KeyringError::DuplicateId(spec.id.to_string()));
            }
            let secret = read_secret(spec, env)?;
            print.update(spec.id.as_str().as_bytes());
            print.update(spec.not_after.unwrap_or(i64::MIN).to_be_bytes());
            print.update(spec.state.as_str().as_bytes());
            print.update(format!("{:?}", spec.versions).as_bytes());
            print.update(Sha256::digest(secret.expose()));
            let key = Key::new(spec.id.clone(), &secret, spec.not_after);
            keys.push(key.with_lifecycle(spec.state, &spec.versions));
        }
        Ok(Keyring {
            keys,
            fingerprint: print.finalize().into(),
        })
    }

    /// The live keys a policy allows (`allowed`: its key ids, `None`: all);
    /// `NoLiveKey` when there are none, which is the gateway's fault, not the
    /// client's. v1 tries each in turn; v2 picks the one its key id names.
    pub fn candidates<'k, 'a>(
        &'k self,
        allowed: Option<&'a [KeyId]>,
        now: i64,
    ) -> Result<impl Iterator<Item = &'k Key> + use<'k, 'a>, Reject> {
        let mut keys = self
            .live(now)
            .filter(move |key| allowed.is_none_or(|ids| ids.contains(&key.id)))
            .peekable();
        if keys.peek().is_none() {
            return Err(Reject::NoLiveKey);
        }
        Ok(keys)
    }

    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn live(&self, now: i64) -> impl Iterator<Item = &Key> {
        self.keys.iter().filter(move |k| k.is_live(now))
    }

    pub fn has_live_key(&self, now: i64) -> bool {
        self.live(now).next().is_some()
    }

    pub fn get(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id.as_str() == id)
    }

    pub fn uses_development_key(&self) -> bool {
        self.keys.iter().any(|k| k.development)
    }
}

fn read_secret(spec: &KeySpec, env: &dyn Env) -> Result<Secret, KeyringError> {
    let id = spec.id.to_string();
    let source_desc = spec.source.to_string();
    let text = match &spec.source {
        KeySource::File(path) => {
            let bytes = read_key_file(path).map_err(|detail| KeyringError::Unreadable {
                id: id.clone(),
                source_desc: source_desc.clone(),
                detail,
            })?;
            String::from_utf8(bytes).map_err(|_| KeyringError::NotText {
                id: id.clone(),
                source_desc: source_desc.clone(),
            })?
        }
        // `VAR_FILE` (Docker secrets) names a file holding what `VAR` would.
        KeySource::Env(var) => crate::secret_file::from_env(env, var)
            .and_then(|value| value.ok_or_else(|| "not set".to_string()))
            .map_err(|detail| KeyringError::Unreadable {
                id: id.clone(),
                source_desc: source_desc.clone(),
                detail,
            })?,
    };
    Secret::from_text(&text).ok_or(KeyringError::Empty { id, source_desc })
}

/// A key file is small text: anything larger is refused before it is read.
pub const MAX_KEY_FILE_BYTES: u64 = crate::secret_file::MAX_SECRET_FILE_BYTES;

/// Reads a regular file of at most [`MAX_KEY_FILE_BYTES`].
pub fn read_key_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    crate::secret_file::read_bytes(path)
}

/// The ring shared by every request; reloads swap it atomically.
#[derive(Debug, Clone)]
pub struct SharedKeyring(Arc<ArcSwap<Keyring>>);

impl SharedKeyring {
    pub fn new(ring: Keyring) -> SharedKeyring {
        SharedKeyring(Arc::new(ArcSwap::from_pointee(ring)))
    }

    pub fn current(&self) -> arc_swap::Guard<Arc<Keyring>> {
        self.0.load()
    }

    pub fn replace(&self, ring: Keyring) {
        self.0.store(Arc::new(ring));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn spec(id: &str, source: KeySource, not_after: Option<i64>) -> KeySpec {
        KeySpec {
            id: KeyId::new(id),
            source,
            not_after,
            state: KeyState::Active,
            versions: VersionFilter::default(),
        }
    }

    #[test]
    fn loads_from_file_and_env_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k1");
        std::fs::write(&path, "file-secret\n").unwrap();
        let env = MapEnv::from([("SECRET_TWO", " env-secret ")]);
        let ring = Keyring::load(
            &[
                spec("k1", KeySource::File(path), None),
                spec("k2", KeySource::Env("SECRET_TWO".into()), None),
            ],
            &env,
        )
        .unwrap();
        let message = b"POST|/v1/metrics|1|s";
        let expected = canonical::tag(
            &canonical::keyed_mac(&Secret::from_text("env-secret").unwrap()),
            message,
        );
        assert_eq!(ring.get("k2").unwrap().tag(message), expected);
        assert_eq!(ring.keys().len(), 2);
    }

    #[test]
    fn a_missing_or_empty_source_fails_the_whole_load() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let env = MapEnv::default();
        let missing = Keyring::load(
            &[spec("gone", KeySource::File(dir.path().join("nope")), None)],
            &env,
        );
        assert!(matches!(missing, Err(KeyringError::Unreadable { .. })));
        let blank = Keyring::load(&[spec("blank", KeySource::File(empty), None)], &env);
        assert!(matches!(blank, Err(KeyringError::Empty { .. })));
        let unset = Keyring::load(&[spec("e", KeySource::Env("UNSET".into()), None)], &env);
        assert!(matches!(unset, Err(KeyringError::Unreadable { .. })));
    }

    #[test]
    fn errors_never_contain_the_secret() {
        let env = MapEnv::from([("A", "topsecretvalue")]);
        let err = Keyring::load(
            &[
                spec("a", KeySource::Env("A".into()), None),
                spec("a", KeySource::Env("A".into()), None),
            ],
            &env,
        )
        .unwrap_err();
        assert_eq!(err, KeyringError::DuplicateId("a".into()));
        assert!(!err.to_string().contains("topsecretvalue"));
    }

    #[test]
    fn expired_keys_are_not_live() {
        let env = MapEnv::from([("A", "a"), ("B", "b")]);
        let ring = Keyring::load(
            &[
                spec("old", KeySource::Env("A".into()), Some(1_000)),
                spec("new", KeySource::Env("B".into()), None),
            ],
            &env,
        )
        .unwrap();
        let live = |now| ring.live(now).map(|k| k.id.to_string()).collect::<Vec<_>>();
        assert_eq!(live(1_000), ["old", "new"]);
        assert_eq!(live(1_001), ["new"]);
        assert!(!Keyring::default().has_live_key(0));
    }
}
