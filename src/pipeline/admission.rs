//! The one admission function: every route that takes a credential (`/auth`,
//! the ingest routes, `POST /`, a signed `POST /sessions`) calls [`admit`],
//! and nothing else composes the stages. Their one order:
//!
//! policy -> client IP -> rate limit -> banned address, networks ->
//! excluded path (forwardAuth: allowed without a credential) ->
//! credential (a session token, or the signature: parse, build policy,
//! window, verify, static headers) -> roles and permissions -> key state, client versions, banned
//! session, `requests` quotas -> body (read only now, capped, within a
//! deadline; a v2 signature's hash checked) -> `bytes` quotas -> session
//! (recorded, or refused as revoked / too many). The abuse stages are
//! [`super::abuse`]'s; every refusal feeds its bans at the end of [`admit`].
//!
//! The caller reads the clock once and hands `now` in; what comes back is
//! what was established or the [`Reject`], plus the client address and the
//! policy name the observation step logs either way.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Uri};
use hyper::body::Body as HttpBody;

use super::abuse::quota::Scopes;
use super::access;
use super::body::{self, BoxError};
use super::budget::Held;
use super::client_ip;
use super::policy;
use super::session;
use super::session_gate::TokenOwner;
use super::signature::{self, SignedOver, Verified};
use super::Stages;
use crate::config::{AuthMethod, Policy};
use crate::protocol::headers::{header_values, X_FORWARDED_FOR};
use crate::protocol::reject::Reject;
use crate::protocol::signal::{Media, Signal};
use crate::protocol::signed_request;
use crate::protocol::token;

/// Which route asks, and so where the signed method and path come from.
#[derive(Debug, Clone, Copy)]
pub enum Route<'r> {
    /// Traefik's forwardAuth: method and path from `X-Forwarded-*`, the
    /// policy from `?policy=`; a session token is a credential too.
    ForwardAuth { policy: Option<&'r str> },
    /// An ingest path, signed over this request's own method and path;
    /// `None`: a detecting path (`/`), where the signature names the signal.
    Ingest { signal: Option<Signal> },
    /// A signed `POST /sessions`: the default policy, this request's method and path.
    SessionCreate,
}

impl Route<'_> {
    pub fn as_str(&self) -> &'static str {
        match self {
            Route::ForwardAuth { .. } => "auth",
            Route::Ingest { .. } => "ingest",
            Route::SessionCreate => "sessions",
        }
    }
}

/// The caps of the body stage.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub deadline: Duration,
}

impl BodyLimits {
    /// `ingest.max_body_bytes` within `ingest.body_timeout_secs`: an OTLP
    /// export, or the body Traefik forwards to `/auth`.
    pub fn ingest(settings: &crate::config::Settings) -> BodyLimits {
        BodyLimits {
            max_bytes: settings.ingest.max_body_bytes,
            deadline: settings.ingest.body_timeout,
        }
    }
}

/// What the body stage reads.
pub enum BodyStage<B> {
    /// Nothing (a bodiless forwardAuth request).
    Skip,
    /// The body when the request announces one (forwardAuth with Traefik's
    /// `forwardBody: true`), so a v2 signature binds it.
    IfAnnounced(B, BodyLimits),
    /// An OTLP export: media type and encoding first, then the body; an
    /// empty one is refused.
    Otlp(B, BodyLimits),
    /// A JSON API body (may be empty).
    Json(B, BodyLimits),
}

/// One request as the stages see it.
pub struct Attempt<'r, B> {
    pub route: Route<'r>,
    pub method: &'r Method,
    pub uri: &'r Uri,
    pub headers: &'r HeaderMap,
    pub peer: IpAddr,
    pub body: BodyStage<B>,
    /// The request's one reading of the clock.
    pub now: i64,
}

/// Who the credential says is asking.
#[derive(Debug)]
pub enum Credential<'r> {
    Signed(Verified<'r>),
    Session(TokenOwner),
    /// None needed: the forwarded path is under one of the policy's
    /// `excluded_paths` (counted as `excluded`).
    Excluded,
}

/// The encoding of an admitted OTLP export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtlpBody {
    pub media: Media,
    pub gzipped: bool,
}

/// What admission established.
#[derive(Debug)]
pub struct Admitted<'r> {
    pub credential: Credential<'r>,
    /// The body as sent, when the stage read one.
    pub body: Option<Bytes>,
    /// The body's share of the process-wide budget, given back when the
    /// request's handling ends and this drops.
    pub held: Held,
    pub otlp: Option<OtlpBody>,
    /// The signed session was seen for the first time.
    pub session_created: bool,
    /// The quota scopes of a signed request, for the items an export holds.
    pub scopes: Scopes,
}

