//! The conformance suite against a real `redis-server` (started here on a
//! free 127.0.0.1 port, without persistence), plus what only a shared store
//! has: two stores on one Redis, a wipe seen by the other, TTLs that Redis
//! owns, and an outage. Each check gets a fresh key prefix. Without
//! `redis-server` the tests skip loudly, or fail with `E2E_REQUIRE_TOOLS=1`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::pipeline::metrics::Metrics;
use crate::session::conformance::{self, eventually, issued, settings, sighting, T0};

/// A `redis-server` child, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one on a free port, or `None` (after a loud note) when the
    /// binary is missing and `E2E_REQUIRE_TOOLS` is not set.
    fn start(test: &str) -> Option<RedisServer> {
        let bin = tools_dir().join("redis-server");
        if !bin.is_file() {
            let message = format!(
                "{test}: {} not found (run scripts/install-tools, or set E2E_TOOLS_BIN)",
                bin.display()
            );
            let required = std::env::var("E2E_REQUIRE_TOOLS")
                .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
            assert!(!required, "{message}; E2E_REQUIRE_TOOLS=1, so this fails");
            let bar = "!".repeat(72);
            let _ = writeln!(std::io::stderr(), "\n{bar}\nSKIPPED: {message}\n{bar}\n");
            return None;
        }
        Some(RedisServer::on_port(&bin, free_port()))
    }

    fn on_port(bin: &std::path::Path, port: u16) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("redis.log")).unwrap();
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while !server.pongs() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "redis-server on {port} not up within 5 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn pongs(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tools_dir() -> PathBuf {
    match std::env::var_os("E2E_TOOLS_BIN") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn metrics() -> StoreMetrics {
    let metrics = Metrics::new("test").unwrap();
    StoreMetrics {
        errors: metrics.store_errors_total.clone(),
        duration: metrics.store_duration_seconds.clone(),
    }
}

/// A fresh prefix per store, so checks on one server never collide.
fn prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}-{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn open(url: &str, prefix: &str, settings: SessionSettings, clock: UnixClock) -> RedisStore {
    open_every(url, prefix, settings, clock, Duration::from_millis(50))
}

fn open_every(
    url: &str,
    prefix: &str,
    settings: SessionSettings,
    clock: UnixClock,
    flush_interval: Duration,
) -> RedisStore {
    let redis = RedisSettings {
        url: url.into(),
        prefix: prefix.into(),
        flush_interval,
        sentinel: None,
    };
    RedisStore::new(settings, redis, metrics(), clock).unwrap()
}

fn at_t0() -> UnixClock {
    Arc::new(|| T0)
}

fn store(server: &RedisServer) -> RedisStore {
    open(&server.url(), &prefix(), settings(), at_t0())
}

#[tokio::test]
async fn conformance() {
    let Some(server) = RedisServer::start("redis conformance") else {
        return;
    };
    conformance::records_and_counts(&store(&server)).await;
    conformance::idle_sessions_expire_and_start_over(&store(&server)).await;
    conformance::revocation_refuses_until_it_expires(&store(&server)).await;
    conformance::one_address_holds_at_most_max_per_ip(&store(&server)).await;
    conformance::list_pages_and_filters(&store(&server)).await;
    conformance::stats_count_by_kind_and_version(&store(&server)).await;
}

#[tokio::test]
async fn conformance_issued() {
    let Some(server) = RedisServer::start("redis conformance_issued") else {
        return;
    };
    let refusing = open(&server.url(), &prefix(), issued::refusing(), at_t0());
    issued::issue_and_find_by_token_hash(&store(&server)).await;
    issued::the_absolute_ttl_ends_a_busy_session(&store(&server)).await;
    issued::refresh_kills_the_old_token_at_once(&store(&server)).await;
    issued::extend_is_bounded_by_the_max_lifetime(&store(&server)).await;
    issued::a_user_over_the_limit_loses_the_oldest(&store(&server)).await;
    issued::a_user_over_the_limit_is_refused(&refusing).await;
    issued::a_signed_client_issues_within_its_address_cap(&store(&server)).await;
    issued::logout_revoke_user_delete_and_wipe(&store(&server)).await;
    issued::grants_and_ttl_are_kept(&store(&server)).await;
}

#[path = "redis_tests_shared.rs"]
mod shared;

#[path = "redis_tests_series.rs"]
mod series_scripts;
