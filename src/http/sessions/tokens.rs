//! Issued sessions: `POST /sessions` hands out a token; `activity`, `extend`
//! and `refresh` change a live one.
//!
//! `POST /sessions` is for an admin or a signed client. A signed client is
//! admitted through the one pipeline (route `SessionCreate`: the default
//! policy, rate limit, window, keyring, the body and its v2 hash,
//! revocation, per-address cap), over the method and path of this request
//! itself (`POST /sessions`), observed like every decision, and its new
//! session counts against its address's `max_per_ip`. The token appears in the response and nowhere
//! else: not in the store, a log line or a listing.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Response, StatusCode};
use hyper::body::Body as HttpBody;
use serde::Deserialize;
use serde_json::json;

use super::access::is_admin;
use super::body;
use super::create_body::CreateBody;
use super::ApiError;
use crate::http::respond::{self, Body};
use crate::http::state::AppState;
use crate::ingest::forward::Accepted;
use crate::ingest::replay::{Begin, RequestPrint, Ticket};
use crate::pipeline::admission::{admit, Attempt, BodyLimits, BodyStage, Route};
use crate::pipeline::body::BoxError;
use crate::pipeline::observe::Decision;
use crate::pipeline::session_gate;
use crate::pipeline::signature::Verified;
use crate::protocol::reject::Reject;
use crate::protocol::token::{self, Token};
use crate::session::{Change, Changed, Issue, NewSession, SessionRecord};

/// The namespace of user ids a signed client claims: `{"user_id":"carol"}`
/// from a signed client is stored (and sent to backends as `X-Auth-User`)
/// as `signed:carol`. Every client holds the signing secret, so a claimed id
/// proves nothing: it must never count against, evict or pass for the
/// sessions an admin issued to `carol`.
pub const SIGNED_USER_PREFIX: &str = "signed:";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExtendBody {
    pub(super) additional_seconds: u64,
}

impl ExtendBody {
    /// An `extend` body: `{"additional_seconds": N}`, required.
    pub(super) fn parse(bytes: &[u8]) -> Result<ExtendBody, ApiError> {
        body::object(bytes)?.ok_or(ApiError::MalformedBody(
            "expected {\"additional_seconds\": N}",
        ))
    }
}

/// Who asked for a session, and what of the request is kept with it.
struct Issuer {
    client_ip: Option<IpAddr>,
    client_version: Option<String>,
    key_id: Option<String>,
}

pub(super) async fn create<B>(
    state: &AppState,
    parts: &Parts,
    body: B,
    peer: IpAddr,
    now: i64,
) -> Result<Response<Body>, ApiError>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let headers = &parts.headers;
    let (issuer, bytes, nonce) = issuer(state, parts, body, peer, now).await?;
    let mut request = CreateBody::parse(&bytes)?;
    // Roles and permissions are an admin's to grant: every client holds
    // the signing secret, so a signed client could give itself any.
    if issuer.client_ip.is_some() && request.asks_for_grants() {
        return Err(ApiError::GrantsAdminOnly);
    }
    let grants = request.grants()?;
    let user_id = match (request.user_id, issuer.client_ip) {
        (Some(user), _) if user.starts_with(SIGNED_USER_PREFIX) => {
            return Err(ApiError::ReservedUserId)
        }
        (Some(user), Some(_signed)) => Some(format!("{SIGNED_USER_PREFIX}{user}")),
        (user, None) => user,
        (None, Some(_)) => None,
    };
    let metadata = metadata(state, request.metadata)?;
    let metadata_stored = metadata.is_some();
    let session_id =
        token::new_session_id().map_err(|err| ApiError::Internal(format!("OS RNG: {err}")))?;
    let token = new_token()?;
    let new = NewSession {
        session_id,
        token_hash: token.hash(),
        user_id,
        metadata,
        client_ip: issuer.client_ip,
        user_agent: session_gate::user_agent(headers).map(str::to_string),
        client_version: issuer.client_version,
        key_id: issuer.key_id,
        grants,
        ttl_secs: request.ttl_secs,
        now,
    };
    let (record, evicted) = match state.sessions.issue(new).await? {
        Issue::Created { record, evicted } => (record, evicted),
        Issue::TooManyForUser => return Err(ApiError::TooManyUserSessions),
        Issue::TooManyForIp => return Err(Reject::TooManySessions.into()),
    };
    // A token was minted: the nonce is spent (a failure above releases it
    // when the ticket drops, so a retry of the same request proceeds).
    if let Some(ticket) = nonce {
        ticket.delivered(Arc::new(Accepted {
            content_type: None,
            body: Bytes::new(),
        }));
    }
    state
        .metrics
        .sessions_created_total
        .with_label_values(&["issued"])
        .inc();
    tracing::info!(
        session = record.session_id,
        pet_name = record.pet_name,
        evicted,
        signed = issuer.client_ip.is_some(),
        "session issued"
    );
    Ok(respond::json(
        StatusCode::CREATED,
        &json!({
            "session_id": record.session_id,
            "token": token.expose(),
            "expires_at": record.expires_at,
            "idle_expires_at": record.idle_expires_at,
            "user_id": record.user_id,
            "kind": record.kind,
            "pet_name": record.pet_name,
            "metadata_stored": metadata_stored,
            "roles": record.grants.roles,
            "permissions": record.grants.permissions,
        }),
    ))
}

