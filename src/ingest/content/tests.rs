//! Each rule on a decoded export: what is removed, what is counted under
//! which reason, what stays untouched; `reject` refuses whole and spends
//! no series.

use super::*;
use crate::config::glob::Globs;
use crate::config::CardinalitySettings;
use crate::ingest::cardinality::Guard;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

fn globs(patterns: &[&str]) -> Option<Globs> {
    let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
    Some(Globs::new("t", &patterns).unwrap())
}

fn policy() -> ContentSettings {
    ContentSettings {
        on_violation: OnViolation::Drop,
        service_names: None,
        metric_names: None,
        span_names: None,
        log_names: None,
        allowed_resource_attribute_keys: None,
        denied_resource_attribute_keys: None,
        allowed_attribute_keys: None,
        denied_attribute_keys: None,
        max_attributes: None,
        max_attribute_value_bytes: None,
        max_items_per_export: None,
    }
}

/// One resource (`service`) with one metric per (name, point attribute sets).
fn metrics(service: &str, metrics: &[(&str, Vec<Vec<KeyValue>>)]) -> Export {
    let metrics = metrics
        .iter()
        .map(|(name, points)| Metric {
            name: name.to_string(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: points
                    .iter()
                    .map(|attributes| NumberDataPoint {
                        attributes: attributes.clone(),
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        })
        .collect();
    Export::Metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

fn counts(r: &Refusals) -> Vec<(&'static str, u64)> {
    r.counts().collect()
}

#[test]
fn a_disallowed_metric_goes_with_its_points_the_rest_untouched() {
    let mut p = policy();
    p.metric_names = globs(&["kotormodsync.*"]);
    let mut export = metrics(
        "svc",
        &[
            ("kotormodsync.ok", vec![vec![], vec![kv("a", "1")]]),
            ("spam", vec![vec![], vec![], vec![]]),
        ],
    );
    let refused = apply(&mut export, Some(&p), None).unwrap();
    assert_eq!(counts(&refused), [("metric_name", 3)]);
    assert_eq!(export.items(), 2);
    let Export::Metrics(m) = &export else {
        panic!()
    };
    let names: Vec<&str> = m.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["kotormodsync.ok"]);

    let mut clean = metrics("svc", &[("kotormodsync.ok", vec![vec![]])]);
    let before = clean.clone();
    assert_eq!(apply(&mut clean, Some(&p), None).unwrap().total(), 0);
    assert_eq!(clean, before, "nothing refused, nothing changed");
}

#[test]
fn a_disallowed_service_takes_its_whole_resource() {
    let mut p = policy();
    p.service_names = Some(vec!["KOTORModSync".into()]);
    let mut export = metrics("evil", &[("m", vec![vec![], vec![]])]);
    let refused = apply(&mut export, Some(&p), None).unwrap();
    assert_eq!(counts(&refused), [("service_name", 2)]);
    let Export::Metrics(m) = &export else {
        panic!()
    };
    assert!(m.resource_metrics.is_empty(), "emptied resource removed");
    let mut ok = metrics("KOTORModSync", &[("m", vec![vec![]])]);
    assert_eq!(apply(&mut ok, Some(&p), None).unwrap().total(), 0);
}

#[test]
fn attribute_rules_on_points_and_resources() {
    let mut p = policy();
    p.denied_attribute_keys = globs(&["user.*"]);
    p.max_attributes = Some(2);
    p.max_attribute_value_bytes = Some(8);
    let long = "x".repeat(9);
    let mut export = metrics(
        "svc",
        &[(
            "m",
            vec![
                vec![kv("ok", "1")],
                vec![kv("user.email", "a@b")],
                vec![kv("a", "1"), kv("b", "2"), kv("c", "3")],
                vec![kv("v", &long)],
            ],
        )],
    );
    let refused = apply(&mut export, Some(&p), None).unwrap();
    assert_eq!(
        counts(&refused),
        [
            ("attribute_key", 1),
            ("too_many_attributes", 1),
            ("attribute_value_too_long", 1)
        ]
    );
    assert_eq!(export.items(), 1);

    let mut p = policy();
    p.allowed_resource_attribute_keys = globs(&["service.*"]);
    let mut export = metrics("svc", &[("m", vec![vec![kv("free", "1")]])]);
    assert_eq!(apply(&mut export, Some(&p), None).unwrap().total(), 0);
    if let Export::Metrics(m) = &mut export {
        let resource = m.resource_metrics[0].resource.as_mut().unwrap();
        resource.attributes.push(kv("host.name", "h"));
    }
    let refused = apply(&mut export, Some(&p), None).unwrap();
    assert_eq!(counts(&refused), [("attribute_key", 1)]);
}

#[test]
fn items_past_the_cap_are_refused_the_first_ones_stay() {
    let mut p = policy();
    p.max_items_per_export = Some(3);
    let mut export = metrics("svc", &[("a", vec![vec![]; 2]), ("b", vec![vec![]; 4])]);
    let refused = apply(&mut export, Some(&p), None).unwrap();
    assert_eq!(counts(&refused), [("too_many_items", 3)]);
    assert_eq!(export.items(), 3);
}

#[test]
fn span_and_log_names() {
    let mut p = policy();
    p.span_names = globs(&["install.*"]);
    p.log_names = globs(&["KOTORModSync.*"]);
    let span = |name: &str| Span {
        name: name.into(),
        ..Default::default()
    };
    let mut traces = Export::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span("install.mod"), span("ddos")],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    assert_eq!(
        counts(&apply(&mut traces, Some(&p), None).unwrap()),
        [("span_name", 1)]
    );
    let record = |event: &str| LogRecord {
        event_name: event.into(),
        ..Default::default()
    };
    let mut logs = Export::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                // The logger (scope) name counts when a record has no event name.
                scope: Some(InstrumentationScope {
                    name: "KOTORModSync.Core".into(),
                    ..Default::default()
                }),
                log_records: vec![record(""), record("spam.event"), record("KOTORModSync.x")],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    assert_eq!(
        counts(&apply(&mut logs, Some(&p), None).unwrap()),
        [("log_name", 1)]
    );
    assert_eq!(logs.items(), 2);
}

fn guard(bound: usize) -> Guard {
    Guard::new(CardinalitySettings {
        max_series_per_metric: bound,
        max_series_per_session: bound,
        window: std::time::Duration::from_secs(60),
        max_metrics: 10,
        max_sessions: 10,
        resource_keys: vec![],
    })
}

#[test]
fn the_guard_drops_new_series_past_the_bound_after_the_content_rules() {
    let guard = guard(2);
    let mut p = policy();
    p.metric_names = globs(&["ok"]);
    let series: Vec<Vec<KeyValue>> = (0..5).map(|i| vec![kv("i", &i.to_string())]).collect();
    let mut export = metrics("svc", &[("spam", series.clone()), ("ok", series)]);
    let refused = apply(&mut export, Some(&p), Some(&mut guard.begin(0, "s"))).unwrap();
    assert_eq!(counts(&refused), [("metric_name", 5), ("cardinality", 3)]);
    assert_eq!(guard.tracked(), (1, 2), "refused items spend no series");
}

#[test]
fn reject_refuses_the_whole_export_and_spends_no_series() {
    let guard = guard(10);
    let mut p = policy();
    p.on_violation = OnViolation::Reject;
    p.metric_names = globs(&["ok"]);
    let mut export = metrics("svc", &[("ok", vec![vec![]; 2]), ("spam", vec![vec![]])]);
    let err = apply(&mut export, Some(&p), Some(&mut guard.begin(0, "s"))).unwrap_err();
    assert_eq!(
        err,
        Rejected {
            rule: Rule::MetricName,
            items: 3
        }
    );
    assert_eq!(guard.tracked().1, 0);
    let mut fine = metrics(
        "svc",
        &[("ok", vec![vec![kv("i", "1")], vec![kv("i", "2")]])],
    );
    let refused = apply(&mut fine, Some(&p), Some(&mut guard.begin(0, "s"))).unwrap();
    assert_eq!(refused.total(), 0);
    assert_eq!(guard.tracked().1, 2, "an accepted export is guarded");
}
