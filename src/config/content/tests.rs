//! `[content]` and `[cardinality]` as an operator writes them: the issue's
//! contract loads, the per-policy override replaces `[content]`,
//! passthrough is refused, and every invalid value names its key.

use super::super::{from_text, ConfigError, ConfigSource, MapEnv, Settings};
use super::OnViolation;

const KEY: &str = "[[auth.keys]]\nid = \"k\"\nfile = \"k.key\"\n";

fn load(extra: &str) -> Result<Settings, ConfigError> {
    from_text(
        &format!("{KEY}{extra}"),
        &ConfigSource::File("/etc/telegate/t.toml".into()),
        &MapEnv::default(),
    )
}

fn invalid_key(extra: &str) -> String {
    match load(extra) {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => panic!("expected an invalid key for {extra}, got {other:?}"),
    }
}

const CONTRACT: &str = r#"
[content]
on_violation = "drop"
service_names = ["KOTORModSync", "ModSync"]
metric_names = ["kotormodsync.*", "modsync.*"]
max_attributes = 64
max_attribute_value_bytes = 1024
max_items_per_export = 10000
[cardinality]
max_series_per_metric = 1000
window_secs = 3600
"#;

#[test]
fn the_contract_loads() {
    let settings = load(CONTRACT).unwrap();
    let content = settings.content.unwrap();
    assert_eq!(content.on_violation, OnViolation::Drop);
    let names = content.metric_names.as_ref().unwrap();
    assert!(names.matches("kotormodsync.installs"));
    assert!(!names.matches("spam.series"));
    assert!(content.span_names.is_none(), "absent means any");
    assert_eq!(content.max_items_per_export, Some(10_000));
    let cardinality = settings.cardinality.unwrap();
    assert_eq!(cardinality.max_series_per_metric, 1000);
    assert_eq!(cardinality.window.as_secs(), 3600);
    assert_eq!(cardinality.max_metrics, 10_000);
}

#[test]
fn both_are_off_when_absent() {
    let settings = load("").unwrap();
    assert!(settings.content.is_none());
    assert!(settings.cardinality.is_none());
}

#[test]
fn the_ingest_policy_s_own_content_replaces_the_top_level_one() {
    let text = r#"
[ingest]
policy = "tele"
[content]
metric_names = ["a.*"]
[policies.tele.content]
on_violation = "reject"
span_names = ["b.*"]
"#;
    let content = load(text).unwrap().content.unwrap();
    assert_eq!(content.on_violation, OnViolation::Reject);
    assert!(content.metric_names.is_none(), "replaced whole, not merged");
    assert!(content.span_names.unwrap().matches("b.x"));
    // Another policy's content is validated but not applied.
    let other = "[policies.other.content]\nmetric_names = [\"\"]\n";
    assert_eq!(invalid_key(other), "policies.other.content.metric_names[0]");
}

#[test]
fn passthrough_cannot_run_a_content_policy_or_a_guard() {
    let mode = "[ingest]\nmode = \"passthrough\"\n";
    assert_eq!(invalid_key(&format!("{mode}[content]\n")), "content");
    assert_eq!(
        invalid_key(&format!("{mode}[cardinality]\n")),
        "cardinality"
    );
}

#[test]
fn invalid_values_name_their_key() {
    assert_eq!(
        invalid_key("[content]\nmax_attributes = 0\n"),
        "content.max_attributes"
    );
    assert_eq!(
        invalid_key("[content]\nspan_names = [\"ok\", \"\"]\n"),
        "content.span_names[1]"
    );
    assert_eq!(
        invalid_key("[content]\non_violation = \"ignore\"\n"),
        "content.on_violation"
    );
    assert_eq!(
        invalid_key("[cardinality]\nmax_series_per_metric = 0\n"),
        "cardinality.max_series_per_metric"
    );
    assert_eq!(
        invalid_key("[cardinality]\nmax_series_per_metric = 10\nmax_series_per_session = 11\n"),
        "cardinality.max_series_per_session"
    );
    assert_eq!(
        invalid_key("[cardinality]\nwindow_secs = 0\n"),
        "cardinality.window_secs"
    );
}
