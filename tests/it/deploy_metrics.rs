//! Every metric the alert rules and the Grafana dashboard query exists in a
//! running telegate's `/metrics`: the real server, started in-process with a
//! key that has a `not_after` (so `telegate_key_not_after_seconds` has a
//! series), one allowed and one refused decision, then scraped.
//!
//! Names that are not telegate's come from the other jobs of the stack and
//! are allowed by prefix (see [`OTHER_JOBS`]); names that belong to work not
//! merged yet would be listed, with a reason, in [`PENDING`] (empty now).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::support::{add_headers, http_client, signed, with, Headers, NOW, SECRET_A};
use telegate::config::{self, ConfigSource, MapEnv};
use telegate::http::state::AppState;
use telegate::pipeline::metrics::Metrics;
use telegate::protocol::keyring::{Keyring, SharedKeyring};
use telegate::reload::Reloader;

/// Metrics of the stack's other scrape jobs, by name prefix: Prometheus's
/// own `up`, the collector (`otelcol_*`), Traefik (`traefik_*`).
const OTHER_JOBS: &[&str] = &["up", "otelcol_", "traefik_"];

/// telegate metrics allowed to be absent from `/metrics` (none: every
/// name the deploy assets use must exist).
const PENDING: &[&str] = &[];

/// Followed by a list of label names in parentheses.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    // Aggregation operators: `sum by (x) (...)` puts a grouping before the `(`.
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
];

/// Metric names in a PromQL expression: identifiers outside strings, label
/// matchers (`{...}`), ranges (`[...]`) and grouping lists, that are neither
/// functions, keywords, nor numbers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Blank out strings, {..} and [..].
    let mut plain = String::with_capacity(expr.len());
    let mut chars = expr.chars().peekable();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                plain.push(' ');
            }
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            c if depth_brace > 0 || depth_bracket > 0 => {
                let _ = c;
            }
            c => plain.push(c),
        }
    }
    let mut names = BTreeSet::new();
    let tokens = tokenize(&plain);
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        let next = tokens.get(i + 1).map(String::as_str);
        if GROUPING.contains(&token.as_str()) && next == Some("(") {
            // by (...), on (...), group_left (...): label names; skip them.
            while i < tokens.len() && tokens[i] != ")" {
                i += 1;
            }
        } else if is_identifier(token) && next != Some("(") && !KEYWORDS.contains(&token.as_str()) {
            names.insert(token.clone());
        }
        i += 1;
    }
    names
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.' || c == '$' {
            current.push(c);
        } else {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            if c == '(' || c == ')' {
                tokens.push(c.to_string());
            }
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

fn is_identifier(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && !token.starts_with('$')
}

fn deploy_exprs() -> Vec<(String, String)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    let mut exprs = Vec::new();
    let rules: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(format!("{root}/prometheus/alerts.yml")).expect("alerts.yml"),
    )
    .expect("alerts.yml parses");
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().unwrap_or("record").to_string();
            let expr = rule["expr"].as_str().expect("expr").to_string();
            exprs.push((format!("alerts.yml {name}"), expr));
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/grafana/telegate.json")).expect("dashboard"),
    )
    .expect("dashboard parses");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                exprs.push((format!("dashboard {}", panel["title"]), expr.to_string()));
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(query) = variable["definition"].as_str() {
            // label_values(METRIC, label)
            let metric = query
                .trim_start_matches("label_values(")
                .split(',')
                .next()
                .unwrap_or_default();
            exprs.push((
                format!("dashboard variable {}", variable["name"]),
                metric.into(),
            ));
        }
    }
    exprs
}

