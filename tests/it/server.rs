//! The server's socket behaviour: h2c, header caps, the header-read timeout,
//! the idle timeout (h2c too), the per-address cap, graceful shutdown.

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

/// Reads one HTTP/1 answer's head (enough for the status and headers).
async fn answer_head(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase()
}

#[tokio::test]
async fn a_refusal_with_an_unread_body_closes_the_connection_others_keep_it() {
    let server = start_server(&config_with("")).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // Unsigned: refused before the body is read. A pooling proxy must not
    // send its next request down this connection.
    stream
        .write_all(b"POST /v1/metrics HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-protobuf\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let head = answer_head(&mut stream).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // A refusal without a body keeps the connection open for the next one.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..2 {
        stream
            .write_all(b"GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let head = answer_head(&mut stream).await;
        assert!(head.starts_with("http/1.1 401"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
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

/// `config_with` with its `[server]` section replaced by `server` (the
/// header-read timeout is also the idle timeout) and no trusted proxy, so
/// loopback peers are capped like any client.
fn untrusted_config(server: &str) -> String {
    config_with(&format!("[server]\n{server}"))
        .replace("[server]\nheader_read_timeout_secs = 1\n", "")
        .replace(
            "trusted_proxies = [\"127.0.0.1/32\"]",
            "trusted_proxies = []",
        )
}

/// A raw h2c client: the preface, SETTINGS, one request, then nothing but
/// PINGs of its own every 200 ms. hyper's h2 side had no idle timeout, so
/// such a peer kept its connection for good; now it gets a GOAWAY after
/// `header_read_timeout_secs` (1 s here) with nothing in flight.
#[tokio::test]
async fn an_idle_h2c_connection_is_closed_though_it_pings() {
    let server = start_server(&config_with("")).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (send, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut pings = connection.ping_pong().expect("ping_pong taken once");
    let started = std::time::Instant::now();
    let connection = tokio::spawn(connection);
    let mut send = send.ready().await.unwrap();
    let request = ::http::Request::get(server.url("/health"))
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    let pinger = tokio::spawn(async move {
        for _ in 0..50 {
            if pings.ping(h2::Ping::opaque()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let closed = tokio::time::timeout(Duration::from_secs(5), connection).await;
    assert!(
        closed.is_ok(),
        "an idle h2c connection must be closed within the idle timeout"
    );
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(900),
        "closed too early: {held:?}"
    );
    pinger.abort();
}

/// An h2c request whose body trickles in for longer than the idle timeout
/// is in flight, not idle: it is answered, not cut.
#[tokio::test]
async fn a_busy_h2c_connection_is_not_cut() {
    const ADMIN: &str = "admin-token-0123456789abcdef";
    let config = config_with("[admin]\ntoken_file = \"admin.token\"");
    let server = start_server_with_files(&config, &[("admin.token", &format!("{ADMIN}\n"))]).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut send = send.ready().await.unwrap();
    let request = ::http::Request::post(server.url("/sessions"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (response, mut body) = send.send_request(request, false).unwrap();
    // Four pieces 600 ms apart: 2.4 s of upload, over twice the idle timeout.
    for piece in ["{\"user_id\"", ": ", "\"slow", "\"}"] {
        tokio::time::sleep(Duration::from_millis(600)).await;
        body.send_data(bytes::Bytes::from(piece), piece == "\"}")
            .unwrap();
    }
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("answered")
        .expect("not reset by an idle close");
    assert_eq!(response.status(), 201);
}

/// One address holds at most `max_connections_per_ip`: past it a connection
/// is closed at accept, so twenty idle sockets from 127.0.0.1 cannot take
/// the eight slots, `/health` answers another address at once, and a slot
/// comes back when a socket closes.
#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let server = start_server(&untrusted_config(
        "header_read_timeout_secs = 30\nmax_connections = 8\nmax_connections_per_ip = 4",
    ))
    .await;
    let mut sockets = Vec::new();
    for _ in 0..20 {
        sockets.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut buf = [0u8; 64];
    for (n, socket) in sockets.iter_mut().enumerate().skip(4) {
        let read = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            other => panic!("socket {n} over the cap must be closed: {other:?}"),
        }
    }
    for socket in &mut sockets[..4] {
        let read = tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buf)).await;
        assert!(read.is_err(), "a socket under the cap stays open");
    }
    let elsewhere = reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let health = tokio::time::timeout(
        Duration::from_secs(2),
        elsewhere.get(server.url("/health")).send(),
    )
    .await
    .expect("/health answers another address at once")
    .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = elsewhere
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&metrics, "telegate_connections_refused_total"),
        Some(16.0)
    );
    drop(sockets.remove(0));
    let started = std::time::Instant::now();
    loop {
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        socket
            .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if buf[..n].starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the slot of a closed socket must come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A trusted proxy (Traefik) carries every client: it is not capped.
#[tokio::test]
async fn a_trusted_proxy_is_not_capped() {
    let config = config_with("[server]\nmax_connections_per_ip = 2")
        .replace("[server]\nheader_read_timeout_secs = 1\n", "");
    let server = start_server(&config).await;
    let mut sockets = Vec::new();
    for _ in 0..5 {
        sockets.push(TcpStream::connect(server.addr).await.unwrap());
    }
    for socket in &mut sockets {
        socket
            .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = socket.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    }
}
