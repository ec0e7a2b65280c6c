//! The policy stage: which `[policies.NAME]` a request is decided under.
//! forwardAuth names it in the address (`/auth?policy=NAME`), the ingest
//! routes use `ingest.policy`, a signed `POST /sessions` the default. A name
//! that is not configured is the operator's mistake (500 `unknown_policy`),
//! logged once per request with the name cut short.

use crate::config::{Policy, Settings};
use crate::protocol::headers::truncate;
use crate::protocol::reject::Reject;

/// The policy forwardAuth asked for (`None`, empty or `default`: the default).
pub fn named<'s>(settings: &'s Settings, name: Option<&str>) -> Result<&'s Policy, Reject> {
    match name {
        None | Some("") | Some("default") => Ok(&settings.default_policy),
        Some(name) => settings.policies.get(name).ok_or_else(|| {
            tracing::error!(policy = %truncate(name, 64), "forwardAuth asked for a policy that is not configured");
            Reject::UnknownPolicy
        }),
    }
}

/// The policy the ingest routes check: `ingest.policy`, else the default.
pub fn ingest(settings: &Settings) -> &Policy {
    settings
        .ingest
        .policy
        .as_ref()
        .and_then(|name| settings.policies.get(name))
        .unwrap_or(&settings.default_policy)
}
