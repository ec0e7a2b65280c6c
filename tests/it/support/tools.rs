//! The external tools the end-to-end tests run (`scripts/install-tools`):
//! found, or the test skips loudly, or, with `E2E_REQUIRE_TOOLS=1`, fails.
//! The environment is only read here, never written.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Set to `1` by the test script and CI: a missing tool is then a failure.
pub const REQUIRE_ENV: &str = "E2E_REQUIRE_TOOLS";
/// Overrides where the tools live (default: `$CARGO_MANIFEST_DIR/.tools/bin`).
pub const TOOLS_ENV: &str = "E2E_TOOLS_BIN";

/// Whether the variable `name` is set to `1`, `true` or `yes`.
pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"))
}

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
    if env_flag(REQUIRE_ENV) {
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

/// Runs `tests/clients/SCRIPT` with the OpenTelemetry SDK's python
/// (`otel-python`), off the runtime; panics unless it exits 0. Returns its
/// stdout and stderr.
pub async fn otel_python(tools: &Tools, script: &str, args: Vec<String>) -> (String, String) {
    let python = tools.path("otel-python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args(args)
            .output()
            .expect("run otel-python")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}
