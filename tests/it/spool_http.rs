//! The ingest spool in process, with the scripted collector
//! (`support::collector`): an export is answered 200 with an empty
//! Export*ServiceResponse once spooled (`result="spooled"`), delivered by
//! the forwarder; a collector 400 dead-letters it (counted, listed by the
//! admin route, never retried); and a spool that cannot open stops the
//! binary with exit code 1, naming the path.

use std::time::Duration;

use crate::support::collector::{start_server_before, FakeCollector, Script};
use crate::support::otlp::export_request;
use crate::support::proc::telegate_command;
use crate::support::*;
use prost::Message;

const ADMIN: &str = "admin-token-spool-0123456789";

fn spool_extra(dir: &std::path::Path) -> String {
    format!(
        "retry_after_secs = 1\n[admin]\ntoken_file = \"{}\"\n[spool]\nenabled = true\ndir = \"{}\"\n",
        dir.join("admin.token").display(),
        dir.join("spool").display()
    )
}

async fn export(
    server: &TestServer,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> reqwest::Response {
    let headers = kms_headers(SECRET_A, "POST", path, NOW, SESSION);
    add_headers(server.client.post(server.url(path)), &headers)
        .header("Content-Type", content_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

/// `GET path` with the admin token.
async fn admin_get(server: &TestServer, path: &str) -> reqwest::Response {
    server
        .client
        .get(server.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
}

async fn until_metric(server: &TestServer, series: &str, value: f64) {
    poll_until(series, Duration::from_secs(10), || async {
        let text = server.scrape().await;
        match sample(&text, series) {
            Some(v) if v == value => Ok(()),
            other => Err(format!("{series} = {other:?}")),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn spooled_exports_are_answered_empty_and_delivered() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), ADMIN).unwrap();
    let collector = FakeCollector::start().await;
    let server = start_server_before(&collector, &spool_extra(dir.path())).await;
    let body = export_request("spooled", "run").encode_to_vec();
    let response = export(&server, "/v1/metrics", "application/x-protobuf", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    assert!(response.bytes().await.unwrap().is_empty());
    until_metric(&server, "telegate_spool_delivered_total", 1.0).await;
    let received = collector.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/v1/metrics");
    assert_eq!(&received[0].body[..], &body[..]);
    assert_eq!(received[0].headers["x-auth-session-id"], SESSION);
    let text = server.scrape().await;
    let spooled = "telegate_ingest_requests_total{result=\"spooled\",signal=\"metrics\"}";
    assert_eq!(sample(&text, spooled), Some(1.0), "{text}");
    assert_eq!(sample(&text, "telegate_spool_exports"), Some(0.0));
    assert_eq!(sample(&text, "telegate_spool_bytes"), Some(0.0));
    assert_eq!(
        sample(&text, "telegate_spool_commit_duration_seconds_count"),
        Some(1.0)
    );
    let ready: serde_json::Value = server
        .client
        .get(server.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["spool"]["exports"], 0, "{ready}");
    server.stop().await;
}

#[tokio::test]
async fn a_collector_400_dead_letters_the_export_counted_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), ADMIN).unwrap();
    let collector = FakeCollector::start().await;
    collector.answer(Script {
        status: 400,
        ..Script::default()
    });
    let server = start_server_before(&collector, &spool_extra(dir.path())).await;
    let body = export_request("rejected", "run").encode_to_vec();
    let json = serde_json::to_vec(&export_request("rejected_json", "run")).unwrap();
    let response = export(&server, "/v1/metrics", "application/json", &json).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "{}",
        "an empty JSON response"
    );
    let response = export(&server, "/v1/metrics", "application/x-protobuf", &body).await;
    assert_eq!(response.status(), 200);
    until_metric(&server, "telegate_spool_dead_lettered_total", 2.0).await;
    assert_eq!(
        collector.received().len(),
        2,
        "sent once each, never retried"
    );
    let url = server.url("/spool/dead-letters?limit=1");
    let refused = server.client.get(&url).send().await.unwrap();
    assert_eq!(
        reason_of(refused).await,
        (401, "admin_token_required".into())
    );
    let refused = server
        .client
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(reason_of(refused).await, (403, "bad_admin_token".into()));
    let page: serde_json::Value = admin_get(&server, "/spool/dead-letters?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let letters = page["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{page}");
    assert_eq!(letters[0]["status"], 400);
    assert_eq!(letters[0]["reason"], "collector_rejected");
    assert_eq!(letters[0]["signal"], "metrics");
    assert_eq!(letters[0]["bytes"], json.len());
    assert!(
        letters[0].get("body").is_none(),
        "never the payload: {page}"
    );
    let next = page["next_after"].as_i64().unwrap();
    let page: serde_json::Value = admin_get(&server, &format!("/spool/dead-letters?after={next}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["dead_letters"][0]["bytes"], body.len(), "{page}");
    assert_eq!(page["dead_letters"].as_array().unwrap().len(), 1);
    assert!(page["next_after"].is_null());
    let text = server.scrape().await;
    assert_eq!(sample(&text, "telegate_spool_exports"), Some(0.0));
    server.stop().await;
}

#[tokio::test]
async fn the_dead_letter_route_says_when_the_spool_is_off() {
    let collector = FakeCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), ADMIN).unwrap();
    let extra = format!(
        "[admin]\ntoken_file = \"{}\"\n",
        dir.path().join("admin.token").display()
    );
    let server = start_server_before(&collector, &extra).await;
    let response = admin_get(&server, "/spool/dead-letters").await;
    assert_eq!(reason_of(response).await, (404, "spool_off".into()));
    server.stop().await;
}

#[test]
fn an_unusable_spool_dir_stops_the_start_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "a file where the spool folder should be").unwrap();
    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    std::fs::write(corrupt.join("spool.db"), vec![0x42; 8192]).unwrap();
    for spool_dir in [blocker.join("spool"), corrupt.clone()] {
        let config = dir.path().join("telegate.toml");
        std::fs::write(&config, format!(
            "listen = \"127.0.0.1:0\"\n[[auth.keys]]\nid = \"a\"\nfile = \"a.key\"\n[spool]\nenabled = true\ndir = \"{}\"\n",
            spool_dir.display()
        ))
        .unwrap();
        std::fs::write(dir.path().join("a.key"), SECRET_A).unwrap();
        let out = telegate_command()
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains(&spool_dir.display().to_string()), "{said}");
    }
}

#[tokio::test]
async fn a_backlog_shows_on_the_status_page() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), ADMIN).unwrap();
    let collector = FakeCollector::start().await;
    collector.answer(Script {
        status: 503,
        retry_after: Some("30"),
        ..Script::default()
    });
    let server = start_server_before(&collector, &spool_extra(dir.path())).await;
    let page = server.client.get(server.url("/")).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("0 waiting"));
    let body = export_request("held", "run").encode_to_vec();
    for _ in 0..3 {
        let response = export(&server, "/v1/metrics", "application/x-protobuf", &body).await;
        assert_eq!(
            response.status(),
            200,
            "durably accepted while the collector is down"
        );
    }
    until_metric(&server, "telegate_spool_exports", 3.0).await;
    let html = server
        .client
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Ingest spool"), "{html}");
    assert!(html.contains("3 waiting"), "{html}");
    assert!(
        html.contains(&format!("{} bytes", 3 * body.len())),
        "{html}"
    );
    server.stop().await;
}
