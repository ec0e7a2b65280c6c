//! The series guard and the ban counts shared by two real telegate
//! replicas on one real `redis-server` (issue 10): signed exports
//! alternating between them, offering ten times the per-metric bound in
//! new series, admit the bound in all (not the bound each); series
//! admitted through one replica flow through the other; what is dropped
//! is counted under `cardinality`; steady (known) series cost no Redis
//! call (`INFO commandstats`). Redis killed: the local bound applies,
//! counted in `{ns}_cardinality_fallback_total`. And bad signatures split
//! over both replicas ban the address once their sum reaches `refusals`,
//! though neither replica alone saw that many.
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_redis_series:: -- --nocapture`.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;

use crate::e2e_redis_abuse::{calls_between, redis_calls, Client};
use crate::support::collector::FakeCollector;
use crate::support::otlp::{gauges, text, unix_now};
use crate::support::stack::{Redis, Telegate};
use crate::support::*;

const BOUND: i64 = 100;
const PER_EXPORT: usize = 100;
const EXPORTS: usize = 10;
const METRIC: &str = "e2e.bomb";

fn config(redis: &Redis, prefix: &str, collector: &FakeCollector) -> String {
    format!(
        r#"
trusted_proxies = ["127.0.0.1/32"]
[[auth.keys]]
id = "e2e"
file = "e2e.key"
[rate_limit]
per_second = 100000
burst = 100000
[sessions]
store = "redis"
redis_url = "{url}"
redis_prefix = "{prefix}"
[collector]
endpoint = "{collector}"
[cardinality]
max_series_per_metric = {BOUND}
max_series_per_session = {BOUND}
[bans]
refusals = 20
within_secs = 60
ban_secs = 600
"#,
        url = redis.url(),
        collector = collector.url(),
    )
}

/// `n` points of [`METRIC`], series `from..from + n`.
fn bomb(from: usize, n: usize) -> Vec<u8> {
    let mut export: ExportMetricsServiceRequest = gauges("svc", &[(METRIC, n)]);
    let metric = &mut export.resource_metrics[0].scope_metrics[0].metrics[0];
    if let Some(Data::Gauge(gauge)) = metric.data.as_mut() {
        for (i, point) in gauge.data_points.iter_mut().enumerate() {
            point.attributes = vec![text("series", &(from + i).to_string())];
        }
    }
    export.encode_to_vec()
}

/// Posts `body` signed for `session`; returns the data points refused
/// (partial success).
async fn export(client: &Client, gate: &Telegate, session: &str, body: Vec<u8>) -> i64 {
    let headers = kms_headers(&client.secret, "POST", "/v1/metrics", unix_now(), session);
    let request = client
        .http
        .post(gate.url("/v1/metrics"))
        .header("Content-Type", PROTOBUF)
        .body(body);
    let reply = Reply::of(add_headers(request, &headers).send().await.unwrap()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    ExportMetricsServiceResponse::decode(&reply.body[..])
        .unwrap()
        .partial_success
        .map_or(0, |p| p.rejected_data_points)
}

fn count(metrics: &str, name: &str) -> f64 {
    sample(metrics, name).unwrap_or(0.0)
}

#[tokio::test]
async fn one_series_bound_holds_across_two_replicas() {
    let Some(tools) = require_tools("e2e_redis_series", &["redis-server", "redis-cli"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-redis-series");
    let sender = Client::setup(&work);
    let redis = Redis::start(&tools, &work).await;
    let collector = FakeCollector::start().await;
    let config = config(&redis, "series:", &collector);
    let a = Telegate::start_named(&work, "a", &config).await;
    let b = Telegate::start_named(&work, "b", &config).await;
    let gates = [&a, &b];

    // 1,000 new series of one metric, ten exports alternating: the bound in all.
    let mut rejected = 0;
    for i in 0..EXPORTS {
        let session = format!("s-{i}");
        let body = bomb(i * PER_EXPORT, PER_EXPORT);
        rejected += export(&sender, gates[i % 2], &session, body).await;
    }
    let offered = (EXPORTS * PER_EXPORT) as i64;
    let admitted = offered - rejected;
    assert!(
        (BOUND * 9 / 10..=BOUND * 11 / 10).contains(&admitted),
        "{admitted} series admitted of {offered} offered over two replicas (bound {BOUND})"
    );
    let forwarded: usize = collector
        .received()
        .iter()
        .map(|r| {
            let export = ExportMetricsServiceRequest::decode(&r.body[..]).unwrap();
            crate::support::otlp::points_by_name(&export)
                .iter()
                .map(|(_, n)| n)
                .sum::<usize>()
        })
        .sum();
    assert_eq!(forwarded as i64, admitted, "what the collector got");
    eprintln!("e2e_redis_series: {admitted} of {offered} new series admitted (bound {BOUND})");

    // The first export's series (admitted through a) flow through both,
    // and with them known everywhere, steady traffic calls no series script.
    let known = bomb(0, PER_EXPORT);
    assert_eq!(export(&sender, &b, "s-known", known.clone()).await, 0);
    assert_eq!(export(&sender, &a, "s-known", known.clone()).await, 0);
    let steady = std::env::var("E2E_SERIES_EXPORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40usize)
        .clamp(2, 20_000);
    let before = redis_calls(&tools, redis.port);
    for i in 0..steady {
        assert_eq!(
            export(&sender, gates[i % 2], "s-steady", known.clone()).await,
            0
        );
    }
    let (calls, each) = calls_between(&before, &redis_calls(&tools, redis.port));
    let series_calls = each
        .iter()
        .find(|(name, _)| name == "sismember")
        .map_or(0, |(_, n)| *n);
    assert_eq!(series_calls, 0, "known series asked Redis: {each:?}");
    eprintln!(
        "e2e_redis_series steady: {steady} exports of {PER_EXPORT} known series, \
         {calls} Redis commands in all (timers), none of them the series script: {each:?}"
    );

    // Each drop counted once, on the replica that dropped it.
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    let dropped = count(&ma, "telegate_cardinality_dropped_total")
        + count(&mb, "telegate_cardinality_dropped_total");
    let by_reason = count(
        &ma,
        "telegate_content_refused_total{reason=\"cardinality\"}",
    ) + count(
        &mb,
        "telegate_content_refused_total{reason=\"cardinality\"}",
    );
    assert_eq!((dropped, by_reason), (rejected as f64, rejected as f64));
    drop((a, b, redis));
}

#[tokio::test]
async fn with_redis_down_the_local_series_bound_applies_and_is_counted() {
    let Some(tools) = require_tools("e2e_redis_series", &["redis-server"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-redis-series-down");
    let sender = Client::setup(&work);
    let redis = Redis::start(&tools, &work).await;
    let collector = FakeCollector::start().await;
    let gate = Telegate::start(&work, &config(&redis, "down:", &collector)).await;
    drop(redis);
    let offered = BOUND as usize + 50;
    assert_eq!(export(&sender, &gate, "s-down", bomb(0, offered)).await, 50);
    // What the local guard admitted keeps flowing.
    assert_eq!(
        export(&sender, &gate, "s-down", bomb(0, BOUND as usize)).await,
        0
    );
    let metrics = gate.metrics().await;
    let fallback = count(&metrics, "telegate_cardinality_fallback_total");
    assert!(fallback >= 1.0, "the fallback is counted: {fallback}");
    assert_eq!(count(&metrics, "telegate_cardinality_dropped_total"), 50.0);
}

#[tokio::test]
async fn bad_signatures_split_over_two_replicas_add_up_to_a_ban() {
    let Some(tools) = require_tools("e2e_redis_series", &["redis-server"]) else {
        return;
    };
    let work = Workdir::new("telegate-e2e-redis-ban-counts");
    let sender = Client::setup(&work);
    let redis = Redis::start(&tools, &work).await;
    let collector = FakeCollector::start().await;
    let config = config(&redis, "bans:", &collector);
    let a = Telegate::start_named(&work, "a", &config).await;
    let b = Telegate::start_named(&work, "b", &config).await;
    // 20 forgeries (`refusals`), 10 on each: neither replica bans on its own count.
    let attacker = "198.51.100.77";
    for i in 0..20 {
        let gate = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            sender.auth(gate, "s", attacker, true).await,
            (403, "bad_signature".into()),
            "forgery {i}"
        );
    }
    for gate in [&a, &b] {
        poll_until(
            "both replicas to enforce the shared ban",
            Duration::from_secs(4),
            || async {
                match sender.auth(gate, "s", attacker, false).await {
                    (403, reason) if reason == "banned" => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    }
    assert_eq!(
        sender.auth(&a, "s", "198.51.100.78", false).await.0,
        200,
        "another address is not banned"
    );
    let bans = count(&a.metrics().await, "telegate_bans_total")
        + count(&b.metrics().await, "telegate_bans_total");
    assert_eq!(bans, 1.0, "one ban, counted by the replica that tripped it");
    drop((a, b, redis));
}