impl<'r> Admitted<'r> {
    /// Admitted on a credential alone, with no body read.
    fn without_body(stages: &Stages<'_>, credential: Credential<'r>) -> Admitted<'r> {
        Admitted {
            credential,
            body: None,
            held: stages.budget.hold(),
            otlp: None,
            session_created: false,
            scopes: Scopes::none(),
        }
    }

    pub fn verified(&self) -> Option<&Verified<'r>> {
        match &self.credential {
            Credential::Signed(verified) => Some(verified),
            Credential::Session(_) | Credential::Excluded => None,
        }
    }
}

/// The outcome, with what the observation step logs either way.
#[derive(Debug)]
pub struct Admission<'r> {
    pub client_ip: IpAddr,
    /// The policy's name as asked for (`default` when none was).
    pub policy: &'r str,
    pub outcome: Result<Admitted<'r>, Reject>,
}

/// Runs the stages in their one order; see the module doc.
pub async fn admit<'r, B>(stages: &Stages<'r>, attempt: Attempt<'r, B>) -> Admission<'r>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let settings = stages.settings;
    let headers = attempt.headers;
    let client_ip = client_ip::resolve(
        attempt.peer,
        header_values(headers, &X_FORWARDED_FOR),
        &settings.trusted_proxies,
    );
    let (policy, policy_name) = match attempt.route {
        Route::ForwardAuth { policy: name } => (
            policy::named(settings, name),
            name.filter(|n| !n.is_empty()).unwrap_or("default"),
        ),
        Route::Ingest { .. } => {
            let policy = policy::ingest(settings);
            (Ok(policy), policy.name.as_str())
        }
        Route::SessionCreate => (Ok(&settings.default_policy), "default"),
    };
    let now = attempt.now;
    let mut verified_session = None;
    let outcome = match policy {
        Ok(policy) => run(stages, attempt, policy, client_ip, &mut verified_session).await,
        Err(reject) => Err(reject),
    };
    if let Err(reject) = &outcome {
        stages
            .abuse
            .refused(reject, client_ip, verified_session, now);
    }
    Admission {
        client_ip,
        policy: policy_name,
        outcome,
    }
}

async fn run<'r, B>(
    stages: &Stages<'r>,
    attempt: Attempt<'r, B>,
    policy: &Policy,
    client_ip: IpAddr,
    verified_session: &mut Option<&'r str>,
) -> Result<Admitted<'r>, Reject>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let settings = stages.settings;
    let headers = attempt.headers;
    let now = attempt.now;
    // OTLP routes take only POST: refused before anything is counted
    // against the client.
    if let Route::Ingest { .. } = attempt.route {
        if *attempt.method != Method::POST {
            return Err(Reject::MethodNotAllowed);
        }
    }
    stages.limits.check(&policy.name, client_ip)?;
    stages.abuse.check_address(policy, client_ip, now)?;

    // Credential: none on an excluded path (forwardAuth), a session token
    // (forwardAuth under a policy that allows it), else the signature.
    if let Route::ForwardAuth { .. } = attempt.route {
        if access::excluded(policy, headers) {
            return Ok(Admitted::without_body(stages, Credential::Excluded));
        }
        if policy.allows(AuthMethod::Session) {
            if let Some(presented) = token::presented(headers, &settings.sessions.cookie_name) {
                let owner = session::open_token(stages, presented, headers, client_ip, now).await?;
                access::require(policy, Some(&owner.grants))?;
                return Ok(Admitted::without_body(stages, Credential::Session(owner)));
            }
            if !policy.allows(AuthMethod::Hmac) {
                return Err(Reject::InvalidSession);
            }
        }
    }
    let (method, over) = signed_over(stages, &attempt)?;
    let mut verified =
        signature::verify_signature(stages, headers, method, over, policy, client_ip, now).await?;
    *verified_session = Some(verified.request.session_id);
    access::require(policy, None)?;
    let signal = match attempt.route {
        Route::Ingest {
            signal: Some(signal),
        } => Some(signal),
        _ => verified.signal,
    };
    let scopes = stages
        .abuse
        .check_verified(
            policy,
            &verified,
            signal.map(Signal::as_str),
            client_ip,
            now,
        )
        .await?;

    // Body: read only now that the credential holds.
    let forward_auth = matches!(attempt.route, Route::ForwardAuth { .. });
    let client = super::client_ip::limit_key(client_ip, settings.ipv6_prefix);
    let mut held = stages.budget.hold_for(client);
    let (body, otlp) = read_body(attempt.body, headers, &mut held).await?;
    match &body {
        Some(bytes) => signature::check_body(&mut verified, bytes)?,
        // Traefik forwards every body under this policy: none is the empty
        // one, so a header set signed for a body never passes without it.
        None if forward_auth && policy.forward_body => signature::check_body(&mut verified, &[])?,
        None => {}
    }
    if verified.body == signature::BodyCheck::HeaderOnly {
        tracing::debug!(
            session = verified.request.session_id,
            nonce = verified.v2.as_ref().map_or("", |v2| v2.nonce_prefix()),
            "v2 signature checked on headers only: the forwardAuth request carried no body (Traefik forwardBody: true binds it)"
        );
    }

    let bytes = body.as_ref().map_or(0, |b| b.len() as u64);
    stages.abuse.charge_bytes(&scopes, bytes, now).await?;

    // Session.
    let session_created =
        session::record_signed(stages, &verified, headers, client_ip, bytes, now)?;
    Ok(Admitted {
        credential: Credential::Signed(verified),
        body,
        held,
        otlp,
        session_created,
        scopes,
    })
}

