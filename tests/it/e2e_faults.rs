//! Faults with real components (issue 12): the telegate binary in front of
//! a real `redis-server` and a scripted collector, with the fault proxy of
//! [`crate::support::faults`] between them (no `tc netem` on these kernels).
//!
//! ```text
//! reqwest -> telegate --> FaultProxy --> redis-server   (tests 1)
//!                     \-> [FaultProxy] -> scripted collector (tests 3, 4)
//! ```
//!
//! 1. Redis black-holed (accepts, never answers): a signed `/auth` still
//!    answers, within a bound; a token check says 503; `/ready` flips to
//!    503 and back to 200 when traffic passes again.
//! 2. Redis emptied under a running telegate (`FLUSHALL`): new sessions are
//!    recorded again, a session revoked afterwards is refused, tokens
//!    issued afterwards work, no restart.
//! 3. A collector that takes 2 s: beyond `collector.max_in_flight` the
//!    answer is 503 `collector_busy` + `Retry-After` at once, nothing more
//!    is forwarded, and RSS stays flat over repeated bursts.
//! 4. A collector cut mid-response: 503 `collector_unavailable`, never 200.
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_faults:: -- --nocapture`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::{json, Value};

use crate::support::collector::{FakeCollector, Script};
use crate::support::faults::{Fault, FaultProxy};
use crate::support::otlp::{export_request, unix_now};
use crate::support::stack::{keygen, Redis, Telegate};
use crate::support::tools::Tools;
use crate::support::{
    add_headers, http_client, kms_headers, poll_until, require_tools, sample, Reply, Workdir,
    PROTOBUF,
};

/// What "answers within its timeout" means here: the store's own bound is
/// 2 s per operation; this is a generous ceiling, not a speed test.
const ANSWER_BOUND: Duration = Duration::from_secs(5);
/// Longest wait for `/ready` to change (the store polls every second).
const READY_FLIP: Duration = Duration::from_secs(10);

/// The signing secret and admin token in `e2e.key` / `admin.token`.
struct Keys {
    secret: String,
    admin: String,
}

fn keys(work: &Workdir) -> Keys {
    let keys = Keys {
        secret: keygen(),
        admin: keygen(),
    };
    work.write("e2e.key", &keys.secret);
    work.write("admin.token", &keys.admin);
    keys
}

/// What every config here starts with: key `e2e`, no rate limit in the way.
const BASE: &str = r#"
trusted_proxies = ["127.0.0.1/32"]
[[auth.keys]]
id = "e2e"
file = "e2e.key"
[rate_limit]
per_second = 100000
burst = 100000
"#;

fn redis_config(redis_addr: &str) -> String {
    format!(
        r#"{BASE}[policies.app]
methods = ["hmac", "session"]
[sessions]
store = "redis"
redis_url = "redis://{redis_addr}"
redis_prefix = "faults:"
flush_interval_ms = 200
[admin]
token_file = "admin.token"
"#
    )
}

/// `GET /auth?policy=app` as Traefik sends it, signed for `session` or
/// carrying `bearer`; its status, reason and how long it took.
async fn auth(
    gate: &Telegate,
    keys: &Keys,
    session: Option<&str>,
    bearer: Option<&str>,
) -> (u16, String, Duration) {
    let mut request = http_client()
        .get(gate.url("/auth?policy=app"))
        .header("X-Forwarded-Method", "POST")
        .header("X-Forwarded-Uri", "/v1/metrics");
    if let Some(session) = session {
        let signed = kms_headers(&keys.secret, "POST", "/v1/metrics", unix_now(), session);
        request = add_headers(request, &signed);
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let started = Instant::now();
    // The client's own 5 s timeout turns a hang into a failure here.
    let response = request.send().await.expect("/auth answers at all");
    let reply = Reply::of(response).await;
    let took = started.elapsed();
    (reply.status, reply.reason().unwrap_or_default(), took)
}

/// A session API call with the admin token.
async fn admin(gate: &Telegate, keys: &Keys, method: reqwest::Method, path: &str) -> (u16, Value) {
    let mut request = http_client()
        .request(method.clone(), gate.url(path))
        .bearer_auth(&keys.admin);
    if method == reqwest::Method::POST {
        request = request.json(&json!({"user_id": "faults"}));
    }
    let response = request.send().await.expect("session API call");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until `GET /ready` answers `status`.
async fn ready_becomes(gate: &Telegate, status: u16) {
    let url = gate.url("/ready");
    poll_until(&format!("/ready = {status}"), READY_FLIP, || async {
        let got = http_client()
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .status()
            .as_u16();
        if got == status {
            Ok(())
        } else {
            Err(format!("status {got}"))
        }
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
}

/// Waits until the session API reads `id` back with `requests` requests.
async fn recorded(gate: &Telegate, keys: &Keys, id: &str, requests: u64) -> Value {
    let path = format!("/sessions/{id}");
    poll_until(
        &format!("{id} recorded with {requests} requests"),
        Duration::from_secs(5),
        || async {
            match admin(gate, keys, reqwest::Method::GET, &path).await {
                (200, record) if record["requests"].as_u64() == Some(requests) => Ok(record),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|err| panic!("{err}"))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
async fn a_black_holed_redis_bounds_auth_and_flips_ready() {
    let Some(tools) = require_tools("e2e_faults", &["redis-server"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-faults-blackhole");
    let keys = keys(&work);
    let redis = Redis::start(&tools, &work).await;
    let proxy = FaultProxy::start(loopback(redis.port), 32).await;
    let mut gate = Telegate::start(&work, &redis_config(&proxy.host_port())).await;
    let (status, issued) = admin(&gate, &keys, reqwest::Method::POST, "/sessions").await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().expect("a token").to_owned();
    let session = format!("faults-bh-{}", &keygen()[..12]);
    assert_eq!(auth(&gate, &keys, Some(&session), None).await.0, 200);

    proxy.set(Fault::BlackHole);
    // Signed /auth is decided on the local cache: it answers while Redis is
    // silent, before and after the store notices.
    let (status, reason, took) = auth(&gate, &keys, Some(&session), None).await;
    assert_eq!(
        (status, reason.as_str()),
        (200, ""),
        "signed /auth, black hole"
    );
    assert!(took < ANSWER_BOUND, "signed /auth took {took:?}");
    // A token needs Redis: refused within the store's bound, never hung.
    let (status, reason, took) = auth(&gate, &keys, None, Some(&token)).await;
    assert_eq!((status, reason.as_str()), (503, "store_unavailable"));
    assert!(took < ANSWER_BOUND, "token /auth took {took:?}");
    ready_becomes(&gate, 503).await;
    let (status, _, took) = auth(&gate, &keys, Some(&session), None).await;
    assert_eq!(status, 200, "signed /auth while /ready is 503");
    assert!(took < ANSWER_BOUND, "signed /auth took {took:?}");
    eprintln!("e2e_faults: black hole: signed /auth answered in {took:?} with /ready 503");

    proxy.set(Fault::Pass);
    ready_becomes(&gate, 200).await;
    let (status, _, _) = auth(&gate, &keys, None, Some(&token)).await;
    assert_eq!(status, 200, "the token works again");
    // The sightings made in the dark are written behind once Redis answers.
    recorded(&gate, &keys, &session, 3).await;
    assert!(gate.proc.exited().is_none(), "telegate must not crash");
}

/// `redis-cli -p PORT ARGS...`, its trimmed output.
fn redis_cli(tools: &Tools, port: u16, args: &[&str]) -> String {
    let output = Command::new(tools.path("redis-cli"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn an_emptied_redis_is_recovered_from_without_a_restart() {
    let Some(tools) = require_tools("e2e_faults", &["redis-server", "redis-cli"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-faults-flush");
    let keys = keys(&work);
    let redis = Redis::start(&tools, &work).await;
    let mut gate =
        Telegate::start(&work, &redis_config(&format!("127.0.0.1:{}", redis.port))).await;
    let pid = gate.proc.pid();
    let run = &keygen()[..12];
    let (old, new) = (format!("faults-old-{run}"), format!("faults-new-{run}"));
    for _ in 0..2 {
        assert_eq!(auth(&gate, &keys, Some(&old), None).await.0, 200);
    }
    recorded(&gate, &keys, &old, 2).await;
    let (status, issued) = admin(&gate, &keys, reqwest::Method::POST, "/sessions").await;
    assert_eq!(status, 201, "{issued}");
    let old_token = issued["token"].as_str().expect("a token").to_owned();

    // Redis loses everything, as a restart without persistence does.
    assert_eq!(redis_cli(&tools, redis.port, &["FLUSHALL"]), "OK");
    assert_eq!(redis_cli(&tools, redis.port, &["DBSIZE"]), "0");
    // Redis is the truth for tokens: the old one is gone, answered as
    // unknown (not as an outage).
    let (status, reason, _) = auth(&gate, &keys, None, Some(&old_token)).await;
    assert_eq!((status, reason.as_str()), (401, "invalid_session"));

    // New sessions are recorded again, and old ids start over.
    for _ in 0..3 {
        assert_eq!(auth(&gate, &keys, Some(&new), None).await.0, 200);
    }
    assert_eq!(auth(&gate, &keys, Some(&old), None).await.0, 200);
    let record = recorded(&gate, &keys, &new, 3).await;
    assert_eq!(record["kind"], "signed", "{record}");
    recorded(&gate, &keys, &old, 1).await;
    // A revocation made after the flush holds.
    let (status, revoked) = admin(
        &gate,
        &keys,
        reqwest::Method::DELETE,
        &format!("/sessions/{old}"),
    )
    .await;
    assert_eq!(
        (status, &revoked["revoked"]),
        (200, &json!(true)),
        "{revoked}"
    );
    let (status, reason, _) = auth(&gate, &keys, Some(&old), None).await;
    assert_eq!((status, reason.as_str()), (403, "session_revoked"));
    assert_eq!(auth(&gate, &keys, Some(&new), None).await.0, 200);
    // Tokens issued after the flush work.
    let (status, issued) = admin(&gate, &keys, reqwest::Method::POST, "/sessions").await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().expect("a token");
    assert_eq!(auth(&gate, &keys, None, Some(token)).await.0, 200);
    ready_becomes(&gate, 200).await;
    assert!(gate.proc.exited().is_none(), "telegate must not crash");
    assert_eq!(gate.proc.pid(), pid, "the same process throughout");
}

// ---------------------------------------------------------------- collector

fn collector_config(endpoint: &str, extra: &str) -> String {
    format!(
        r#"{BASE}[collector]
endpoint = "{endpoint}"
connect_timeout_secs = 1
request_timeout_secs = 5
retry_after_secs = 2
{extra}
"#
    )
}

/// A signed protobuf export to `url` (telegate's `/v1/metrics`).
async fn export_to(client: reqwest::Client, url: String, secret: String, body: Vec<u8>) -> Reply {
    let signed = kms_headers(&secret, "POST", "/v1/metrics", unix_now(), "faults-export");
    let request = client.post(url).header("Content-Type", PROTOBUF);
    let response = add_headers(request, &signed)
        .body(body)
        .send()
        .await
        .expect("telegate answers the export");
    Reply::of(response).await
}

async fn export(client: &reqwest::Client, gate: &Telegate, keys: &Keys, body: Vec<u8>) -> Reply {
    export_to(
        client.clone(),
        gate.url("/v1/metrics"),
        keys.secret.clone(),
        body,
    )
    .await
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

const MAX_IN_FLIGHT: usize = 4;
/// Exports sent at once per burst (under the per-address connection cap).
const BURST: usize = 48;
const BURSTS: usize = 3;

#[tokio::test]
async fn a_slow_collector_is_answered_busy_at_max_in_flight() {
    if require_tools("e2e_faults", &[]).is_none() {
        return;
    }
    let work = Workdir::new("telegate-e2e-faults-busy");
    let keys = keys(&work);
    let collector = FakeCollector::start().await;
    collector.answer(Script {
        delay: Duration::from_secs(2),
        ..Default::default()
    });
    let extra = format!("max_in_flight = {MAX_IN_FLIGHT}");
    let gate = Telegate::start(&work, &collector_config(&collector.url(), &extra)).await;
    let pid = gate.proc.pid();
    // About 40 KiB per export, so that holding the refused ones would show.
    let names: String = (0..2000).map(|i| format!("m{i:04}")).collect();
    let body = export_request(&names, "faults").encode_to_vec();
    let client = http_client();
    let mut rss = vec![rss_kib(pid)];
    let (mut delivered, mut busy) = (0usize, 0usize);
    for round in 0..BURSTS {
        let before = collector.received().len();
        let started = Instant::now();
        let url = gate.url("/v1/metrics");
        let replies = join_all((0..BURST).map(|_| {
            export_to(
                client.clone(),
                url.clone(),
                keys.secret.clone(),
                body.clone(),
            )
        }))
        .await;
        let mut ok = 0;
        for reply in &replies {
            match reply.status {
                200 => ok += 1,
                _ => {
                    reply.assert_refused(503, "collector_busy");
                    assert_eq!(reply.retry_after.as_deref(), Some("1"), "{reply:?}");
                }
            }
        }
        let forwarded = collector.received().len() - before;
        assert_eq!(
            forwarded, ok,
            "round {round}: only the admitted reach the collector"
        );
        assert!(
            (1..=2 * MAX_IN_FLIGHT).contains(&ok),
            "round {round}: {ok} of {BURST} delivered with {MAX_IN_FLIGHT} slots"
        );
        delivered += ok;
        busy += BURST - ok;
        rss.push(rss_kib(pid));
        eprintln!(
            "e2e_faults: burst {round}: {ok} delivered, {} busy in {:?}; VmRSS {} KiB",
            BURST - ok,
            started.elapsed(),
            rss[rss.len() - 1]
        );
    }
    let exposition = gate.metrics().await;
    let series = "telegate_ingest_requests_total{result=\"collector_busy\",signal=\"metrics\"}";
    assert_eq!(
        sample(&exposition, series),
        Some(busy as f64),
        "{exposition}"
    );
    assert!(delivered >= BURSTS, "every burst delivered some");
    // A bound, not a benchmark: after the first burst has warmed the
    // allocator, later bursts of the same size must not keep adding.
    let (first, last) = (rss[1], rss[BURSTS]);
    assert!(
        last <= first + first / 4 + 16 * 1024,
        "VmRSS grew over equal bursts: {rss:?} KiB"
    );
}

/// Runs every future at once and collects their outputs, in order.
async fn join_all<F: std::future::Future<Output = Reply> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<Reply> {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("export task"));
    }
    out
}

/// The length of the collector's answer head (status line and headers)
/// to a keep-alive export, read over a raw connection: where the cuts
/// below fall.
async fn answer_head_len(collector: SocketAddr) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(collector)
        .await
        .expect("connect");
    let request = "POST /v1/metrics HTTP/1.1\r\nhost: c\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    // Bounded: until the head is in, at most 5 s.
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut chunk))
            .await
            .expect("the collector answers in time")
            .expect("read");
        assert!(n > 0, "the collector closed before its head");
        answer.extend_from_slice(&chunk[..n]);
    }
    answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(0)
        + 4
}

#[tokio::test]
async fn a_collector_cut_mid_response_is_503_never_200() {
    if require_tools("e2e_faults", &[]).is_none() {
        return;
    }
    let work = Workdir::new("telegate-e2e-faults-cut");
    let keys = keys(&work);
    let collector = FakeCollector::start().await;
    // A partial-success answer: the body matters to the client.
    collector.answer(Script {
        body: b"\x12\x0a\x08\x01\x12\x06reject",
        ..Default::default()
    });
    let head = answer_head_len(collector.addr).await;
    let proxy = FaultProxy::start(collector.addr, 32).await;
    let endpoint = format!("http://{}", proxy.host_port());
    let gate = Telegate::start(&work, &collector_config(&endpoint, "")).await;
    let client = http_client();
    let body = export_request("faults_cut", "faults").encode_to_vec();
    assert_eq!(
        export(&client, &gate, &keys, body.clone()).await.status,
        200,
        "pass-through"
    );
    for (what, k) in [
        ("before any byte", 0),
        ("in the status line", 7),
        ("in the headers", head - 10),
        ("after the head, before the body", head),
        ("in the body", head + 4),
    ] {
        proxy.set(Fault::CloseAfter(k));
        let reply = export(&client, &gate, &keys, body.clone()).await;
        assert_ne!(reply.status, 200, "cut {what} ({k} bytes): {reply:?}");
        reply.assert_refused(503, "collector_unavailable");
        assert!(reply.retry_after.is_some(), "{reply:?}");
    }
    proxy.set(Fault::Pass);
    assert_eq!(
        export(&client, &gate, &keys, body).await.status,
        200,
        "recovered"
    );
}
