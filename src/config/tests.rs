//! Loading the configuration end to end: the embedded default, overrides by
//! `TELEGATE_*` and the original service's variables, and that every invalid
//! value is reported at its key (and the variable that set it).

use std::collections::BTreeSet;

use super::*;

fn embedded(env: &MapEnv) -> Result<Settings, ConfigError> {
    load(&ConfigSource::Embedded, env)
}

fn from_text(text: &str, env: &MapEnv) -> Result<Settings, ConfigError> {
    super::from_text(
        text,
        &ConfigSource::File("/etc/telegate/t.toml".into()),
        env,
    )
}

fn invalid_key(result: Result<Settings, ConfigError>) -> String {
    match result {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => panic!("expected an invalid-key error, got {other:?}"),
    }
}

#[test]
fn the_embedded_default_is_valid_and_uses_the_dev_key() {
    let settings = embedded(&MapEnv::default()).unwrap();
    assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.default_policy.max_skew_secs, 300);
    assert_eq!(settings.rate_limit.per_second.get(), 10);
    assert_eq!(settings.rate_limit.burst.get(), 20);
    assert_eq!(settings.keys.len(), 1);
    assert_eq!(settings.keys[0].id.as_str(), "dev");
    assert_eq!(
        settings.keys[0].source,
        crate::protocol::keyring::KeySource::File("config/dev-signing.key".into())
    );
}

