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
