//! The spool against a real SQLite file and a tiny recording collector on
//! 127.0.0.1:0: group commit, the limits, drain order, restart, dead letters.

use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::*;
use crate::config::{ConfigSource, MapEnv, Settings};
use crate::protocol::signal::Signal;

/// Records every body it receives; answers `status`.
struct Recorder {
    url: String,
    bodies: Arc<Mutex<Vec<Bytes>>>,
    status: Arc<AtomicU16>,
}

async fn recorder() -> Recorder {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let status = Arc::new(AtomicU16::new(200));
    let (b, s) = (bodies.clone(), status.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (b, s) = (b.clone(), s.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let (b, s) = (b.clone(), s.clone());
                    async move {
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        b.lock().unwrap().push(body);
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() =
                            http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Recorder {
        url,
        bodies,
        status,
    }
}

fn settings(dir: &std::path::Path, endpoint: &str, extra: &str) -> Settings {
    let text = format!(
        "[collector]\nendpoint = \"{endpoint}\"\nretry_after_secs = 1\n[spool]\nenabled = true\ndir = \"{}\"\n{extra}",
        dir.display()
    );
    crate::config::from_text(&text, &ConfigSource::Embedded, &MapEnv::default()).unwrap()
}

fn open(settings: &Settings, clock: MsClock) -> Spool {
    let metrics = SpoolMetrics::register("t", &prometheus::Registry::new()).unwrap();
    Spool::open(&settings.spool, &settings.ingest.collector, metrics, clock).unwrap()
}

fn export(body: &str) -> Outgoing<'static> {
    Outgoing {
        signal: Signal::Logs,
        body: Bytes::from(body.to_string()),
        content_type: HeaderValue::from_static("application/x-protobuf"),
        gzipped: false,
        session_id: "s",
        client_version: None,
    }
}

/// A collector port nothing listens on (bound, then closed).
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

async fn poll<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(open(
        &settings(dir.path(), &closed_port().await, ""),
        system_ms(),
    ));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let spool = spool.clone();
            tokio::spawn(async move {
                spool
                    .append(export(&format!("e{i}")), Media::Protobuf)
                    .await
            })
        })
        .collect();
    for task in tasks {
        let reply = task.await.unwrap().unwrap();
        assert_eq!(reply.content_type.unwrap(), "application/x-protobuf");
        assert!(reply.body.is_empty());
    }
    let commits = spool
        .shared
        .metrics
        .commit_duration_seconds
        .get_sample_count();
    assert!(commits < 200, "{commits} commits for 200 appends");
    assert_eq!(spool.backlog().exports, 200);
    assert_eq!(
        spool.backlog().bytes,
        (0..200).map(|i| format!("e{i}").len() as u64).sum::<u64>()
    );
}

#[tokio::test]
async fn always_commits_once_per_export_and_json_gets_an_empty_object() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(
        &settings(dir.path(), &closed_port().await, "fsync = \"always\""),
        system_ms(),
    );
    for i in 0..5 {
        let reply = spool
            .append(export(&format!("e{i}")), Media::Json)
            .await
            .unwrap();
        assert_eq!(&reply.body[..], b"{}");
    }
    assert_eq!(
        spool
            .shared
            .metrics
            .commit_duration_seconds
            .get_sample_count(),
        5
    );
}

#[tokio::test]
async fn full_by_bytes_or_by_age_refuses_and_restart_recounts() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(1_000_000));
    let clock: MsClock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let config = settings(
        dir.path(),
        &closed_port().await,
        "max_bytes = 10\nmax_age_secs = 60",
    );
    let spool = open(&config, clock.clone());
    spool
        .append(export("123456"), Media::Protobuf)
        .await
        .unwrap();
    let full = spool
        .append(export("12345"), Media::Protobuf)
        .await
        .unwrap_err();
    assert_eq!(full.reason(), "spool_full");
    assert_eq!(full.status(), 503);
    assert!(full.retry_after().is_some());
    spool.append(export("1234"), Media::Protobuf).await.unwrap();
    drop(spool);
    // Reopened: the backlog is counted from the file; now it is too old.
    let spool = open(&config, clock.clone());
    assert_eq!(spool.backlog().exports, 2);
    assert_eq!(spool.backlog().bytes, 10);
    let mut config = config;
    config.spool.max_bytes = 1000;
    drop(spool);
    let spool = open(&config, clock);
    spool.append(export("x"), Media::Protobuf).await.unwrap();
    now.fetch_add(61_000, Ordering::SeqCst);
    assert_eq!(spool.backlog().oldest_age_secs, 61);
    let old = spool
        .append(export("y"), Media::Protobuf)
        .await
        .unwrap_err();
    assert_eq!(old.reason(), "spool_full");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_in_order_and_deletes_what_was_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let collector = recorder().await;
    // Spooled while the collector is away; drained in order once it is there.
    let config = settings(dir.path(), &closed_port().await, "");
    let spool = open(&config, system_ms());
    for i in 0..50 {
        spool
            .append(export(&format!("{i}")), Media::Protobuf)
            .await
            .unwrap();
    }
    drop(spool);
    let mut config = config;
    config.ingest.collector.endpoint = collector.url.clone();
    let spool = open(&config, system_ms());
    for i in 50..60 {
        spool
            .append(export(&format!("{i}")), Media::Protobuf)
            .await
            .unwrap();
    }
    poll("60 exports delivered", || {
        collector.bodies.lock().unwrap().len() >= 60
    })
    .await;
    poll("an empty backlog", || spool.backlog().exports == 0).await;
    let bodies: Vec<String> = collector
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (0..60).map(|i| i.to_string()).collect();
    assert_eq!(bodies, expected);
    assert_eq!(spool.shared.metrics.delivered_total.get(), 60);
    assert_eq!(spool.backlog().bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_export_is_dead_lettered_once_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let collector = recorder().await;
    collector.status.store(400, Ordering::SeqCst);
    let spool = open(&settings(dir.path(), &collector.url, ""), system_ms());
    spool.append(export("bad"), Media::Protobuf).await.unwrap();
    poll("a dead letter", || {
        spool.shared.metrics.dead_lettered_total.get() == 1
    })
    .await;
    collector.status.store(200, Ordering::SeqCst);
    spool.append(export("good"), Media::Protobuf).await.unwrap();
    poll("the next export delivered", || {
        spool.shared.metrics.delivered_total.get() == 1
    })
    .await;
    let letters = spool.dead_letters(0, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].status, letters[0].bytes), (400, 3));
    assert_eq!(letters[0].reason, "collector_rejected");
    assert_eq!(letters[0].signal, "logs");
    // Sent once: never retried.
    assert_eq!(collector.bodies.lock().unwrap().len(), 2);
    assert_eq!(spool.backlog().exports, 0);
}

#[test]
fn a_corrupt_file_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(store::FILE_NAME), vec![0x5a; 8192]).unwrap();
    let err = store::open(dir.path(), true).unwrap_err().to_string();
    assert!(
        err.contains(&dir.path().join(store::FILE_NAME).display().to_string()),
        "{err}"
    );
}