#[test]
fn env_overrides_name_sections_with_double_underscores() {
    let env = MapEnv::from([
        ("TELEGATE_AUTH__MAX_SKEW_SECS", "120"),
        ("TELEGATE_LISTEN", "127.0.0.1:9999"),
        ("TELEGATE_TRUSTED_PROXIES", r#"["10.1.0.0/16"]"#),
        ("TELEGATE_METRICS__NAMESPACE", "kotormodsync"),
        (
            "TELEGATE_POLICIES__APP__RATE_LIMIT",
            "{ per_second = 50, burst = 100 }",
        ),
        ("TELEGATE_CONFIG", "/not/a/key"),
    ]);
    let settings = embedded(&env).unwrap();
    assert_eq!(settings.default_policy.max_skew_secs, 120);
    assert_eq!(settings.listen.port(), 9999);
    assert!(settings
        .trusted_proxies
        .contains("10.1.2.3".parse().unwrap()));
    assert!(!settings
        .trusted_proxies
        .contains("127.0.0.1".parse().unwrap()));
    assert_eq!(settings.metrics_namespace, "kotormodsync");
    let app = &settings.policies["app"];
    assert_eq!(app.rate_limit.unwrap().burst.get(), 100);
    assert_eq!(app.max_skew_secs, 120, "policies inherit the auth window");
}

#[test]
fn errors_name_the_key_and_the_variable() {
    let env = MapEnv::from([("TELEGATE_AUTH__MAX_SKEW_SECS", "soon")]);
    let key = invalid_key(embedded(&env));
    assert!(key.contains("auth.max_skew_secs"), "{key}");
    assert!(key.contains("TELEGATE_AUTH__MAX_SKEW_SECS"), "{key}");

    let unknown = MapEnv::from([("TELEGATE_AUTH__MAX_SKEW", "5")]);
    assert!(matches!(
        embedded(&unknown),
        Err(ConfigError::Invalid { .. })
    ));

    let cases: &[(&str, &str)] = &[
        ("listen = \"nope\"", "listen"),
        ("trusted_proxies = [\"10.0.0.0/33\"]", "trusted_proxies[0]"),
        ("[rate_limit]\nper_second = 0", "rate_limit.per_second"),
        ("[rate_limit]\nburst = 0", "rate_limit.burst"),
        ("[metrics]\nnamespace = \"bad-name\"", "metrics.namespace"),
        ("[log]\nformat = \"xml\"", "log.format"),
        ("[log]\ndecisions = \"some\"", "log.decisions"),
        ("[server]\nmax_header_bytes = 10", "server.max_header_bytes"),
        ("[[auth.keys]]\nid = \"a\"", "auth.keys[0]"),
        (
            "[[auth.keys]]\nid = \"a b\"\nenv = \"X\"",
            "auth.keys[0].id",
        ),
        (
            "[[auth.keys]]\nid = \"a\"\nenv = \"X\"\nnot_after = \"tomorrow\"",
            "auth.keys[0].not_after",
        ),
        (
            "[[auth.keys]]\nid = \"a\"\nenv = \"X\"\n[[auth.keys]]\nid = \"a\"\nenv = \"Y\"",
            "auth.keys[1].id",
        ),
        ("[policies.p]\nkey_ids = [\"ghost\"]", "policies.p.key_ids"),
        ("[policies.p]\nmethods = [\"magic\"]", "policies.p.methods"),
        ("[policies.p]\nmethods = []", "policies.p.methods"),
        ("[ingest]\nmode = \"fast\"", "ingest.mode"),
        ("[sessions]\nstore_ip = \"half\"", "sessions.store_ip"),
        ("[sessions]\nttl_secs = 0", "sessions.ttl_secs"),
        (
            "[sessions]\nttl_secs = 100\nmax_lifetime_secs = 50",
            "sessions.ttl_secs",
        ),
        ("[sessions]\nmax_per_user = 0", "sessions.max_per_user"),
        (
            "[sessions]\nper_user_limit = \"lru\"",
            "sessions.per_user_limit",
        ),
        ("[sessions]\nmax_body_bytes = 1", "sessions.max_body_bytes"),
        ("[sessions]\ncookie_name = \"a b\"", "sessions.cookie_name"),
        ("[sessions]\nstore = \"etcd\"", "sessions.store"),
        (
            "[sessions]\nstore = \"redis\"\nredis_url = \"http://x\"",
            "sessions.redis_url",
        ),
        (
            "[sessions]\nstore = \"redis\"\nredis_prefix = \"\"",
            "sessions.redis_prefix",
        ),
        (
            "[sessions]\nstore = \"redis\"\nflush_interval_ms = 0",
            "sessions.flush_interval_ms",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            invalid_key(from_text(text, &MapEnv::default())),
            *expected,
            "{text}"
        );
    }
    assert!(matches!(
        from_text("listen = [", &MapEnv::default()),
        Err(ConfigError::Syntax(_))
    ));
}

#[test]
fn keys_resolve_relative_to_the_config_file_and_parse_not_after() {
    let text =
        "[[auth.keys]]\nid = \"k\"\nfile = \"keys/k1\"\nnot_after = \"2026-12-31T00:00:00Z\"";
    let settings = from_text(text, &MapEnv::default()).unwrap();
    let key = &settings.keys[0];
    assert_eq!(
        key.source,
        crate::protocol::keyring::KeySource::File("/etc/telegate/keys/k1".into())
    );
    // date -u -d 2026-12-31T00:00:00Z +%s
    assert_eq!(key.not_after, Some(1_798_675_200));
}

#[test]
fn legacy_secret_variables_become_keys_and_replace_the_dev_key() {
    let env = MapEnv::from([
        ("KOTORMODSYNC_SIGNING_SECRET", "s1"),
        ("MODSYNC_SIGNING_SECRET", "s2"),
    ]);
    let settings = embedded(&env).unwrap();
    let ids: Vec<_> = settings.keys.iter().map(|k| k.id.to_string()).collect();
    assert_eq!(ids, ["kotormodsync", "modsync"]);

    let text = "[[auth.keys]]\nid = \"mine\"\nenv = \"X\"";
    let settings = from_text(text, &MapEnv::from([("KOTORMODSYNC_SIGNING_SECRET", "s1")])).unwrap();
    let ids: Vec<_> = settings.keys.iter().map(|k| k.id.to_string()).collect();
    assert_eq!(ids, ["mine", "kotormodsync"], "a config file's keys stay");
}

#[test]
fn policies_carry_their_options() {
    let text = r#"
[[auth.keys]]
id = "a"
env = "A"
[[auth.keys]]
id = "b"
env = "B"
[policies.strict]
max_skew_secs = 30
key_ids = ["b"]
require_build = "official"
"#;
    let settings = from_text(text, &MapEnv::default()).unwrap();
    let strict = &settings.policies["strict"];
    assert_eq!(strict.max_skew_secs, 30);
    assert_eq!(strict.key_ids.as_ref().unwrap()[0].as_str(), "b");
    assert_eq!(strict.require_build.as_deref(), Some("official"));
    assert_eq!(strict.rate_limit, None);
}

#[test]
fn issued_session_settings_and_the_session_method() {
    let defaults = from_text("", &MapEnv::default()).unwrap().sessions;
    assert_eq!(defaults.ttl.as_secs(), 86400);
    assert_eq!(defaults.max_lifetime.as_secs(), 7 * 86400);
    assert_eq!(defaults.max_per_user, 10);
    assert_eq!(defaults.per_user_limit, PerUserLimit::EvictOldest);
    assert!(!defaults.store_metadata, "metadata is opt-in");
    assert_eq!(
        (defaults.max_body_bytes, defaults.max_metadata_bytes),
        (8192, 4096)
    );
    assert_eq!(defaults.cookie_name, "telegate_session");
    let text = "[sessions]\nper_user_limit = \"refuse\"\n[policies.app]\nmethods = [\"hmac\", \"session\"]";
    let settings = from_text(text, &MapEnv::default()).unwrap();
    assert_eq!(settings.sessions.per_user_limit, PerUserLimit::Refuse);
    let app = &settings.policies["app"];
    assert_eq!(
        app.methods,
        BTreeSet::from([AuthMethod::Hmac, AuthMethod::Session])
    );
    assert!(app.allows(AuthMethod::Session) && app.allows(AuthMethod::Hmac));
    assert!(!settings.default_policy.allows(AuthMethod::Session));
}

#[test]
fn the_original_secret_file_is_key_kotormodsync_unless_the_variable_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kotormodsync_signing_secret");
    std::fs::write(&file, "s3cret\n").unwrap();
    let file_text = file.display().to_string();
    let env = MapEnv::from([("KOTORMODSYNC_SECRET_FILE", file_text.as_str())]);
    let settings = embedded(&env).unwrap();
    assert_eq!(settings.keys.len(), 1, "the dev key is replaced");
    assert_eq!(settings.keys[0].id.as_str(), "kotormodsync");
    assert_eq!(
        settings.keys[0].source,
        crate::protocol::keyring::KeySource::File(file.clone())
    );
    // The variable wins over the file, as in the original.
    let mut both = env.clone();
    both.set("KOTORMODSYNC_SIGNING_SECRET", "from-env");
    let settings = embedded(&both).unwrap();
    assert_eq!(settings.keys.len(), 1);
    assert_eq!(
        settings.keys[0].source,
        crate::protocol::keyring::KeySource::Env("KOTORMODSYNC_SIGNING_SECRET".into())
    );
    // A missing file is no key (the default path on a machine without it).
    let missing = dir.path().join("absent").display().to_string();
    let settings = embedded(&MapEnv::from([(
        "KOTORMODSYNC_SECRET_FILE",
        missing.as_str(),
    )]))
    .unwrap();
    assert_eq!(settings.keys[0].id.as_str(), "dev");
}

