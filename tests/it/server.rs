//! The server's socket behaviour: h2c, header caps, the header-read timeout,
//! graceful shutdown.

use std::time::Duration;

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let server = start_server(&config_with("")).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut request = client.get(server.url("/auth"));
    for (name, value) in valid() {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-auth-key-id"], "a");
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let server = start_server(&config_with("")).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
}

#[tokio::test]
async fn an_oversized_header_block_is_refused() {
    let server = start_server(&config_with("")).await;
    let huge = "x".repeat(20 * 1024);
    let response = server
        .client
        .get(server.url("/auth"))
        .header("X-Padding", huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
}

#[tokio::test]
async fn too_many_headers_are_refused() {
    let server = start_server(
        &config_with("[server]\nmax_headers = 8")
            .replace("[server]\nheader_read_timeout_secs = 1\n", ""),
    )
    .await;
    let mut request = server.client.get(server.url("/health"));
    for n in 0..20 {
        request = request.header(format!("x-h{n}"), "v");
    }
    let status = request.send().await.unwrap().status();
    assert_eq!(status, 431, "a request over max_headers must not be served");
}

#[tokio::test]
async fn a_slow_header_sender_is_disconnected() {
    // header_read_timeout_secs = 1 in the test config.
    let server = start_server(&config_with("")).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    // Closed (Ok) or reset (Err): either way the server hung up in time.
    let _closed = read.expect("the server must close the connection within the timeout");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        !text.contains("200 OK"),
        "an incomplete request must not be served: {text}"
    );
}

#[tokio::test]
async fn shutdown_returns_once_connections_are_done() {
    let server = start_server(&config_with("")).await;
    let addr = server.addr;
    assert_eq!(
        server
            .client
            .get(server.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("run() must return after the shutdown signal");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
