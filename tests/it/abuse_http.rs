//! The abuse controls over real HTTP (issue 10): each new reason's status,
//! `reason` and metric label; a ban after repeated bad signatures from one
//! address (named by `X-Forwarded-For` from the trusted loopback proxy),
//! listed and lifted through the admin API; a deprecated key's header and
//! its own quota; item and byte quotas on an export; a key revoked by
//! editing the config and sending SIGHUP, refused at once while the other
//! key keeps working.

use std::time::Duration;

use crate::support::collector::{start_server_before, FakeCollector};
use crate::support::otlp::{export_request, unix_now};
use crate::support::stack::Telegate;
use crate::support::*;
use prost::Message;
use telegate::http::error::{ErrorInfo, Status};

const ADMIN: &str = "admin-token-0123456789abcdef";

/// Two keys (`a` in a file, `b` in the env) with `a_extra` / `b_extra`
/// added to their entries, the admin token, and `extra` after them.
fn config(a_extra: &str, b_extra: &str, extra: &str) -> String {
    config_with(&format!(
        "{b_extra}\n[admin]\ntoken_file = \"admin.token\"\n[rate_limit]\nper_second = 1000\nburst = 1000\n{extra}"
    ))
    .replace("file = \"a.key\"\n", &format!("file = \"a.key\"\n{a_extra}\n"))
}

async fn start(config_text: &str) -> TestServer {
    start_server_with_files(config_text, &[("admin.token", &format!("{ADMIN}\n"))]).await
}

fn from(headers: Headers, client: &str) -> Headers {
    with(headers, "X-Forwarded-For", Some(client))
}

/// `GET /auth` with `headers`, read whole.
async fn answer(server: &TestServer, headers: &[(&str, String)]) -> Reply {
    Reply::of(server.auth_request(headers).send().await.unwrap()).await
}

fn signed_b() -> Headers {
    signed(SECRET_B, "POST", "/v1/metrics", NOW, SESSION)
}

