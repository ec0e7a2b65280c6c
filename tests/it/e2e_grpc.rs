//! End to end over OTLP/gRPC with the real collector: the telegate binary's
//! gRPC listener takes tonic's signed Export calls and forwards them to
//! rotel over gRPC (`collector.grpc_endpoint`, rotel's `--otlp-grpc-endpoint`)
//! or over HTTP (`collector.endpoint`); rotel prints what it decoded. An
//! unsigned call is UNAUTHENTICATED and never arrives. And the OpenTelemetry
//! Python SDK's gRPC exporter, signing v2 through a client interceptor,
//! gzip-compressed (`tests/clients/otel_sdk_grpc_export.py`).
//!
//! ```text
//! tonic --Export (X-KMS-* metadata)--> telegate :grpc_listen --gRPC--> rotel :grpc
//!                                                            --HTTP--> rotel :http
//! ```
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_grpc:: -- --nocapture`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::grpc::{export_metrics, refusal};
use crate::support::otlp::{export_request, unix_now};
use crate::support::stack::{keygen, Rotel, Telegate};
use crate::support::tools::otel_python;
use crate::support::{free_port, kms_headers, require_tools, sample, Workdir};
use telegate::protocol::grpc::METRICS_EXPORT;
use tonic::Code;

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

fn config(grpc_port: u16, collector: &str) -> String {
    format!(
        r#"
[[auth.keys]]
id = "e2e"
file = "e2e.key"
[ingest]
grpc_listen = "127.0.0.1:{grpc_port}"
[collector]
{collector}
connect_timeout_secs = 1
request_timeout_secs = 3
"#
    )
}

#[tokio::test]
async fn grpc_exports_reach_the_real_collector_over_grpc_and_over_http() {
    let Some(tools) = require_tools("e2e_grpc", &["rotel-agent"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-grpc");
    let secret = keygen();
    let run = keygen()[..12].to_owned();
    work.write("e2e.key", &secret);
    let mut rotel = Rotel::start(&tools, &work).await;
    let (over_grpc, over_http) = (free_port(), free_port());
    let grpc_endpoint = format!(
        "endpoint = \"{}\"\ngrpc_endpoint = \"http://127.0.0.1:{}\"",
        rotel.url(),
        rotel.grpc_port
    );
    let _grpc_gate =
        Telegate::start_named(&work, "over-grpc", &config(over_grpc, &grpc_endpoint)).await;
    let http_endpoint = format!("endpoint = \"{}\"", rotel.url());
    let _http_gate =
        Telegate::start_named(&work, "over-http", &config(over_http, &http_endpoint)).await;
    // With a gRPC endpoint that does not answer, a gRPC export is not sent
    // over HTTP (which would work): UNAVAILABLE, retryable, with RetryInfo.
    let (dead_gate, dead_port) = (free_port(), free_port());
    let dead_endpoint = format!(
        "endpoint = \"{}\"\ngrpc_endpoint = \"http://127.0.0.1:{dead_port}\"\nretry_after_secs = 2",
        rotel.url()
    );
    let _dead = Telegate::start_named(&work, "dead-grpc", &config(dead_gate, &dead_endpoint)).await;
    let session = format!("e2e-grpc-{run}");
    for (port, how) in [(over_grpc, "grpc"), (over_http, "http")] {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let headers = kms_headers(&secret, "POST", METRICS_EXPORT, unix_now(), &session);
        let name = format!("via_{how}_{run}");
        let reply = export_metrics(addr, &headers, export_request(&name, &run)).await;
        let reply = reply.unwrap_or_else(|status| panic!("{how}: {status:?}"));
        assert_eq!(reply.partial_success, None, "{how}: rotel took everything");
        rotel
            .wait_for(&format!("-> Name: {name}\n"), DELIVERY_TIMEOUT)
            .await;
        // Unsigned: refused before the collector.
        let refused = format!("unsigned_{how}_{run}");
        let err = export_metrics(addr, &[], export_request(&refused, &run))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(&err),
            (Code::Unauthenticated, "missing_signature".into(), None)
        );
    }
    let addr: SocketAddr = ([127, 0, 0, 1], dead_gate).into();
    let headers = kms_headers(&secret, "POST", METRICS_EXPORT, unix_now(), &session);
    let lost = format!("lost_{run}");
    let err = export_metrics(addr, &headers, export_request(&lost, &run))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        (Code::Unavailable, "collector_unavailable".into(), Some(2))
    );
    // A later export arrived, so the refused ones would have by now.
    let last = format!("last_{run}");
    let headers = kms_headers(&secret, "POST", METRICS_EXPORT, unix_now(), &session);
    let addr: SocketAddr = ([127, 0, 0, 1], over_http).into();
    export_metrics(addr, &headers, export_request(&last, &run))
        .await
        .unwrap();
    rotel
        .wait_for(&format!("-> Name: {last}\n"), DELIVERY_TIMEOUT)
        .await;
    let seen = rotel.output();
    for how in ["grpc", "http"] {
        assert!(
            !seen.contains(&format!("unsigned_{how}_{run}")),
            "{how}: refused never delivered"
        );
    }
    assert!(!seen.contains(&lost), "not sent over HTTP instead");
}

#[tokio::test]
async fn the_python_sdk_s_grpc_exporter_signs_through_an_interceptor() {
    let Some(tools) = require_tools("e2e_grpc", &["rotel-agent", "otel-python"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-grpc-python");
    let secret = keygen();
    let run = keygen()[..12].to_owned();
    work.write("e2e.key", &secret);
    let mut rotel = Rotel::start(&tools, &work).await;
    let port = free_port();
    let endpoint = format!(
        "endpoint = \"{}\"\ngrpc_endpoint = \"http://127.0.0.1:{}\"",
        rotel.url(),
        rotel.grpc_port
    );
    let telegate = Telegate::start(&work, &config(port, &endpoint)).await;
    let name = format!("python_grpc_{run}");
    let key = work.path().join("e2e.key");
    let session = format!("e2e-python-grpc-{run}");
    let args = vec![
        format!("127.0.0.1:{port}"),
        key.to_str().expect("utf-8 path").to_owned(),
        "e2e".to_owned(),
        session,
        name.clone(),
    ];
    let (stdout, stderr) = otel_python(&tools, "otel_sdk_grpc_export.py", args).await;
    assert!(stdout.contains("result=SUCCESS"), "{stdout}\n{stderr}");
    rotel
        .wait_for(&format!("-> Name: {name}\n"), DELIVERY_TIMEOUT)
        .await;
    let text = telegate.metrics().await;
    assert_eq!(
        sample(&text, "telegate_auth_success_total"),
        Some(1.0),
        "one call, v2 held"
    );
}
