//! OTLP/gRPC ingest in process (`ingest.grpc_listen` on 127.0.0.1:0), with
//! tonic's client: a signed export (v1 over the method path, v2 binding the
//! message bytes) passes admission and reaches the collector, the
//! collector's partial success comes back in the Export response; the
//! refusals are gRPC's (UNAUTHENTICATED, PERMISSION_DENIED,
//! RESOURCE_EXHAUSTED with RetryInfo), the `reason` in ErrorInfo, observed
//! once by reason like an HTTP request.

use crate::support::collector::{metrics_partial_success, FakeCollector};
use crate::support::grpc::{export_metrics, refusal};
use crate::support::otlp::export_request;
use crate::support::*;
use prost::Message;
use telegate::protocol::grpc::METRICS_EXPORT;
use tonic::Code;

/// The series these tests read (the integrator renames in one place).
const FAILED: &str = "telegate_auth_failed_total";
const SUCCESS: &str = "telegate_auth_success_total";

async fn grpc_server(collector: &FakeCollector, rate_limit: &str) -> TestServer {
    start_server(&config_with(&format!(
        "[rate_limit]\n{rate_limit}\n[ingest]\ngrpc_listen = \"127.0.0.1:0\"\n[collector]\nendpoint = \"{}\"\nrequest_timeout_secs = 2\n",
        collector.url()
    )))
    .await
}

const FAST: &str = "per_second = 10000\nburst = 10000";

fn v1_at(timestamp: i64) -> Vec<(&'static str, String)> {
    kms_headers(SECRET_A, "POST", METRICS_EXPORT, timestamp, SESSION)
}

#[tokio::test]
async fn a_signed_grpc_export_reaches_the_collector_with_its_partial_success_back() {
    let collector = FakeCollector::start().await;
    let server = grpc_server(&collector, FAST).await;
    let addr = server.grpc_addr.unwrap();
    let (theirs, answer) = metrics_partial_success(1, "point too old");
    collector.answer(answer);
    let export = export_request("grpc.v1", "run-1");
    let reply = export_metrics(addr, &v1_at(NOW), export.clone())
        .await
        .unwrap();
    assert_eq!(
        reply, theirs,
        "the collector's partial success passes through"
    );
    let received = collector.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/v1/metrics");
    assert_eq!(received[0].body, export.encode_to_vec());
    assert_eq!(received[0].headers["x-auth-session-id"], SESSION);

    // v2: the body hash is over the message bytes (after gRPC's framing).
    let export = export_request("grpc.v2", "run-1");
    let body = export.encode_to_vec();
    let nonce = "00112233445566778899aabbccddeeff";
    let v2 = signed_v2(SECRET_A, "a", METRICS_EXPORT, NOW, SESSION, nonce, &body);
    export_metrics(addr, &v2, export).await.unwrap();
    assert_eq!(collector.received()[1].body, body);
    // The same headers over another message: 403 body_mismatch.
    let nonce = "ffeeddccbbaa99887766554433221100";
    let v2 = signed_v2(SECRET_A, "a", METRICS_EXPORT, NOW, SESSION, nonce, &body);
    let err = export_metrics(addr, &v2, export_request("other", "run-1"))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        (Code::PermissionDenied, "body_mismatch".into(), None)
    );
    // Signed for the HTTP path, not the method path.
    let http_signed = kms_headers(SECRET_A, "POST", "/v1/metrics", NOW, SESSION);
    let err = export_metrics(addr, &http_signed, export_request("x", "r"))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        (Code::PermissionDenied, "bad_signature".into(), None)
    );
    assert_eq!(collector.received().len(), 2);
    let text = server.scrape().await;
    assert_eq!(sample(&text, SUCCESS), Some(2.0));
    assert_eq!(
        sample(&text, &format!("{FAILED}{{reason=\"bad_signature\"}}")),
        Some(1.0)
    );
    server.stop().await;
    collector.stop().await;
}

#[tokio::test]
async fn unsigned_and_stale_grpc_exports_are_unauthenticated_with_the_reason() {
    let collector = FakeCollector::start().await;
    let server = grpc_server(&collector, FAST).await;
    let addr = server.grpc_addr.unwrap();
    let err = export_metrics(addr, &[], export_request("u", "r"))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        (Code::Unauthenticated, "missing_signature".into(), None)
    );
    let err = export_metrics(addr, &v1_at(NOW - 3600), export_request("s", "r"))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        (Code::Unauthenticated, "stale_timestamp".into(), None)
    );
    assert!(collector.received().is_empty());
    let text = server.scrape().await;
    for reason in ["missing_signature", "stale_timestamp"] {
        assert_eq!(
            sample(&text, &format!("{FAILED}{{reason=\"{reason}\"}}")),
            Some(1.0),
            "{reason} observed once"
        );
    }
    // The HTTP listener does not answer the gRPC method path as gRPC.
    let response = server
        .client
        .post(server.url(METRICS_EXPORT))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    server.stop().await;
    collector.stop().await;
}

