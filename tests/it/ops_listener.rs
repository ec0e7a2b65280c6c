//! `ops_listen` over real HTTP, both listeners on 127.0.0.1:0: the main
//! listener answers the operations routes 404 `not_found` and takes no
//! admin token; the operations listener serves them and none of the client
//! routes; `/health` and `/ready` answer on both; the `[server]` timeouts
//! hold on the operations listener too. Without `ops_listen`, and beyond
//! loopback, `check-config` warns.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::support::*;

const ADMIN: &str = "ops-admin-token-0123456789abcdef";

/// The split: `ops_listen` (a top-level key, so before the tables) and an
/// admin token.
async fn split_server() -> TestServer {
    let config = format!(
        "ops_listen = \"127.0.0.1:0\"\n{}",
        config_with("[admin]\ntoken_file = \"admin.token\"")
    );
    start_server_with_files(&config, &[("admin.token", &format!("{ADMIN}\n"))]).await
}

async fn get(server: &TestServer, url: String) -> reqwest::Response {
    server
        .client
        .get(url)
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
}

/// The operations routes, each as an operator asks it (with the admin token).
const OPERATIONS: &[&str] = &[
    "/metrics",
    "/",
    "/waiting",
    "/bans",
    "/spool/dead-letters",
    "/sessions",
    "/sessions/stats",
];

#[tokio::test]
async fn the_main_listener_hides_the_operations_routes_and_the_ops_listener_serves_them() {
    let server = split_server().await;
    assert_ne!(Some(server.addr), server.ops_addr);
    // The client side works on the main listener, and is counted.
    let allowed = server.auth_request(&valid()).send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    for path in OPERATIONS {
        let answer = get(&server, server.url(path)).await;
        assert_eq!(
            reason_of(answer).await,
            (404, "not_found".to_string()),
            "main listener, {path}"
        );
    }
    let user = server
        .client
        .delete(server.url("/users/alice/sessions"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(reason_of(user).await, (404, "not_found".to_string()));
    // An admin token is no credential on the main listener.
    let issue = server
        .client
        .post(server.url("/sessions"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"user_id": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reason_of(issue).await, (403, "admin_disabled".to_string()));

    for path in ["/health", "/ready"] {
        assert_eq!(get(&server, server.url(path)).await.status(), 200, "{path}");
        assert_eq!(
            get(&server, server.ops_url(path)).await.status(),
            200,
            "{path}"
        );
    }
    for path in OPERATIONS {
        let answer = get(&server, server.ops_url(path)).await;
        if *path == "/spool/dead-letters" {
            // Reached: the route's own answer (no [spool] in this config).
            assert_eq!(reason_of(answer).await, (404, "spool_off".to_string()));
        } else {
            assert_eq!(answer.status(), 200, "ops listener, {path}");
        }
    }
    let metrics = get(&server, server.ops_url("/metrics"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(sample(&metrics, "telegate_auth_success_total"), Some(1.0));
    let issued = server
        .client
        .post(server.ops_url("/sessions"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"user_id": "alice"}))
        .send()
        .await
        .unwrap();
    assert!(issued.status().is_success(), "{}", issued.status());

    // The client routes are not the operations listener's.
    let auth = server
        .client
        .get(server.ops_url("/auth"))
        .headers(header_map(&valid()))
        .send()
        .await
        .unwrap();
    assert_eq!(reason_of(auth).await, (404, "not_found".to_string()));
    let ingest = server
        .client
        .post(server.ops_url("/v1/metrics"))
        .header("content-type", "application/x-protobuf")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(ingest.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn without_ops_listen_one_listener_serves_everything() {
    let server = start_server(&config_with("")).await;
    assert_eq!(server.ops_addr, None);
    for path in ["/metrics", "/", "/waiting", "/health"] {
        let answer = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_ops_listener_closes_a_silent_connection_like_the_main_one() {
    let server = split_server().await;
    let addr = server.ops_addr.unwrap();
    // header_read_timeout_secs = 1 in the test config.
    let started = Instant::now();
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 64];
        matches!(stream.read(&mut buf), Ok(0))
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(closed, "the idle connection was not closed");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    server.stop().await;
}

#[test]
fn check_config_warns_of_one_listener_beyond_loopback() {
    let work = Workdir::new("ops-listen-hazard");
    work.write("k.key", "3f0c9a7e5b1d2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e");
    std::fs::set_permissions(
        work.path().join("k.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let keys = "[[auth.keys]]\nid = \"k\"\nfile = \"k.key\"\n";
    let check = |config: &str| {
        let path = work.write("telegate.toml", config);
        let out = telegate_command()
            .args(["check-config", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let exposed = check(&format!("listen = \"0.0.0.0:8080\"\n{keys}"));
    assert!(
        exposed.contains("WARNING: ops_listen: 0.0.0.0:8080 serves /metrics"),
        "{exposed}"
    );
    let split = check(&format!(
        "listen = \"0.0.0.0:8080\"\nops_listen = \"127.0.0.1:9090\"\n{keys}"
    ));
    assert!(!split.contains("ops_listen"), "{split}");
    let local = check(&format!("listen = \"127.0.0.1:8080\"\n{keys}"));
    assert!(!local.contains("ops_listen"), "{local}");
    // The same port twice cannot work.
    let path = work.write(
        "telegate.toml",
        &format!("listen = \"0.0.0.0:8080\"\nops_listen = \"127.0.0.1:8080\"\n{keys}"),
    );
    let out = telegate_command()
        .args(["check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ops_listen"));
}
