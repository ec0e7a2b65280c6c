//! The store's connection to Redis: one [`ConnectionManager`] (which
//! reconnects by itself) to `sessions.redis_url`, or, with
//! `sessions.redis_sentinels`, to the master the sentinels name under
//! `sessions.redis_master_name` (the redis crate's [`SentinelClient`]: it
//! asks each sentinel in turn and checks with `ROLE` that the named node
//! is a master).
//!
//! A sentinel-found master is looked up again after an answer that says it
//! is gone (refused, dropped, timed out) or demoted (`READONLY`): in the
//! background, one lookup at a time and at most every [`LOOKUP_SPACING`],
//! so a failover is followed within a poll or two and an outage does not
//! flood the sentinels. [`Conn`] is an `aio::ConnectionLike`, so every
//! command and script of the store runs on it as it ran on the manager,
//! and `Inner::run` still sees (and counts) every failure.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use super::super::{RedisSettings, StoreError};

/// Lookups of the master are at least this far apart.
const LOOKUP_SPACING: Duration = Duration::from_millis(100);

/// A cheap handle (an `Arc`), cloned for each command as the manager was.
#[derive(Clone)]
pub(super) struct Conn(Arc<Shared>);

struct Shared {
    /// The master in use; `None` until the sentinels first named one.
    current: RwLock<Option<Current>>,
    /// `None`: the one server of `redis_url`.
    sentinels: Option<Sentinels>,
    /// The database of `redis_url`, every connection's.
    db: i64,
}

#[derive(Clone)]
struct Current {
    manager: ConnectionManager,
    /// `host:port`, to tell a new master from the same one.
    addr: String,
}

struct Sentinels {
    client: tokio::sync::Mutex<SentinelClient>,
    config: ConnectionManagerConfig,
    /// A lookup (every sentinel asked, the master's `ROLE` checked) gives up after this.
    timeout: Duration,
    last_lookup: Mutex<Option<Instant>>,
}

impl Conn {
    /// Connects lazily either way: telegate starts while Redis (or every
    /// sentinel) is down, and `/ready` says so.
    pub(super) fn open(
        redis: &RedisSettings,
        config: ConnectionManagerConfig,
        timeout: Duration,
    ) -> Result<Conn, StoreError> {
        let info = redis
            .url
            .as_str()
            .into_connection_info()
            .map_err(|err| StoreError(format!("sessions.redis_url: {err}")))?;
        let db = info.redis_settings().db();
        let Some(sentinel) = &redis.sentinel else {
            let client = redis::Client::open(info)
                .map_err(|err| StoreError(format!("sessions.redis_url: {err}")))?;
            let addr = client.get_connection_info().addr().to_string();
            let manager = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|err| StoreError(format!("redis connection manager: {err}")))?;
            return Ok(Conn::with(Some(Current { manager, addr }), None, db));
        };
        let nodes: Vec<String> = sentinel
            .addrs
            .iter()
            .map(|(host, port)| match host.contains(':') {
                true => format!("redis://[{host}]:{port}"),
                false => format!("redis://{host}:{port}"),
            })
            .collect();
        // The master gets redis_url's username, password and database.
        let master = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(info.redis_settings().clone());
        let client = SentinelClient::build(
            nodes,
            sentinel.master_name.clone(),
            Some(master),
            SentinelServerType::Master,
        )
        .map_err(|err| StoreError(format!("sessions.redis_sentinels: {err}")))?;
        let sentinels = Sentinels {
            client: tokio::sync::Mutex::new(client),
            config,
            timeout,
            last_lookup: Mutex::new(None),
        };
        Ok(Conn::with(None, Some(sentinels), db))
    }

    fn with(current: Option<Current>, sentinels: Option<Sentinels>, db: i64) -> Conn {
        Conn(Arc::new(Shared {
            current: RwLock::new(current),
            sentinels,
            db,
        }))
    }

    fn current(&self) -> Option<Current> {
        self.0
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The manager to send to: the current one, or, before the sentinels
    /// named any master, the one a lookup finds now.
    async fn manager(&self) -> RedisResult<ConnectionManager> {
        if let Some(current) = self.current() {
            return Ok(current.manager);
        }
        self.lookup(true).await;
        self.current()
            .map(|current| current.manager)
            .ok_or_else(|| {
                // An I/O error, so the store counts itself unreachable.
                RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "no master answers for sessions.redis_master_name",
                ))
            })
    }

    /// After a failed command: a sentinel-found master that is gone or
    /// demoted is looked up again, in the background.
    fn after<T>(&self, outcome: &RedisResult<T>) {
        let Err(err) = outcome else { return };
        if self.0.sentinels.is_none() {
            return;
        }
        let moved = err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.code() == Some("READONLY");
        if moved {
            let conn = self.clone();
            tokio::spawn(async move { conn.lookup(false).await });
        }
    }

    /// Asks the sentinels for the master and switches to it when it is a
    /// new one (the same one's manager reconnects by itself). `wait`: wait
    /// for a lookup in flight instead of leaving it to that one.
    async fn lookup(&self, wait: bool) {
        let Some(sentinels) = &self.0.sentinels else {
            return;
        };
        let mut client = match sentinels.client.try_lock() {
            Ok(client) => client,
            Err(_) if wait => sentinels.client.lock().await,
            Err(_) => return,
        };
        {
            let mut last = sentinels
                .last_lookup
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.is_some_and(|at| at.elapsed() < LOOKUP_SPACING) {
                return;
            }
            *last = Some(Instant::now());
        }
        let found = tokio::time::timeout(sentinels.timeout, client.async_get_client()).await;
        let master = match found {
            Ok(Ok(master)) => master,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "session store (redis): no master from the sentinels");
                return;
            }
            Err(_) => {
                tracing::debug!("session store (redis): the sentinels gave no master in time");
                return;
            }
        };
        let addr = master.get_connection_info().addr().to_string();
        if self.current().is_some_and(|current| current.addr == addr) {
            return;
        }
        match ConnectionManager::new_lazy_with_config(master, sentinels.config.clone()) {
            Ok(manager) => {
                tracing::warn!(master = %addr, "session store (redis): using the master the sentinels name");
                *self
                    .0
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                    Some(Current { manager, addr });
            }
            Err(err) => {
                tracing::error!(error = %err, "session store (redis): cannot connect to the master")
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut manager = self.manager().await?;
            let outcome = manager.req_packed_command(cmd).await;
            self.after(&outcome);
            outcome
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut manager = self.manager().await?;
            let outcome = manager.req_packed_commands(pipeline, offset, count).await;
            self.after(&outcome);
            outcome
        })
    }

    fn get_db(&self) -> i64 {
        self.0.db
    }
}