/// An admin, or a client whose `X-KMS-*` signature over this request checks
/// out (admitted and observed like any decision); anyone else is refused
/// before the body is read. Returns the body too: admission reads it, so a
/// v2 signature binds it; and for v2, the nonce's ticket: one v2 header set
/// mints at most one token.
async fn issuer<B>(
    state: &AppState,
    parts: &Parts,
    body: B,
    peer: IpAddr,
    now: i64,
) -> Result<(Issuer, Bytes, Option<Ticket>), ApiError>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let headers = &parts.headers;
    let settings = &state.settings;
    let max_bytes = settings.sessions.max_body_bytes;
    let deadline = settings.ingest.body_timeout;
    let bearer = token::bearer(headers);
    if bearer.is_some_and(|b| is_admin(state, b)) {
        let admin = Issuer {
            client_ip: None,
            client_version: None,
            key_id: None,
        };
        return Ok((
            admin,
            body::read_limited(body, headers, max_bytes, deadline, &state.budget).await?,
            None,
        ));
    }
    if headers.contains_key(&settings.header_names.signature) {
        let started = Instant::now();
        let attempt = Attempt {
            route: Route::SessionCreate,
            method: &parts.method,
            uri: &parts.uri,
            headers,
            peer,
            body: BodyStage::Json(
                body,
                BodyLimits {
                    max_bytes,
                    deadline,
                },
            ),
            now,
        };
        let stages = state.stages();
        let admission = admit(&stages, attempt).await;
        state.observer().observe(&Decision {
            route: Route::SessionCreate,
            admission: &admission,
            headers,
            monitor: false,
            started,
            now,
            delivery: None,
        });
        let admitted = admission.outcome?;
        let verified = admitted.verified().ok_or(ApiError::CredentialRequired)?;
        let nonce = match &verified.v2 {
            None => None,
            Some(v2) => Some(spend_nonce(state, verified, v2.nonce).await?),
        };
        let signed = Issuer {
            client_ip: Some(admission.client_ip),
            client_version: verified.request.client_version.map(str::to_string),
            key_id: Some(verified.key_id.to_string()),
        };
        return Ok((signed, admitted.body.unwrap_or_default(), nonce));
    }
    match (bearer, state.admin_token()) {
        (Some(_), Some(_)) => Err(ApiError::BadAdminToken),
        (Some(_), None) => Err(ApiError::AdminDisabled),
        (None, _) => Err(ApiError::CredentialRequired),
    }
}

