//! Launchers for the real components: the telegate binary, rotel (an OTLP
//! collector that prints what it receives), Traefik, Prometheus and Redis.
//! Each starts on fresh 127.0.0.1 ports in the test's [`Workdir`], waits
//! until it really serves, and is killed when dropped. Flags and quirks:
//! docs/e2e-notes.md.

use std::process::Command;
use std::time::Duration;

use super::http::http_client;
use super::ports::free_port;
use super::proc::{telegate_command, Proc, Workdir};
use super::tools::Tools;

/// Cold starts on a loaded 2-core machine take well under this.
const START_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- telegate

/// `telegate serve` with a config written by the test.
pub struct Telegate {
    pub proc: Proc,
    pub port: u16,
}

impl Telegate {
    /// Writes `config` (TOML without `listen`, which is added here: a free
    /// loopback port) to `telegate.toml` and serves it until `/ready` is 200.
    /// Relative key paths in `config` resolve from the workdir.
    pub async fn start(work: &Workdir, config: &str) -> Telegate {
        Telegate::start_full(work, "telegate", config, &[], "/ready").await
    }

    /// [`Telegate::start`] with extra environment variables (set after the
    /// developer's own are removed), e.g. the original service's `REQUIRE_AUTH`.
    pub async fn start_with_env(work: &Workdir, config: &str, env: &[(&str, &str)]) -> Telegate {
        Telegate::start_full(work, "telegate", config, env, "/ready").await
    }

    /// [`Telegate::start`] with its own config and log (`NAME.toml`,
    /// `NAME.log`), for several instances in one workdir.
    pub async fn start_named(work: &Workdir, name: &str, config: &str) -> Telegate {
        Telegate::start_full(work, name, config, &[], "/ready").await
    }

    /// [`Telegate::start_named`] with extra environment variables.
    pub async fn start_named_with_env(
        work: &Workdir,
        name: &str,
        config: &str,
        env: &[(&str, &str)],
    ) -> Telegate {
        Telegate::start_full(work, name, config, env, "/ready").await
    }

    /// [`Telegate::start_named`] with extra environment variables, served
    /// once `/health` is 200: for a gate that is meant not to be ready
    /// (its store refuses it), whose `/ready` the test then reads.
    pub async fn start_unready(
        work: &Workdir,
        name: &str,
        config: &str,
        env: &[(&str, &str)],
    ) -> Telegate {
        Telegate::start_full(work, name, config, env, "/health").await
    }

    /// Serves `config` until `GET probe` is 200.
    async fn start_full(
        work: &Workdir,
        name: &str,
        config: &str,
        env: &[(&str, &str)],
        probe: &str,
    ) -> Telegate {
        let port = free_port();
        let path = work.write(
            &format!("{name}.toml"),
            &format!("listen = \"127.0.0.1:{port}\"\n{config}"),
        );
        // The config file must be the whole truth: nothing from the
        // developer's shell (see `telegate_command`).
        let mut command = telegate_command();
        command
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .current_dir(work.path());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut proc = Proc::spawn(name, command, work.path().join(format!("{name}.log")));
        let ready = format!("http://127.0.0.1:{port}{probe}");
        let client = http_client();
        proc.wait_ready(
            &format!("telegate GET {probe} = 200"),
            START_TIMEOUT,
            || get_status(&client, &ready, 200),
        )
        .await;
        Telegate { proc, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The Prometheus text served at `/metrics`.
    pub async fn metrics(&self) -> String {
        let response = http_client()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET telegate /metrics");
        assert_eq!(response.status(), 200, "telegate /metrics status");
        response.text().await.expect("read /metrics body")
    }
}

/// A fresh secret from `telegate keygen` (64 hex characters).
pub fn keygen() -> String {
    let output = telegate_command()
        .arg("keygen")
        .output()
        .expect("run telegate keygen");
    assert!(output.status.success(), "telegate keygen: {output:?}");
    let secret = String::from_utf8(output.stdout)
        .expect("keygen prints UTF-8")
        .trim()
        .to_owned();
    assert!(
        secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()),
        "keygen printed {secret:?}"
    );
    secret
}

// ---------------------------------------------------------------- rotel

/// rotel-agent as the collector: OTLP/HTTP in, everything it decodes printed
/// to its log (`--debug-log ... detailed`), nothing exported.
pub struct Rotel {
    pub proc: Proc,
    pub http_port: u16,
    pub grpc_port: u16,
}

impl Rotel {
    pub async fn start(tools: &Tools, work: &Workdir) -> Rotel {
        // The gRPC port is required: the default one is shared by every instance.
        Rotel::start_on(tools, work, free_port(), free_port(), "rotel.log").await
    }

