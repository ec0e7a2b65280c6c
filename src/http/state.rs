//! The shared handle every request gets: settings, the keyring, the rate
//! limiters, the session store, metrics and the clock. Cloning it is one
//! `Arc` increment. Its fields are the http layer's own; the pipeline gets
//! only what its stages read ([`AppState::stages`]) and what the
//! observation step writes ([`AppState::observer`]).

use std::sync::Arc;
use std::time::Instant;

use super::listener::Role;

use crate::clock::UnixClock;
use crate::config::Settings;
use crate::ingest::Ingest;
use crate::ingest::StoreNonces;
use crate::pipeline::abuse::metrics::AbuseMetrics;
use crate::pipeline::abuse::Abuse;
use crate::pipeline::board::Board;
use crate::pipeline::budget::MemoryBudget;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::observe::Observer;
use crate::pipeline::rate_limit::RateLimits;
use crate::pipeline::Stages;
use crate::protocol::keyring::SharedKeyring;
use crate::secret::Secret;
use crate::session::{
    EmbeddedStore, MemoryStore, PostgresStore, RedisStore, SessionStore, StoreBackend, StoreError,
    StoreMetrics,
};

/// The shared state, and the listener it serves on ([`Role`]): each
/// listener's clone says which routes it answers.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    role: Role,
}

