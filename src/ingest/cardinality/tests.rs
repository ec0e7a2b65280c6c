//! The guard's bounds: per metric, per session, on metric names, and the
//! rotating window; `now` is passed in, never read.

use super::*;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use std::time::Duration;

fn settings(per_metric: usize, per_session: usize, max_metrics: usize) -> CardinalitySettings {
    CardinalitySettings {
        max_series_per_metric: per_metric,
        max_series_per_session: per_session,
        window: Duration::from_secs(60),
        max_metrics,
        max_sessions: 1000,
        resource_keys: vec!["service.instance.id".into()],
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

fn point(admit: &mut Admit<'_>, metric: &str, i: usize) -> bool {
    admit.point(metric, &[kv("i", &i.to_string())], Part::default())
}

#[test]
fn new_series_past_the_bound_are_refused_known_ones_flow() {
    let guard = Guard::new(settings(3, 3, 10));
    let mut admit = guard.begin(0, "s");
    assert!((0..3).all(|i| point(&mut admit, "m", i)));
    assert!(!point(&mut admit, "m", 3), "a fourth series");
    assert!(point(&mut admit, "m", 1), "a known series keeps flowing");
    assert!(
        point(&mut admit, "other", 3),
        "each metric has its own bound"
    );
    drop(admit);
    assert_eq!(guard.tracked(), (2, 4));
}

#[test]
fn a_series_is_its_attributes_in_any_order_and_its_resource_keys() {
    let guard = Guard::new(settings(10, 10, 10));
    let mut admit = guard.begin(0, "s");
    let (a, b) = (kv("a", "1"), kv("b", "2"));
    assert!(admit.point("m", &[a.clone(), b.clone()], Part::default()));
    assert!(admit.point("m", &[b.clone(), a.clone()], Part::default()));
    let counted = admit.resource(&[kv("service.instance.id", "i-1"), kv("os", "x")]);
    let ignored = admit.resource(&[kv("os", "y")]);
    assert_eq!(
        ignored,
        Part::default(),
        "keys outside resource_keys are not part of a series"
    );
    assert!(admit.point("m", &[a.clone(), b.clone()], counted));
    drop(admit);
    assert_eq!(guard.tracked(), (1, 2));
}

#[test]
fn one_session_cannot_take_the_whole_bound() {
    let guard = Guard::new(settings(10, 2, 10));
    let mut admit = guard.begin(0, "greedy");
    assert!(point(&mut admit, "m", 0) && point(&mut admit, "m", 1));
    assert!(!point(&mut admit, "m", 2));
    drop(admit);
    let mut admit = guard.begin(0, "polite");
    assert!(point(&mut admit, "m", 2));
    assert!(point(&mut admit, "m", 0), "known series flow for everyone");
}

#[test]
fn metric_names_past_max_metrics_are_over_their_bound() {
    let guard = Guard::new(settings(10, 10, 2));
    let mut admit = guard.begin(0, "s");
    assert!(point(&mut admit, "a", 0) && point(&mut admit, "b", 0));
    assert!(!point(&mut admit, "c", 0));
    assert!(point(&mut admit, "a", 1));
}

#[test]
fn windows_rotate_and_quiet_series_age_out() {
    let guard = Guard::new(settings(2, 2, 10));
    let mut admit = guard.begin(0, "s");
    assert!(point(&mut admit, "m", 0) && point(&mut admit, "m", 1));
    drop(admit);
    // Next window: both still known (previous), no room for a new one.
    let mut admit = guard.begin(60, "s");
    assert!(!point(&mut admit, "m", 2));
    assert!(point(&mut admit, "m", 0), "moves to the current window");
    drop(admit);
    // One more: series 1 was quiet a whole window and is gone.
    let mut admit = guard.begin(120, "s");
    assert!(point(&mut admit, "m", 2));
    assert!(point(&mut admit, "m", 0));
    assert!(!point(&mut admit, "m", 1));
    drop(admit);
    // Quiet for two windows: everything forgotten.
    let _ = guard.begin(300, "s");
    assert_eq!(guard.tracked(), (0, 0));
}

#[test]
fn the_status_page_sees_the_nearest_first() {
    let guard = Guard::new(settings(10, 10, 10));
    let mut admit = guard.begin(0, "s");
    for i in 0..5 {
        point(&mut admit, "busy", i);
    }
    point(&mut admit, "calm", 0);
    drop(admit);
    let near = guard.nearest(1);
    assert_eq!(
        near,
        vec![Usage {
            metric: "busy".into(),
            series: 5,
            bound: 10
        }]
    );
}
