//! A real PostgreSQL cluster for the end-to-end tests: `initdb` in a temp
//! dir, `postgres` on a free 127.0.0.1 port, its socket in the same dir,
//! password auth over TCP (the password in a file, as
//! `sessions.postgres_password_file` reads it). initdb refuses to run as
//! root: as root both run as `nobody`, in a dir that user owns. Stopped
//! with SIGINT (a fast shutdown) on drop, then killed if it lingers.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::free_port;
use super::proc::{Proc, Workdir};
use super::tools::Tools;

/// Starting (initdb, then the server) may take this long on a busy box.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Postgres {
    proc: Proc,
    pub port: u16,
    /// Holds the cluster (owned by the user it runs as).
    dir: tempfile::TempDir,
}

/// As root: `nobody`'s (uid, gid); otherwise `None` (run as ourselves).
fn unprivileged() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().expect("run id -u");
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .expect("a nobody user to run postgres as");
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

impl Postgres {
    pub async fn start(tools: &Tools, work: &Workdir) -> Postgres {
        let user = unprivileged();
        let as_user = |command: &mut Command| {
            if let Some((uid, gid)) = user {
                command.uid(uid).gid(gid);
            }
        };
        let dir = tempfile::tempdir().expect("temp dir for postgres");
        let password = super::stack::keygen();
        let pwfile = dir.path().join("password");
        std::fs::write(&pwfile, format!("{password}\n")).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(tools.path("initdb"));
        initdb
            .args([
                "-U",
                "telegate",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--no-sync", "-E", "UTF8", "--no-locale", "-D"])
            .arg(&data);
        as_user(&mut initdb);
        let out = initdb.output().expect("run initdb");
        assert!(out.status.success(), "initdb failed: {out:?}");
        // CREATE DATABASE needs a connection: the database telegate uses
        // is made by a single-user backend, before the server listens.
        let mut create = Command::new(tools.path("postgres"));
        create.args(["--single", "-D"]).arg(&data).arg("postgres");
        as_user(&mut create);
        create
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null());
        let mut child = create.spawn().expect("run postgres --single");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"CREATE DATABASE telegate;\n")
            .unwrap();
        assert!(child.wait().unwrap().success(), "CREATE DATABASE failed");
        let port = free_port();
        let mut command = Command::new(tools.path("postgres"));
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(dir.path())
            .args(["-c", "fsync=off"]);
        as_user(&mut command);
        let mut proc = Proc::spawn("postgres", command, work.path().join("postgres.log"));
        proc.wait_for_log(
            "database system is ready to accept connections",
            START_TIMEOUT,
        )
        .await;
        Postgres { proc, port, dir }
    }

    /// The database telegate uses, without the password.
    pub fn url(&self) -> String {
        format!("postgres://telegate@127.0.0.1:{}/telegate", self.port)
    }

    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.proc.pid().to_string()])
            .status();
        let started = Instant::now();
        while self.proc.exited().is_none() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
