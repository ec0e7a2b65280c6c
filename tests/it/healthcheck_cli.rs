//! `telegate healthcheck`, the container HEALTHCHECK: exit 0 against a
//! running gateway (found through the same config or `--addr`), 1 when
//! nothing healthy answers.

use std::process::Output;

use crate::support::stack::Telegate;
use crate::support::{free_port, telegate_command, Workdir};

fn healthcheck(args: &[&str], config: Option<&std::path::Path>) -> Output {
    let mut command = telegate_command();
    command.arg("healthcheck").args(args);
    if let Some(config) = config {
        command.env("TELEGATE_CONFIG", config);
    }
    command.output().expect("run telegate healthcheck")
}

#[tokio::test]
async fn healthcheck_exits_0_for_a_running_gateway_and_1_otherwise() {
    let work = Workdir::new("telegate-healthcheck");
    work.write("k.key", "healthcheck-test-secret");
    let telegate = Telegate::start(&work, "[[auth.keys]]\nid = \"k\"\nfile = \"k.key\"\n").await;

    // The config's listen address, as the container's HEALTHCHECK finds it.
    let config = work.path().join("telegate.toml");
    let out = healthcheck(&[], Some(&config));
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("healthy"));

    let addr = format!("127.0.0.1:{}", telegate.port);
    let out = healthcheck(&["--addr", &addr], None);
    assert!(out.status.success(), "{out:?}");

    // Nothing listening: exit 1 with a reason.
    let closed = format!("127.0.0.1:{}", free_port());
    let out = healthcheck(&["--addr", &closed, "--timeout-secs", "2"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));

    // A config that does not validate: exit 1.
    let bad_config = work.write("bad.toml", "listen = \"not an address\"\n");
    let out = healthcheck(&[], Some(&bad_config));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[tokio::test]
async fn healthcheck_asks_both_listeners_when_ops_listen_is_set() {
    let work = Workdir::new("telegate-healthcheck-ops");
    work.write("k.key", "healthcheck-test-secret");
    let ops = free_port();
    let config =
        format!("ops_listen = \"127.0.0.1:{ops}\"\n[[auth.keys]]\nid = \"k\"\nfile = \"k.key\"\n");
    let telegate = Telegate::start(&work, &config).await;
    let path = work.path().join("telegate.toml");
    let out = healthcheck(&[], Some(&path));
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("healthy: 127.0.0.1:{}", telegate.port)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("healthy: 127.0.0.1:{ops}")),
        "{stdout}"
    );

    // The same config with an ops port nobody listens on: unhealthy.
    let closed = free_port();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&format!(":{ops}\""), &format!(":{closed}\""));
    let broken = work.write("broken.toml", &text);
    let out = healthcheck(&["--timeout-secs", "2"], Some(&broken));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