    /// rotel on given ports (to restart a stopped collector where clients
    /// expect it), logging to `log` in the workdir.
    pub async fn start_on(
        tools: &Tools,
        work: &Workdir,
        http_port: u16,
        grpc_port: u16,
        log: &str,
    ) -> Rotel {
        let mut command = Command::new(tools.path("rotel-agent"));
        command
            .arg("start")
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc_port}"))
            .args(["--exporter", "blackhole"])
            .args(["--debug-log", "metrics"])
            .args(["--debug-log", "traces"])
            .args(["--debug-log", "logs"])
            .args(["--debug-log-verbosity", "detailed"])
            .env("NO_COLOR", "1")
            .current_dir(work.path());
        let mut proc = Proc::spawn("rotel", command, work.path().join(log));
        // rotel answers 404 at `/` once its HTTP receiver is up.
        let root = format!("http://127.0.0.1:{http_port}/");
        let client = http_client();
        proc.wait_ready("rotel GET / = 404", START_TIMEOUT, || {
            get_status(&client, &root, 404)
        })
        .await;
        Rotel {
            proc,
            http_port,
            grpc_port,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Everything rotel printed so far.
    pub fn output(&self) -> String {
        self.proc.log_text()
    }

    /// Waits until rotel printed `needle` (output lands ~10 ms after a POST).
    pub async fn wait_for(&mut self, needle: &str, timeout: Duration) {
        self.proc.wait_for_log(needle, timeout).await
    }
}

// ---------------------------------------------------------------- traefik

/// Traefik 3 with one entrypoint `web` and a file provider.
pub struct Traefik {
    /// Held so that Traefik lives as long as this value (killed on drop).
    _proc: Proc,
    pub port: u16,
}

impl Traefik {
    /// Starts Traefik with `dynamic_yaml` as its file-provider config, then
    /// waits for `/ping` and for `route` (a path the dynamic config serves) to
    /// stop answering 404: the file routes load 10-40 ms after `/ping` works.
    pub async fn start(tools: &Tools, work: &Workdir, dynamic_yaml: &str, route: &str) -> Traefik {
        Traefik::start_with_args(tools, work, dynamic_yaml, route, &[]).await
    }