pub struct Inner {
    pub(crate) settings: Settings,
    pub(crate) keyring: SharedKeyring,
    pub(crate) limits: RateLimits,
    /// Quotas and bans (`pipeline::abuse`).
    pub(crate) abuse: Abuse,
    pub(crate) abuse_metrics: AbuseMetrics,
    pub(crate) metrics: Metrics,
    pub(crate) sessions: Arc<dyn SessionStore>,
    /// The OTLP ingest routes: collector client, replay cache, metrics.
    pub(crate) ingest: Ingest,
    /// The admin bearer token; `None` turns the session API off.
    pub(crate) admin_token: Option<Secret>,
    pub(crate) clock: UnixClock,
    pub(crate) started: Instant,
    /// Recent decisions and key use, for the status page.
    pub(crate) board: Board,
    /// `server.body_budget_bytes`: what all bodies and inflations may hold.
    pub(crate) budget: MemoryBudget,
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
        let store_metrics = StoreMetrics {
            errors: metrics.store_errors_total.clone(),
            duration: metrics.store_duration_seconds.clone(),
        };
        let mut shared_abuse = None;
        let sessions: Arc<dyn SessionStore> = match &settings.sessions.backend {
            StoreBackend::Memory => Arc::new(MemoryStore::new(
                settings.sessions.clone(),
                metrics.sessions_evicted_total.clone(),
            )),
            StoreBackend::Embedded(embedded) => {
                let store = EmbeddedStore::open(
                    settings.sessions.clone(),
                    embedded.clone(),
                    store_metrics,
                    metrics.sessions_evicted_total.clone(),
                    clock.clone(),
                )?;
                // Delivered v2 nonces survive a restart with the sessions.
                nonces = Some(StoreNonces::Persisted(store.nonces()));
                // So do quota windows and bans.
                shared_abuse = Some(store.abuse());
                Arc::new(store)
            }
            StoreBackend::Redis(redis) => {
                let store = RedisStore::new(
                    settings.sessions.clone(),
                    redis.clone(),
                    store_metrics,
                    clock.clone(),
                )?;
                // The v2 replay cache and the series bound are shared when sessions are.
                nonces = Some(StoreNonces::Shared(store.nonces(), store.series()));
                // Quotas and bans are shared too.
                shared_abuse = Some(store.abuse());
                Arc::new(store)
            }
            StoreBackend::Postgres(postgres) => Arc::new(PostgresStore::new(
                settings.sessions.clone(),
                postgres.clone(),
                store_metrics,
                clock.clone(),
            )?),
        };
        let limits = RateLimits::new(
            settings.rate_limit,
            settings.policies.values(),
            settings.ipv6_prefix,
        )
        .with_session_api(settings.session_api_rate);
        // Startup invariants: rustls builds without custom roots, and the
        // ingest metric names are not registered twice.
        metrics.monitor_mode.set(i64::from(settings.monitor_mode));
        if settings.monitor_mode {
            tracing::warn!(
                "MONITOR MODE: every request is ALLOWED after its decision is logged and counted \
                 (REQUIRE_AUTH=false or auth.monitor_mode = true); nothing is refused"
            );
        }
        let settings_budget = MemoryBudget::new(settings.server.body_budget_bytes)
            .with_client_share(settings.server.body_budget_per_client_bytes);
        let ingest = Ingest::new(&settings, metrics.registry(), nonces)
            .unwrap_or_else(|err| panic!("cannot set up OTLP ingest: {err}"));
        let abuse_metrics = AbuseMetrics::register(&settings.metrics_namespace, metrics.registry())
            .unwrap_or_else(|err| panic!("cannot register the abuse metrics: {err}"));
        let abuse = Abuse::new(&settings, &abuse_metrics, shared_abuse);
        Ok(AppState {
            role: Role::Single,
            inner: Arc::new(Inner {
                settings,
                keyring,
                limits,
                abuse,
                abuse_metrics,
                metrics,
                sessions,
                ingest,
                admin_token,
                clock,
                started: Instant::now(),
                board: Board::default(),
                budget: settings_budget,
            }),
        })
    }

    /// Opens the ingest spool when `[spool]` is on (a fresh state only:
    /// call it right after [`AppState::new`]). The error names the path.
    pub fn with_spool(mut self, now_ms: crate::ingest::spool::MsClock) -> Result<AppState, String> {
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or("the spool is opened before the state is shared")?;
        inner
            .ingest
            .open_spool(&inner.settings, inner.metrics.registry(), now_ms)?;
        Ok(self)
    }

    /// This state as served on `role`'s listener.
    pub fn on(&self, role: Role) -> AppState {
        AppState {
            inner: self.inner.clone(),
            role,
        }
    }

    /// The listener this state serves on.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The admin token, where the admin side is served: never on the main
    /// listener when `ops_listen` holds the administration (an admin token
    /// there is as if none were configured: `admin_disabled`).
    pub(crate) fn admin_token(&self) -> Option<&Secret> {
        match self.role {
            Role::Main | Role::Grpc => None,
            Role::Single | Role::Ops => self.inner.admin_token.as_ref(),
        }
    }

    /// The clock, read once per request by its handler.
    pub fn now(&self) -> i64 {
        (self.inner.clock)()
    }

    /// What the admission stages read.
    pub fn stages(&self) -> Stages<'_> {
        Stages {
            settings: &self.settings,
            keyring: &self.keyring,
            limits: &self.limits,
            abuse: &self.abuse,
            sessions: self.sessions.as_ref(),
            budget: &self.budget,
        }
    }

    /// What the observation step writes to.
    pub fn observer(&self) -> Observer<'_> {
        Observer {
            metrics: &self.metrics,
            ingest: &self.ingest.metrics,
            abuse: &self.abuse_metrics,
            board: &self.board,
            names: &self.settings.header_names,
            decisions: self.settings.log_decisions,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn sessions(&self) -> &dyn SessionStore {
        self.sessions.as_ref()
    }

    pub fn keyring(&self) -> &SharedKeyring {
        &self.keyring
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
                state.abuse.purge(state.now());
            }
        })
    }

    /// Reads the bans in force once, before the first request is served
    /// (bounded: a store that does not answer leaves it to the timer).
    pub async fn load_bans(&self) {
        if self.abuse.shares_bans() {
            let once = self.abuse.sync_bans(self.now());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), once).await;
        }
    }

    /// Reads the bans every replica published, each second (Redis store
    /// with `[bans]` only; `None` otherwise).
    pub fn spawn_ban_sync(&self) -> Option<tokio::task::JoinHandle<()>> {
        if !self.abuse.shares_bans() {
            return None;
        }
        let state = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                state.abuse.sync_bans(state.now()).await;
            }
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}
