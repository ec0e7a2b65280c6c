//! Shared plumbing for the end-to-end tests: real binaries on 127.0.0.1.
//!
//! - [`require_tools`]: finds the external tools (`scripts/install-tools`), or
//!   skips the test loudly (fails it when `E2E_REQUIRE_TOOLS=1`).
//! - [`Workdir`]: a temp dir that is kept, and named, when the test fails.
//! - [`free_port`]: a loopback port nobody else in this test binary was given.
//! - [`Proc`]: a child process whose output goes to a log file, killed on drop
//!   (also during a panic), with its log printed when the test fails.
//! - [`poll_until`] / [`Proc::wait_ready`]: bounded waits, in count and time.
//! - [`stack`]: launchers for telegate, rotel (the collector), Traefik and Prometheus.
//! - [`otlp`]: OTLP payloads (a one-counter metrics export) and the signed-request clock.
//!
//! Each `tests/e2e_*.rs` compiles this module on its own and uses a subset,
//! hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Set to `1` by the test script and CI: a missing tool is then a failure.
pub const REQUIRE_ENV: &str = "E2E_REQUIRE_TOOLS";
/// Overrides where the tools live (default: `$CARGO_MANIFEST_DIR/.tools/bin`).
pub const TOOLS_ENV: &str = "E2E_TOOLS_BIN";

/// Time between two probes of a bounded wait.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Lines of a process log printed when a test fails.
const LOG_TAIL_LINES: usize = 150;

// ---------------------------------------------------------------- tools

/// The directory holding the external tools.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os(TOOLS_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin"),
    }
}

/// Where the external tools were found.
#[derive(Debug, Clone)]
pub struct Tools {
    dir: PathBuf,
}

impl Tools {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The tools a test needs, or `None` when they are missing and the test should
/// skip. With `E2E_REQUIRE_TOOLS=1` a missing tool panics instead, so CI can
/// never go green by skipping.
pub fn require_tools(test: &str, names: &[&str]) -> Option<Tools> {
    let dir = tools_dir();
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !is_executable(&dir.join(name)))
        .collect();
    if missing.is_empty() {
        return Some(Tools { dir });
    }
    let message = format!(
        "{test}: missing tools {missing:?} in {} (run scripts/install-tools, or set {TOOLS_ENV})",
        dir.display()
    );
    let required = std::env::var(REQUIRE_ENV)
        .map(|v| matches!(v.as_str(), "1" | "true" | "yes"))
        .unwrap_or(false);
    if required {
        panic!("{message}; {REQUIRE_ENV}=1, so this is a failure, not a skip");
    }
    // Straight to the process's stderr: libtest captures eprintln! of passing
    // tests, and a skip must be seen.
    let bar = "!".repeat(72);
    let _ = writeln!(std::io::stderr(), "\n{bar}\nSKIPPED: {message}\n{bar}\n");
    None
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

// ---------------------------------------------------------------- workdir

/// A temp dir for configs, keys and logs. Removed when the test passes; kept
/// (and its path printed) when it fails, so the logs can be read afterwards.
pub struct Workdir {
    dir: Option<tempfile::TempDir>,
}

impl Workdir {
    pub fn new(prefix: &str) -> Workdir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .expect("create a temp dir");
        Workdir { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("workdir present until drop")
            .path()
    }

    /// Writes `contents` to `name` inside the dir and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
        path
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            if std::thread::panicking() {
                eprintln!("e2e: test failed; files kept in {}", dir.keep().display());
            }
        }
    }
}

// ---------------------------------------------------------------- ports

/// A free 127.0.0.1 port. The OS picks it (bind to port 0) and the socket is
/// closed again, so another process could still grab it before the child
/// binds; the set below at least stops this test binary from handing the same
/// port out twice. (rotel panics on port 0, so children get real ports.)
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..64 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if GIVEN.lock().expect("port set lock").insert(port) {
            return port;
        }
    }
    panic!("no fresh loopback port after 64 tries");
}

