//! The `X-Auth-*` headers a backend behind Traefik sees are telegate's, never
//! the client's (issue 12, finding 8): real Traefik runs
//! `deploy/traefik/dynamic.yml` (addresses rewritten for 127.0.0.1) in front
//! of a recording collector, and a signed client sends its own
//! `X-Auth-User: admin` and friends along.
//!
//! ```text
//! reqwest (signed, + forged X-Auth-*) --> Traefik --GET /auth--> telegate
//!                                           | 2xx
//!                                           v
//!                                  recording collector: what headers arrived
//! ```
//!
//! A second test (no tools needed) keeps the deploy file in step with the
//! code: every `X-Auth-*` header telegate defines is listed there.

use crate::support::collector::FakeCollector;
use crate::support::otlp::{export_request, unix_now};
use crate::support::stack::{deploy_file, keygen, template, Telegate, Traefik};
use crate::support::{add_headers, http_client, kms_headers, require_tools, Workdir};
use prost::Message;

const TELEGATE_CONFIG: &str = r#"
trusted_proxies = ["127.0.0.1/32"]

[[auth.keys]]
id = "e2e"
file = "e2e.key"
"#;

/// Headers a client forges, hoping the backend believes them.
const FORGED: [(&str, &str); 6] = [
    ("X-Auth-User", "admin"),
    ("X-Auth-Monitor", "true"),
    ("X-Auth-Signal", "traces"),
    ("X-Auth-Session-Id", "someone-else"),
    ("X-Auth-Roles", "admin"),
    ("X-Auth-Permissions", "write"),
];

#[tokio::test]
async fn a_client_cannot_hand_the_backend_its_own_x_auth_headers() {
    let Some(tools) = require_tools("e2e_auth_headers", &["traefik"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-auth-headers");
    let secret = keygen();
    work.write("e2e.key", &secret);
    let collector = FakeCollector::start().await;
    let telegate = Telegate::start(&work, TELEGATE_CONFIG).await;
    let dynamic = template(
        &deploy_file("traefik/dynamic.yml"),
        &[
            (
                "http://telegate-auth:8080",
                format!("http://127.0.0.1:{}", telegate.port),
            ),
            ("http://otel-collector:4318", collector.url()),
        ],
    );
    let traefik = Traefik::start(&tools, &work, &dynamic, "/v1/metrics").await;

    let session = format!("headers-{}", &keygen()[..8]);
    let signed = kms_headers(&secret, "POST", "/v1/metrics", unix_now(), &session);
    let mut request = add_headers(
        http_client()
            .post(traefik.url("/v1/metrics"))
            .header("Content-Type", "application/x-protobuf")
            .body(export_request("forged_headers", "run").encode_to_vec()),
        &signed,
    );
    for (name, value) in FORGED {
        request = request.header(name, value);
    }
    let reply = request.send().await.expect("POST through Traefik");
    assert_eq!(reply.status(), 200, "{:?}", reply.text().await);

    let received = collector.received();
    let arrived = received
        .iter()
        .find(|r| r.path == "/v1/metrics")
        .expect("the export reached the collector");
    let header = |name: &str| {
        arrived
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(
        header("x-auth-session-id").as_deref(),
        Some(session.as_str()),
        "telegate's session id replaces the client's: {:?}",
        arrived.headers
    );
    for name in [
        "x-auth-user",
        "x-auth-monitor",
        "x-auth-roles",
        "x-auth-permissions",
    ] {
        assert_eq!(
            header(name),
            None,
            "{name} reached the backend from the client"
        );
    }
    assert_ne!(header("x-auth-signal").as_deref(), Some("traces"));
}

#[test]
fn every_x_auth_header_telegate_sends_is_listed_for_traefik() {
    let source = include_str!("../../src/protocol/headers.rs");
    let ours: Vec<&str> = source
        .split("from_static(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| name.starts_with("x-auth-"))
        .collect();
    assert!(ours.len() >= 7, "{ours:?}");
    for file in ["traefik/dynamic.yml", "k8s/traefik-middleware.yaml"] {
        let text = deploy_file(file).to_ascii_lowercase();
        for name in &ours {
            assert!(
                text.contains(&format!("- {name}\n")),
                "{file}: authResponseHeaders lacks {name}"
            );
        }
        assert!(
            text.contains("authresponseheadersregex: \"^x-auth-\""),
            "{file}"
        );
    }
}
