//! The credential stages for an `X-KMS-*` signature, in order: parse, build
//! policy, signature version policy, window, verify (the v1 signature under
//! every live key the policy allows, or the v2 one under the key its id
//! names), and, for a v1 header set outside the window, the static-header
//! check. Pure apart from the keyring and (static headers only) the session
//! store; `now` is the request's one reading of the clock.
//!
//! On `/` (and `ingest.detect_paths`) the signal is found by verifying over
//! the metrics, traces and logs paths in turn: a miss costs three HMACs per
//! live key, then 403 `bad_signature`.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use super::session_gate::HeaderSet;
use super::Stages;
use crate::config::Policy;
use crate::protocol::abuse::KeyState;
use crate::protocol::client_version::VersionFilter;
use crate::protocol::keyring::KeyId;
use crate::protocol::reject::Reject;
use crate::protocol::signal::Signal;
use crate::protocol::signature_v2::{self, V2Fields};
use crate::protocol::signed_request::{self, ParseOptions, SignedRequest};
use crate::protocol::{verify, window};

/// What a successful signature verification established.
#[derive(Debug)]
pub struct Verified<'a> {
    pub request: SignedRequest<'a>,
    pub key_id: KeyId,
    /// The v2 fields, for a v2 signature.
    pub v2: Option<V2Fields<'a>>,
    pub body: BodyCheck,
    /// The signal the signed path named, when it was found on `/`.
    pub signal: Option<Signal>,
    /// Accepted outside the window as a static header set.
    pub static_headers: bool,
    /// The verifying key's lifecycle state (checked by `abuse`).
    pub key_state: KeyState,
    /// The verifying key's client-version filter, when it has one.
    pub key_versions: Option<Arc<VersionFilter>>,
}

impl Verified<'_> {
    pub fn version(&self) -> u8 {
        if self.v2.is_some() {
            2
        } else {
            1
        }
    }

    /// The header set a static-header session is keyed on.
    pub fn header_set(&self) -> HeaderSet<'_> {
        HeaderSet {
            key_id: self.key_id.as_str(),
            session_id: self.request.session_id,
            signed_path: self.request.path,
            timestamp: self.request.timestamp,
            signature: &self.request.signature,
        }
    }
}

/// How far a signature covers the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCheck {
    /// v1: the body is not signed.
    NotSigned,
    /// v2, the body is not checked yet (or was not available: forwardAuth
    /// without `forwardBody`).
    HeaderOnly,
    /// v2, the body's SHA-256 matched the signed one.
    Matched,
}

impl BodyCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyCheck::NotSigned => "not_signed",
            BodyCheck::HeaderOnly => "header_only",
            BodyCheck::Matched => "matched",
        }
    }
}

/// What the signature was made over.
#[derive(Debug, Clone, Copy)]
pub enum SignedOver<'h> {
    /// One path (the route's, or Traefik's `X-Forwarded-Uri`).
    Path(&'h str),
    /// `/` or a detect path: whichever signal path verifies.
    AnySignal,
}

/// The signature stages; see the module doc.
pub async fn verify_signature<'h>(
    stages: &Stages<'h>,
    headers: &'h HeaderMap,
    method: &'h str,
    over: SignedOver<'h>,
    policy: &Policy,
    client_ip: IpAddr,
    now: i64,
) -> Result<Verified<'h>, Reject> {
    let ingest = &stages.settings.ingest;
    let detect = [
        (Signal::Metrics, ingest.metrics_path.as_str()),
        (Signal::Traces, ingest.traces_path.as_str()),
        (Signal::Logs, ingest.logs_path.as_str()),
    ];
    let verified = match over {
        SignedOver::Path(path) => verify_paths(stages, headers, method, &[path], policy, now)?.0,
        SignedOver::AnySignal => {
            let paths = detect.map(|(_, path)| path);
            let (mut verified, index) = verify_paths(stages, headers, method, &paths, policy, now)?;
            verified.signal = Some(detect[index].0);
            verified
        }
    };
    if verified.static_headers {
        check_static(stages, &verified, now, client_ip)
            .await
            .ok_or(Reject::StaleTimestamp)?;
    }
    Ok(verified)
}