/// The real server on 127.0.0.1:0, keys loaded through the real reloader.
async fn scrape_running_telegate() -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.key"), SECRET_A).unwrap();
    let path = dir.path().join("telegate.toml");
    std::fs::write(
        &path,
        r#"
listen = "127.0.0.1:0"
[[auth.keys]]
id = "a"
file = "a.key"
not_after = "2099-01-01T00:00:00Z"
[spool]
enabled = true
dir = "spool"
"#,
    )
    .unwrap();
    let source = ConfigSource::File(path);
    let env = Arc::new(MapEnv::default());
    let settings = config::load(&source, env.as_ref()).unwrap();
    let metrics = Metrics::new(&settings.metrics_namespace).unwrap();
    let keyring = SharedKeyring::new(Keyring::default());
    Reloader::new(source, env, keyring.clone(), metrics.clone()).reload(true);
    let state = AppState::new(settings, keyring, metrics, None, Arc::new(|| NOW))
        .unwrap()
        .with_spool(telegate::ingest::spool::system_ms())
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(telegate::http::server::run(listener, state, async {
        let _ = stopped.await;
    }));
    let client = http_client();
    let auth =
        |headers: Headers| add_headers(client.get(format!("http://{addr}/auth")), &headers).send();
    let valid = signed(SECRET_A, "POST", "/v1/metrics", NOW, "deploy-metrics");
    assert_eq!(auth(valid.clone()).await.unwrap().status(), 200);
    let bad = with(valid, "X-KMS-Signature", Some(&"0".repeat(64)));
    assert_eq!(auth(bad).await.unwrap().status(), 403);
    let text = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = stop.send(());
    server.await.unwrap();
    text
}

#[tokio::test]
async fn every_metric_in_the_alerts_and_the_dashboard_exists() {
    let exposition = scrape_running_telegate().await;
    let exposed: BTreeSet<&str> = exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect();
    assert!(
        exposed.contains("telegate_key_not_after_seconds"),
        "{exposition}"
    );

    let exprs = deploy_exprs();
    assert!(exprs.len() > 20, "{exprs:?}");
    let mut checked = BTreeSet::new();
    let mut missing = Vec::new();
    for (origin, expr) in &exprs {
        for name in metric_names(expr) {
            if name.starts_with("telegate_") {
                if PENDING.contains(&name.as_str()) {
                    assert!(
                        !exposed.contains(name.as_str()),
                        "{name} is exposed now: remove it from PENDING"
                    );
                } else if exposed.contains(name.as_str()) {
                    checked.insert(name);
                } else {
                    missing.push(format!("{origin}: {name}"));
                }
            } else if !OTHER_JOBS
                .iter()
                .any(|prefix| name == *prefix || name.starts_with(prefix))
            {
                missing.push(format!(
                    "{origin}: {name} (not telegate's, not a known job's)"
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in telegate's /metrics:\n{}",
        missing.join("\n")
    );
    for wanted in [
        "telegate_auth_total",
        "telegate_auth_success_total",
        "telegate_auth_failed_total",
        "telegate_rate_limited_total",
        "telegate_key_used_total",
        "telegate_key_not_after_seconds",
        "telegate_auth_duration_seconds_bucket",
        "telegate_sessions_active",
    ] {
        assert!(
            checked.contains(wanted),
            "{wanted} is not queried: {checked:?}"
        );
    }
}

#[test]
fn the_name_extractor_reads_promql() {
    let names = metric_names(
        r#"sum by (reason) (rate(telegate_auth_failed_total{reason!="x", instance=~"$instance"}[$__rate_interval])) / ignoring(reason) up > 0.2 and on(key_id) telegate_key_not_after_seconds < time()"#,
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "telegate_auth_failed_total",
            "telegate_key_not_after_seconds",
            "up"
        ]
    );
    assert!(metric_names(r#"rate({__name__=~"otelcol_x"}[5m]) > 1e3"#).is_empty());
    // An aggregation called directly is a function, not a grouping.
    let names =
        metric_names("sum(rate(telegate_auth_success_total[5m])) / sum(telegate_auth_total)");
    assert_eq!(names.len(), 2, "{names:?}");
}
