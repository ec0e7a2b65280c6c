//! `sessions.redis_sentinels` and `sessions.redis_master_name`: the Redis
//! store found through Redis Sentinel instead of at one `redis_url`. With
//! sentinels listed, the master is whatever they name under the master
//! name (looked up again when it stops answering, so a failover is
//! followed); `redis_url` then only lends its username, password and
//! database to the master's connection.

use serde::Serialize;

use super::sessions::SessionsSection;
use super::ConfigError;

/// At most this many sentinels (a deployment runs three or five).
pub const MAX_SENTINELS: usize = 16;

/// Where the sentinels are and which master they watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentinelSettings {
    /// `host:port` of each sentinel, in the order they are asked.
    pub addrs: Vec<(String, u16)>,
    pub master_name: String,
}

/// `None` when no sentinel is listed (the store is at `redis_url`).
pub(super) fn sentinel_settings(
    section: &SessionsSection,
) -> Result<Option<SentinelSettings>, ConfigError> {
    if section.redis_sentinels.is_empty() {
        return Ok(None);
    }
    if section.redis_sentinels.len() > MAX_SENTINELS {
        return Err(ConfigError::invalid(
            "sessions.redis_sentinels",
            format!("at most {MAX_SENTINELS} sentinels"),
        ));
    }
    let addrs = section
        .redis_sentinels
        .iter()
        .map(|text| {
            host_port(text.trim()).ok_or_else(|| {
                ConfigError::invalid(
                    "sessions.redis_sentinels",
                    format!("{text:?} is not host:port"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let master_name = section.redis_master_name.trim();
    if master_name.is_empty()
        || master_name.len() > 64
        || master_name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::invalid(
            "sessions.redis_master_name",
            "must be 1-64 characters without whitespace when sessions.redis_sentinels is set",
        ));
    }
    Ok(Some(SentinelSettings {
        addrs,
        master_name: master_name.to_string(),
    }))
}

/// `host:port` or `[v6]:port`, the port not 0.
fn host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    (!host.is_empty() && host.len() <= 253 && host.chars().all(plain))
        .then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(sentinels: &[&str], master: &str) -> SessionsSection {
        SessionsSection {
            redis_sentinels: sentinels.iter().map(|s| s.to_string()).collect(),
            redis_master_name: master.into(),
            ..SessionsSection::default()
        }
    }

    #[test]
    fn no_sentinels_is_the_plain_url() {
        assert_eq!(sentinel_settings(&section(&[], "")).unwrap(), None);
    }

    #[test]
    fn sentinels_need_host_port_and_a_master_name() {
        let ok = sentinel_settings(&section(&["127.0.0.1:26379", "[::1]:26380"], "telegate"))
            .unwrap()
            .unwrap();
        assert_eq!(
            ok.addrs,
            vec![("127.0.0.1".into(), 26379), ("::1".into(), 26380)]
        );
        assert_eq!(ok.master_name, "telegate");
        for bad in ["127.0.0.1", "host:0", ":26379", "host:port", "a b:1"] {
            let err = sentinel_settings(&section(&[bad], "m")).unwrap_err();
            assert!(
                err.to_string().starts_with("sessions.redis_sentinels:"),
                "{bad}: {err}"
            );
        }
        let err = sentinel_settings(&section(&["h:1"], " ")).unwrap_err();
        assert!(err.to_string().starts_with("sessions.redis_master_name:"));
        let many = vec!["h:1"; MAX_SENTINELS + 1];
        assert!(sentinel_settings(&section(&many, "m")).is_err());
    }
}
