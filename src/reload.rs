//! Reloading the ring without a restart: on SIGHUP, and when the config file
//! or a key file changes (polled; tiny files, so reading them is the check).
//!
//! A reload re-reads `auth.keys` from the config and every secret, builds a
//! whole new ring and swaps it in atomically. A broken reload keeps the old
//! ring, logs why and counts `keyring_reloads_total{result="error"}`; the
//! same error repeating on each poll is logged and counted once. Each load
//! that succeeds (the one at start included) sets
//! `{ns}_config_last_reload_success_timestamp_seconds`.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, UnixClock};
use crate::config::{self, ConfigSource};
use crate::env::Env;
use crate::pipeline::metrics::Metrics;
use crate::protocol::keyring::{Keyring, SharedKeyring};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Reloaded { keys: usize },
    Failed(String),
}

pub struct Reloader {
    source: ConfigSource,
    env: Arc<dyn Env>,
    keyring: SharedKeyring,
    metrics: Metrics,
    last_error: Option<String>,
    clock: UnixClock,
}

impl Reloader {
    pub fn new(
        source: ConfigSource,
        env: Arc<dyn Env>,
        keyring: SharedKeyring,
        metrics: Metrics,
    ) -> Reloader {
        Reloader {
            source,
            env,
            keyring,
            metrics,
            last_error: None,
            clock: clock::system_clock(),
        }
    }

    /// The clock the reload timestamp reads (tests hand in their own).
    pub fn with_clock(mut self, clock: UnixClock) -> Reloader {
        self.clock = clock;
        self
    }

    /// Builds the ring anew and swaps it in when it differs from the current
    /// one. `forced` (SIGHUP, start) reports even an unchanged or repeated result.
    pub fn reload(&mut self, forced: bool) -> Outcome {
        match self.load() {
            Ok(ring) => {
                self.last_error = None;
                if !forced && ring.fingerprint() == self.keyring.current().fingerprint() {
                    return Outcome::Unchanged;
                }
                let ids: Vec<String> = ring.keys().iter().map(|k| k.id.to_string()).collect();
                let keys = ids.len();
                if ring.uses_development_key() {
                    tracing::warn!("DEVELOPMENT KEY IN USE: the public key shipped in config/ verifies requests. Configure your own keys before production.");
                }
                self.metrics
                    .set_key_not_after(ring.keys().iter().map(|k| (k.id.as_str(), k.not_after)));
                self.keyring.replace(ring);
                // The config in force was loaded now (an unchanged poll loads nothing new).
                self.metrics
                    .config_last_reload_success
                    .set((self.clock)() as f64);
                self.metrics
                    .keyring_reloads_total
                    .with_label_values(&["ok"])
                    .inc();
                tracing::info!(keys = ?ids, source = %self.source.describe(), "keyring loaded");
                Outcome::Reloaded { keys }
            }
            Err(message) => {
                if forced || self.last_error.as_deref() != Some(message.as_str()) {
                    self.metrics
                        .keyring_reloads_total
                        .with_label_values(&["error"])
                        .inc();
                    tracing::error!(error = %message, "keyring reload failed; keeping the previous keys");
                }
                self.last_error = Some(message.clone());
                Outcome::Failed(message)
            }
        }
    }

    fn load(&self) -> Result<Keyring, String> {
        let settings = config::load(&self.source, self.env.as_ref()).map_err(|e| e.to_string())?;
        Keyring::load(&settings.keys, self.env.as_ref()).map_err(|e| e.to_string())
    }

