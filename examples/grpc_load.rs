//! A deterministic OTLP/gRPC load generator for scripts/bench-instructions:
//! sends exactly COUNT identical unary calls, one at a time, over ONE HTTP/2
//! (h2c, prior knowledge) connection, reads each answer and its trailers in
//! full, then closes and exits.
//!
//!   grpc_load ADDR COUNT METHOD-PATH --body FILE [HEADER ...]
//!   grpc_load 127.0.0.1:4317 2000 /opentelemetry.proto.collector.metrics.v1.MetricsService/Export \
//!     --body metrics-1024.pb 'X-KMS-Signature: ...'
//!
//! FILE is the protobuf message; it is framed once (the 5-byte gRPC prefix,
//! uncompressed) and sent as the whole request body of every call, with
//! `content-type: application/grpc` and `te: trailers`. HEADERs (`Name: value`,
//! e.g. the lines of `telegate sign`) become metadata (lower-cased names).
//! As examples/keepalive_load does for HTTP/1.1: the server under test runs
//! under callgrind, this client does not, so two runs of N1 and N2 calls
//! differ by exactly N2-N1 calls. Every call must end `grpc-status: 0` on an
//! HTTP 200 (anything else means the wrong path was measured): the first
//! other answer is printed and the exit status is 1. Each call times out
//! after 60 s and the whole run is bounded by `KEEPALIVE_LOAD_MAX_SECONDS`
//! (default 600).

use std::process::exit;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use telegate::protocol::grpc::frame;
use tokio::net::TcpStream;

fn usage() -> ! {
    eprintln!("usage: grpc_load ADDR COUNT METHOD-PATH --body FILE [HEADER ...]");
    exit(2);
}

fn fail(what: String) -> ! {
    eprintln!("grpc_load: {what}");
    exit(1);
}

/// The `grpc-status` of an answer: from the trailers, or from the headers
/// of a Trailers-Only answer.
fn grpc_status(headers: &http::HeaderMap, trailers: Option<&http::HeaderMap>) -> Option<String> {
    trailers
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// One call: sends the framed message, reads the answer to its trailers.
async fn call(
    client: h2::client::SendRequest<Bytes>,
    request: Request<()>,
    body: Bytes,
) -> Result<(), String> {
    let mut client = client
        .ready()
        .await
        .map_err(|e| format!("not ready: {e}"))?;
    let (answer, mut stream) = client
        .send_request(request, false)
        .map_err(|e| format!("send: {e}"))?;
    stream
        .send_data(body, true)
        .map_err(|e| format!("send body: {e}"))?;
    let answer = answer.await.map_err(|e| format!("answer: {e}"))?;
    let (parts, mut body) = answer.into_parts();
    let mut bytes = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| format!("body: {e}"))?;
        bytes += chunk.len();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body
        .trailers()
        .await
        .map_err(|e| format!("trailers: {e}"))?;
    let status = grpc_status(&parts.headers, trailers.as_ref());
    if parts.status != http::StatusCode::OK || status.as_deref() != Some("0") {
        return Err(format!(
            "HTTP {} grpc-status {status:?}, {bytes} body bytes, headers {:?}, trailers {trailers:?}",
            parts.status, parts.headers
        ));
    }
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(count), Some(path)) = (args.next(), args.next(), args.next()) else {
        usage()
    };
    let Ok(count) = count.parse::<u64>() else {
        usage()
    };
    let mut headers = Vec::new();
    let mut message = None;
    while let Some(arg) = args.next() {
        if arg == "--body" {
            let Some(file) = args.next() else { usage() };
            message = Some(
                std::fs::read(&file)
                    .unwrap_or_else(|err| fail(format!("cannot read {file}: {err}"))),
            );
        } else {
            let Some((name, value)) = arg.split_once(':') else {
                usage()
            };
            let name = HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
                .unwrap_or_else(|err| fail(format!("header {name:?}: {err}")));
            let value = HeaderValue::from_str(value.trim())
                .unwrap_or_else(|err| fail(format!("header {name}: {err}")));
            headers.push((name, value));
        }
    }
    let Some(message) = message else { usage() };
    let body = Bytes::from(frame(&message));
    let max_seconds: u64 = std::env::var("KEEPALIVE_LOAD_MAX_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let uri = format!("http://{addr}{path}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| fail(format!("runtime: {err}")));
    runtime.block_on(async move {
        let tcp = tokio::time::timeout(Duration::from_secs(60), TcpStream::connect(&addr))
            .await
            .map_err(|_| "connect timed out".to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .unwrap_or_else(|err| fail(format!("connect {addr}: {err}")));
        tcp.set_nodelay(true).ok();
        let (client, connection) = h2::client::handshake(tcp)
            .await
            .unwrap_or_else(|err| fail(format!("HTTP/2 handshake with {addr}: {err}")));
        let connection = tokio::spawn(connection);
        let start = Instant::now();
        let deadline = start + Duration::from_secs(max_seconds);
        for i in 0..count {
            if Instant::now() > deadline {
                fail(format!("{max_seconds} s passed after {i} of {count} calls"));
            }
            let mut request = Request::post(uri.as_str())
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())
                .unwrap_or_else(|err| fail(format!("request: {err}")));
            for (name, value) in &headers {
                request.headers_mut().insert(name.clone(), value.clone());
            }
            let one = call(client.clone(), request, body.clone());
            match tokio::time::timeout(Duration::from_secs(60), one).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => fail(format!("call {i}: {err}")),
                Err(_) => fail(format!("call {i}: no answer in 60 s")),
            }
        }
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(10), connection).await;
        println!(
            "requests={count} elapsed_s={:.3}",
            start.elapsed().as_secs_f64()
        );
    });
}