#[tokio::test]
async fn a_rate_limited_grpc_export_is_resource_exhausted_with_retry_info() {
    let collector = FakeCollector::start().await;
    let server = grpc_server(&collector, "per_second = 1\nburst = 2").await;
    let addr = server.grpc_addr.unwrap();
    for run in 0..2 {
        let export = export_request("limited", &run.to_string());
        export_metrics(addr, &v1_at(NOW), export).await.unwrap();
    }
    let err = export_metrics(addr, &v1_at(NOW), export_request("limited", "3"))
        .await
        .unwrap_err();
    let (code, reason, retry) = refusal(&err);
    assert_eq!(
        (code, reason.as_str()),
        (Code::ResourceExhausted, "rate_limited")
    );
    assert!(retry.is_some_and(|secs| secs >= 1), "RetryInfo: {retry:?}");
    assert_eq!(collector.received().len(), 2);
    server.stop().await;
    collector.stop().await;
}

/// One Export call as raw HTTP/2 (tonic's client here cannot gzip): the
/// framed `message`, compressed when `gzip`; returns `grpc-status`, the
/// ErrorInfo reason (if any).
async fn raw_call(
    addr: std::net::SocketAddr,
    headers: &[(&str, String)],
    message: &[u8],
    gzip: bool,
) -> (String, String) {
    use http_body_util::{BodyExt, Full};
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let payload = match gzip {
        true => crate::support::otlp::gzip(message),
        false => message.to_vec(),
    };
    let mut framed = vec![u8::from(gzip)];
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(&payload);
    let mut request = ::http::Request::post(format!("http://{addr}{METRICS_EXPORT}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if gzip {
        request = request.header("grpc-encoding", "gzip");
    }
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = client
        .request(request.body(Full::new(framed.into())).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let metadata = collected.trailers().cloned().unwrap_or(parts.headers);
    let status = metadata["grpc-status"].to_str().unwrap().to_string();
    let reason = metadata
        .get("grpc-status-details-bin")
        .map_or(String::new(), |details| {
            use base64::Engine;
            use telegate::http::error::{ErrorInfo, Status};
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(details.to_str().unwrap().trim_end_matches('='))
                .unwrap();
            let status = Status::decode(&bytes[..]).unwrap();
            ErrorInfo::decode(&status.details[0].value[..])
                .unwrap()
                .reason
        });
    (status, reason)
}

#[tokio::test]
async fn a_gzipped_message_is_inflated_hashed_uncompressed_and_capped() {
    let collector = FakeCollector::start().await;
    let server = start_server(&config_with(&format!(
        "[rate_limit]\n{FAST}\n[ingest]\ngrpc_listen = \"127.0.0.1:0\"\nmax_body_bytes = 1024\nmax_decompressed_bytes = 4096\n[collector]\nendpoint = \"{}\"\n",
        collector.url()
    )))
    .await;
    let addr = server.grpc_addr.unwrap();
    let export = export_request("gzipped", "run-1").encode_to_vec();
    let nonce = "00112233445566778899aabbccddeeff";
    let v2 = signed_v2(SECRET_A, "a", METRICS_EXPORT, NOW, SESSION, nonce, &export);
    assert_eq!(
        raw_call(addr, &v2, &export, true).await,
        ("0".into(), String::new())
    );
    assert_eq!(collector.received()[0].body, export, "forwarded inflated");
    // Inflating past max_decompressed_bytes; as sent, past max_body_bytes.
    let bomb = vec![0u8; 8192];
    let (status, reason) = raw_call(addr, &v1_at(NOW), &bomb, true).await;
    assert_eq!((status.as_str(), reason.as_str()), ("3", "body_too_large"));
    let (status, reason) = raw_call(addr, &v1_at(NOW), &[0u8; 2048], false).await;
    assert_eq!((status.as_str(), reason.as_str()), ("3", "body_too_large"));
    assert_eq!(collector.received().len(), 1);
    server.stop().await;
    collector.stop().await;
}

#[tokio::test]
async fn the_clients_grpc_timeout_caps_the_forward_deadline() {
    let collector = FakeCollector::start().await;
    // collector.request_timeout_secs = 2; the collector answers after 10 s.
    let server = grpc_server(&collector, FAST).await;
    let addr = server.grpc_addr.unwrap();
    collector.answer(crate::support::collector::Script {
        delay: std::time::Duration::from_secs(10),
        ..Default::default()
    });
    let export = export_request("deadline", "run-1").encode_to_vec();
    let call = |timeout: &'static str| {
        let mut headers = v1_at(NOW);
        headers.push(("grpc-timeout", timeout.to_string()));
        let export = export.clone();
        async move {
            let started = std::time::Instant::now();
            let answer = raw_call(addr, &headers, &export, false).await;
            (answer, started.elapsed())
        }
    };
    // 300 ms from the client: given up after 300 ms, not after 2 s.
    let (answer, took) = call("300m").await;
    assert_eq!(answer, ("14".into(), "collector_unavailable".into()));
    assert!(
        took >= std::time::Duration::from_millis(300)
            && took < std::time::Duration::from_millis(1900),
        "answered after {took:?}"
    );
    // A longer one than configured, or a malformed one: the configured 2 s.
    for timeout in ["1H", "soon"] {
        let (answer, took) = call(timeout).await;
        assert_eq!(answer, ("14".into(), "collector_unavailable".into()));
        assert!(
            took >= std::time::Duration::from_secs(2),
            "{timeout}: answered after {took:?}"
        );
    }
    assert_eq!(collector.received().len(), 3);
    server.stop().await;
    collector.stop().await;
}
