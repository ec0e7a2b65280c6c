//! Tests of the metric registry: the names under each namespace, the key
//! expiry series, and what a rate-limited refusal counts.

use super::*;

#[test]
fn the_kotormodsync_namespace_gives_the_original_names() {
    let metrics = Metrics::new("kotormodsync").unwrap();
    metrics.auth_total.inc();
    metrics.auth_success.inc();
    metrics.record_reject(&Reject::BadSignature);
    let text = String::from_utf8(metrics.render().unwrap()).unwrap();
    assert!(text.contains("kotormodsync_auth_total 1"), "{text}");
    assert!(text.contains("kotormodsync_auth_success 1"), "{text}");
    assert!(
        text.contains("kotormodsync_auth_failed{reason=\"bad_signature\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("kotormodsync_auth_failed{reason=\"stale_timestamp\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("kotormodsync_keyring_reloads_total{result=\"error\"} 0"),
        "{text}"
    );
}

#[test]
fn the_default_namespace_follows_the_prometheus_conventions() {
    let metrics = Metrics::new("telegate").unwrap();
    metrics.auth_success.inc();
    metrics.record_reject(&Reject::BadSignature);
    let text = String::from_utf8(metrics.render().unwrap()).unwrap();
    assert!(text.contains("telegate_auth_success_total 1"), "{text}");
    assert!(
        text.contains("telegate_auth_failed_total{reason=\"bad_signature\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "telegate_build_info{{revision=\"{}\",version=\"{}\"}} 1",
            metric_names::REVISION,
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains("telegate_config_last_reload_success_timestamp_seconds 0"));
    for family in metrics.registry.gather() {
        if family.get_field_type() == prometheus::proto::MetricType::COUNTER {
            assert!(family.name().ends_with("_total"), "{}", family.name());
        }
    }
    // Under the original namespace only these two differ.
    let original = Metrics::new("kotormodsync").unwrap();
    let names = |m: &Metrics, ns: &str| -> Vec<String> {
        let prefix = format!("{ns}_");
        let mut names: Vec<String> = m
            .registry
            .gather()
            .iter()
            .map(|f| f.name().trim_start_matches(prefix.as_str()).to_string())
            .collect();
        names.sort();
        names
    };
    let renamed: Vec<String> = names(&original, "kotormodsync")
        .into_iter()
        .map(|n| match n.as_str() {
            "auth_success" | "auth_failed" => format!("{n}_total"),
            _ => n,
        })
        .collect();
    let mut renamed = renamed;
    renamed.sort();
    assert_eq!(renamed, names(&metrics, "telegate"));
}

#[test]
fn key_not_after_series_follow_the_ring() {
    let metrics = Metrics::new("telegate").unwrap();
    metrics.set_key_not_after([("old", Some(1_700_000_000)), ("new", None)]);
    let text = String::from_utf8(metrics.render().unwrap()).unwrap();
    assert!(
        text.contains("telegate_key_not_after_seconds{key_id=\"old\"} 1700000000"),
        "{text}"
    );
    assert!(!text.contains("key_id=\"new\""), "{text}");
    metrics.set_key_not_after([("new", Some(1_800_000_000))]);
    let text = String::from_utf8(metrics.render().unwrap()).unwrap();
    assert!(
        !text.contains("key_id=\"old\""),
        "a dropped key's series goes: {text}"
    );
}

#[test]
fn rate_limited_refusals_count_twice_over() {
    let metrics = Metrics::new("telegate").unwrap();
    metrics.record_reject(&Reject::RateLimited {
        retry_after_secs: 1,
    });
    assert_eq!(metrics.rate_limited_total.get(), 1);
    assert_eq!(
        metrics
            .auth_failed
            .with_label_values(&["rate_limited"])
            .get(),
        1
    );
}
