//! Unsafe configurations are never accepted silently (issue 12, finding
//! 10): `check-config` warns of each by its key and exits non-zero where the
//! gateway could not serve; `serve` logs the same warnings at start; a key
//! "file" that is a device or huge is refused before it is read.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::{free_port, telegate_command, Proc, Workdir};

fn check_config(work: &Workdir, config: &str) -> (Option<i32>, String) {
    let path = work.write("telegate.toml", config);
    let out = telegate_command()
        .args(["check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config whose only key is `secret`, in a file with `mode`.
fn with_key(work: &Workdir, secret: &str, mode: u32, extra: &str) -> String {
    let key = work.write("k.key", secret);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
    format!(
        "listen = \"127.0.0.1:0\"\n{extra}\n[[auth.keys]]\nid = \"k\"\nfile = \"{}\"\n",
        key.display()
    )
}

const STRONG: &str = "3f0c9a7e5b1d2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e";

#[test]
fn a_careful_config_has_no_warning() {
    let work = Workdir::new("hazards-none");
    let (code, stderr) = check_config(&work, &with_key(&work, STRONG, 0o600, ""));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
}

#[test]
fn each_unsafe_setting_is_a_warning_naming_its_key() {
    let work = Workdir::new("hazards-warn");
    let token = work.write("admin.token", "an-admin-token-of-enough-length");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let extra = format!(
        "trusted_proxies = [\"0.0.0.0/0\"]\n[admin]\ntoken_file = \"{}\"\n[auth]\nmax_skew_secs = 3600\n",
        token.display()
    );
    let (code, stderr) = check_config(&work, &with_key(&work, "x", 0o644, &extra));
    assert_eq!(code, Some(0), "warnings do not stop the gateway: {stderr}");
    for expected in [
        "WARNING: trusted_proxies[0]: 0.0.0.0/0 trusts X-Forwarded-For",
        "WARNING: auth.max_skew_secs: 3600 s",
        "WARNING: auth.keys[0] (k): the secret is 1 bytes",
        "WARNING: auth.keys[0] (k): ",
        "(mode 644); chmod 600 it",
        "WARNING: admin.token_file: ",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing in:\n{stderr}"
        );
    }
    assert_eq!(stderr.matches("chmod 600").count(), 2, "{stderr}");
}

#[test]
fn no_live_key_fails_check_config() {
    let work = Workdir::new("hazards-dead");
    let config = with_key(&work, STRONG, 0o600, "").replace(
        "id = \"k\"",
        "id = \"k\"\nnot_after = \"2001-01-01T00:00:00Z\"",
    );
    let (code, stderr) = check_config(&work, &config);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("ERROR: auth.keys: no key is live"),
        "{stderr}"
    );
    assert!(stderr.contains("no_live_key"), "{stderr}");
}

#[test]
fn a_window_past_a_day_is_an_error() {
    let work = Workdir::new("hazards-skew");
    let config = with_key(&work, STRONG, 0o600, "[auth]\nmax_skew_secs = 94608000\n");
    let (code, stderr) = check_config(&work, &config);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("auth.max_skew_secs"), "{stderr}");
    assert!(stderr.contains("at most 86400"), "{stderr}");
}

#[test]
fn a_device_or_a_huge_file_is_not_read_as_a_key() {
    let work = Workdir::new("hazards-device");
    let config = with_key(&work, STRONG, 0o600, "");
    let device = config.replace(work.path().join("k.key").to_str().unwrap(), "/dev/zero");
    let (code, stderr) = check_config(&work, &device);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");

    std::fs::write(work.path().join("k.key"), vec![b'a'; 65 * 1024]).unwrap();
    let (code, stderr) = check_config(&work, &config);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("larger than 65536 bytes"), "{stderr}");
}

#[tokio::test]
async fn serve_logs_the_warnings_at_start() {
    let work = Workdir::new("hazards-serve");
    let config = with_key(&work, STRONG, 0o600, "trusted_proxies = [\"::/0\"]\n")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{}", free_port()));
    let path = work.write("telegate.toml", &config);
    let mut command = telegate_command();
    command.args(["serve", "--config", path.to_str().unwrap()]);
    let mut proc = Proc::spawn("telegate", command, work.path().join("telegate.log"));
    proc.wait_for_log("::/0 trusts X-Forwarded-For", Duration::from_secs(20))
        .await;
    proc.wait_for_log("telegate serving", Duration::from_secs(20))
        .await;
}
