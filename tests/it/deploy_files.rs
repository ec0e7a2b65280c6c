//! deploy/ cannot rot: every YAML and JSON file parses, the compose file,
//! Traefik, collector, Grafana and Kubernetes files refer only to things that
//! exist, the configs telegate is given there validate, and Prometheus's own
//! `promtool` accepts the scrape config and the alert rules (and their unit
//! tests, `alerts.test.yml`).
//!
//! There is no Docker engine here, so `docker compose config` is replaced by
//! these structural checks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;
use telegate::config::{self, ConfigSource, MapEnv, StoreBackend};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(path: &str) -> PathBuf {
    repo().join("deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every document of a YAML file, with `<<` merge keys applied.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    let mut docs = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let mut value = serde::Deserialize::deserialize(document)
            .unwrap_or_else(|e: serde_norway::Error| panic!("{}: {e}", path.display()));
        if let Err(err) = Value::apply_merge(&mut value) {
            panic!("{}: merge keys: {err}", path.display());
        }
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}

fn yaml(path: &str) -> Value {
    let mut docs = yaml_docs(&deploy(path));
    assert_eq!(docs.len(), 1, "{path}: one document expected");
    docs.remove(0)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn str_at<'v>(value: &'v Value, path: &[&str]) -> &'v str {
    let mut v = value;
    for key in path {
        v = &v[*key];
    }
    v.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string: {v:?}"))
}

fn keys_of(value: &Value) -> BTreeSet<String> {
    value
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_yaml_json_and_toml_file_under_deploy_parses() {
    let mut files = Vec::new();
    files_under(&repo().join("deploy"), &mut files);
    let mut parsed = 0;
    for path in &files {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yml" | "yaml") => {
                assert!(!yaml_docs(path).is_empty(), "{}: empty", path.display());
                parsed += 1;
            }
            Some("json") => {
                serde_json::from_str::<serde_json::Value>(&read(path))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                parsed += 1;
            }
            Some("toml") => {
                toml::from_str::<toml::Table>(&read(path))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                parsed += 1;
            }
            _ => {}
        }
    }
    assert!(
        parsed >= 14,
        "only {parsed} YAML/JSON files found: {files:?}"
    );
}

#[test]
fn the_compose_file_hangs_together() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];
    let names = keys_of(services);
    for wanted in [
        "traefik",
        "telegate",
        "otel-collector",
        "prometheus",
        "grafana",
        "redis",
        "telegate-replica",
    ] {
        assert!(
            names.contains(wanted),
            "service {wanted} missing: {names:?}"
        );
    }
    let secrets = keys_of(&compose["secrets"]);
    let volumes = keys_of(&compose["volumes"]);
    let networks = keys_of(&compose["networks"]);
    for name in &names {
        let service = &services[name.as_str()];
        assert!(
            service.get("image").is_some() || service.get("build").is_some(),
            "{name}: no image or build"
        );
        // depends_on: a list or a map of service names.
        let deps = match &service["depends_on"] {
            Value::Sequence(_) => strings(&service["depends_on"]),
            other => keys_of(other).into_iter().collect(),
        };
        for dep in deps {
            assert!(names.contains(&dep), "{name} depends on unknown {dep}");
        }
        for secret in strings(&service["secrets"]) {
            assert!(
                secrets.contains(&secret),
                "{name}: secret {secret} undefined"
            );
        }
        let service_networks = match &service["networks"] {
            Value::Sequence(_) => strings(&service["networks"]),
            other => keys_of(other).into_iter().collect(),
        };
        assert!(!service_networks.is_empty(), "{name}: no network");
        for network in service_networks {
            assert!(networks.contains(&network), "{name}: network {network}");
        }
        for mount in strings(&service["volumes"]) {
            let source = mount.split(':').next().unwrap_or_default();
            if let Some(relative) = source.strip_prefix("./") {
                let path = deploy(relative);
                assert!(path.exists(), "{name}: bind source {source} missing");
            } else {
                assert!(volumes.contains(source), "{name}: volume {source}");
            }
        }
    }
    // Secrets are files the operator makes in the git-ignored deploy/secrets/.
    for secret in &secrets {
        let file = str_at(&compose["secrets"][secret.as_str()], &["file"]);
        assert!(file.starts_with("./secrets/"), "{secret}: {file}");
    }
    assert!(read(&deploy("secrets/.gitignore")).contains('*'));

    // telegate: built from the repository's Dockerfile, health-checked by the binary.
    let telegate = &services["telegate"];
    assert_eq!(str_at(telegate, &["build", "context"]), "..");
    assert_eq!(str_at(telegate, &["build", "dockerfile"]), "Dockerfile");
    assert!(repo().join("Dockerfile").exists());
    assert_eq!(
        strings(&telegate["healthcheck"]["test"]),
        ["CMD", "/usr/local/bin/telegate", "healthcheck"]
    );
    assert_eq!(
        strings(&telegate["secrets"]),
        ["kms_signing_secret", "telegate_admin_token"]
    );
    // The redis profile: redis plus a second replica.
    for name in ["redis", "telegate-replica"] {
        assert_eq!(strings(&services[name]["profiles"]), ["redis"], "{name}");
    }
    for name in ["telegate", "telegate-replica"] {
        let aliases = strings(&services[name]["networks"]["telemetry"]["aliases"]);
        assert!(aliases.contains(&"telegate-auth".to_string()), "{name}");
    }
    let prometheus_args = strings(&services["prometheus"]["command"]);
    assert!(prometheus_args.contains(&"--web.enable-remote-write-receiver".to_string()));
}

