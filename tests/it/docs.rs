//! docs/configuration.md cannot drift from the config struct: every key the
//! struct has (with its default) must be listed with its environment variable.

use telegate::config::{ContentSection, PolicyRate, PolicySection, RawConfig};

/// Every optional key set, so serialization shows it.
fn full_config() -> RawConfig {
    let mut config = RawConfig::default();
    config.admin.token_file = Some(String::new());
    config.status.templates_dir = Some(String::new());
    config.ingest.policy = Some(String::new());
    config.ingest.grpc_listen = Some(String::new());
    config.collector.grpc_endpoint = Some(String::new());
    config.auth.static_headers = Some(Default::default());
    config.content = Some(ContentSection {
        service_names: Some(vec![]),
        metric_names: Some(vec![]),
        span_names: Some(vec![]),
        log_names: Some(vec![]),
        allowed_resource_attribute_keys: Some(vec![]),
        allowed_attribute_keys: Some(vec![]),
        max_attributes: Some(1),
        max_attribute_value_bytes: Some(1),
        max_items_per_export: Some(1),
        ..Default::default()
    });
    config.cardinality = Some(Default::default());
    config.bans = Some(Default::default());
    config
}

/// Key paths of a table; sections (one level deep) are descended into when
/// `sections` is true.
fn keys(prefix: &str, value: &toml::Value, sections: bool, out: &mut Vec<String>) {
    if let toml::Value::Table(table) = value {
        for (name, inner) in table {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match inner {
                toml::Value::Table(t) if sections && !t.is_empty() => {
                    keys(&path, inner, false, out)
                }
                _ => out.push(path),
            }
        }
    }
}

fn env_name(key: &str) -> String {
    format!("TELEGATE_{}", key.replace('.', "__").to_uppercase())
}

#[test]
fn every_config_key_is_documented_with_its_variable() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let mut all = Vec::new();
    keys(
        "",
        &toml::Value::try_from(full_config()).unwrap(),
        true,
        &mut all,
    );
    let policy = PolicySection {
        max_skew_secs: Some(1),
        rate_limit: Some(PolicyRate {
            per_second: 1,
            burst: 1,
        }),
        key_ids: Some(vec![]),
        require_build: Some(String::new()),
        methods: Some(vec![]),
        min_signature_version: Some(2),
        forward_body: Some(true),
        content: Some(Default::default()),
        min_client_version: Some(String::new()),
        blocked_client_versions: Some(vec![]),
        allow_networks: Some(vec![]),
        deny_networks: Some(vec![]),
        require_roles: Some(vec![]),
        require_permissions: Some(vec![]),
        protected_paths: Some(vec![]),
        excluded_paths: Some(vec![]),
    };
    let mut policy_keys = Vec::new();
    keys(
        "",
        &toml::Value::try_from(policy).unwrap(),
        false,
        &mut policy_keys,
    );
    all.extend(policy_keys.iter().map(|k| format!("policies.NAME.{k}")));
    all.retain(|k| k != "policies");
    assert!(all.len() > 20, "{all:?}");
    for key in &all {
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/configuration.md does not list `{key}`"
        );
        assert!(
            doc.contains(&format!("`{}`", env_name(key))),
            "docs/configuration.md lacks {}",
            env_name(key)
        );
    }
    for field in [
        "scope",
        "unit",
        "rate",
        "period_secs",
        "burst",
        "policies",
        "key_states",
    ] {
        assert!(
            doc.contains(&format!("`quotas[].{field}`")),
            "quotas[].{field}"
        );
    }
    for field in [
        "id",
        "file",
        "env",
        "not_after",
        "state",
        "min_client_version",
        "blocked_client_versions",
    ] {
        assert!(
            doc.contains(&format!("`auth.keys[].{field}`")),
            "auth.keys[].{field}"
        );
    }
}
