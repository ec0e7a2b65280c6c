//! End to end with the real collector (rotel prints every data point it
//! decodes): the content policy and the series guard in front of it, and
//! the OpenTelemetry Python SDK's exporter reading telegate's partial
//! success without retrying it.
//!
//! ```text
//! reqwest / otel-python --signed POST /v1/metrics--> telegate ([content], [cardinality]) --> rotel
//! ```
//!
//! Run: `E2E_REQUIRE_TOOLS=1 cargo test --test it e2e_content:: -- --nocapture`.

use std::time::Duration;

use crate::support::otlp::{gauges, unix_now};
use crate::support::stack::{keygen, Rotel, Telegate};
use crate::support::tools::otel_python;
use crate::support::{
    add_headers, http_client, kms_headers, require_tools, sample, Reply, Workdir, PROTOBUF,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

fn config(collector: &str, extra: &str) -> String {
    format!(
        r#"
[[auth.keys]]
id = "e2e"
file = "e2e.key"
[rate_limit]
per_second = 1000
burst = 1000
[ingest]
mode = "validate"
[collector]
endpoint = "{collector}"
request_timeout_secs = 3
[content]
metric_names = ["kotormodsync.*"]
{extra}
[cardinality]
max_series_per_metric = 1000
max_series_per_session = 1000
"#
    )
}

async fn post(url: &str, secret: &str, session: &str, body: Vec<u8>) -> Reply {
    let signed = kms_headers(secret, "POST", "/v1/metrics", unix_now(), session);
    let request = http_client().post(url).header("Content-Type", PROTOBUF);
    let request = add_headers(request, &signed).body(body);
    Reply::of(request.send().await.expect("POST to telegate")).await
}

fn rejected(reply: &Reply) -> i64 {
    assert_eq!(reply.status, 200, "{reply:?}");
    ExportMetricsServiceResponse::decode(&reply.body[..])
        .expect("a protobuf ExportMetricsServiceResponse")
        .partial_success
        .map_or(0, |p| p.rejected_data_points)
}

/// Data points of `metric` rotel printed: it prints each point's
/// attributes, so the points of a gauge whose every point carries
/// `series` are the `-> series:` lines after the metric's name.
fn points_seen(output: &str, metric: &str) -> usize {
    let Some(start) = output.find(&format!("-> Name: {metric}\n")) else {
        return 0;
    };
    output[start..]
        .lines()
        .skip(1)
        .take_while(|line| !line.contains("-> Name: "))
        .filter(|line| line.contains("-> series: "))
        .count()
}

/// A work dir holding a fresh key, this run's id, and rotel started in it.
async fn setup(tools: &crate::support::Tools, name: &str) -> (Workdir, String, String, Rotel) {
    let work = Workdir::new(name);
    let secret = keygen();
    let run = keygen()[..12].to_owned();
    work.write("e2e.key", &secret);
    let rotel = Rotel::start(tools, &work).await;
    (work, secret, run, rotel)
}

#[tokio::test]
async fn the_real_collector_gets_only_what_the_policy_and_the_bound_admit() {
    let Some(tools) = require_tools("e2e_content", &["rotel-agent"]) else {
        return;
    };
    let (work, secret, run, mut rotel) = setup(&tools, "telegate-e2e-content").await;
    let drop = Telegate::start(&work, &config(&rotel.url(), "")).await;
    let reject_dir = Workdir::new("telegate-e2e-content-reject");
    reject_dir.write("e2e.key", &secret);
    let reject = Telegate::start(
        &reject_dir,
        &config(&rotel.url(), "on_violation = \"reject\""),
    )
    .await;
    let session = format!("e2e-content-{run}");

    // 1. 10,000 new series for one metric: at most the bound arrives.
    let bomb = format!("kotormodsync.bomb_{run}");
    let body = gauges("KOTORModSync", &[(&bomb, 10_000)]).encode_to_vec();
    let reply = post(&drop.url("/v1/metrics"), &secret, &session, body).await;
    assert_eq!(rejected(&reply), 9_000, "{reply:?}");
    rotel
        .wait_for(&format!("-> Name: {bomb}\n"), DELIVERY_TIMEOUT)
        .await;

    // 2. A disallowed metric beside an allowed one: only the allowed arrives.
    let spam = format!("spam_{run}");
    let ok = format!("kotormodsync.ok_{run}");
    let body = gauges("KOTORModSync", &[(&spam, 2), (&ok, 2)]).encode_to_vec();
    let reply = post(&drop.url("/v1/metrics"), &secret, &session, body.clone()).await;
    assert_eq!(rejected(&reply), 2, "{reply:?}");
    rotel
        .wait_for(&format!("-> Name: {ok}\n"), DELIVERY_TIMEOUT)
        .await;

    // 3. Reject mode: 400, and nothing reaches rotel (a later export does).
    let rejected_name = format!("kotormodsync.rejected_{run}");
    let body = gauges("KOTORModSync", &[(&spam, 1), (&rejected_name, 1)]).encode_to_vec();
    let reply = post(&reject.url("/v1/metrics"), &secret, &session, body).await;
    reply.assert_refused(400, "content_rejected");
    let sentinel = format!("kotormodsync.sentinel_{run}");
    let body = gauges("KOTORModSync", &[(&sentinel, 1)]).encode_to_vec();
    let reply = post(&reject.url("/v1/metrics"), &secret, &session, body).await;
    assert_eq!(rejected(&reply), 0, "{reply:?}");
    rotel
        .wait_for(&format!("-> Name: {sentinel}\n"), DELIVERY_TIMEOUT)
        .await;

    let seen = rotel.output();
    assert_eq!(points_seen(&seen, &bomb), 1000, "the bound, no more");
    assert!(
        !seen.contains(&spam),
        "a disallowed metric reached the collector"
    );
    assert!(
        !seen.contains(&rejected_name),
        "a rejected export reached the collector"
    );
    let text = drop.metrics().await;
    assert_eq!(
        sample(&text, "telegate_cardinality_dropped_total"),
        Some(9_000.0)
    );
    assert_eq!(
        sample(
            &text,
            "telegate_content_refused_total{reason=\"metric_name\"}"
        ),
        Some(2.0)
    );
    let text = reject.metrics().await;
    assert_eq!(
        sample(
            &text,
            "telegate_content_refused_total{reason=\"metric_name\"}"
        ),
        Some(2.0),
        "both items of the rejected export"
    );
    eprintln!("e2e_content: run {run}: ok");
}

#[tokio::test]
async fn the_python_sdk_takes_the_partial_success_and_does_not_retry() {
    let Some(tools) = require_tools("e2e_content", &["rotel-agent", "otel-python"]) else {
        return;
    };
    let (work, _, run, mut rotel) = setup(&tools, "telegate-e2e-content-python").await;
    let key = work.path().join("e2e.key");
    let telegate = Telegate::start(&work, &config(&rotel.url(), "")).await;
    let ok = format!("kotormodsync.python_{run}");
    let spam = format!("spam_python_{run}");
    let args = vec![
        telegate.url("/v1/metrics"),
        key.to_str().expect("utf-8 path").to_owned(),
        format!("e2e-python-{run}"),
        ok,
        spam,
    ];
    let (stdout, stderr) = otel_python(&tools, "otel_sdk_export.py", args).await;
    let answers: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("answer "))
        .collect();
    assert_eq!(
        answers,
        ["answer status=200 rejected=1 message=telegate refused 1 data points (metric_name 1)"],
        "one answer, no retry\n{stderr}"
    );
    assert!(stdout.contains("result=SUCCESS"), "{stdout}\n{stderr}");
    assert!(
        !stderr.contains("retrying") && !stderr.contains("Failed to export"),
        "the SDK treated a partial success as an error:\n{stderr}"
    );
    let ok = format!("kotormodsync.python_{run}");
    rotel
        .wait_for(&format!("-> Name: {ok}\n"), DELIVERY_TIMEOUT)
        .await;
    assert!(!rotel.output().contains(&format!("spam_python_{run}")));
    let text = telegate.metrics().await;
    assert_eq!(
        sample(
            &text,
            "telegate_ingest_requests_total{result=\"delivered\",signal=\"metrics\"}"
        ),
        Some(1.0),
        "exactly one export: no retry"
    );
    eprintln!("e2e_content python: run {run}: ok; the SDK logged: {stderr:?}");
}