/// Claims a v2 nonce for this session request in the replay cache (shared
/// through Redis with the Redis store). A nonce that already minted a token,
/// or that another request used, is refused: a token cannot be replayed.
async fn spend_nonce(
    state: &AppState,
    verified: &Verified<'_>,
    nonce: &str,
) -> Result<Ticket, ApiError> {
    let print = RequestPrint::of_signature(&verified.request.signature);
    let wait = state.settings.ingest.body_timeout;
    match state
        .ingest
        .replay
        .begin(verified.key_id.as_str(), nonce, print, wait)
        .await
    {
        Begin::Owner(ticket) => Ok(ticket),
        Begin::Delivered(_) | Begin::Reused => Err(ApiError::NonceReused),
        Begin::StillInFlight => Err(ApiError::ReplayInFlight),
    }
}

/// The metadata to store: an object within `max_metadata_bytes`, kept only
/// when `store_metadata` is on.
fn metadata(
    state: &AppState,
    metadata: Option<serde_json::Value>,
) -> Result<Option<serde_json::Value>, ApiError> {
    let Some(metadata) = metadata.filter(|m| !m.is_null()) else {
        return Ok(None);
    };
    if !metadata.is_object() {
        return Err(ApiError::MalformedBody("metadata must be a JSON object"));
    }
    let size = serde_json::to_vec(&metadata)
        .map_err(|err| ApiError::Internal(format!("metadata serialization: {err}")))?
        .len();
    if size > state.settings.sessions.max_metadata_bytes {
        return Err(ApiError::MetadataTooLarge);
    }
    Ok(state.settings.sessions.store_metadata.then_some(metadata))
}

fn new_token() -> Result<Token, ApiError> {
    Token::generate().map_err(|err| ApiError::Internal(format!("OS RNG: {err}")))
}

/// A live issued session after a change, or why there is none.
fn changed(outcome: Changed) -> Result<Box<SessionRecord>, ApiError> {
    match outcome {
        Changed::Done(record) => Ok(record),
        Changed::Expired => Err(ApiError::Expired),
        Changed::Unknown => Err(ApiError::NotFound),
        Changed::NotIssued => Err(ApiError::NotIssued),
    }
}

pub(super) async fn activity(
    state: &AppState,
    id: &str,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    let record = changed(state.sessions.change(id, Change::Touch, now).await?)?;
    Ok(respond::json(StatusCode::OK, &record))
}

pub(super) async fn extend<B>(
    state: &AppState,
    headers: &HeaderMap,
    body: B,
    id: &str,
    now: i64,
) -> Result<Response<Body>, ApiError>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let settings = &state.settings.sessions;
    let deadline = state.settings.ingest.body_timeout;
    let bytes = body::read_limited(
        body,
        headers,
        settings.max_body_bytes,
        deadline,
        &state.budget,
    )
    .await?;
    let request = ExtendBody::parse(&bytes)?;
    let seconds = request.additional_seconds;
    if !(1..=settings.max_lifetime.as_secs()).contains(&seconds) {
        return Err(ApiError::MalformedBody(
            "additional_seconds must be between 1 and sessions.max_lifetime_secs",
        ));
    }
    let change = Change::Extend(seconds);
    let record = changed(state.sessions.change(id, change, now).await?)?;
    Ok(respond::json(StatusCode::OK, &record))
}

/// A new token; the old one opens nothing once this answers.
pub(super) async fn refresh(
    state: &AppState,
    id: &str,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    let token = new_token()?;
    let change = Change::Refresh(token.hash());
    let record = changed(state.sessions.change(id, change, now).await?)?;
    tracing::info!(
        session = id,
        pet_name = record.pet_name,
        "session token refreshed"
    );
    Ok(respond::json(
        StatusCode::OK,
        &json!({
            "session_id": record.session_id,
            "token": token.expose(),
            "expires_at": record.expires_at,
            "idle_expires_at": record.idle_expires_at,
        }),
    ))
}
