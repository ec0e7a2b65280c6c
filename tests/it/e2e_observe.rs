//! One observation step: a decision on every route (forwardAuth, an ingest
//! export delivered to the real collector, a signed `POST /sessions`, and a
//! refused export) shows up in all three places an `/auth` decision does:
//! the metrics, the decision log line (JSON, one per request) and the status
//! board (`GET /` with a template that prints the board's figures).
//!
//! ```text
//! reqwest --GET /auth, POST /v1/metrics, POST /sessions--> telegate binary --> rotel
//! ```
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_observe:: -- --nocapture`.

use std::time::Duration;

use crate::support::otlp::{export_request, unix_now};
use crate::support::stack::{keygen, Rotel, Telegate};
use crate::support::{http_client, poll_until, require_tools, sample, Workdir};
use prost::Message;
use telegate::protocol::canonical::{sign_v1, MessageV1};
use telegate::secret::Secret;

const KEY_ID: &str = "obs";

#[tokio::test]
async fn every_route_is_observed_in_metrics_log_and_board() {
    let Some(tools) = require_tools("e2e_observe", &["rotel-agent"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-observe");
    let secret = keygen();
    let run = keygen()[..12].to_owned();
    work.write("obs.key", &secret);
    std::fs::create_dir_all(work.path().join("templates")).expect("templates dir");
    work.write(
        "templates/index.html",
        "allowed={{allowed_5m}} denied={{denied_5m}} decisions={{decisions_5m}}\n",
    );
    let mut rotel = Rotel::start(&tools, &work).await;
    let telegate = Telegate::start(&work, &config(&rotel.url())).await;
    let http = http_client();
    let sign = |method: &str, path: &str, session: &str| {
        let timestamp = unix_now();
        let message = MessageV1 {
            method,
            path,
            timestamp,
            session_id: session,
        };
        let signature = sign_v1(&Secret::from_text(&secret).unwrap(), &message);
        [
            ("X-KMS-Signature", signature),
            ("X-KMS-Timestamp", timestamp.to_string()),
            ("X-KMS-Session-ID", session.to_string()),
        ]
    };
    let board = || async {
        let page = http.get(telegate.url("/")).send().await.unwrap();
        page.text().await.unwrap()
    };
    assert!(
        board().await.contains("allowed=0 denied=0"),
        "{}",
        board().await
    );

    // 1. forwardAuth, as Traefik sends it.
    let auth_session = format!("auth-{run}");
    let mut request = http
        .get(telegate.url("/auth"))
        .header("X-Forwarded-Method", "POST")
        .header("X-Forwarded-Uri", "/v1/metrics");
    for (name, value) in sign("POST", "/v1/metrics", &auth_session) {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);

    // 2. An export delivered to the real collector.
    let ingest_session = format!("ingest-{run}");
    let metric = format!("observe_{run}");
    let mut request = http
        .post(telegate.url("/v1/metrics"))
        .header("Content-Type", "application/x-protobuf")
        .body(export_request(&metric, &run).encode_to_vec());
    for (name, value) in sign("POST", "/v1/metrics", &ingest_session) {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    rotel
        .wait_for(&format!("-> Name: {metric}\n"), Duration::from_secs(5))
        .await;

    // 3. A signed POST /sessions.
    let issued_session = format!("issued-{run}");
    let mut request = http
        .post(telegate.url("/sessions"))
        .header("Content-Type", "application/json")
        .body("{}");
    for (name, value) in sign("POST", "/sessions", &issued_session) {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 201);

    // 4. An export refused by the admission (signed over another path).
    let refused_session = format!("refused-{run}");
    let mut request = http
        .post(telegate.url("/v1/metrics"))
        .header("Content-Type", "application/x-protobuf")
        .body(export_request(&metric, &run).encode_to_vec());
    for (name, value) in sign("POST", "/v1/traces", &refused_session) {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 403);

    // Metrics: four decisions, three allowed, each signed one counted by key.
    let metrics = telegate.metrics().await;
    let value = |series: &str| sample(&metrics, series).unwrap_or(-1.0);
    assert_eq!(value("telegate_auth_total"), 4.0, "{metrics}");
    assert_eq!(value("telegate_auth_success_total"), 3.0, "{metrics}");
    assert_eq!(
        value(&format!("telegate_key_used_total{{key_id=\"{KEY_ID}\"}}")),
        3.0
    );
    assert_eq!(
        value("telegate_auth_failed_total{reason=\"bad_signature\"}"),
        1.0
    );
    assert_eq!(value("telegate_auth_duration_seconds_count"), 4.0);
    assert_eq!(
        value("telegate_ingest_requests_total{result=\"delivered\",signal=\"metrics\"}"),
        1.0
    );
    assert_eq!(
        value("telegate_ingest_requests_total{result=\"bad_signature\",signal=\"metrics\"}"),
        1.0
    );

    // The status board.
    assert!(
        board().await.contains("allowed=3 denied=1 decisions=4"),
        "{}",
        board().await
    );

    // The log: exactly one decision line per request, each with its route.
    let lines = poll_until(
        "four decision lines in telegate's log",
        Duration::from_secs(5),
        || {
            let log = telegate.proc.log_text();
            async move {
                let lines: Vec<serde_json::Value> = log
                    .lines()
                    .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                    .filter(|line| {
                        let message = &line["message"];
                        message == "auth decision" || message == "ingest decision"
                    })
                    .collect();
                if lines.len() >= 4 {
                    Ok(lines)
                } else {
                    Err(format!("{} decision lines so far", lines.len()))
                }
            }
        },
    )
    .await
    .expect("decision lines");
    let find = |session: &str| {
        let found: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|line| line["session"] == session)
            .collect();
        assert_eq!(found.len(), 1, "one line for {session}: {lines:#?}");
        found[0].clone()
    };
    let auth = find(&auth_session);
    assert_eq!(auth["message"], "auth decision");
    assert_eq!(
        (auth["route"].as_str(), auth["result"].as_str()),
        (Some("auth"), Some("allow"))
    );
    let ingest = find(&ingest_session);
    assert_eq!(ingest["message"], "ingest decision");
    assert_eq!(ingest["result"], "delivered");
    assert_eq!(ingest["key_id"], KEY_ID);
    let issued = find(&issued_session);
    assert_eq!(issued["message"], "auth decision");
    assert_eq!(issued["route"], "sessions");
    assert_eq!(issued["key_id"], KEY_ID);
    let refused = find(&refused_session);
    assert_eq!(refused["message"], "ingest decision");
    assert_eq!(
        (refused["result"].as_str(), refused["reason"].as_str()),
        (Some("deny"), Some("bad_signature"))
    );
    assert_eq!(lines.len(), 4, "{lines:#?}");
}

fn config(collector: &str) -> String {
    format!(
        r#"
trusted_proxies = ["127.0.0.1/32"]
[[auth.keys]]
id = "{KEY_ID}"
file = "obs.key"
[rate_limit]
per_second = 1000
burst = 1000
[ingest]
mode = "validate"
[collector]
endpoint = "{collector}"
request_timeout_secs = 3
[status]
templates_dir = "templates"
[log]
level = "info"
format = "json"
"#
    )
}

/// `log.decisions = "denied"`: an allowed decision is counted but gets no
/// line; a refusal gets its line.
#[tokio::test]
async fn log_decisions_denied_logs_refusals_only_and_counts_all() {
    let work = Workdir::new("telegate-e2e-observe-denied");
    let secret = keygen();
    work.write("obs.key", &secret);
    let config = format!(
        r#"
trusted_proxies = ["127.0.0.1/32"]
[[auth.keys]]
id = "{KEY_ID}"
file = "obs.key"
[log]
level = "info"
format = "json"
decisions = "denied"
"#
    );
    let telegate = Telegate::start(&work, &config).await;
    let http = http_client();
    let timestamp = unix_now();
    let signature = sign_v1(
        &Secret::from_text(&secret).unwrap(),
        &MessageV1 {
            method: "POST",
            path: "/v1/metrics",
            timestamp,
            session_id: "quiet-allowed",
        },
    );
    let auth = |session: &'static str, signature: String| {
        http.get(telegate.url("/auth"))
            .header("X-Forwarded-Method", "POST")
            .header("X-Forwarded-Uri", "/v1/metrics")
            .header("X-KMS-Signature", signature)
            .header("X-KMS-Timestamp", timestamp.to_string())
            .header("X-KMS-Session-ID", session)
            .send()
    };
    assert_eq!(
        auth("quiet-allowed", signature).await.unwrap().status(),
        200
    );
    let forged = "0".repeat(64);
    assert_eq!(auth("loud-refused", forged).await.unwrap().status(), 403);
    let metrics = telegate.metrics().await;
    assert_eq!(sample(&metrics, "telegate_auth_total"), Some(2.0));
    assert_eq!(sample(&metrics, "telegate_auth_success_total"), Some(1.0));
    let lines = poll_until("the refusal's line", Duration::from_secs(5), || {
        let log = telegate.proc.log_text();
        async move {
            if log.contains("loud-refused") {
                Ok(log)
            } else {
                Err("not yet".to_string())
            }
        }
    })
    .await
    .expect("a line for the refusal");
    assert!(!lines.contains("quiet-allowed"), "{lines}");
}

/// The session API's refusals leave through the observation step too: a
/// wrong admin token, a wrong owner token and the API's rate limit each give
/// one `session API refused` line (route template, reason, client) and a
/// counter, and the presented tokens appear nowhere in the log.
#[tokio::test]
async fn session_api_refusals_are_logged_and_counted_without_the_token() {
    let work = Workdir::new("telegate-e2e-observe-api");
    work.write("obs.key", &keygen());
    work.write("admin.token", &keygen());
    let config = config("http://127.0.0.1:9").replace(
        "[rate_limit]\n",
        "[admin]\ntoken_file = \"admin.token\"\n[rate_limit]\nsession_api = { per_second = 1, burst = 4 }\n",
    );
    let telegate = Telegate::start(&work, &config).await;
    let http = http_client();
    let admin_guess = format!("guess-{}", &keygen()[..24]);
    let owner_guess = format!("owner-{}", &keygen()[..24]);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = http
            .get(telegate.url("/sessions"))
            .bearer_auth(&admin_guess)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    let response = http
        .delete(telegate.url("/sessions/some-session"))
        .header("X-Session-ID", &owner_guess)
        .send()
        .await
        .unwrap();
    statuses.push(response.status().as_u16());
    let response = http
        .get(telegate.url("/sessions/stats"))
        .bearer_auth(&admin_guess)
        .send()
        .await
        .unwrap();
    statuses.push(response.status().as_u16());
    assert_eq!(statuses, [403, 403, 403, 401, 429]);

    let metrics = telegate.metrics().await;
    let value = |series: &str| sample(&metrics, series).unwrap_or(-1.0);
    assert_eq!(
        value("telegate_api_auth_failed_total{reason=\"bad_admin_token\"}"),
        3.0,
        "{metrics}"
    );
    assert_eq!(
        value("telegate_api_auth_failed_total{reason=\"invalid_session\"}"),
        1.0
    );
    assert_eq!(value("telegate_rate_limited_total"), 1.0);

    let lines = poll_until("five API refusal lines", Duration::from_secs(5), || {
        let log = telegate.proc.log_text();
        async move {
            let lines: Vec<serde_json::Value> = log
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .filter(|line| line["message"] == "session API refused")
                .collect();
            if lines.len() >= 5 {
                Ok(lines)
            } else {
                Err(format!("{} lines so far", lines.len()))
            }
        }
    })
    .await
    .expect("API refusal lines");
    let seen: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|line| {
            (
                line["route"].as_str().unwrap_or_default(),
                line["reason"].as_str().unwrap_or_default(),
                line["client_ip"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("/sessions", "bad_admin_token", "127.0.0.1"),
            ("/sessions", "bad_admin_token", "127.0.0.1"),
            ("/sessions", "bad_admin_token", "127.0.0.1"),
            ("/sessions/{id}", "invalid_session", "127.0.0.1"),
            ("/sessions/stats", "rate_limited", "127.0.0.1"),
        ]
    );
    let log = telegate.proc.log_text();
    assert!(!log.contains(&admin_guess), "the admin guess was logged");
    assert!(!log.contains(&owner_guess), "the owner guess was logged");
    assert!(
        !log.contains("some-session"),
        "the asked-for id is not logged"
    );
}