#[test]
fn auth_service_port_sets_the_port_and_telegate_listen_wins() {
    let settings = embedded(&MapEnv::from([("AUTH_SERVICE_PORT", "9000")])).unwrap();
    assert_eq!(settings.listen.to_string(), "127.0.0.1:9000");
    let both = MapEnv::from([
        ("AUTH_SERVICE_PORT", "9000"),
        ("TELEGATE_LISTEN", "127.0.0.2:7000"),
    ]);
    assert_eq!(
        embedded(&both).unwrap().listen.to_string(),
        "127.0.0.2:7000"
    );
    assert_eq!(
        invalid_key(embedded(&MapEnv::from([("AUTH_SERVICE_PORT", "http")]))),
        "AUTH_SERVICE_PORT"
    );
}

#[test]
fn require_auth_false_is_monitor_mode() {
    assert!(!embedded(&MapEnv::default()).unwrap().monitor_mode);
    for off in ["false", "FALSE", "0", "no"] {
        let env = MapEnv::from([("REQUIRE_AUTH", off)]);
        assert!(embedded(&env).unwrap().monitor_mode, "{off}");
    }
    assert!(
        !embedded(&MapEnv::from([("REQUIRE_AUTH", "true")]))
            .unwrap()
            .monitor_mode
    );
    assert_eq!(
        invalid_key(embedded(&MapEnv::from([("REQUIRE_AUTH", "maybe")]))),
        "REQUIRE_AUTH"
    );
    let text = "[auth]\nmonitor_mode = true\n";
    assert!(from_text(text, &MapEnv::default()).unwrap().monitor_mode);
}

