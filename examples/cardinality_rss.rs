//! Memory held by the series guard (`[cardinality]`, docs/benchmarks.md)
//! with 1,000,000 distinct series offered: each one a data point with its
//! own attribute set, spread over METRICS metric names and 5,000 sessions,
//! at the bound (1000 series per metric) and the defaults
//! (`max_metrics` 10,000, `max_sessions` 100,000). Prints what was
//! admitted, the hashes held and the process's resident set.
//!
//!   cargo run --release --example cardinality_rss [-- SERIES METRICS]
//!
//! One metric is the cardinality bomb (1000 kept); 1000 metrics fill every
//! bound (1M kept: the most 1M offered can hold); 20,000 metrics also hit
//! `max_metrics`. The worst case over any traffic is max_metrics x
//! max_series_per_metric hashes (10M at the defaults).

#[path = "support/rss.rs"]
mod rss;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use telegate::config::CardinalitySettings;
use telegate::ingest::cardinality::{Guard, Judge, Part};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let series: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let metrics: usize = args.next().map_or(Ok(1), |a| a.parse())?;
    let guard = Guard::new(CardinalitySettings {
        max_series_per_metric: 1000,
        max_series_per_session: 1000,
        window: Duration::from_secs(3600),
        max_metrics: 10_000,
        max_sessions: 100_000,
        resource_keys: vec!["service.name".into()],
    });
    let names: Vec<String> = (0..metrics)
        .map(|m| format!("kotormodsync.metric_{m}"))
        .collect();
    let sessions: Vec<String> = (0..5000).map(|s| format!("session-{s:08}")).collect();
    let baseline = rss::status_kib("VmRSS");
    let started = Instant::now();
    let mut admitted = 0usize;
    for i in 0..series {
        let mut admit = guard.begin(1_800_000_000, &sessions[i % sessions.len()]);
        let attributes = [KeyValue {
            key: "series".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(i as i64)),
            }),
        }];
        admitted += usize::from(admit.point(&names[i % metrics], &attributes, Part::default()));
    }
    let elapsed = started.elapsed();
    let (tracked, hashes) = guard.tracked();
    let rss = rss::status_kib("VmRSS");
    println!(
        "series_offered={series} metrics={metrics} admitted={admitted} names_tracked={tracked} hashes_held={hashes} rss_mib={:.1} baseline_rss_mib={:.1} guard_mib={:.1} peak_rss_mib={:.1} ns_per_point={:.0}",
        rss as f64 / 1024.0,
        baseline as f64 / 1024.0,
        rss.saturating_sub(baseline) as f64 / 1024.0,
        rss::status_kib("VmHWM") as f64 / 1024.0,
        elapsed.as_nanos() as f64 / series.max(1) as f64,
    );
    Ok(())
}
