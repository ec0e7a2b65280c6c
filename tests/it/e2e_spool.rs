//! End to end, the durable ingest spool with the real collector (rotel) and
//! the telegate binary, and a client that never retries (the shipped
//! client's behaviour): what was answered 200 is what the collector gets.
//!
//! 1. rotel stopped for 20 s (the issue's outage: many failed drain
//!    attempts, the backoff at its cap)
//!    while two sessions export through `POST /` and `/v1/metrics`: every
//!    200 arrives after rotel returns, in order per session.
//! 2. A small `spool.max_bytes`: 503 `spool_full` once full, refused
//!    exports never arrive, the file stops growing at the bound, and the
//!    drain frees room once the collector is back.
//! 3. `kill -9` of telegate during a load, with a backlog on disk: after a
//!    restart every 200 reaches rotel; duplicates only for in-flight ones.
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_spool:: -- --nocapture`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::otlp::{export_request, unix_now};
use crate::support::stack::{keygen, Rotel, Telegate};
use crate::support::{
    add_headers, free_port, http_client, kms_headers, poll_until, require_tools, Reply, Workdir,
    PROTOBUF,
};
use prost::Message;

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

fn config(collector: &str, max_bytes: u64) -> String {
    format!(
        r#"
trusted_proxies = ["127.0.0.1/32"]
[[auth.keys]]
id = "e2e"
file = "e2e.key"
[rate_limit]
per_second = 10000
burst = 10000
[collector]
endpoint = "{collector}"
connect_timeout_secs = 1
request_timeout_secs = 3
retry_after_secs = 1
[spool]
enabled = true
dir = "spool"
max_bytes = {max_bytes}
"#
    )
}

/// One export of metric `name` (padded by `pad` bytes in an attribute),
/// through `POST /` when `bare`, else `/v1/metrics`; never retried.
async fn send(
    http: &reqwest::Client,
    base: &str,
    secret: &str,
    session: &str,
    name: &str,
    bare: bool,
    pad: usize,
) -> Reply {
    let mut export = export_request(name, "spool");
    if pad > 0 {
        let resource = export.resource_metrics[0].resource.as_mut().unwrap();
        resource
            .attributes
            .push(crate::support::otlp::text("pad", &"p".repeat(pad)));
    }
    let headers = kms_headers(secret, "POST", "/v1/metrics", unix_now(), session);
    let url = format!("{base}{}", if bare { "/" } else { "/v1/metrics" });
    let request = add_headers(http.post(url), &headers).header("Content-Type", PROTOBUF);
    match request.body(export.encode_to_vec()).send().await {
        Ok(response) => Reply::of(response).await,
        Err(err) => Reply {
            status: 0,
            content_type: None,
            retry_after: None,
            body: err.to_string().into_bytes(),
        },
    }
}

/// Metric names rotel printed, in order, across its logs.
fn delivered(work: &Workdir, logs: &[&str], prefix: &str) -> Vec<String> {
    let needle = format!("-> Name: {prefix}");
    logs.iter()
        .map(|log| std::fs::read_to_string(work.path().join(log)).unwrap_or_default())
        .flat_map(|text| {
            text.lines()
                .filter_map(|line| {
                    line.split_once(&needle)
                        .map(|(_, rest)| format!("{prefix}{}", rest.trim()))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn until_delivered(
    work: &Workdir,
    logs: &[&str],
    prefix: &str,
    wanted: &[String],
) -> Vec<String> {
    poll_until("every 200 in rotel's output", DELIVERY_TIMEOUT, || async {
        let seen = delivered(work, logs, prefix);
        let missing = wanted.iter().filter(|w| !seen.contains(w)).count();
        if missing == 0 {
            Ok(seen)
        } else {
            Err(format!("{missing} of {} missing", wanted.len()))
        }
    })
    .await
    .unwrap()
}

/// `spool.db` and its WAL, in bytes.
fn spool_size(work: &Workdir) -> u64 {
    ["spool.db", "spool.db-wal"]
        .iter()
        .map(|f| std::fs::metadata(work.path().join("spool").join(f)).map_or(0, |m| m.len()))
        .sum()
}

fn setup(name: &str) -> Option<(crate::support::Tools, Workdir, String, String)> {
    let tools = require_tools(name, &["rotel-agent"])?;
    let work = Workdir::new(&format!("telegate-{name}"));
    let secret = keygen();
    work.write("e2e.key", &secret);
    let run = keygen()[..10].to_owned();
    Some((tools, work, secret, run))
}

/// Two sessions exporting, alternating `POST /` and `/v1/metrics`.
struct Outage {
    http: reqwest::Client,
    base: String,
    secret: String,
    sessions: [String; 2],
    prefix: String,
}

impl Outage {
    /// One export per session; every answer recorded.
    async fn round(&self, seq: usize, answered: &mut Vec<(usize, String, u16)>) {
        for (s, session) in self.sessions.iter().enumerate() {
            let name = format!("{}{s}_{seq:04}", self.prefix);
            let reply = send(
                &self.http,
                &self.base,
                &self.secret,
                session,
                &name,
                seq % 2 == 0,
                0,
            )
            .await;
            answered.push((s, name, reply.status));
        }
    }
}

#[tokio::test]
async fn a_collector_outage_loses_no_export_answered_200() {
    let Some((tools, work, secret, run)) = setup("e2e_spool_outage") else {
        return;
    };
    let rotel = Rotel::start(&tools, &work).await;
    let telegate = Telegate::start(&work, &config(&rotel.url(), 64 << 20)).await;
    let client = Outage {
        http: http_client(),
        base: telegate.url(""),
        secret: secret.clone(),
        sessions: [format!("spool-a-{run}"), format!("spool-b-{run}")],
        prefix: format!("o_{run}_"),
    };
    let prefix = client.prefix.clone();
    let mut answered: Vec<(usize, String, u16)> = Vec::new();
    let mut seq = 0;
    for _ in 0..5 {
        {
            seq += 1;
            client.round(seq, &mut answered).await;
        }
    }
    // rotel acknowledges before it prints, and the kill below is a SIGKILL:
    // an export acknowledged in the last few milliseconds would be lost by
    // the collector, not by telegate. Wait until rotel printed all of them.
    let before: Vec<String> = answered.iter().map(|(_, n, _)| n.clone()).collect();
    until_delivered(&work, &["rotel.log"], &prefix, &before).await;
    let (http_port, grpc_port) = (rotel.http_port, rotel.grpc_port);
    drop(rotel);
    let outage = Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(200));
    let mut during = 0;
    while outage.elapsed() < Duration::from_secs(20) && during < 250 {
        pace.tick().await;
        {
            seq += 1;
            client.round(seq, &mut answered).await;
        }
        during += 2;
    }
    let _rotel = Rotel::start_on(&tools, &work, http_port, grpc_port, "rotel-2.log").await;
    for _ in 0..5 {
        {
            seq += 1;
            client.round(seq, &mut answered).await;
        }
    }
    let refused: Vec<_> = answered
        .iter()
        .filter(|(_, _, status)| *status != 200)
        .collect();
    assert!(
        refused.is_empty(),
        "the spool had room for every export: {refused:?}"
    );
    let wanted: Vec<String> = answered.iter().map(|(_, n, _)| n.clone()).collect();
    let seen = until_delivered(&work, &["rotel.log", "rotel-2.log"], &prefix, &wanted).await;
    for s in 0..2 {
        let mine: Vec<&String> = seen
            .iter()
            .filter(|n| n.starts_with(&format!("{prefix}{s}_")))
            .collect();
        let mut sorted = mine.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(mine, sorted, "session {s}: in order, once each");
    }
    // rotel prints an export before telegate has its answer and counts it.
    let total = wanted.len() as f64;
    poll_until("every delivery counted", Duration::from_secs(5), || async {
        let metrics = telegate.metrics().await;
        match crate::support::sample(&metrics, "telegate_spool_delivered_total") {
            Some(n) if n == total => Ok(()),
            other => Err(format!("{other:?} of {total}")),
        }
    })
    .await
    .unwrap();
    eprintln!(
        "e2e_spool outage: {} exports, {during} during a {:?} outage: all delivered in order",
        wanted.len(),
        outage.elapsed()
    );
}

#[tokio::test]
async fn a_full_spool_refuses_new_exports_and_never_outgrows_its_bound() {
    let Some((tools, work, secret, run)) = setup("e2e_spool_full") else {
        return;
    };
    let (http_port, grpc_port) = (free_port(), free_port());
    let max_bytes = 32 * 1024;
    let telegate = Telegate::start(
        &work,
        &config(&format!("http://127.0.0.1:{http_port}"), max_bytes),
    )
    .await;
    let (http, base, session) = (http_client(), telegate.url(""), format!("full-{run}"));
    let prefix = format!("f_{run}_");
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for seq in 0..60 {
        let name = format!("{prefix}{seq:03}");
        let reply = send(&http, &base, &secret, &session, &name, false, 2000).await;
        match reply.status {
            200 if refused.is_empty() => accepted.push(name),
            503 => {
                assert_eq!(reply.reason().as_deref(), Some("spool_full"), "{reply:?}");
                assert!(reply.retry_after.is_some(), "{reply:?}");
                refused.push(name);
            }
            _ => panic!("{name}: {reply:?}"),
        }
        if refused.len() == 1 {
            break;
        }
    }
    assert!(
        (5..60).contains(&accepted.len()),
        "{} accepted",
        accepted.len()
    );
    let full = spool_size(&work);
    for seq in 0..10 {
        let name = format!("{prefix}r{seq:02}");
        let reply = send(&http, &base, &secret, &session, &name, true, 2000).await;
        reply.assert_refused(503, "spool_full");
        refused.push(name);
    }
    assert_eq!(spool_size(&work), full, "refused exports write nothing");
    // Pages and the WAL cost more than the bodies, but a bounded amount.
    assert!(
        full <= 8 * max_bytes + 256 * 1024,
        "spool files: {full} bytes"
    );
    let _rotel = Rotel::start_on(&tools, &work, http_port, grpc_port, "rotel.log").await;
    let seen = until_delivered(&work, &["rotel.log"], &prefix, &accepted).await;
    assert_eq!(seen.len(), accepted.len(), "{seen:?}");
    poll_until("an empty spool", Duration::from_secs(10), || async {
        let m = telegate.metrics().await;
        match crate::support::sample(&m, "telegate_spool_exports") {
            Some(0.0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    let after = format!("{prefix}after");
    let reply = send(&http, &base, &secret, &session, &after, false, 2000).await;
    assert_eq!(reply.status, 200, "the drain made room: {reply:?}");
    let seen = until_delivered(&work, &["rotel.log"], &prefix, &[after]).await;
    for name in &refused {
        assert!(
            !seen.contains(name),
            "{name} was refused and must never arrive"
        );
    }
    assert!(
        spool_size(&work) <= full,
        "the file did not grow past the full spool's"
    );
    eprintln!(
        "e2e_spool full: {} accepted, {} refused, spool files at most {full} bytes",
        accepted.len(),
        refused.len()
    );
}

#[tokio::test]
async fn kill_9_then_restart_delivers_every_export_answered_200() {
    let Some((tools, work, secret, run)) = setup("e2e_spool_kill") else {
        return;
    };
    let rotel = Rotel::start(&tools, &work).await;
    let (http_port, grpc_port) = (rotel.http_port, rotel.grpc_port);
    let telegate = Telegate::start(&work, &config(&rotel.url(), 64 << 20)).await;
    let prefix = format!("k_{run}_");
    let oks = Arc::new(Mutex::new(Vec::new()));
    let base = telegate.url("");
    let load: Vec<_> = (0..4)
        .map(|task| {
            let (oks, base, secret, prefix) =
                (oks.clone(), base.clone(), secret.clone(), prefix.clone());
            let session = format!("kill-{task}-{run}");
            tokio::spawn(async move {
                let http = http_client();
                for seq in 0..400 {
                    let name = format!("{prefix}{task}_{seq:04}");
                    let reply = send(&http, &base, &secret, &session, &name, seq % 2 == 0, 0).await;
                    if reply.status != 200 {
                        return; // the shipped client never retries
                    }
                    oks.lock().unwrap().push(name);
                }
            })
        })
        .collect();
    let count = || oks.lock().unwrap().len();
    poll_until("40 exports answered", Duration::from_secs(10), || async {
        if count() >= 40 {
            Ok(())
        } else {
            Err(format!("{}", count()))
        }
    })
    .await
    .unwrap();
    // A backlog on disk at the kill: the collector goes away first.
    drop(rotel);
    let at_outage = count();
    poll_until("40 more spooled", Duration::from_secs(10), || async {
        if count() >= at_outage + 40 {
            Ok(())
        } else {
            Err(format!("{}", count()))
        }
    })
    .await
    .unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", &telegate.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for task in load {
        task.await.unwrap();
    }
    let wanted = oks.lock().unwrap().clone();
    let _rotel = Rotel::start_on(&tools, &work, http_port, grpc_port, "rotel-2.log").await;
    let restarted = Telegate::start_named(
        &work,
        "telegate-2",
        &config(&format!("http://127.0.0.1:{http_port}"), 64 << 20),
    )
    .await;
    let seen = until_delivered(&work, &["rotel.log", "rotel-2.log"], &prefix, &wanted).await;
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    let duplicates = seen.len() - unique.len();
    let extra = unique.iter().filter(|n| !wanted.contains(n)).count();
    // In flight at the kill: at most the forwarder's one unacknowledged
    // batch (duplicates) and the four requests without an answer (extra).
    assert!(duplicates <= 64, "{duplicates} duplicates");
    assert!(extra <= 4, "{extra} delivered without a 200");
    poll_until("the deliveries counted", Duration::from_secs(5), || async {
        let metrics = restarted.metrics().await;
        match crate::support::sample(&metrics, "telegate_spool_delivered_total") {
            Some(n) if n >= 1.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    eprintln!(
        "e2e_spool kill -9: {} answered 200 ({at_outage} before the outage), all delivered; {duplicates} duplicates, {extra} delivered unanswered",
        wanted.len()
    );
}
