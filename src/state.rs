//! The shared handle every request gets: settings, the keyring, the rate
//! limiters, metrics and the clock. Cloning it is one `Arc` increment.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::Settings;
use crate::ingest::Ingest;
use crate::keyring::SharedKeyring;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimits;
use crate::secret::Secret;
use crate::session::{
    MemoryStore, RedisStore, SessionStore, StoreBackend, StoreError, StoreMetrics,
};

/// Unix seconds now. Injected so tests can stand exactly on a window's edge.
pub type UnixClock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> UnixClock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub keyring: SharedKeyring,
    pub limits: RateLimits,
    pub metrics: Metrics,
    pub sessions: Arc<dyn SessionStore>,
    /// The OTLP ingest routes: collector client, replay cache, metrics.
    pub ingest: Ingest,
    /// The admin bearer token; `None` turns the session API off.
    pub admin_token: Option<Secret>,
    pub clock: UnixClock,
    pub started: Instant,
    /// Recent decisions and key use, for the status page.
    pub status: crate::status::Board,
}

impl AppState {
    /// Fails only when the session store cannot be set up (a Redis store
    /// connects lazily: a server that is down is not an error here). Needs
    /// a tokio runtime for the Redis store's flush task.
    pub fn new(
        settings: Settings,
        keyring: SharedKeyring,
        metrics: Metrics,
        admin_token: Option<Secret>,
        clock: UnixClock,
    ) -> Result<AppState, StoreError> {
        let mut nonces = None;
        let sessions: Arc<dyn SessionStore> = match &settings.sessions.backend {
            StoreBackend::Memory => Arc::new(MemoryStore::new(
                settings.sessions.clone(),
                metrics.sessions_evicted_total.clone(),
            )),
            StoreBackend::Redis(redis) => {
                let store = RedisStore::new(
                    settings.sessions.clone(),
                    redis.clone(),
                    StoreMetrics {
                        errors: metrics.store_errors_total.clone(),
                        duration: metrics.store_duration_seconds.clone(),
                    },
                    clock.clone(),
                )?;
                // The v2 replay cache is shared when sessions are.
                nonces = Some(store.nonces());
                Arc::new(store)
            }
        };
        let limits = RateLimits::new(
            settings.rate_limit,
            settings.policies.values(),
            settings.ipv6_prefix,
        );
        // Startup invariants: rustls builds without custom roots, and the
        // ingest metric names are not registered twice.
        metrics.monitor_mode.set(i64::from(settings.monitor_mode));
        if settings.monitor_mode {
            tracing::warn!(
                "MONITOR MODE: every request is ALLOWED after its decision is logged and counted \
                 (REQUIRE_AUTH=false or auth.monitor_mode = true); nothing is refused"
            );
        }
        let ingest = Ingest::new(&settings, metrics.registry(), nonces)
            .unwrap_or_else(|err| panic!("cannot set up OTLP ingest: {err}"));
        Ok(AppState(Arc::new(Inner {
            settings,
            keyring,
            limits,
            metrics,
            sessions,
            ingest,
            admin_token,
            clock,
            started: Instant::now(),
            status: crate::status::Board::default(),
        })))
    }

    pub fn now(&self) -> i64 {
        (self.0.clock)()
    }

    /// Purges idle rate-limit keys on a timer and updates the key gauge, so
    /// a flood of distinct addresses cannot grow memory without bound.
    pub fn spawn_rate_limit_purger(&self) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.settings.purge_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let left = state.limits.purge();
                state.metrics.ratelimit_keys.set(left as i64);
            }
        })
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
