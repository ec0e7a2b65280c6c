//! One budget for every body and inflation in the process (issue 12,
//! findings 1 and 11), over real HTTP: signed uploads that stall hold their
//! share of `server.body_budget_bytes`; once it is spent the next export is
//! refused at once (503 `server_busy` + `Retry-After`, counted) instead of
//! adding to the process's memory; when the stalled ones go, it passes.
//! One client holds at most its share (`server.body_budget_per_client_bytes`),
//! so the others still fit.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::collector::FakeCollector;
use crate::support::*;

const KIB: usize = 1024;

/// 512 KiB bodies, 1 MiB inflated: the smallest budget one export fits in.
fn config(collector: &FakeCollector) -> String {
    config_with(&format!(
        "[rate_limit]\nper_second = 1000\nburst = 1000\n\
         [ingest]\nmax_body_bytes = {}\nmax_decompressed_bytes = {}\n\
         [collector]\nendpoint = \"{}\"\n",
        512 * KIB,
        1024 * KIB,
        collector.url()
    ))
    .replace(
        "[server]\n",
        &format!("[server]\nbody_budget_bytes = {}\n", 1536 * KIB),
    )
}

/// A signed export that announces `length` bytes, sends a few and stalls.
async fn stalled_upload(server: &TestServer, length: usize) -> TcpStream {
    stalled_upload_from(server, length, "127.0.0.1").await
}

/// [`stalled_upload`] for `client`, as the trusted proxy (the test's own
/// loopback address) names it in `X-Forwarded-For`.
async fn stalled_upload_from(server: &TestServer, length: usize, client: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut head = format!(
        "POST /v1/metrics HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-protobuf\r\nContent-Length: {length}\r\nX-Forwarded-For: {client}\r\n"
    );
    for (name, value) in signed(SECRET_A, "POST", "/v1/metrics", NOW, SESSION) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0x0a; 16]).await.unwrap();
    stream
}

async fn export(server: &TestServer) -> Reply {
    export_from(server, "127.0.0.1").await
}

async fn export_from(server: &TestServer, client: &str) -> Reply {
    let body = crate::support::otlp::export_request("budget", "b");
    let request = add_headers(
        server
            .client
            .post(server.url("/v1/metrics"))
            .header("X-Forwarded-For", client)
            .header("Content-Type", "application/x-protobuf")
            .body(prost::Message::encode_to_vec(&body)),
        &signed(SECRET_A, "POST", "/v1/metrics", NOW, SESSION),
    );
    Reply::of(request.send().await.unwrap()).await
}

#[tokio::test]
async fn stalled_bodies_spend_the_budget_and_the_next_export_is_refused_not_held() {
    let collector = FakeCollector::start().await;
    let server = start_server(&config(&collector)).await;
    assert_eq!(
        export(&server).await.status,
        200,
        "fits while the budget is free"
    );

    // Four uploads announcing 384 KiB each hold the whole 1.5 MiB.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(stalled_upload(&server, 384 * KIB).await);
    }
    let busy = poll_until("the budget to be spent", Duration::from_secs(5), || async {
        let reply = export(&server).await;
        match reply.status {
            503 => Ok(reply),
            _ => Err(format!("{reply:?}")),
        }
    })
    .await
    .expect("503 server_busy once the budget is spent");
    assert_eq!(busy.reason().as_deref(), Some("server_busy"));
    assert_eq!(busy.retry_after.as_deref(), Some("1"));

    drop(stalled);
    poll_until(
        "the budget to come back",
        Duration::from_secs(5),
        || async {
            match export(&server).await.status {
                200 => Ok(()),
                other => Err(format!("{other}")),
            }
        },
    )
    .await
    .expect("200 once the stalled uploads are gone");
    let text = server.scrape().await;
    assert!(
        sample(&text, "telegate_auth_failed_total{reason=\"server_busy\"}")
            .is_some_and(|n| n >= 1.0),
        "counted by reason"
    );
    assert_eq!(
        sample(&text, "telegate_body_budget_bytes_in_use"),
        Some(0.0),
        "every share given back"
    );
    server.stop().await;
}

#[tokio::test]
async fn one_client_spends_only_its_share_and_another_still_passes() {
    let collector = FakeCollector::start().await;
    // Twice the smallest budget; each client may hold half of it.
    let config = config(&collector).replace(
        &format!("body_budget_bytes = {}\n", 1536 * KIB),
        &format!(
            "body_budget_bytes = {}\nbody_budget_per_client_bytes = {}\n",
            3072 * KIB,
            1536 * KIB
        ),
    );
    let server = start_server(&config).await;
    let (greedy, other) = ("192.0.2.1", "192.0.2.2");
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(stalled_upload_from(&server, 384 * KIB, greedy).await);
    }
    let busy = poll_until(
        "the client's share to be spent",
        Duration::from_secs(5),
        || async {
            let reply = export_from(&server, greedy).await;
            match reply.status {
                503 => Ok(reply),
                _ => Err(format!("{reply:?}")),
            }
        },
    )
    .await
    .expect("503 server_busy once the client's share is spent");
    assert_eq!(busy.reason().as_deref(), Some("server_busy"));
    let text = server.scrape().await;
    let in_use = sample(&text, "telegate_body_budget_bytes_in_use").unwrap();
    assert!(
        in_use <= (1536 * KIB) as f64 + 64.0 * KIB as f64,
        "one client holds at most its share: {in_use}"
    );
    assert_eq!(
        export_from(&server, other).await.status,
        200,
        "another client still fits"
    );
    drop(stalled);
    poll_until("the share to come back", Duration::from_secs(5), || async {
        match export_from(&server, greedy).await.status {
            200 => Ok(()),
            other => Err(format!("{other}")),
        }
    })
    .await
    .expect("200 once its stalled uploads are gone");
    server.stop().await;
}