    /// [`Traefik::start`] with extra static-config flags (e.g. a metrics entrypoint).
    pub async fn start_with_args(
        tools: &Tools,
        work: &Workdir,
        dynamic_yaml: &str,
        route: &str,
        extra_args: &[String],
    ) -> Traefik {
        let port = free_port();
        let dynamic = work.write("traefik-dynamic.yml", dynamic_yaml);
        let mut command = Command::new(tools.path("traefik"));
        command
            .arg(format!("--entrypoints.web.address=127.0.0.1:{port}"))
            .arg("--entrypoints.web.http.aliasheadersstrategy=delete")
            .arg(format!("--providers.file.filename={}", dynamic.display()))
            // Without ping.entrypoint, --ping opens a `traefik` entrypoint on *:8080.
            .args(["--ping=true", "--ping.entrypoint=web"])
            .args(["--log.level=DEBUG", "--log.nocolor=true"])
            .args([
                "--global.checknewversion=false",
                "--global.sendanonymoususage=false",
            ])
            .args(extra_args)
            .current_dir(work.path());
        let mut proc = Proc::spawn("traefik", command, work.path().join("traefik.log"));
        let client = http_client();
        let ping = format!("http://127.0.0.1:{port}/ping");
        proc.wait_ready("traefik GET /ping = 200", START_TIMEOUT, || {
            get_status(&client, &ping, 200)
        })
        .await;
        let probe = format!("http://127.0.0.1:{port}{route}");
        let what = format!("traefik to route {route} (not 404)");
        proc.wait_ready(&what, START_TIMEOUT, || async {
            let status = client
                .get(&probe)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .status();
            if status == 404 {
                Err("404: routes not loaded yet".into())
            } else {
                Ok(())
            }
        })
        .await;
        Traefik { _proc: proc, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

// ---------------------------------------------------------------- prometheus

/// Prometheus with a config written by the test (plus any rule files beside
/// it), its TSDB in the workdir, listening on 127.0.0.1 only.
pub struct Prometheus {
    pub proc: Proc,
    pub port: u16,
}

impl Prometheus {
    /// Writes `config` to `prometheus.yml` and `files` beside it, starts
    /// Prometheus on `port` (from [`free_port`]; the config may name it, for
    /// Prometheus's own scrape job) and waits for `/-/ready`.
    pub async fn start_on(
        tools: &Tools,
        work: &Workdir,
        port: u16,
        config: &str,
        files: &[(&str, &str)],
    ) -> Prometheus {
        let dir = work.path().join("prometheus");
        std::fs::create_dir_all(dir.join("data")).expect("create the Prometheus dir");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write a Prometheus file");
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let mut command = Command::new(tools.path("prometheus"));
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .current_dir(&dir);
        let mut proc = Proc::spawn("prometheus", command, work.path().join("prometheus.log"));
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        let client = http_client();
        proc.wait_ready("prometheus GET /-/ready = 200", START_TIMEOUT, || {
            get_status(&client, &ready, 200)
        })
        .await;
        Prometheus { proc, port }
    }

    /// The value of an instant query's first sample, if any.
    pub async fn query_value(&self, query: &str) -> Result<f64, String> {
        let response = http_client()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", query)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        let value = body["data"]["result"][0]["value"][1]
            .as_str()
            .ok_or_else(|| format!("no sample for {query}: {body}"))?;
        value.parse().map_err(|_| format!("not a number: {value}"))
    }

    /// `GET path` on the HTTP API, as JSON.
    pub async fn api(&self, path: &str) -> serde_json::Value {
        http_client()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .send()
            .await
            .expect("Prometheus API")
            .json()
            .await
            .expect("Prometheus API JSON")
    }
}

// ---------------------------------------------------------------- redis

/// `redis-server` without persistence on a loopback port.
pub struct Redis {
    /// Held so that Redis lives as long as this value (killed on drop).
    _proc: Proc,
    pub port: u16,
}

impl Redis {
    pub async fn start(tools: &Tools, work: &Workdir) -> Redis {
        Redis::start_on(tools, work, free_port()).await
    }

    /// On a given port: a restart after a kill comes back where the
    /// gateways expect it. Each start logs to its own `redis-PORT-N.log`.
    pub async fn start_on(tools: &Tools, work: &Workdir, port: u16) -> Redis {
        let mut n = 1;
        while work.path().join(format!("redis-{port}-{n}.log")).exists() {
            n += 1;
        }
        let log = work.path().join(format!("redis-{port}-{n}.log"));
        let mut proc = Proc::spawn("redis-server", redis_command(tools, work, port), log);
        proc.wait_for_log("Ready to accept connections", START_TIMEOUT)
            .await;
        Redis { _proc: proc, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// `redis-server` on 127.0.0.1:`port` without persistence, its files in the workdir.
pub fn redis_command(tools: &Tools, work: &Workdir, port: u16) -> Command {
    let mut command = Command::new(tools.path("redis-server"));
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(work.path())
        .current_dir(work.path());
    command
}

/// `Ok` when `GET url` answers `expected`.
async fn get_status(client: &reqwest::Client, url: &str, expected: u16) -> Result<(), String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        status if status == expected => Ok(()),
        status => Err(format!("status {status}")),
    }
}

/// A file of `deploy/`, as shipped.
pub fn deploy_file(path: &str) -> String {
    let full = format!("{}/deploy/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

/// Replaces every `from` (which must occur) with `to`.
pub fn template(text: &str, pairs: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (from, to) in pairs {
        assert!(
            out.contains(from),
            "the deploy file no longer contains {from:?}"
        );
        out = out.replace(from, to);
    }
    out
}
