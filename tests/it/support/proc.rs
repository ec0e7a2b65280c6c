//! Child processes of a test and where they keep their files.
//!
//! - [`Workdir`]: a temp dir that is kept, and named, when the test fails.
//! - [`Proc`]: a child process whose output goes to a log file, killed on drop
//!   (also during a panic), with its log printed when the test fails;
//!   [`Proc::wait_ready`] waits for it with a bound in count and time.
//! - [`telegate_command`]: the telegate binary with none of the developer's
//!   settings inherited.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::wait::poll;

/// The telegate binary built by cargo for this test run.
pub const TELEGATE_BIN: &str = env!("CARGO_BIN_EXE_telegate");

/// Lines of a process log printed when a test fails.
const LOG_TAIL_LINES: usize = 150;

/// `telegate` with no setting inherited from the developer's shell: a
/// test's config file (and the variables it sets on the command) must be the
/// whole truth, so `TELEGATE_*` overrides, `RUST_LOG` and the legacy
/// variables are removed from the child's environment (never from ours).
pub fn telegate_command() -> Command {
    let mut command = Command::new(TELEGATE_BIN);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("TELEGATE_")
            || name.starts_with("KOTORMODSYNC_")
            || name.starts_with("MODSYNC_")
            || name == "RUST_LOG"
            || name == "REQUIRE_AUTH"
            || name == "AUTH_SERVICE_PORT"
        {
            command.env_remove(&*name);
        }
    }
    command
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

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

    /// Waits (bounded by `timeout`) until the process has exited on its own
    /// and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let what = format!("{} to exit", self.name);
        let child = &mut self.child;
        super::wait::poll_until(&what, timeout, || {
            let status = child.try_wait().expect("try_wait on a child");
            std::future::ready(status.ok_or_else(|| "running".to_string()))
        })
        .await
        .unwrap_or_else(|err| panic!("{err}\n{}", tail(&read_lossy(&self.log), LOG_TAIL_LINES)))
    }

    /// SIGTERM (a graceful stop), then [`Proc::wait_exit`].
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {}", self.child.id());
        self.wait_exit(timeout).await
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

// ---------------------------------------------------------------- logs

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