fn failed(metrics: &str, reason: &str) -> f64 {
    sample(
        metrics,
        &format!("telegate_auth_failed_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn a_revoked_key_is_refused_while_the_other_verifies() {
    let server = start(&config("state = \"revoked\"", "", "")).await;
    let reply = answer(&server, &valid()).await;
    reply.assert_refused_json(403, "key_revoked");
    assert_eq!(reply.retry_after, None);
    assert_eq!(
        server
            .auth_request(&signed_b())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(failed(&server.scrape().await, "key_revoked"), 1.0);
}

#[tokio::test]
async fn client_versions_are_filtered_per_policy_and_per_key() {
    let policies = r#"
[policies.old]
blocked_client_versions = ["2.0.0.0"]
[policies.new]
min_client_version = "2.0"
"#;
    let server = start(&config("", "min_client_version = \"3.0\"", policies)).await;
    let auth = |policy: &str, headers: &Headers| {
        add_headers(
            server
                .client
                .get(server.url(&format!("/auth?policy={policy}"))),
            headers,
        )
    };
    // The shipped client sends 2.0.0.0.
    let blocked = Reply::of(auth("old", &valid()).send().await.unwrap()).await;
    blocked.assert_refused_json(403, "client_version_blocked");
    assert_eq!(auth("new", &valid()).send().await.unwrap().status(), 200);
    let old = with(valid(), "X-KMS-Client-Version", Some("1.9.9"));
    Reply::of(auth("new", &old).send().await.unwrap())
        .await
        .assert_refused_json(403, "client_version_blocked");
    // Key b asks for 3.0 under every policy.
    Reply::of(auth("default", &signed_b()).send().await.unwrap())
        .await
        .assert_refused_json(403, "client_version_blocked");
    let newer = with(signed_b(), "X-KMS-Client-Version", Some("3.1"));
    assert_eq!(auth("default", &newer).send().await.unwrap().status(), 200);
    assert_eq!(
        failed(&server.scrape().await, "client_version_blocked"),
        3.0
    );
}

#[tokio::test]
async fn networks_are_allowed_and_denied_per_policy() {
    let policies = r#"
[policies.lan]
allow_networks = ["10.0.0.0/8", "2001:db8::/32"]
deny_networks = ["10.9.0.0/16"]
"#;
    let server = start(&config("", "", policies)).await;
    let auth = |client: &str| {
        add_headers(
            server.client.get(server.url("/auth?policy=lan")),
            &from(valid(), client),
        )
    };
    assert_eq!(auth("10.1.2.3").send().await.unwrap().status(), 200);
    assert_eq!(auth("2001:db8::7").send().await.unwrap().status(), 200);
    for outside in ["198.51.100.1", "10.9.1.1"] {
        Reply::of(auth(outside).send().await.unwrap())
            .await
            .assert_refused_json(403, "network_denied");
    }
    assert_eq!(failed(&server.scrape().await, "network_denied"), 2.0);
}

#[tokio::test]
async fn a_request_quota_answers_429_with_its_scope() {
    let quota = r#"
[[quotas]]
scope = "session"
unit = "requests"
rate = 2
period_secs = 60
"#;
    let server = start(&config("", "", quota)).await;
    for _ in 0..2 {
        assert_eq!(
            server.auth_request(&valid()).send().await.unwrap().status(),
            200
        );
    }
    let response = server.auth_request(&valid()).send().await.unwrap();
    assert_eq!(response.headers()["x-quota-scope"], "session");
    let reply = Reply::of(response).await;
    reply.assert_refused_json(429, "quota_exceeded");
    assert_eq!(
        reply.retry_after.as_deref(),
        Some("30"),
        "one request per 30 s"
    );
    let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["scope"], "session");
    // Another session has its own bucket.
    let other = signed(SECRET_A, "POST", "/v1/metrics", NOW, "another-session");
    assert_eq!(
        server.auth_request(&other).send().await.unwrap().status(),
        200
    );
    let metrics = server.scrape().await;
    assert_eq!(failed(&metrics, "quota_exceeded"), 1.0);
    assert_eq!(
        sample(&metrics, "telegate_quota_exceeded_total{scope=\"session\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "telegate_quota_exceeded_total{scope=\"key\"}"),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_deprecated_key_says_so_and_has_its_own_quota() {
    let quota = r#"
[[quotas]]
scope = "key"
unit = "requests"
rate = 2
period_secs = 3600
key_states = ["deprecated"]
"#;
    let server = start(&config("", "state = \"deprecated\"", quota)).await;
    for _ in 0..2 {
        let response = server.auth_request(&signed_b()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-telegate-key-deprecated"], "true");
        let warning = response.headers()["warning"].to_str().unwrap();
        assert!(warning.contains("update the client"), "{warning}");
    }
    let response = server.auth_request(&signed_b()).send().await.unwrap();
    assert_eq!(response.headers()["x-quota-scope"], "key");
    Reply::of(response)
        .await
        .assert_refused_json(429, "quota_exceeded");
    // The active key is under no such quota, and no such header.
    for _ in 0..5 {
        let response = server.auth_request(&valid()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response
            .headers()
            .get("x-telegate-key-deprecated")
            .is_none());
    }
    assert_eq!(
        sample(
            &server.scrape().await,
            "telegate_quota_exceeded_total{scope=\"key\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn item_and_byte_quotas_hold_on_exports() {
    let collector = FakeCollector::start().await;
    let body = export_request("app.requests", "run-1").encode_to_vec();
    let quotas = format!(
        r#"
[[quotas]]
scope = "session"
unit = "items"
rate = 3
period_secs = 60
[[quotas]]
scope = "address"
unit = "bytes"
rate = {}
period_secs = 60
"#,
        body.len() * 9 / 2
    );
    let server = start_server_before(&collector, &quotas).await;
    let post = |session: &str| {
        let headers = with(
            signed(SECRET_A, "POST", "/v1/metrics", NOW, session),
            "Content-Type",
            Some("application/x-protobuf"),
        );
        add_headers(
            server
                .client
                .post(server.url("/v1/metrics"))
                .body(body.clone()),
            &headers,
        )
    };
    // One data point per export: the session's three items last three exports.
    for _ in 0..3 {
        assert_eq!(post(SESSION).send().await.unwrap().status(), 200);
    }
    let refused = post(SESSION).send().await.unwrap();
    assert_eq!(refused.headers()["x-quota-scope"], "session");
    let reply = Reply::of(refused).await;
    reply.assert_refused(429, "quota_exceeded");
    assert_eq!(
        reply.retry_after.as_deref(),
        Some("20"),
        "one item per 20 s"
    );
    let status = Status::decode(&reply.body[..]).unwrap();
    let info = ErrorInfo::decode(&status.details[0].value[..]).unwrap();
    assert_eq!(
        info.metadata.get("scope").map(String::as_str),
        Some("session")
    );
    assert_eq!(
        collector.received().len(),
        3,
        "the refused export was not forwarded"
    );
    // Bytes are counted per address as received (the refused export too):
    // 4.5 bodies per minute, so a fifth export from any session is over.
    assert_eq!(post("second-session").send().await.unwrap().status(), 429);
    let over = post("third-session").send().await.unwrap();
    assert_eq!(over.headers()["x-quota-scope"], "address");
    Reply::of(over).await.assert_refused(429, "quota_exceeded");
    let metrics = server.scrape().await;
    assert_eq!(
        sample(&metrics, "telegate_quota_exceeded_total{scope=\"session\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "telegate_quota_exceeded_total{scope=\"address\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "telegate_ingest_requests_total{result=\"quota_exceeded\",signal=\"metrics\"}"
        ),
        Some(3.0)
    );
    collector.stop().await;
}

#[tokio::test]
async fn repeated_bad_signatures_ban_the_address_until_an_admin_lifts_it() {
    let bans = "[bans]\nrefusals = 3\nwithin_secs = 60\nban_secs = 30\nmax_ban_secs = 120\n";
    let server = start(&config("", "", bans)).await;
    let attacker = "198.51.100.7";
    let mut forged = from(valid(), attacker);
    forged[2].1 = "0".repeat(64);
    for _ in 0..3 {
        let reply = answer(&server, &forged).await;
        reply.assert_refused_json(403, "bad_signature");
    }
    // Banned now: even a valid request from that address.
    let reply = answer(&server, &from(valid(), attacker)).await;
    reply.assert_refused_json(403, "banned");
    assert_eq!(reply.retry_after.as_deref(), Some("30"));
    // Another address, and the same session from it, are not banned: the
    // forged requests' session id was never verified.
    let other = from(valid(), "198.51.100.8");
    assert_eq!(
        server.auth_request(&other).send().await.unwrap().status(),
        200
    );

    let admin = |request: reqwest::RequestBuilder| request.bearer_auth(ADMIN);
    let listed: serde_json::Value = admin(server.client.get(server.url("/bans")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["enabled"], true);
    assert_eq!(listed["bans"][0]["subject"], "address:198.51.100.7");
    assert_eq!(listed["bans"][0]["remaining_secs"], 30);
    assert_eq!(listed["bans"].as_array().unwrap().len(), 1);
    let metrics = server.scrape().await;
    assert_eq!(sample(&metrics, "telegate_bans_total"), Some(1.0));
    assert_eq!(sample(&metrics, "telegate_bans_active"), Some(1.0));
    assert_eq!(failed(&metrics, "banned"), 1.0);

    let no_token = server.client.get(server.url("/bans")).send().await.unwrap();
    assert_eq!(
        reason_of(no_token).await,
        (401, "admin_token_required".into())
    );
    let lift = |subject: &str| {
        admin(
            server
                .client
                .delete(server.url(&format!("/bans/{subject}"))),
        )
    };
    let lifted = lift("address:198.51.100.7").send().await.unwrap();
    assert_eq!(lifted.status(), 200);
    assert_eq!(
        lift("address:198.51.100.7").send().await.unwrap().status(),
        404
    );
    assert_eq!(
        server
            .auth_request(&from(valid(), attacker))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        sample(&server.scrape().await, "telegate_bans_active"),
        Some(0.0)
    );

    // The ban grows on a repeat: three more forgeries, twice as long.
    for _ in 0..3 {
        server.auth_request(&forged).send().await.unwrap();
    }
    let reply = answer(&server, &from(valid(), attacker)).await;
    reply.assert_refused_json(403, "banned");
    assert_eq!(
        reply.retry_after.as_deref(),
        Some("30"),
        "lifting forgave the repeats"
    );
    server.set_now(NOW + 31);
    let fresh = from(
        signed(SECRET_A, "POST", "/v1/metrics", NOW + 31, SESSION),
        attacker,
    );
    assert_eq!(
        server.auth_request(&fresh).send().await.unwrap().status(),
        200,
        "expired"
    );
}

#[tokio::test]
async fn revoking_a_key_and_sending_sighup_refuses_it_at_once() {
    let work = Workdir::new("abuse-revoke");
    work.write("a.key", SECRET_A);
    work.write("b.key", SECRET_B);
    let keys = |a_state: &str| {
        format!(
            "[auth]\nreload_poll_secs = 3600\n[[auth.keys]]\nid = \"a\"\nfile = \"a.key\"\nstate = \"{a_state}\"\n[[auth.keys]]\nid = \"b\"\nfile = \"b.key\"\n"
        )
    };
    let gate = Telegate::start(&work, &keys("active")).await;
    let client = http_client();
    let auth = |secret: &'static str| {
        let headers = signed(secret, "POST", "/v1/metrics", unix_now(), SESSION);
        add_headers(client.get(gate.url("/auth")), &headers).send()
    };
    assert_eq!(auth(SECRET_A).await.unwrap().status(), 200);
    // The poll is an hour away: only the signal can apply the edit.
    let path = work.path().join("telegate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("state = \"active\"", "state = \"revoked\""),
    )
    .unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &gate.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    poll_until(
        "key a to be refused as revoked",
        Duration::from_secs(10),
        || async {
            let (status, reason) = reason_of(auth(SECRET_A).await.unwrap()).await;
            (status == 403 && reason == "key_revoked")
                .then_some(())
                .ok_or(format!("{status} {reason}"))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        auth(SECRET_B).await.unwrap().status(),
        200,
        "key b keeps working"
    );
}
