//! The two naming schemes of `/metrics`, over real HTTP: Prometheus
//! conventions under the default namespace (every counter ends in `_total`:
//! `telegate_auth_success_total`, `telegate_auth_failed_total{reason}`), and
//! under `metrics.namespace = "kotormodsync"` the original deployment's
//! names, so its alert rules keep working. Both carry `{ns}_build_info`.

use crate::support::*;

/// The names `# TYPE` lines declare as counters.
fn counters(exposition: &str) -> Vec<&str> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect()
}

/// One allowed and one refused `/auth`, then the exposition.
async fn scrape_after_two_decisions(config: &str) -> String {
    let server = start_server(&config_with(config)).await;
    let allowed = server.auth_request(&valid()).send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    let refused = server
        .auth_request(&with(valid(), "X-KMS-Signature", None))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let text = server.scrape().await;
    server.stop().await;
    text
}

#[tokio::test]
async fn the_default_namespace_ends_every_counter_in_total() {
    let text = scrape_after_two_decisions("").await;
    assert_eq!(sample(&text, "telegate_auth_success_total"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "telegate_auth_failed_total{reason=\"missing_signature\"}"
        ),
        Some(1.0)
    );
    let bare: Vec<&str> = counters(&text)
        .into_iter()
        .filter(|name| !name.ends_with("_total"))
        .collect();
    assert!(bare.is_empty(), "counters without _total: {bare:?}");
    assert!(counters(&text).contains(&"telegate_auth_success_total"));
    let info = text
        .lines()
        .find(|line| line.starts_with("telegate_build_info{"))
        .unwrap_or_else(|| panic!("no build info:\n{text}"));
    assert!(info.ends_with("} 1"), "{info}");
    assert!(
        info.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    assert!(info.contains("revision=\""), "{info}");
    assert!(
        text.contains("# TYPE telegate_config_last_reload_success_timestamp_seconds gauge"),
        "{text}"
    );
}

#[tokio::test]
async fn the_kotormodsync_namespace_keeps_every_original_name() {
    // The values under these names: auth_http's
    // the_kotormodsync_namespace_serves_the_original_names.
    let text = scrape_after_two_decisions("[metrics]\nnamespace = \"kotormodsync\"").await;
    assert_eq!(sample(&text, "kotormodsync_auth_success_total"), None);
    // Exactly the two counters the original named without the suffix.
    let bare: Vec<&str> = counters(&text)
        .into_iter()
        .filter(|name| !name.ends_with("_total"))
        .collect();
    assert_eq!(
        bare,
        ["kotormodsync_auth_failed", "kotormodsync_auth_success"],
        "{text}"
    );
    for name in [
        "kotormodsync_auth_total",
        "kotormodsync_rate_limited_total",
        "kotormodsync_keyring_reloads_total",
        "kotormodsync_key_used_total",
    ] {
        assert!(counters(&text).contains(&name), "{name} missing:\n{text}");
    }
    assert!(text.contains("kotormodsync_build_info{"), "{text}");
}