/// Parse, build policy, version policy, window, verify over each of
/// `paths`; returns which one the signature covers.
fn verify_paths<'h>(
    stages: &Stages<'h>,
    headers: &'h HeaderMap,
    method: &'h str,
    paths: &[&'h str],
    policy: &Policy,
    now: i64,
) -> Result<(Verified<'h>, usize), Reject> {
    let settings = stages.settings;
    let first = *paths.first().ok_or(Reject::BadSignature)?;
    let options = ParseOptions {
        require_session_id: settings.require_session_id,
    };
    let names = &settings.header_names;
    let mut request = signed_request::parse(names, headers, method, first, options)?;
    if let Some(required) = &policy.require_build {
        if request.build != Some(required.as_str()) {
            return Err(Reject::UnofficialBuild);
        }
    }
    let v2_names = &settings.v2_names;
    let v2 = match signature_v2::version(v2_names, headers)? {
        2 => Some(signature_v2::parse(v2_names, headers)?),
        _ if policy.min_signature_version >= 2 => return Err(Reject::SignatureVersionRequired),
        _ => None,
    };
    if v2.as_ref().is_some_and(|v2| v2.nonce.contains('|')) {
        return Err(Reject::MalformedHeader);
    }
    // Out of the window, only a v1 header set may go on, and only to the
    // static-header check; anything else is refused exactly as before.
    let outside = match window::check(request.timestamp, now, policy.max_skew_secs) {
        Ok(()) => None,
        Err(Reject::StaleTimestamp) if v2.is_none() && settings.static_headers.is_some() => {
            Some(Reject::StaleTimestamp)
        }
        Err(reject) => return Err(reject),
    };
    let ring = stages.keyring.current();
    let allowed = policy.key_ids.as_deref();
    let mut found = None;
    for (index, path) in paths.iter().enumerate() {
        request.path = path;
        let key = match &v2 {
            Some(v2) => signature_v2::verify(&request, v2, &ring, allowed, now),
            None => verify::verify(&request, &ring, allowed, now),
        };
        match key {
            Ok(key) => {
                found = Some((key.id.clone(), index, key.state, key.versions.clone()));
                break;
            }
            Err(Reject::BadSignature) => continue,
            Err(other) => return Err(other),
        }
    }
    let Some((key_id, index, key_state, key_versions)) = found else {
        return Err(outside.unwrap_or(Reject::BadSignature));
    };
    let body = if v2.is_some() {
        BodyCheck::HeaderOnly
    } else {
        BodyCheck::NotSigned
    };
    let verified = Verified {
        key_id,
        request,
        v2,
        body,
        signal: None,
        static_headers: outside.is_some(),
        key_state,
        key_versions,
    };
    Ok((verified, index))
}

/// Static-header sessions: a verified v1 header set outside the window
/// passes only when it was first seen inside it, its session is tracked and
/// not revoked, its timestamp is younger than `max_age_secs`, and (with
/// `pin_ip`) it comes from the address that first used it.
async fn check_static(
    stages: &Stages<'_>,
    verified: &Verified<'_>,
    now: i64,
    client_ip: IpAddr,
) -> Option<()> {
    let rules = stages.settings.static_headers?;
    let request = &verified.request;
    let refuse = |why: &str| {
        tracing::debug!(
            session = request.session_id,
            sig = %request.signature_prefix(),
            why,
            "static header set refused"
        );
        None
    };
    let age = now.saturating_sub(request.timestamp);
    if age > i64::try_from(rules.max_age_secs).unwrap_or(i64::MAX) {
        return refuse("older than max_age_secs");
    }
    if request.session_id.is_empty() {
        return refuse("no session id");
    }
    let set = verified.header_set();
    let Some(first) = stages.sessions.static_sighting(&set, now).await else {
        return refuse("not first seen inside the window, or its session is gone or revoked");
    };
    if rules.pin_ip && first.client_ip != client_ip {
        return refuse("another address than the first use (pin_ip)");
    }
    Some(())
}

/// The body stage for a v2 signature: its body hash against `body` (403
/// `body_mismatch`); v1 passes unchanged.
pub fn check_body(verified: &mut Verified<'_>, body: &[u8]) -> Result<(), Reject> {
    if let Some(v2) = &verified.v2 {
        if !v2.body_matches(body) {
            return Err(Reject::BodyMismatch);
        }
        verified.body = BodyCheck::Matched;
    }
    Ok(())
}