/// A value as Compose interpolates it with nothing set in the shell:
/// `${VAR:-default}` becomes `default`.
fn compose_default(value: &str) -> String {
    match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        Some(inner) => inner.split_once(":-").map_or("", |(_, d)| d).to_string(),
        None => value.to_string(),
    }
}

/// The telegate config the compose stack runs, with the stack's TELEGATE_*
/// variables, validates (key files are only read at start, not here).
#[test]
fn the_compose_telegate_config_validates_with_its_environment() {
    let compose = yaml("docker-compose.yml");
    for service in ["telegate", "telegate-replica"] {
        let environment = &compose["services"][service]["environment"];
        let mut env = MapEnv::default();
        for (name, value) in environment.as_mapping().expect("environment map") {
            let (Some(name), Some(value)) = (name.as_str(), value.as_str()) else {
                panic!("{service}: environment {name:?} = {value:?} is not text");
            };
            if name != "TELEGATE_CONFIG" {
                env.set(name, &compose_default(value));
            }
        }
        let file = str_at(environment, &["TELEGATE_CONFIG"]);
        assert_eq!(file, "/etc/telegate/telegate.toml", "{service}");
        let source = ConfigSource::File(deploy("telegate/telegate.toml"));
        let settings = config::load(&source, &env)
            .unwrap_or_else(|e| panic!("{service}: deploy/telegate/telegate.toml: {e}"));
        assert_eq!(settings.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(
            settings.ops_listen.map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:9091"),
            "{service}: the operations endpoints on their own listener"
        );
        let store = match settings.sessions.backend {
            StoreBackend::Memory => "memory",
            StoreBackend::Embedded(_) => "embedded",
            StoreBackend::Redis(_) => "redis",
            StoreBackend::Postgres(_) => "postgres",
        };
        let expected = if service == "telegate" {
            "memory"
        } else {
            "redis"
        };
        assert_eq!(store, expected, "{service}: sessions.store");
        // The collector is the compose service, on ports it exposes (the
        // default, 127.0.0.1, is the telegate container itself).
        let collector = &compose["services"]["otel-collector"];
        let exposed = strings(&collector["expose"]);
        for (what, url) in [
            (
                "endpoint",
                Some(settings.ingest.collector.endpoint.as_str()),
            ),
            (
                "grpc_endpoint",
                settings.ingest.collector.grpc_endpoint.as_deref(),
            ),
        ] {
            let url = url.unwrap_or_else(|| panic!("{service}: collector.{what} unset"));
            let port = url
                .strip_prefix("http://otel-collector:")
                .unwrap_or_else(|| panic!("{service}: collector.{what} = {url}"));
            assert!(exposed.iter().any(|p| p == port), "{service}: {url}");
        }
        // Traefik's otlp-grpc service reaches the gRPC listener.
        let grpc = settings.ingest.grpc_listen.expect("ingest.grpc_listen");
        let dynamic = yaml("traefik/dynamic.yml");
        let servers = &dynamic["http"]["services"]["telegate-grpc"]["loadBalancer"]["servers"];
        assert_eq!(
            str_at(&servers[0], &["url"]),
            format!("h2c://telegate-auth:{}", grpc.port()),
            "{service}"
        );
        assert_eq!(settings.keys.len(), 1);
        assert_eq!(
            settings.admin_token_file.as_deref(),
            Some(Path::new("/run/secrets/telegate_admin_token"))
        );
    }
}

#[test]
fn traefik_routes_use_defined_middlewares_and_services() {
    let dynamic = yaml("traefik/dynamic.yml");
    let http = &dynamic["http"];
    let middlewares = keys_of(&http["middlewares"]);
    let services = keys_of(&http["services"]);
    let routers = keys_of(&http["routers"]);
    assert!(routers.contains("otlp") && routers.contains("telegate-status"));
    // OTLP/gRPC on its own entrypoint, to telegate's listener over h2c.
    let grpc = &http["routers"]["otlp-grpc"];
    assert_eq!(strings(&grpc["entryPoints"]), ["otlp-grpc"]);
    assert_eq!(str_at(grpc, &["service"]), "telegate-grpc");
    let compose = yaml("docker-compose.yml");
    let traefik_args = strings(&compose["services"]["traefik"]["command"]);
    assert!(traefik_args.contains(&"--entrypoints.otlp-grpc.address=:4317".to_string()));
    // The shipped client posts to `/`: that router goes to telegate's ingest.
    let root = &http["routers"]["otlp-root"];
    assert_eq!(str_at(root, &["service"]), "telegate");
    assert!(str_at(root, &["rule"]).contains("Path(`/`)"));
    for name in &routers {
        let router = &http["routers"][name.as_str()];
        for middleware in strings(&router["middlewares"]) {
            assert!(middlewares.contains(&middleware), "{name}: {middleware}");
        }
        let service = str_at(router, &["service"]);
        assert!(services.contains(service), "{name}: service {service}");
    }
    assert_eq!(
        strings(&http["routers"]["otlp"]["middlewares"]),
        ["otlp-ratelimit", "telegate-auth"]
    );
    let auth = &http["middlewares"]["telegate-auth"]["forwardAuth"];
    assert_eq!(str_at(auth, &["address"]), "http://telegate-auth:8080/auth");
    let headers = strings(&auth["authResponseHeaders"]);
    for header in [
        "X-Auth-Session-Id",
        "X-Auth-Client-Version",
        "X-Auth-Key-Id",
        "X-Auth-Status",
    ] {
        assert!(headers.contains(&header.to_string()), "{header}");
    }
    assert!(http["middlewares"]["otlp-ratelimit"]["rateLimit"]["average"].is_u64());
}

#[test]
fn the_collector_pipelines_use_defined_components() {
    let collector = yaml("otel-collector/config.yaml");
    let pipelines = &collector["service"]["pipelines"];
    for pipeline in ["metrics", "traces", "logs"] {
        for (section, kind) in [
            ("receivers", "receivers"),
            ("processors", "processors"),
            ("exporters", "exporters"),
        ] {
            let defined = keys_of(&collector[section]);
            for component in strings(&pipelines[pipeline][kind]) {
                assert!(defined.contains(&component), "{pipeline}: {component}");
            }
        }
    }
    assert_eq!(
        strings(&pipelines["metrics"]["processors"]),
        ["memory_limiter", "resource", "batch"]
    );
    let action = &collector["processors"]["resource"]["attributes"][0];
    assert_eq!(str_at(action, &["key"]), "service.namespace");
    assert_eq!(
        str_at(
            &collector,
            &["receivers", "otlp", "protocols", "http", "endpoint"]
        ),
        "0.0.0.0:4318"
    );
    // Prometheus scrapes the exporter's and the collector's own ports.
    let prometheus = read(&deploy("prometheus/prometheus.yml"));
    assert!(str_at(&collector, &["exporters", "prometheus", "endpoint"]).ends_with(":8889"));
    assert!(
        prometheus.contains("otel-collector:8889") && prometheus.contains("otel-collector:8888")
    );
    // telegate's metrics come from its operations listener (ops_listen).
    assert!(prometheus.contains("- telegate:9091"), "{prometheus}");
    assert!(!prometheus.contains("- telegate:8080"), "{prometheus}");
}

#[test]
fn grafana_provisioning_points_at_the_dashboard() {
    let datasources = yaml("grafana/provisioning/datasources/prometheus.yml");
    let source = &datasources["datasources"][0];
    assert_eq!(str_at(source, &["uid"]), "prometheus");
    assert_eq!(str_at(source, &["url"]), "http://prometheus:9090");
    let providers = yaml("grafana/provisioning/dashboards/telegate.yml");
    let path = str_at(&providers["providers"][0], &["options", "path"]);
    let compose = read(&deploy("docker-compose.yml"));
    assert!(
        compose.contains(&format!("./grafana/telegate.json:{path}/telegate.json")),
        "the compose file must mount the dashboard where the provider looks ({path})"
    );

    let dashboard: serde_json::Value =
        serde_json::from_str(&read(&deploy("grafana/telegate.json"))).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate id"
        );
        titles.push(panel["title"].as_str().unwrap_or_default().to_string());
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "prometheus",
            "{}",
            panel["title"]
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            assert!(target["expr"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
    for wanted in [
        "Auth decisions by result",
        "Refusals by reason",
        "Success ratio (5 m)",
        "Rate limited",
        "Active sessions",
        "Key usage per key id",
        "/auth decision latency",
    ] {
        assert!(
            titles.iter().any(|t| t == wanted),
            "panel {wanted:?}: {titles:?}"
        );
    }
    // Panels on the ingest branch's metrics say so.
    for panel in panels {
        let text = panel.to_string();
        if text.contains("telegate_forward_") {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(title.contains("[ingest metrics, pending]"), "{title}");
        }
    }
}

#[test]
fn kubernetes_manifests_are_complete() {
    let mut kinds = BTreeSet::new();
    let mut files = Vec::new();
    files_under(&deploy("k8s"), &mut files);
    for path in &files {
        for doc in yaml_docs(path) {
            let kind = str_at(&doc, &["kind"]).to_string();
            str_at(&doc, &["apiVersion"]);
            str_at(&doc, &["metadata", "name"]);
            assert_eq!(str_at(&doc, &["metadata", "namespace"]), "telemetry");
            if kind == "ConfigMap" {
                let text = str_at(&doc, &["data", "telegate.toml"]);
                let raw =
                    config::parse_with_overrides(text, &ConfigSource::Embedded, &MapEnv::default())
                        .unwrap_or_else(|e| panic!("k8s telegate.toml: {e}"));
                assert_eq!(raw.listen, "0.0.0.0:8080");
                // State that must survive a restart lives on the pod's volume.
                assert_eq!(raw.sessions.data_dir, "/var/lib/telegate/data");
                assert!(raw.spool.enabled);
                assert_eq!(raw.spool.dir, "/var/lib/telegate/spool");
                assert_eq!(raw.ops_listen.as_deref(), Some("0.0.0.0:9091"));
                // The collector Service, not the pod itself (the default).
                assert_eq!(raw.collector.endpoint, "http://otel-collector:4318");
                assert_eq!(raw.ingest.grpc_listen.as_deref(), Some("0.0.0.0:4317"));
            }
            if kind == "IngressRoute" && str_at(&doc, &["metadata", "name"]) == "otlp-grpc" {
                let service = &doc["spec"]["routes"][0]["services"][0];
                assert_eq!(str_at(service, &["scheme"]), "h2c");
                assert_eq!(service["port"].as_u64(), Some(4317));
            }
            if kind == "StatefulSet" {
                let spec = &doc["spec"]["template"]["spec"];
                let mounts = &spec["containers"][0]["volumeMounts"];
                let state = mounts
                    .as_sequence()
                    .and_then(|m| m.iter().find(|m| m["name"] == "state"))
                    .expect("the state volume is mounted");
                assert_eq!(str_at(state, &["mountPath"]), "/var/lib/telegate");
                let claim = &doc["spec"]["volumeClaimTemplates"][0];
                assert_eq!(str_at(claim, &["metadata", "name"]), "state");
            }
            if kind == "Middleware" && doc["spec"].get("forwardAuth").is_some() {
                let address = str_at(&doc, &["spec", "forwardAuth", "address"]);
                assert_eq!(
                    address,
                    "http://telegate.telemetry.svc.cluster.local:8080/auth"
                );
            }
            kinds.insert(kind);
        }
    }
    for wanted in [
        "ConfigMap",
        "StatefulSet",
        "Service",
        "Secret",
        "Middleware",
        "IngressRoute",
    ] {
        assert!(kinds.contains(wanted), "{wanted} missing: {kinds:?}");
    }
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_health_checked() {
    let dockerfile = read(&repo().join("Dockerfile"));
    let froms: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].contains("rust:") && froms[0].contains("bookworm"));
    assert!(froms[1].contains("distroless/cc"));
    assert!(dockerfile.contains("USER nonroot"));
    assert!(dockerfile.contains("WORKDIR /app"));
    assert!(dockerfile.contains("/app/config/telegate.toml"));
    assert!(dockerfile.contains("/app/config/dev-signing.key"));
    assert!(dockerfile.contains(r#"CMD ["/usr/local/bin/telegate", "healthcheck"]"#));
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(repo().join(source).exists(), "COPY source {source} missing");
        }
    }
    // The embedded config's relative key path resolves against ./config,
    // which the image provides under its WORKDIR.
    assert!(config::EMBEDDED_DEFAULT.contains("file = \"dev-signing.key\""));
}

// ---------------------------------------------------------------- promtool

fn promtool(args: &[&str]) {
    let Some(tools) = crate::support::require_tools("promtool", &["promtool"]) else {
        return;
    };
    let output = Command::new(tools.path("promtool"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run promtool");
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_scrape_config() {
    promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]);
}

#[test]
fn promtool_accepts_the_alert_rules() {
    promtool(&["check", "rules", "deploy/prometheus/alerts.yml"]);
}

#[test]
fn the_alert_rules_pass_their_unit_tests() {
    promtool(&["test", "rules", "deploy/prometheus/alerts.test.yml"]);
}

#[test]
fn the_required_alerts_exist() {
    let rules = yaml("prometheus/alerts.yml");
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            alerts.insert(str_at(rule, &["alert"]).to_string());
        }
    }
    for wanted in [
        "HighTelemetryAuthFailureRate",
        "TelemetryAuthServiceDown",
        "TelemetryCollectorExportFailures",
        "TelemetryRateLimitingSpike",
        "TelemetryKeyUsedAfterNotAfter",
        "TelemetrySpoolBacklogAging",
        "TelemetrySessionsRoaming",
    ] {
        assert!(alerts.contains(wanted), "{wanted}: {alerts:?}");
    }
}
