//! `*_FILE` override variables (the Docker secrets convention) for the
//! config values that are secrets: `TELEGATE_SESSIONS__REDIS_URL_FILE` and
//! `TELEGATE_SESSIONS__POSTGRES_URL_FILE` name a file holding the whole URL
//! (password included), and `TELEGATE_SESSIONS__REDIS_PASSWORD_FILE` one
//! holding only the password, set into `sessions.redis_url`. The files are
//! read with the key files' checks ([`crate::secret_file`]); a variable and
//! its `_FILE` both set is an error naming both.
//!
//! The other secrets already come from files: `admin.token_file`
//! (`TELEGATE_ADMIN__TOKEN_FILE`), `sessions.postgres_password_file`
//! (`TELEGATE_SESSIONS__POSTGRES_PASSWORD_FILE`), key files; a key read from
//! a variable (`env = "NAME"`) takes `NAME_FILE` in the keyring.

use std::path::Path;

use super::{ConfigError, RawConfig};
use crate::env::Env;
use crate::secret_file::{self, FILE_SUFFIX};

/// The override variables holding a secret, each also accepted as `NAME_FILE`.
pub const SECRET_VARS: &[&str] = &[
    "TELEGATE_SESSIONS__REDIS_URL",
    "TELEGATE_SESSIONS__POSTGRES_URL",
];

/// A file holding the Redis password, set into `sessions.redis_url`.
pub const REDIS_PASSWORD_FILE: &str = "TELEGATE_SESSIONS__REDIS_PASSWORD_FILE";

/// Whether `name` is one of this module's variables (not a config key path).
pub fn handles(name: &str) -> bool {
    name == REDIS_PASSWORD_FILE
        || name
            .strip_suffix(FILE_SUFFIX)
            .is_some_and(|base| SECRET_VARS.contains(&base))
}

/// The overrides the `_FILE` variables give, as `(variable, value)` of the
/// variable they stand for; an error when a variable and its file are both set.
pub fn overrides(env: &dyn Env) -> Result<Vec<(String, String)>, ConfigError> {
    let mut found = Vec::new();
    for name in SECRET_VARS {
        let file_var = format!("{name}{FILE_SUFFIX}");
        if env.var(&file_var).is_none() {
            continue;
        }
        if let Some(value) =
            secret_file::from_env(env, name).map_err(|m| ConfigError::invalid(&file_var, m))?
        {
            found.push((name.to_string(), value));
        }
    }
    Ok(found)
}

/// Sets the password of [`REDIS_PASSWORD_FILE`] into `sessions.redis_url`.
pub fn apply_redis_password(raw: &mut RawConfig, env: &dyn Env) -> Result<(), ConfigError> {
    let Some(path) = env.var(REDIS_PASSWORD_FILE) else {
        return Ok(());
    };
    let invalid = |m: String| ConfigError::invalid(REDIS_PASSWORD_FILE, m);
    let password = secret_file::read_text(Path::new(path.trim()))
        .map_err(|detail| invalid(format!("{}: {detail}", path.trim())))?;
    raw.sessions.redis_url = with_password(&raw.sessions.redis_url, &password).map_err(invalid)?;
    Ok(())
}

/// `url` with `password` in its user info (percent-encoded); refused when
/// the URL already carries one (two sources for one secret).
fn with_password(url: &str, password: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or("sessions.redis_url must be a redis:// URL to take a password file")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((info, _)) if info.contains(':') => {
            return Err("sessions.redis_url already holds a password: give one or the other".into())
        }
        Some((user, host)) => (user, host),
        None => ("", authority),
    };
    Ok(format!(
        "redis://{user}:{}@{host}{tail}",
        percent_encode(password)
    ))
}

/// Every byte but the unreserved ones as `%XX`, so any password fits a URL.
fn percent_encode(text: &str) -> String {
    crate::protocol::headers::percent_encode(text, |b| {
        b.is_ascii_alphanumeric() || b"-._~".contains(&b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_goes_into_the_url_encoded() {
        assert_eq!(
            with_password("redis://redis:6379/0", "p@ss:w/rd").unwrap(),
            "redis://:p%40ss%3Aw%2Frd@redis:6379/0"
        );
        assert_eq!(
            with_password("redis://telegate@redis:6379", "pw").unwrap(),
            "redis://telegate:pw@redis:6379"
        );
        assert!(with_password("redis://u:old@redis:6379", "pw").is_err());
        assert!(with_password("redis+unix:///run/redis.sock", "pw").is_err());
    }

    #[test]
    fn only_its_own_variables_are_handled() {
        assert!(handles("TELEGATE_SESSIONS__REDIS_URL_FILE"));
        assert!(handles("TELEGATE_SESSIONS__POSTGRES_URL_FILE"));
        assert!(handles(REDIS_PASSWORD_FILE));
        // Config keys that are file paths stay config keys.
        assert!(!handles("TELEGATE_ADMIN__TOKEN_FILE"));
        assert!(!handles("TELEGATE_SESSIONS__POSTGRES_PASSWORD_FILE"));
        assert!(!handles("TELEGATE_SESSIONS__REDIS_URL"));
    }
}
