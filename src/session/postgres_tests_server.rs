//! A throwaway PostgreSQL for the store tests: a cluster made by `initdb`
//! in a temp dir, served on a free 127.0.0.1 port with password auth over
//! TCP (so the password file is exercised); as root it runs as `nobody`
//! (initdb refuses root). Stopped on drop.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "pg-test-s3cret";

/// A `postgres` child, stopped on drop.
pub struct PgServer {
    child: Child,
    port: u16,
    pub dir: tempfile::TempDir,
    postgres: PathBuf,
    user: Option<(u32, u32)>,
}

/// The server on `port`, its data and socket in `dir`, logging to
/// `dir/postgres.log` (appended: a restart keeps the first run's lines).
fn spawn(postgres: &Path, user: Option<(u32, u32)>, dir: &Path, port: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("postgres.log"))
        .unwrap();
    command(postgres, user)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-k")
        .arg(dir)
        .args(["-c", "fsync=off", "-c", "max_connections=200"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn tools_dir() -> PathBuf {
    match std::env::var_os("E2E_TOOLS_BIN") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin"),
    }
}

/// The unprivileged user to run as when we are root: (uid, gid).
fn run_as() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd.lines().find(|l| l.starts_with("nobody:")).unwrap();
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

fn command(bin: &Path, user: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(bin);
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command
}

impl PgServer {
    pub fn start(test: &str) -> Option<PgServer> {
        let (initdb, postgres) = (tools_dir().join("initdb"), tools_dir().join("postgres"));
        if !initdb.is_file() || !postgres.is_file() {
            let message = format!(
                "{test}: initdb/postgres not found in {} (run scripts/install-tools, or set E2E_TOOLS_BIN)",
                tools_dir().display()
            );
            let required = std::env::var("E2E_REQUIRE_TOOLS")
                .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
            assert!(!required, "{message}; E2E_REQUIRE_TOOLS=1, so this fails");
            let bar = "!".repeat(72);
            eprintln!("\n{bar}\nSKIPPED: {message}\n{bar}\n");
            return None;
        }
        let user = run_as();
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let out = command(&initdb, user)
            .args([
                "-U",
                "telegate",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--no-sync", "-E", "UTF8", "--no-locale", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {out:?}");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = spawn(&postgres, user, dir.path(), port);
        let server = PgServer {
            child,
            port,
            dir,
            postgres,
            user,
        };
        server.wait_up();
        Some(server)
    }

    fn wait_up(&self) {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "postgres on {} not up within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A fast shutdown (SIGINT), waited for (bounded), then a kill.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same cluster again on the same port.
    pub fn restart(&mut self) {
        self.child = spawn(&self.postgres, self.user, self.dir.path(), self.port);
        self.wait_up();
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://telegate@127.0.0.1:{}/{db}", self.port)
    }

    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("pw")
    }

    /// A new empty database, for one store (or two sharing it).
    pub async fn database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let url = format!("{}?password={PASSWORD}", self.url("postgres"));
        let started = Instant::now();
        let (client, connection) = loop {
            match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                Ok(pair) => break pair,
                Err(err) => {
                    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        name
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