/// The session API's gate, ahead of its own credential checks (admin and
/// owner tokens are the API's; a signed `POST /sessions` then goes through
/// [`admit`] too): client IP -> the API's own rate limit. Returns the
/// client address either way, for the observation step.
pub fn session_api_gate(
    stages: &Stages<'_>,
    peer: IpAddr,
    headers: &HeaderMap,
) -> (IpAddr, Result<(), Reject>) {
    let settings = stages.settings;
    let client_ip = client_ip::resolve(
        peer,
        header_values(headers, &X_FORWARDED_FOR),
        &settings.trusted_proxies,
    );
    (client_ip, stages.limits.check_session_api(client_ip))
}

/// The method and path the signature must cover, by route.
fn signed_over<'r, B>(
    stages: &Stages<'r>,
    attempt: &Attempt<'r, B>,
) -> Result<(&'r str, SignedOver<'r>), Reject> {
    let headers = attempt.headers;
    match attempt.route {
        Route::ForwardAuth { .. } => {
            // Traefik's and Caddy's X-Forwarded-*, or nginx's chosen names.
            let names = &stages.settings.forwarded;
            let method = match headers.get(&names.method) {
                Some(value) => value.to_str().map_err(|_| Reject::MalformedHeader)?,
                None => attempt.method.as_str(),
            };
            let uri = headers
                .get(&names.uri)
                .ok_or(Reject::MissingForwardedUri)?
                .to_str()
                .map_err(|_| Reject::MalformedHeader)?;
            let path = signed_request::signed_path(uri);
            let detect = &stages.settings.ingest.detect_paths;
            if detect.iter().any(|p| p == path) {
                Ok((method, SignedOver::AnySignal))
            } else {
                Ok((method, SignedOver::Path(path)))
            }
        }
        Route::Ingest { signal: Some(_) } => Ok(("POST", SignedOver::Path(attempt.uri.path()))),
        Route::Ingest { signal: None } => Ok(("POST", SignedOver::AnySignal)),
        Route::SessionCreate => Ok((
            attempt.method.as_str(),
            SignedOver::Path(signed_request::signed_path(attempt.uri.path())),
        )),
    }
}

/// The body stage's reads.
async fn read_body<B>(
    stage: BodyStage<B>,
    headers: &HeaderMap,
    held: &mut Held,
) -> Result<(Option<Bytes>, Option<OtlpBody>), Reject>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    match stage {
        BodyStage::Skip => Ok((None, None)),
        BodyStage::IfAnnounced(body, limits) => {
            if !body::announced(headers) {
                return Ok((None, None));
            }
            let bytes = body::read(body, headers, limits.max_bytes, limits.deadline, held).await?;
            Ok((Some(bytes), None))
        }
        BodyStage::Json(body, limits) => {
            if body::declared_over(headers, limits.max_bytes) {
                return Err(Reject::BodyTooLarge {
                    limit: limits.max_bytes,
                });
            }
            let bytes = body::read(body, headers, limits.max_bytes, limits.deadline, held).await?;
            Ok((Some(bytes), None))
        }
        BodyStage::Otlp(body, limits) => {
            let media = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(Media::of)
                .ok_or(Reject::UnsupportedMediaType)?;
            let gzipped = match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str()) {
                None => false,
                Some(Ok(v)) if v.trim().eq_ignore_ascii_case("gzip") => true,
                Some(Ok(v)) if v.trim().eq_ignore_ascii_case("identity") => false,
                Some(_) => return Err(Reject::UnsupportedEncoding),
            };
            let bytes = body::read(body, headers, limits.max_bytes, limits.deadline, held).await?;
            if bytes.is_empty() {
                return Err(Reject::EmptyBody);
            }
            Ok((Some(bytes), Some(OtlpBody { media, gzipped })))
        }
    }
}
