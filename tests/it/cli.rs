//! The `telegate` binary: sign, keygen, check-config, exit codes, and a live
//! key rotation through SIGHUP and through a changed key file.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{poll_blocking, sample, telegate_command, Proc, POLL_INTERVAL};

/// Between two probes of [`wait_for`]: each one is an `/auth` request, and
/// the default rate limit (10/s, burst 20) must not refuse them.
const AUTH_PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// The binary run to its end, with no setting inherited from the shell:
/// each test sets what it means.
fn telegate(args: &[&str]) -> std::process::Output {
    telegate_command().args(args).output().unwrap()
}

/// The golden vector table's first row (computed with openssl).
fn golden_row() -> Vec<String> {
    include_str!("../vectors/v1.tsv")
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .split('\t')
        .map(str::to_string)
        .collect()
}

#[test]
fn sign_prints_curl_ready_headers_matching_openssl() {
    let row = golden_row();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{}\n", row[0])).unwrap();
    let out = telegate(&[
        "sign",
        "--secret-file",
        secret.to_str().unwrap(),
        "--path",
        &row[2],
        "--method",
        &row[1],
        "--session",
        &row[4],
        "--timestamp",
        &row[3],
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], format!("X-KMS-Signature: {}", row[6]));
    assert_eq!(lines[1], format!("X-KMS-Timestamp: {}", row[3]));
    assert_eq!(lines[2], format!("X-KMS-Session-ID: {}", row[4]));
    assert!(lines[3].starts_with("X-KMS-Client-Version: "));
}

#[test]
fn sign_v2_prints_body_bound_headers_matching_openssl() {
    // tests/vectors/v2.tsv: secret, key_id, method, path, ts, session, nonce, body hex, sha, message, signature
    for line in include_str!("../vectors/v2.tsv")
        .lines()
        .filter(|l| !l.starts_with('#'))
    {
        let row: Vec<&str> = line.split('\t').collect();
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, format!("{}\n", row[0])).unwrap();
        let body = dir.path().join("body");
        std::fs::write(&body, hex::decode(row[7]).unwrap()).unwrap();
        let out = telegate(&[
            "sign",
            "--v2",
            "--secret-file",
            secret.to_str().unwrap(),
            "--key-id",
            row[1],
            "--method",
            row[2],
            "--path",
            row[3],
            "--timestamp",
            row[4],
            "--session",
            row[5],
            "--nonce",
            row[6],
            "--body",
            body.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        for expected in [
            "X-KMS-Signature-Version: 2".to_string(),
            format!("X-KMS-Key-Id: {}", row[1]),
            format!("X-KMS-Nonce: {}", row[6]),
            format!("X-KMS-Content-SHA256: {}", row[8]),
            format!("X-KMS-Signature: {}", row[10]),
            format!("X-KMS-Timestamp: {}", row[4]),
        ] {
            assert!(text.lines().any(|l| l == expected), "{expected} in\n{text}");
        }
    }
    // --v2 needs the body and the key id; a random nonce has 128 bits.
    let out = telegate(&["sign", "--v2", "--secret-file", "x", "--path", "/v1/logs"]);
    assert!(!out.status.success());
}

#[test]
fn sign_without_a_session_makes_a_fresh_guid() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s").unwrap();
    let session = |out: std::process::Output| {
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("X-KMS-Session-ID: ").map(str::to_string))
            .unwrap()
    };
    let args = [
        "sign",
        "--secret-file",
        secret.to_str().unwrap(),
        "--path",
        "/v1/metrics",
    ];
    let first = session(telegate(&args));
    let second = session(telegate(&args));
    assert_eq!(first.len(), 36);
    assert_eq!(first.matches('-').count(), 4);
    assert_ne!(first, second);
}

