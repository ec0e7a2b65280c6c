//! Metric names: Prometheus conventions under every namespace (a counter's
//! name ends in `_total`), except the original deployment's,
//! `kotormodsync`, whose alert rules query the two counters it named
//! without the suffix: `kotormodsync_auth_success` and
//! `kotormodsync_auth_failed{reason}`. Under it every name stays exactly as
//! the original served it.
//!
//! Also what `{ns}_build_info{version,revision}` reports: the crate version
//! and the revision `build.rs` found (`TELEGATE_REVISION`, git, or
//! `unknown`).

/// The namespace whose names are kept as the original deployment had them.
pub const ORIGINAL_NAMESPACE: &str = "kotormodsync";

/// telegate's version, the `version` label of `{ns}_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit telegate was built from, the `revision` label of `{ns}_build_info`.
pub const REVISION: &str = env!("TELEGATE_REVISION");

/// The name (without the namespace) of a counter the original named
/// `original`, without `_total`: kept under [`ORIGINAL_NAMESPACE`], with
/// the suffix under any other.
pub fn counter(namespace: &str, original: &str) -> String {
    if namespace == ORIGINAL_NAMESPACE {
        original.to_string()
    } else {
        format!("{original}_total")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_original_namespace_keeps_the_bare_names() {
        assert_eq!(counter("kotormodsync", "auth_success"), "auth_success");
        assert_eq!(counter("telegate", "auth_success"), "auth_success_total");
        assert_eq!(counter("acme", "auth_failed"), "auth_failed_total");
        assert!(!REVISION.is_empty());
    }
}
