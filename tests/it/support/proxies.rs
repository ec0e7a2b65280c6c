//! The reverse proxies besides Traefik that put telegate in front of a
//! collector: nginx (`auth_request`) and Caddy (`forward_auth`), from
//! Debian's packages (`scripts/install-tools` links them into the tools
//! dir). Each runs a site config of `deploy/` (templated to loopback by the
//! test) on a fresh 127.0.0.1 port with every file in the test's
//! [`Workdir`], waits until it answers HTTP, and is killed when dropped.

use std::process::Command;
use std::time::Duration;

use super::http::http_client;
use super::proc::{Proc, Workdir};
use super::tools::Tools;

/// Cold starts on a loaded 2-core machine take well under this.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One of the proxies, serving on `port`.
pub struct Proxy {
    /// Held so that the proxy lives as long as this value (killed on drop).
    _proc: Proc,
    pub port: u16,
}

impl Proxy {
    /// nginx in the foreground with a main config of its own around `site`
    /// (a file of `http`-context blocks, as `conf.d/` holds), which must
    /// `listen 127.0.0.1:{port}`. Pid, logs and temp files stay in the
    /// workdir; `user root` keeps the workers able to use them when the
    /// test runs as root (nginx ignores it otherwise).
    pub async fn nginx(tools: &Tools, work: &Workdir, port: u16, site: &str) -> Proxy {
        let dir = work.path().join("nginx");
        std::fs::create_dir_all(dir.join("tmp")).expect("create the nginx dir");
        let site_path = dir.join("site.conf");
        std::fs::write(&site_path, site).expect("write the nginx site");
        let at = |name: &str| dir.join(name).display().to_string();
        let main = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\n\
             pid {pid};\nerror_log {error} info;\nevents {{ worker_connections 128; }}\n\
             http {{\n  access_log {access};\n  client_body_temp_path {tmp}/body;\n  \
             proxy_temp_path {tmp}/proxy;\n  fastcgi_temp_path {tmp}/fastcgi;\n  \
             uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n  \
             include {site};\n}}\n",
            pid = at("nginx.pid"),
            error = at("error.log"),
            access = at("access.log"),
            tmp = at("tmp"),
            site = site_path.display(),
        );
        let main_path = dir.join("nginx.conf");
        std::fs::write(&main_path, main).expect("write nginx.conf");
        let mut command = Command::new(tools.path("nginx"));
        command
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&main_path)
            .current_dir(&dir);
        let proc = Proc::spawn("nginx", command, work.path().join("nginx.log"));
        Proxy::ready(proc, port).await
    }

    /// `caddy run` with `caddyfile` behind a global block that turns off
    /// the admin endpoint (its default port is shared by every instance)
    /// and automatic HTTPS; its data and config dirs are in the workdir.
    /// The Caddyfile's site address must be `http://127.0.0.1:{port}`.
    pub async fn caddy(tools: &Tools, work: &Workdir, port: u16, caddyfile: &str) -> Proxy {
        let dir = work.path().join("caddy");
        std::fs::create_dir_all(&dir).expect("create the Caddy dir");
        let path = dir.join("Caddyfile");
        let text = format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{caddyfile}");
        std::fs::write(&path, text).expect("write the Caddyfile");
        let mut command = Command::new(tools.path("caddy"));
        command
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", &dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .current_dir(&dir);
        let proc = Proc::spawn("caddy", command, work.path().join("caddy.log"));
        Proxy::ready(proc, port).await
    }

    /// Waits until the proxy answers HTTP at all on `port` (the test's
    /// requests decide what the answers must be).
    async fn ready(mut proc: Proc, port: u16) -> Proxy {
        let probe = format!("http://127.0.0.1:{port}/telegate-probe");
        let client = http_client();
        proc.wait_ready("the proxy to answer HTTP", START_TIMEOUT, || async {
            client
                .get(&probe)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
        Proxy { _proc: proc, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}