// ---------------------------------------------------------------- processes

/// A running child process. Its stdout and stderr go to one log file; it is
/// killed (SIGKILL) and reaped on drop, and when the test is failing its log
/// tail is printed first.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `command` with stdin closed and both outputs in `log`.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Proc {
        let out = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log file handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({command:?}): {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process has written so far.
    pub fn log_text(&self) -> String {
        read_lossy(&self.log)
    }

    /// The exit status, if the process has already ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait on a child")
    }

    /// Polls `probe` until it answers `Ok`, panicking if the process exits
    /// first or `timeout` passes; the panic message carries the log tail.
    pub async fn wait_ready<T, Fut>(
        &mut self,
        what: &str,
        timeout: Duration,
        probe: impl FnMut() -> Fut,
    ) -> T
    where
        Fut: Future<Output = Result<T, String>>,
    {
        let (name, log) = (self.name.clone(), self.log.clone());
        let child = &mut self.child;
        let alive = || match child.try_wait().expect("try_wait on a child") {
            None => Ok(()),
            Some(status) => Err(format!("{name} exited early ({status})")),
        };
        match poll(what, timeout, alive, probe).await {
            Ok(value) => value,
            Err(err) => panic!(
                "{err}\n----- {name} log ({}) -----\n{}",
                log.display(),
                tail(&read_lossy(&log), LOG_TAIL_LINES)
            ),
        }
    }

    /// Waits until the log contains `needle` (bounded by `timeout`).
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let log = self.log.clone();
        let what = format!("{:?} in the {} log", needle, self.name);
        self.wait_ready(&what, timeout, || {
            let found = read_lossy(&log).contains(needle);
            std::future::ready(if found { Ok(()) } else { Err("not yet".into()) })
        })
        .await
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Ignore errors: the process may have exited on its own already.
        let _ = self.child.kill();
        let status = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "\n----- {} (pid {}, {:?}) log tail: {} -----\n{}\n----- end of {} log -----",
                self.name,
                self.child.id(),
                status,
                self.log.display(),
                tail(&self.log_text(), LOG_TAIL_LINES),
                self.name
            );
        }
    }
}

// ---------------------------------------------------------------- waiting

/// Polls `probe` every [`POLL_INTERVAL`] until it answers `Ok`, at most
/// `timeout` long and at most `timeout / POLL_INTERVAL + 1` times. On timeout
/// the error names `what` and the last probe error.
pub async fn poll_until<T, Fut>(
    what: &str,
    timeout: Duration,
    probe: impl FnMut() -> Fut,
) -> Result<T, String>
where
    Fut: Future<Output = Result<T, String>>,
{
    poll(what, timeout, || Ok(()), probe).await
}

/// [`poll_until`] with a guard checked before each probe; a guard error ends
/// the wait at once (e.g. the process being waited on has died).
async fn poll<T, Fut>(
    what: &str,
    timeout: Duration,
    mut guard: impl FnMut() -> Result<(), String>,
    mut probe: impl FnMut() -> Fut,
) -> Result<T, String>
where
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let max_attempts = timeout.as_millis() / POLL_INTERVAL.as_millis() + 1;
    let mut last = String::from("never probed");
    for attempt in 1..=max_attempts {
        guard().map_err(|err| format!("while waiting for {what}: {err}"))?;
        match probe().await {
            Ok(value) => return Ok(value),
            Err(err) => last = err,
        }
        if started.elapsed() >= timeout || attempt == max_attempts {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    Err(format!(
        "timed out after {:?} waiting for {what}; last probe: {last}",
        started.elapsed()
    ))
}

// ---------------------------------------------------------------- misc

/// An HTTP client for loopback use: never goes through a proxy from the
/// environment, and never hangs a test.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("build reqwest client")
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = all[start..].join("\n");
    if start > 0 {
        out.insert_str(0, &format!("[... {start} earlier lines ...]\n"));
    }
    out
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}
