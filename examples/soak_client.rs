//! Mixed traffic for `scripts/soak` (not part of CI): signed with the
//! library's own signer, bounded in rate, in flight and in time.
//!
//!   soak_client URL SECRET_FILE ADMIN_FILE SECONDS RATE
//!   soak_client http://127.0.0.1:18080 soak.key admin.token 600 200
//!
//! Each tick sends the next request of a fixed rotation: a valid signed
//! `/auth`, an `/auth` with a forged signature, a signed export to
//! `/v1/metrics`, a signed export to `POST /` (the signal named by the
//! signed path), and every fifth round one session API cycle with the admin
//! token (issue, revoke; other rounds read a signed session back). Signed
//! session ids come from a pool of 32
//! so the session table stays bounded. At the end it prints one line per
//! (kind, status) and exits 1 if any answer was not the expected one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum,
};
use prost::Message;
use telegate::protocol::canonical::{sign_v1, MessageV1};
use telegate::secret::Secret;

/// Requests in flight at once; a tick with none free is skipped (counted).
const MAX_IN_FLIGHT: usize = 64;
/// Signed session ids used in turn (under `sessions.max_per_ip`, 50).
const SESSIONS: usize = 32;

type Counts = Arc<Mutex<BTreeMap<(&'static str, u16), u64>>>;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn signed(secret: &Secret, path: &str, session: &str) -> Vec<(&'static str, String)> {
    let timestamp = now();
    let message = MessageV1 {
        method: "POST",
        path,
        timestamp,
        session_id: session,
    };
    vec![
        ("X-KMS-Signature", sign_v1(secret, &message)),
        ("X-KMS-Timestamp", timestamp.to_string()),
        ("X-KMS-Session-ID", session.to_string()),
        ("X-KMS-Client-Version", "2.0.0.0".to_string()),
    ]
}

fn export_body(n: u64) -> Vec<u8> {
    let point = NumberDataPoint {
        time_unix_nano: now() as u64 * 1_000_000_000,
        value: Some(number_data_point::Value::AsInt(n as i64)),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "soak_counter".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: vec![point],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Sends one request of kind `n % 5` (plus the session cycle), counting
/// what came back as (kind, status); 0 is a transport error.
async fn one(
    http: reqwest::Client,
    base: Arc<str>,
    secret: Arc<Secret>,
    admin: Arc<str>,
    n: u64,
    counts: Counts,
) {
    let session = format!("soak-{}", n as usize % SESSIONS);
    let count = |kind: &'static str, status: u16| {
        *counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((kind, status))
            .or_default() += 1;
    };
    let status =
        |r: Result<reqwest::Response, reqwest::Error>| r.map(|r| r.status().as_u16()).unwrap_or(0);
    match n % 5 {
        0 | 1 => {
            let mut headers = signed(&secret, "/v1/metrics", &session);
            let kind = if n % 5 == 1 {
                headers[0].1 = "0".repeat(64);
                "auth_forged"
            } else {
                "auth_valid"
            };
            let mut request = http
                .get(format!("{base}/auth"))
                .header("X-Forwarded-Method", "POST")
                .header("X-Forwarded-Uri", "/v1/metrics");
            for (name, value) in &headers {
                request = request.header(*name, value);
            }
            count(kind, status(request.send().await));
        }
        2 | 3 => {
            let (kind, url) = if n % 5 == 2 {
                ("ingest_v1_metrics", format!("{base}/v1/metrics"))
            } else {
                ("ingest_root", format!("{base}/"))
            };
            let mut request = http
                .post(url)
                .header("Content-Type", "application/x-protobuf")
                .body(export_body(n));
            for (name, value) in &signed(&secret, "/v1/metrics", &session) {
                request = request.header(*name, value);
            }
            count(kind, status(request.send().await));
        }
        _ => {
            if n % 25 != 4 {
                // The signed session this round's valid /auth used.
                let seen = format!("soak-{}", n.saturating_sub(4) as usize % SESSIONS);
                let request = http.get(format!("{base}/sessions/{seen}"));
                count(
                    "sessions_read",
                    status(request.bearer_auth(&*admin).send().await),
                );
                return;
            }
            let issued = http
                .post(format!("{base}/sessions"))
                .bearer_auth(&*admin)
                .header("Content-Type", "application/json")
                .body(format!("{{\"user_id\":\"soak-{}\"}}", n % 16))
                .send()
                .await;
            let Ok(issued) = issued else {
                return count("sessions_issue", 0);
            };
            count("sessions_issue", issued.status().as_u16());
            let body = issued.text().await.unwrap_or_default();
            let id = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["session_id"].as_str().map(str::to_owned));
            if let Some(id) = id {
                let url = format!("{base}/sessions/{id}");
                count(
                    "sessions_revoke",
                    status(http.delete(url).bearer_auth(&*admin).send().await),
                );
            }
        }
    }
}

/// The status each kind must answer with.
fn expected(kind: &str) -> u16 {
    match kind {
        "auth_forged" => 403,
        "sessions_issue" => 201,
        _ => 200,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: soak_client URL SECRET_FILE ADMIN_FILE SECONDS RATE");
        std::process::exit(64);
    }
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {path}: {e}"))
            .trim()
            .to_owned()
    };
    let base: Arc<str> = args[1].trim_end_matches('/').into();
    let secret = Arc::new(Secret::from_text(&read(&args[2])).expect("a non-empty secret"));
    let admin: Arc<str> = read(&args[3]).into();
    let secs: u64 = args[4].parse().expect("SECONDS");
    let rate: u64 = args[5].parse::<u64>().expect("RATE").clamp(1, 10_000);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .build()
        .expect("HTTP client");
    let counts: Counts = Arc::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let end = Instant::now() + Duration::from_secs(secs);
    let (mut n, mut skipped) = (0u64, 0u64);
    while Instant::now() < end {
        tick.tick().await;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let task = one(
            http.clone(),
            base.clone(),
            secret.clone(),
            admin.clone(),
            n,
            counts.clone(),
        );
        tokio::spawn(async move {
            task.await;
            drop(permit);
        });
        n += 1;
    }
    // Every request has its own 10 s timeout: waiting for all slots is bounded.
    let _ = slots.acquire_many(MAX_IN_FLIGHT as u32).await;
    let counts = counts.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut unexpected = 0;
    for ((kind, status), count) in &counts {
        let mark = if *status == expected(kind) {
            ""
        } else {
            "  UNEXPECTED"
        };
        if !mark.is_empty() {
            unexpected += count;
        }
        println!("{kind:<18} {status:>3} {count:>9}{mark}");
    }
    println!("sent {n} requests in {secs} s at {rate}/s target; {skipped} ticks skipped (all slots busy)");
    if unexpected > 0 {
        println!("{unexpected} unexpected answers");
        std::process::exit(1);
    }
}
