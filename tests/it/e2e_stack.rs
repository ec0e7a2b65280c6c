//! The deploy/ stack, from real binaries: Traefik runs
//! `deploy/traefik/dynamic.yml` and Prometheus runs
//! `deploy/prometheus/prometheus.yml` with `alerts.yml`, both with only their
//! addresses (and Prometheus's intervals) rewritten for 127.0.0.1; telegate
//! is the real binary and rotel stands in for the collector.
//!
//! ```text
//! reqwest --POST /v1/metrics--> Traefik (ratelimit, forwardAuth) --> telegate /auth
//!                                  | 2xx
//!                                  v
//!                                rotel (prints what it received)
//! tonic --Export--> Traefik :otlp-grpc --h2c--> telegate :grpc_listen --gRPC--> rotel
//! Prometheus --scrapes--> telegate /metrics, Traefik's metrics entrypoint
//! ```
//!
//! A signed export arrives at the collector; an unsigned one does not; the
//! same over OTLP/gRPC through Traefik's gRPC entrypoint (the refusal's
//! status details reach the client); the
//! status host routes to telegate's page; then Prometheus's HTTP API reports
//! `up{job="telegate"} == 1`, a non-zero success counter, and the alert
//! rules loaded.
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_stack:: -- --nocapture`

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::grpc::{export_metrics, refusal};
use crate::support::otlp::{export_request, unix_now};
use crate::support::stack::{deploy_file, keygen, template, Prometheus, Rotel, Telegate, Traefik};
use crate::support::{
    add_headers, free_port, http_client, kms_headers, poll_until, require_tools, Workdir,
};
use prost::Message;
use telegate::protocol::grpc::METRICS_EXPORT;
use tonic::Code;

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prometheus 2.42 holds a new target about 5 s before its first scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(25);

const TELEGATE_CONFIG: &str = r#"
trusted_proxies = ["127.0.0.1/32"]

[[auth.keys]]
id = "stack"
file = "stack.key"

[log]
level = "info"
"#;

/// Polls an instant query until it answers 1 (bounded by [`SCRAPE_TIMEOUT`]).
async fn wait_for_one(prometheus: &Prometheus, query: &str) -> Result<(), String> {
    poll_until(
        &format!("Prometheus: {query} == 1"),
        SCRAPE_TIMEOUT,
        || async move {
            let value = prometheus.query_value(query).await?;
            if value == 1.0 {
                Ok(())
            } else {
                Err(format!("{query} = {value}"))
            }
        },
    )
    .await
}

/// `--metrics.*` and the metrics entrypoint from deploy/docker-compose.yml,
/// and its `otlp-grpc` entrypoint's flags, the address moved to `grpc_port`.
fn compose_traefik_flags(port: u16, grpc_port: u16) -> Vec<String> {
    let compose: serde_norway::Value =
        serde_norway::from_str(&deploy_file("docker-compose.yml")).expect("compose parses");
    let command = compose["services"]["traefik"]["command"]
        .as_sequence()
        .expect("traefik command list");
    let mut flags: Vec<String> = command
        .iter()
        .filter_map(|flag| flag.as_str())
        .filter(|flag| flag.starts_with("--metrics."))
        .map(String::from)
        .collect();
    assert!(
        flags.len() >= 2,
        "no metrics flags in the compose file: {flags:?}"
    );
    let entrypoint = "--entrypoints.metrics.address=:8082";
    assert!(command.iter().any(|f| f.as_str() == Some(entrypoint)));
    flags.push(format!("--entrypoints.metrics.address=127.0.0.1:{port}"));
    let grpc = "--entrypoints.otlp-grpc.address=:4317";
    assert!(command.iter().any(|f| f.as_str() == Some(grpc)));
    flags.extend(
        command
            .iter()
            .filter_map(|flag| flag.as_str())
            .filter(|flag| flag.starts_with("--entrypoints.otlp-grpc.") && *flag != grpc)
            .map(String::from),
    );
    flags.push(format!(
        "--entrypoints.otlp-grpc.address=127.0.0.1:{grpc_port}"
    ));
    flags
}

#[tokio::test]
async fn the_deploy_stack_runs_from_real_binaries() {
    let Some(tools) = require_tools("e2e_stack", &["traefik", "rotel-agent", "prometheus"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-stack");
    let secret = keygen();
    let run = keygen()[..12].to_owned();
    work.write("stack.key", &secret);

    let mut rotel = Rotel::start(&tools, &work).await;
    // The deploy split: the operations endpoints on their own listener;
    // gRPC ingest forwarded to the collector's gRPC receiver.
    let (ops_port, grpc_port) = (free_port(), free_port());
    let grpc = format!(
        "[ingest]\ngrpc_listen = \"127.0.0.1:{grpc_port}\"\n[collector]\nendpoint = \"{}\"\n\
         grpc_endpoint = \"http://127.0.0.1:{}\"\n",
        rotel.url(),
        rotel.grpc_port
    );
    let telegate = Telegate::start(
        &work,
        &format!("ops_listen = \"127.0.0.1:{ops_port}\"\n{TELEGATE_CONFIG}{grpc}"),
    )
    .await;

    // Traefik with the deploy dynamic config: compose host names -> 127.0.0.1.
    let telegate_origin = format!("http://127.0.0.1:{}", telegate.port);
    let dynamic = template(
        &deploy_file("traefik/dynamic.yml"),
        &[
            ("http://telegate-auth:8080", telegate_origin),
            (
                "http://telegate-auth:9091",
                format!("http://127.0.0.1:{ops_port}"),
            ),
            ("http://otel-collector:4318", rotel.url()),
            (
                "h2c://telegate-auth:4317",
                format!("h2c://127.0.0.1:{grpc_port}"),
            ),
        ],
    );
    assert!(!dynamic.contains("//telegate-auth") && !dynamic.contains("//otel-collector"));
    // The compose file's own Traefik flags for metrics (its entrypoint moved
    // to loopback); the helper supplies the `web` entrypoint and ping.
    let (metrics_port, traefik_grpc) = (free_port(), free_port());
    let traefik = Traefik::start_with_args(
        &tools,
        &work,
        &dynamic,
        "/v1/metrics",
        &compose_traefik_flags(metrics_port, traefik_grpc),
    )
    .await;

    // 1. A signed export reaches the collector; the 200 is the collector's.
    let client = http_client();
    let session = format!("stack-session-{run}");
    let post = |name: &str, signed: bool| {
        let mut request = client
            .post(traefik.url("/v1/metrics"))
            .header("Content-Type", "application/x-protobuf")
            .body(export_request(name, &run).encode_to_vec());
        if signed {
            let headers = kms_headers(&secret, "POST", "/v1/metrics", unix_now(), &session);
            request = add_headers(request, &headers);
        }
        request.send()
    };
    let unsigned = format!("stack_unsigned_{run}");
    let reply = post(&unsigned, false).await.expect("unsigned POST");
    assert_eq!(reply.status(), 401, "unsigned export");
    let ok = format!("stack_ok_{run}");
    let reply = post(&ok, true).await.expect("signed POST");
    assert_eq!(reply.status(), 200, "signed export");
    assert_eq!(
        reply.headers()["content-type"],
        "application/x-protobuf",
        "the 200 should be the collector's answer"
    );
    rotel
        .wait_for(&format!("-> Name: {ok}\n"), DELIVERY_TIMEOUT)
        .await;
    assert!(
        !rotel.output().contains(&unsigned),
        "the unsigned export reached the collector"
    );

    // 2. OTLP/gRPC through Traefik's gRPC entrypoint: signed arrives; an
    // unsigned call's refusal (status, ErrorInfo) reaches the client.
    let grpc_addr: SocketAddr = ([127, 0, 0, 1], traefik_grpc).into();
    let via_grpc = format!("stack_grpc_{run}");
    let headers = kms_headers(&secret, "POST", METRICS_EXPORT, unix_now(), &session);
    let reply = export_metrics(grpc_addr, &headers, export_request(&via_grpc, &run)).await;
    let reply = reply.unwrap_or_else(|status| panic!("gRPC through Traefik: {status:?}"));
    assert_eq!(reply.partial_success, None);
    rotel
        .wait_for(&format!("-> Name: {via_grpc}\n"), DELIVERY_TIMEOUT)
        .await;
    let refused = format!("stack_grpc_unsigned_{run}");
    let err = export_metrics(grpc_addr, &[], export_request(&refused, &run))
        .await
        .expect_err("unsigned gRPC export");
    assert_eq!(
        refusal(&err),
        (Code::Unauthenticated, "missing_signature".into(), None)
    );

    // 3. The status host routes to telegate's page, and only GET / and /waiting.
    let status = client
        .get(traefik.url("/"))
        .header("Host", "status.telemetry.example.org")
        .send()
        .await
        .expect("status page through Traefik");
    assert_eq!(status.status(), 200);
    let html = status.text().await.expect("status body");
    assert!(html.contains("<title>telegate status</title>"), "{html}");
    let hidden = client
        .get(traefik.url("/metrics"))
        .header("Host", "status.telemetry.example.org")
        .send()
        .await
        .expect("GET /metrics through Traefik");
    assert_eq!(hidden.status(), 404, "only the status pages are routed");

    // 4. Prometheus with the deploy config, targets on 127.0.0.1.
    let prometheus_port = free_port();
    let closed = free_port(); // the real collector's metrics: not in this test
    let config = template(
        &deploy_file("prometheus/prometheus.yml"),
        &[
            ("scrape_interval: 15s", "scrape_interval: 1s".into()),
            ("evaluation_interval: 15s", "evaluation_interval: 1s".into()),
            ("telegate:9091", format!("127.0.0.1:{ops_port}")),
            ("otel-collector:8888", format!("127.0.0.1:{closed}")),
            ("otel-collector:8889", format!("127.0.0.1:{closed}")),
            ("traefik:8082", format!("127.0.0.1:{metrics_port}")),
            ("localhost:9090", format!("127.0.0.1:{prometheus_port}")),
        ],
    );
    let prometheus = Prometheus::start_on(
        &tools,
        &work,
        prometheus_port,
        &config,
        &[("alerts.yml", &deploy_file("prometheus/alerts.yml"))],
    )
    .await;
    if let Err(err) = wait_for_one(&prometheus, r#"up{job="telegate"}"#).await {
        panic!("{err}\n{}", prometheus.proc.log_text());
    }
    let success = prometheus
        .query_value("telegate_auth_success_total")
        .await
        .expect("telegate_auth_success_total in Prometheus");
    assert!(success >= 1.0, "telegate_auth_success_total = {success}");
    let failed = prometheus
        .query_value(r#"telegate_auth_failed_total{reason="missing_signature"}"#)
        .await
        .expect("telegate_auth_failed_total in Prometheus");
    assert!(failed >= 1.0, "missing_signature = {failed}");
    // Traefik's own metrics arrive too (the dashboard's forward latency).
    let traefik_up = wait_for_one(&prometheus, r#"up{job="traefik"}"#).await;
    assert!(traefik_up.is_ok(), "{traefik_up:?}");
    let forwarded = prometheus
        .query_value(r#"sum(traefik_service_requests_total{service=~"otel-collector@.*"})"#)
        .await
        .expect("traefik_service_requests_total for the collector");
    assert!(forwarded >= 1.0, "forwarded = {forwarded}");

    // 5. The alert rules loaded and evaluate.
    let rules = prometheus.api("/api/v1/rules").await;
    let groups = rules["data"]["groups"].as_array().expect("rule groups");
    let names: Vec<&str> = groups.iter().filter_map(|g| g["name"].as_str()).collect();
    assert_eq!(names, ["telegate", "telemetry-collector"], "{rules}");
    for group in groups {
        for rule in group["rules"].as_array().into_iter().flatten() {
            assert_ne!(rule["health"], "err", "rule failed to evaluate: {rule}");
        }
    }
    eprintln!("e2e_stack: run {run}: delivered, scraped (success {success}), rules loaded");
}