#[test]
fn static_headers_are_off_unless_configured_and_bounded_to_a_week() {
    assert_eq!(
        from_text("", &MapEnv::default()).unwrap().static_headers,
        None
    );
    let on = from_text("[auth.static_headers]\n", &MapEnv::default()).unwrap();
    assert_eq!(
        on.static_headers,
        Some(StaticHeaders {
            max_age_secs: 86400,
            pin_ip: true
        })
    );
    let env = MapEnv::from([("TELEGATE_AUTH__STATIC_HEADERS", "{ pin_ip = false }")]);
    assert!(!from_text("", &env).unwrap().static_headers.unwrap().pin_ip);
    for bad in ["0", "604801"] {
        let text = format!("[auth.static_headers]\nmax_age_secs = {bad}\n");
        assert_eq!(
            invalid_key(from_text(&text, &MapEnv::default())),
            "auth.static_headers.max_age_secs"
        );
    }
}

#[test]
fn detect_paths_always_hold_the_root_and_refuse_signal_paths() {
    let settings = from_text("", &MapEnv::default()).unwrap();
    assert_eq!(settings.ingest.detect_paths, vec!["/".to_string()]);
    let text = "[ingest]\ndetect_paths = [\"/otlp\"]\n";
    let settings = from_text(text, &MapEnv::default()).unwrap();
    assert_eq!(settings.ingest.detect_paths, vec!["/", "/otlp"]);
    for bad in ["/v1/metrics", "/auth", "otlp"] {
        let text = format!("[ingest]\ndetect_paths = [\"{bad}\"]\n");
        assert_eq!(
            invalid_key(from_text(&text, &MapEnv::default())),
            "ingest.detect_paths[0]"
        );
    }
}

#[test]
fn the_embedded_store_and_its_data_dir() {
    // The shipped default keeps sessions on disk, under ./data.
    let shipped = embedded(&MapEnv::default()).unwrap().sessions;
    assert_eq!(
        shipped.backend,
        StoreBackend::Embedded(EmbeddedSettings {
            data_dir: "data".into(),
            flush_interval: std::time::Duration::from_millis(1000),
            encryption: None,
        })
    );
    let text = "[sessions]\nstore = \"embedded\"\ndata_dir = \"/var/lib/telegate\"\nflush_interval_ms = 200";
    let custom = from_text(text, &MapEnv::default()).unwrap().sessions;
    let StoreBackend::Embedded(settings) = custom.backend else {
        panic!("not embedded");
    };
    assert_eq!(settings.data_dir, std::path::Path::new("/var/lib/telegate"));
    assert_eq!(settings.flush_interval.as_millis(), 200);
    let blank = "[sessions]\nstore = \"embedded\"\ndata_dir = \" \"";
    assert_eq!(
        invalid_key(from_text(blank, &MapEnv::default())),
        "sessions.data_dir"
    );
}

#[test]
fn the_redis_store_and_its_defaults() {
    let defaults = from_text("", &MapEnv::default()).unwrap().sessions;
    assert_eq!(defaults.backend, StoreBackend::Memory);
    assert!(defaults.track);
    let redis = from_text("[sessions]\nstore = \"redis\"", &MapEnv::default())
        .unwrap()
        .sessions;
    assert_eq!(
        redis.backend,
        StoreBackend::Redis(RedisSettings {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "telegate:".into(),
            flush_interval: std::time::Duration::from_millis(1000),
            sentinel: None,
        })
    );
    let text = "[sessions]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:7000/2\"\nredis_prefix = \"gw1:\"\nflush_interval_ms = 250\ntrack = false";
    let custom = from_text(text, &MapEnv::default()).unwrap().sessions;
    assert!(!custom.track);
    let StoreBackend::Redis(settings) = custom.backend else {
        panic!("not redis");
    };
    assert_eq!(settings.url, "redis://127.0.0.1:7000/2");
    assert_eq!(settings.prefix, "gw1:");
    assert_eq!(settings.flush_interval.as_millis(), 250);
}