    /// Polls every `interval` and reloads on SIGHUP, until the task is dropped.
    pub fn spawn(mut self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut hangup = hangup_signal();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => { self.reload(false); }
                    Some(()) = recv(&mut hangup) => {
                        tracing::info!("SIGHUP received: reloading keys");
                        self.reload(true);
                    }
                }
            }
        })
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|err| tracing::warn!(error = %err, "cannot listen for SIGHUP; key files are still polled"))
        .ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv(signal: &mut Hangup) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    struct Fixture {
        dir: tempfile::TempDir,
        reloader: Reloader,
        keyring: SharedKeyring,
        metrics: Metrics,
    }

    fn fixture(config: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("telegate.toml");
        std::fs::write(&path, config).unwrap();
        let keyring = SharedKeyring::new(Keyring::default());
        let metrics = Metrics::new("t").unwrap();
        let reloader = Reloader::new(
            ConfigSource::File(path),
            Arc::new(MapEnv::default()),
            keyring.clone(),
            metrics.clone(),
        )
        .with_clock(Arc::new(|| 1_800_000_000));
        Fixture {
            dir,
            reloader,
            keyring,
            metrics,
        }
    }

    fn ids(keyring: &SharedKeyring) -> Vec<String> {
        keyring
            .current()
            .keys()
            .iter()
            .map(|k| k.id.to_string())
            .collect()
    }

    fn count(metrics: &Metrics, result: &str) -> u64 {
        metrics
            .keyring_reloads_total
            .with_label_values(&[result])
            .get()
    }

    const ONE_KEY: &str = "[[auth.keys]]\nid = \"a\"\nfile = \"a.key\"\n";

    #[test]
    fn good_reload_swaps_and_an_unchanged_poll_does_nothing() {
        let mut f = fixture(ONE_KEY);
        std::fs::write(f.dir.path().join("a.key"), "secret-a\n").unwrap();
        assert_eq!(f.reloader.reload(true), Outcome::Reloaded { keys: 1 });
        assert_eq!(f.reloader.reload(false), Outcome::Unchanged);
        assert_eq!(count(&f.metrics, "ok"), 1);

        // The key file changes: the new secret verifies, the old no longer.
        let before = f.keyring.current().keys()[0].tag(b"m");
        std::fs::write(f.dir.path().join("a.key"), "secret-a2\n").unwrap();
        assert_eq!(f.reloader.reload(false), Outcome::Reloaded { keys: 1 });
        assert_ne!(f.keyring.current().keys()[0].tag(b"m"), before);

        // A key added to the config joins the ring.
        let two = format!("{ONE_KEY}[[auth.keys]]\nid = \"b\"\nfile = \"b.key\"\n");
        std::fs::write(f.dir.path().join("b.key"), "secret-b").unwrap();
        std::fs::write(f.dir.path().join("telegate.toml"), two).unwrap();
        assert_eq!(f.reloader.reload(false), Outcome::Reloaded { keys: 2 });
        assert_eq!(ids(&f.keyring), ["a", "b"]);
        assert_eq!(count(&f.metrics, "ok"), 3);
    }

    #[test]
    fn each_successful_load_sets_the_reload_timestamp_and_a_failure_does_not() {
        let mut f = fixture(ONE_KEY);
        let stamp = |f: &Fixture| f.metrics.config_last_reload_success.get();
        assert_eq!(stamp(&f), 0.0, "nothing loaded yet");
        std::fs::write(f.dir.path().join("a.key"), "secret-a").unwrap();
        f.reloader.reload(true);
        assert_eq!(stamp(&f), 1_800_000_000.0, "set at start");

        let later = Arc::new(std::sync::atomic::AtomicI64::new(1_800_000_060));
        let clock = later.clone();
        f.reloader.clock = Arc::new(move || clock.load(std::sync::atomic::Ordering::SeqCst));
        std::fs::remove_file(f.dir.path().join("a.key")).unwrap();
        assert!(matches!(f.reloader.reload(false), Outcome::Failed(_)));
        assert_eq!(
            stamp(&f),
            1_800_000_000.0,
            "a failed reload keeps the last success"
        );
        std::fs::write(f.dir.path().join("a.key"), "secret-a2").unwrap();
        assert_eq!(f.reloader.reload(false), Outcome::Reloaded { keys: 1 });
        assert_eq!(stamp(&f), 1_800_000_060.0, "set at the reload");
        let text = String::from_utf8(f.metrics.render().unwrap()).unwrap();
        assert!(
            text.contains("t_config_last_reload_success_timestamp_seconds 1800000060"),
            "{text}"
        );
    }

    #[test]
    fn a_broken_reload_keeps_the_old_ring_and_counts_once() {
        let mut f = fixture(ONE_KEY);
        std::fs::write(f.dir.path().join("a.key"), "secret-a").unwrap();
        f.reloader.reload(true);
        std::fs::remove_file(f.dir.path().join("a.key")).unwrap();
        assert!(matches!(f.reloader.reload(false), Outcome::Failed(_)));
        assert!(matches!(f.reloader.reload(false), Outcome::Failed(_)));
        assert_eq!(ids(&f.keyring), ["a"], "old ring kept");
        assert_eq!(
            count(&f.metrics, "error"),
            1,
            "a repeated error counts once"
        );

        std::fs::write(f.dir.path().join("telegate.toml"), "not = [valid").unwrap();
        assert!(matches!(f.reloader.reload(false), Outcome::Failed(_)));
        assert_eq!(count(&f.metrics, "error"), 2);
        assert_eq!(ids(&f.keyring), ["a"]);
    }

    #[test]
    fn an_expired_key_stays_loaded_but_not_live() {
        let config =
            "[[auth.keys]]\nid = \"old\"\nfile = \"a.key\"\nnot_after = \"2020-01-01T00:00:00Z\"\n";
        let mut f = fixture(config);
        std::fs::write(f.dir.path().join("a.key"), "secret").unwrap();
        assert_eq!(f.reloader.reload(true), Outcome::Reloaded { keys: 1 });
        let now = 1_800_000_000;
        assert!(!f.keyring.current().has_live_key(now));
        let gauge = f.metrics.key_not_after_seconds.with_label_values(&["old"]);
        assert_eq!(
            gauge.get(),
            1_577_836_800,
            "not_after published for the alert rule"
        );
    }
}