#[test]
fn sign_reports_a_missing_secret_file() {
    let out = telegate(&[
        "sign",
        "--secret-file",
        "/nonexistent/x",
        "--path",
        "/v1/metrics",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x"));
}

#[test]
fn keygen_prints_64_fresh_hex_chars() {
    let key = |out: std::process::Output| String::from_utf8(out.stdout).unwrap().trim().to_string();
    let first = key(telegate(&["keygen"]));
    let second = key(telegate(&["keygen"]));
    assert_eq!(first.len(), 64);
    assert!(first
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_ne!(first, second);
}

#[test]
fn check_config_accepts_the_embedded_default_and_warns_of_the_dev_key() {
    let out = telegate_command()
        .arg("check-config")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("config OK"));
    assert!(text.contains("development key"), "{text}");
}

#[test]
fn config_errors_exit_64_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[rate_limit]\nburst = 0\n").unwrap();
    for command in ["check-config", "serve"] {
        let out = telegate(&[command, "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(64), "{command}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("rate_limit.burst"),
            "{command}"
        );
    }
    let out = telegate_command()
        .args(["check-config", "--config", path.to_str().unwrap()])
        .env("TELEGATE_RATE_LIMIT__BURST", "5")
        .env("TELEGATE_AUTH__MAX_SKEW_SECS", "-1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TELEGATE_AUTH__MAX_SKEW_SECS"), "{stderr}");
}

#[test]
fn check_config_prints_the_effective_settings_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let key_secret = "file-secret-0123456789abcdef";
    let env_secret = "env-secret-0123456789abcdef";
    let admin_token = "admin-token-0123456789abcdef";
    std::fs::write(dir.path().join("k1.key"), key_secret).unwrap();
    std::fs::write(dir.path().join("admin.token"), admin_token).unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(
        &path,
        r#"
[[auth.keys]]
id = "k1"
file = "k1.key"
not_after = "2030-01-01T00:00:00Z"
[[auth.keys]]
id = "k2"
env = "CLI_TEST_K2"
[admin]
token_file = "admin.token"
[policies.app]
methods = ["session", "hmac"]
key_ids = ["k2"]
[sessions]
store = "redis"
redis_url = "redis://:redis-pass-0123@127.0.0.1:6379/1"
store_ip = "truncated"
[ingest]
mode = "enrich"
[collector]
headers = { "Authorization" = "Bearer collector-secret-0123" }
"#,
    )
    .unwrap();
    let out = telegate_command()
        .args(["check-config", "--config", path.to_str().unwrap()])
        .env("CLI_TEST_K2", env_secret)
        .env("TELEGATE_RATE_LIMIT__BURST", "7")
        .env("TELEGATE_LOG__FORMAT", "json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout} {stderr}");
    for secret in [
        key_secret,
        env_secret,
        admin_token,
        "redis-pass-0123",
        "collector-secret-0123",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed: {stdout}"
        );
    }
    let (first, rest) = stdout.split_once('\n').unwrap();
    assert!(first.starts_with("config OK: "), "{first}");
    let shown: toml::Table = toml::from_str(rest).unwrap_or_else(|e| panic!("{e}: {rest}"));
    let get = |path: &[&str]| -> toml::Value {
        let mut value = toml::Value::Table(shown.clone());
        for key in path {
            value = value
                .get(key)
                .cloned()
                .unwrap_or_else(|| panic!("{path:?} missing: {rest}"));
        }
        value
    };
    assert_eq!(
        get(&["rate_limit", "burst"]).as_integer(),
        Some(7),
        "override"
    );
    assert_eq!(get(&["log_format"]).as_str(), Some("json"));
    assert_eq!(get(&["ingest", "mode"]).as_str(), Some("enrich"));
    assert_eq!(get(&["sessions", "store_ip"]).as_str(), Some("truncated"));
    assert_eq!(
        get(&["sessions", "backend", "redis", "url"]).as_str(),
        Some("redis://***@127.0.0.1:6379/1")
    );
    let methods = get(&["policies", "app", "methods"]);
    assert_eq!(
        methods.as_array().unwrap(),
        &["hmac", "session"].map(toml::Value::from)
    );
    let keys = get(&["keys"]);
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["id"].as_str(), Some("k1"));
    assert!(keys[0]["file"].as_str().unwrap().ends_with("k1.key"));
    assert_eq!(keys[0]["not_after"].as_str(), Some("2030-01-01T00:00:00Z"));
    assert_eq!(keys[1]["id"].as_str(), Some("k2"));
    assert_eq!(keys[1]["env"].as_str(), Some("CLI_TEST_K2"));
    assert_eq!(
        get(&["ingest", "collector", "headers"]).as_array().unwrap(),
        &[toml::Value::from("authorization")]
    );
    assert!(get(&["admin_token_file"])
        .as_str()
        .unwrap()
        .ends_with("admin.token"));
}

#[test]
fn check_config_fails_on_an_unreadable_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, "[[auth.keys]]\nid = \"k\"\nfile = \"missing.key\"\n").unwrap();
    let out = telegate(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key k"));
}

/// A served binary (killed on drop, its log printed if the test fails) and
/// the port it bound.
struct Served {
    proc: Proc,
    port: u16,
}

/// `telegate serve` with JSON logs into `telegate.log` beside `config`
/// (which says `listen = 127.0.0.1:0`); the "serving" line names the port.
fn serve(config: &Path) -> Served {
    let mut command = telegate_command();
    command
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("TELEGATE_LOG__FORMAT", "json");
    let mut proc = Proc::spawn("telegate", command, config.with_file_name("telegate.log"));
    let port = poll_blocking(
        "telegate serving",
        Duration::from_secs(10),
        POLL_INTERVAL,
        || {
            if let Some(status) = proc.exited() {
                panic!("telegate exited before serving ({status})");
            }
            log_lines(&proc)
                .into_iter()
                .find(|json| json["message"] == "telegate serving")
                .map(|json| {
                    let addr: std::net::SocketAddr =
                        json["listen"].as_str().unwrap().parse().unwrap();
                    addr.port()
                })
                .ok_or_else(|| "no serving line yet".to_string())
        },
    )
    .unwrap_or_else(|err| panic!("telegate did not start within 10 s: {err}"));
    Served { proc, port }
}

