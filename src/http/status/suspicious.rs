//! The status page's "Suspicious, last hour" table, from the leak signals
//! (`pipeline::board::leaks`): keys used from many client networks,
//! session ids seen from more networks than one desktop has, and networks
//! spreading over many session ids. Session ids appear only as a short hash.

use super::page;
use crate::http::state::AppState;

/// Table rows: what, who, how many.
pub fn rows(state: &AppState, now: i64) -> String {
    let status = &state.settings.status;
    let report = state.board.leaks.report(
        now,
        status.suspicious_session_networks,
        status.suspicious_network_sessions,
    );
    let mut html = String::new();
    for (key, networks) in &report.key_networks {
        html.push_str(&page::row(
            "leak-key",
            &["key used from networks", key, &networks.to_string()],
        ));
    }
    for (hash, networks) in &report.roaming_sessions {
        html.push_str(&page::row(
            "leak-session",
            &[
                &format!(
                    "session seen from more than {} networks",
                    status.suspicious_session_networks
                ),
                &format!("session #{hash}"),
                &networks.to_string(),
            ],
        ));
    }
    if report.networks_over > 0 {
        html.push_str(&page::row(
            "leak-network",
            &[
                &format!(
                    "networks using more than {} session ids",
                    status.suspicious_network_sessions
                ),
                "(count)",
                &report.networks_over.to_string(),
            ],
        ));
    }
    if html.is_empty() {
        return page::empty_row(3, "no signed requests in the last hour");
    }
    html
}
