//! The real server in process: [`start_server`] binds 127.0.0.1:0 with a
//! config written to its own temp dir, key `a` in a file and key `b` in a
//! [`MapEnv`] (never the process environment), and a clock fixed at [`NOW`]
//! that the test moves with [`TestServer::set_now`]. A config with
//! `ops_listen` gets a second listener on 127.0.0.1:0 ([`TestServer::ops_url`]),
//! one with `ingest.grpc_listen` a gRPC listener ([`TestServer::grpc_addr`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use telegate::config::{self, ConfigSource, MapEnv};
use telegate::http::state::AppState;
use telegate::pipeline::metrics::Metrics;
use telegate::protocol::keyring::{Keyring, SharedKeyring};
use tokio::sync::oneshot;

use super::http::{add_headers, http_client};

pub const SECRET_A: &str = "7d1f0c3e9b2a4d5f8e6c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a098f7e6d5";
pub const SECRET_B: &str = "Zm9vYmFyYmF6cXV1eHF1dXhjb3JnZ3JhdWx0Z2FycGx5Cg==";
pub const SESSION: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
/// The fixed "now" of the injected clock.
pub const NOW: i64 = 1_800_000_000;

/// A config with two keys, `a` (file) and `b` (env), and the given extra TOML.
pub fn config_with(extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1/32"]
[server]
header_read_timeout_secs = 1
[[auth.keys]]
id = "a"
file = "a.key"
[[auth.keys]]
id = "b"
env = "TEST_SECRET_B"
{extra}
"#
    )
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// The operations listener, when the config sets `ops_listen`.
    pub ops_addr: Option<SocketAddr>,
    /// The OTLP/gRPC listener, when the config sets `ingest.grpc_listen`.
    pub grpc_addr: Option<SocketAddr>,
    pub state: AppState,
    pub client: reqwest::Client,
    clock: Arc<AtomicI64>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A URL on the operations listener (the config must set `ops_listen`).
    pub fn ops_url(&self, path: &str) -> String {
        let addr = self.ops_addr.expect("the config sets no ops_listen");
        format!("http://{addr}{path}")
    }

    pub fn set_now(&self, now: i64) {
        self.clock.store(now, Ordering::SeqCst);
    }

    /// `GET /auth` as Traefik sends it: signed headers for `method path`.
    pub fn auth_request(&self, headers: &[(&str, String)]) -> reqwest::RequestBuilder {
        let request = self.client.get(self.url("/auth"));
        add_headers(request, headers)
    }

    pub async fn scrape(&self) -> String {
        let url = match self.ops_addr {
            Some(_) => self.ops_url("/metrics"),
            None => self.url("/metrics"),
        };
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Stops the server and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// Starts the real server on 127.0.0.1:0 with `config_text` (key `a` in a
/// file, key `b` in the env map) and a clock fixed at [`NOW`].
pub async fn start_server(config_text: &str) -> TestServer {
    start_server_with_files(config_text, &[]).await
}

/// [`start_server`] with extra files written beside the config first.
pub async fn start_server_with_files(config_text: &str, files: &[(&str, &str)]) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.key"), format!("{SECRET_A}\n")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("telegate.toml");
    std::fs::write(&path, config_text).unwrap();
    let env = MapEnv::from([("TEST_SECRET_B", SECRET_B)]);
    let settings = config::load(&ConfigSource::File(path), &env).unwrap();
    let ring = Keyring::load(&settings.keys, &env).unwrap();
    let metrics = Metrics::new(&settings.metrics_namespace).unwrap();
    let clock = Arc::new(AtomicI64::new(NOW));
    let clock_handle = clock.clone();
    let admin_token = telegate::cli::read_admin_token(&settings).unwrap();
    let state = AppState::new(
        settings,
        SharedKeyring::new(ring),
        metrics,
        admin_token,
        Arc::new(move || clock_handle.load(Ordering::SeqCst)),
    )
    .unwrap()
    // The spool ages by the wall clock: only the signatures' clock is fixed.
    .with_spool(telegate::ingest::spool::system_ms())
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ops = match state.settings().ops_listen {
        Some(_) => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
        None => None,
    };
    let ops_addr = ops.as_ref().map(|l| l.local_addr().unwrap());
    let grpc = match state.settings().ingest.grpc_listen {
        Some(_) => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
        None => None,
    };
    let grpc_addr = grpc.as_ref().map(|l| l.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(telegate::http::listener::run(
        listener,
        ops,
        grpc,
        state.clone(),
        async {
            let _ = rx.await;
        },
    ));
    TestServer {
        addr,
        ops_addr,
        grpc_addr,
        state,
        client: http_client(),
        clock,
        shutdown: Some(tx),
        task: Some(task),
        _dir: dir,
    }
}