/// The JSON lines the process has logged so far (a line still being
/// written is skipped).
fn log_lines(proc: &Proc) -> Vec<serde_json::Value> {
    proc.log_text()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// A plain HTTP/1.1 `GET path` with `headers` (whole lines, each ending in
/// CRLF); the whole response as text.
fn http_get(port: u16, path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Signs with `telegate sign` and asks `/auth` with a plain HTTP/1.1 request.
fn auth_with(port: u16, secret: &Path) -> u16 {
    let out = telegate(&[
        "sign",
        "--secret-file",
        secret.to_str().unwrap(),
        "--path",
        "/v1/metrics",
    ]);
    let headers = String::from_utf8(out.stdout).unwrap();
    let headers = format!(
        "X-Forwarded-Method: POST\r\nX-Forwarded-Uri: /v1/metrics\r\n{}",
        headers
            .lines()
            .map(|l| format!("{l}\r\n"))
            .collect::<String>()
    );
    http_get(port, "/auth", &headers)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    poll_blocking(what, Duration::from_secs(10), AUTH_PROBE_INTERVAL, || {
        check().then_some(()).ok_or_else(|| "not yet".to_string())
    })
    .unwrap_or_else(|err| panic!("{err}"));
}

#[test]
fn keys_rotate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.key");
    let new = dir.path().join("new.key");
    std::fs::write(&old, "old-secret\n").unwrap();
    std::fs::write(&new, "new-secret\n").unwrap();
    let config = dir.path().join("t.toml");
    let one_key = "listen = \"127.0.0.1:0\"\n[auth]\nreload_poll_secs = 1\n[[auth.keys]]\nid = \"old\"\nfile = \"old.key\"\n";
    std::fs::write(&config, one_key).unwrap();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        .floor();
    let served = serve(&config);
    assert_eq!(auth_with(served.port, &old), 200);
    assert_eq!(auth_with(served.port, &new), 403);
    let loaded_at = |port| {
        let metrics = http_get(port, "/metrics", "");
        sample(
            &metrics,
            "telegate_config_last_reload_success_timestamp_seconds",
        )
        .unwrap_or(0.0)
    };
    let at_start = loaded_at(served.port);
    assert!(at_start >= started, "set at start: {at_start} < {started}");

    // Add the new key to the config and send SIGHUP: both verify.
    let two_keys = format!("{one_key}[[auth.keys]]\nid = \"new\"\nfile = \"new.key\"\n");
    std::fs::write(&config, two_keys).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &served.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for("the new key to verify", || {
        auth_with(served.port, &new) == 200
    });
    assert_eq!(auth_with(served.port, &old), 200);

    // Change the old key's file: the poll picks it up without a signal.
    let previous = dir.path().join("previous.key");
    std::fs::copy(&old, &previous).unwrap();
    std::fs::write(&old, "replaced-secret\n").unwrap();
    wait_for("the old secret to stop verifying", || {
        auth_with(served.port, &previous) == 403
    });
    assert_eq!(
        auth_with(served.port, &old),
        200,
        "the replaced secret verifies"
    );

    // A broken reload keeps the ring: once the poll has counted the failed
    // reload (rather than after a guessed sleep), the old key still verifies.
    let last_good = loaded_at(served.port);
    std::fs::remove_file(&new).unwrap();
    wait_for("the broken reload to be counted", || {
        let metrics = http_get(served.port, "/metrics", "");
        sample(&metrics, "telegate_keyring_reloads_total{result=\"error\"}")
            .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(
        auth_with(served.port, &old),
        200,
        "the ring survives a broken reload"
    );
    assert_eq!(
        loaded_at(served.port),
        last_good,
        "a broken reload is not a successful one"
    );
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.key"), "secret").unwrap();
    let config = dir.path().join("t.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[server]\nshutdown_grace_secs = 2\n[[auth.keys]]\nid = \"k\"\nfile = \"k.key\"\n",
    )
    .unwrap();
    let mut served = serve(&config);
    assert_eq!(auth_with(served.port, &dir.path().join("k.key")), 200);
    let term = Command::new("kill")
        .args(["-TERM", &served.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = poll_blocking(
        "telegate to exit",
        Duration::from_secs(5),
        POLL_INTERVAL,
        || served.proc.exited().ok_or_else(|| "running".to_string()),
    )
    .unwrap_or_else(|err| panic!("telegate did not exit within 5 s of SIGTERM: {err}"));
    assert!(status.success(), "exit status {status:?}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", served.port)).is_err());
}
