//! The OTLP/HTTP ingest routes: `POST /v1/traces|metrics|logs` (paths from
//! `[ingest]`) and `POST /` (`ingest.detect_paths`), where the shipped
//! client posts to the bare origin and the signature names the signal.
//!
//! admit (route `Ingest`: this request's method and path, the OTLP body
//! stage) -> v2 replay cache -> prepare per `ingest.mode` (with the content
//! policy and the series guard) -> forward -> the collector's answer (with
//! telegate's refusals added as an OTLP partial success), or an honest
//! refusal in the request's media type.
//! Observed once, with the delivery facts.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::request::Parts;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body as HttpBody;

use super::error::{render, Format};
use super::respond::Body;
use super::state::AppState;
use crate::ingest::error::IngestError;
use crate::ingest::forward::{Accepted, Outgoing, ViaGrpc};
use crate::ingest::partial;
use crate::ingest::prepare::Job;
use crate::ingest::replay::{Begin, RequestPrint};
use crate::pipeline::admission::{admit, Admitted, Attempt, BodyLimits, BodyStage, Route};
use crate::pipeline::body::BoxError;
use crate::pipeline::observe::{Decision, Delivered, Delivery};
use crate::pipeline::signature::Verified;
use crate::protocol::abuse::{mark_deprecated, KeyState};
use crate::protocol::signal::{Media, Signal};

/// How an admitted export ended well.
enum Done {
    Delivered(Arc<Accepted>),
    Replayed(Arc<Accepted>),
    /// Committed to the spool (`[spool]` on): durably accepted.
    Spooled(Arc<Accepted>),
}

/// What became of an admitted export, with its item count when decoded
/// and the items the content policy or the series guard refused.
struct Outcome {
    result: Result<Done, IngestError>,
    items: Option<u64>,
    refused: Vec<(&'static str, u64)>,
}

/// What the gRPC listener passes along with a call it answers here.
#[derive(Debug, Clone, Copy)]
pub struct GrpcCall {
    /// The body stage's limits (a gzipped message is inflated before it).
    pub limits: BodyLimits,
    pub via: ViaGrpc,
}

/// Answers one OTLP export; `signal` is `None` on a detecting path, `grpc`
/// `Some` for a call on the gRPC listener.
pub async fn handle<B>(
    state: &AppState,
    parts: Parts,
    body: B,
    peer: IpAddr,
    signal: Option<Signal>,
    grpc: Option<GrpcCall>,
) -> Response<Body>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let now = state.now();
    let route = Route::Ingest { signal };
    let settings = &state.settings.ingest;
    let limits = grpc.map_or_else(|| BodyLimits::ingest(&state.settings), |call| call.limits);
    let attempt = Attempt {
        route,
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        peer,
        body: BodyStage::Otlp(body, limits),
        now,
    };
    let stages = state.stages();
    let admission = admit(&stages, attempt).await;
    let media = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Media::of);
    let format = Format::of(media);
    let outcome = match &admission.outcome {
        Ok(admitted) => {
            let via = grpc.map(|call| call.via);
            Ok(deliver(
                state,
                admitted,
                &parts,
                (signal, via),
                admission.client_ip,
                now,
            )
            .await)
        }
        Err(reject) => Err(reject),
    };
    let verified = admission.outcome.as_ref().ok().and_then(Admitted::verified);
    let verified_signal = verified.and_then(|v| v.signal);
    let verified_key_state = verified.map(|v| v.key_state);
    let result = match &outcome {
        Err(reject) => Delivered::No {
            reason: reject.reason(),
            status: reject.status().as_u16(),
            detail: "",
        },
        Ok(Outcome {
            result: Ok(Done::Delivered(_)),
            ..
        }) => Delivered::Yes,
        Ok(Outcome {
            result: Ok(Done::Replayed(_)),
            ..
        }) => Delivered::Replayed,
        Ok(Outcome {
            result: Ok(Done::Spooled(_)),
            ..
        }) => Delivered::Spooled,
        Ok(Outcome {
            result: Err(err), ..
        }) => Delivered::No {
            reason: err.reason(),
            status: err.status().as_u16(),
            detail: err.detail(),
        },
    };
    state.observer().observe(&Decision {
        route,
        admission: &admission,
        headers: &parts.headers,
        monitor: false,
        started,
        now,
        delivery: Some(Delivery {
            signal: signal.or(verified_signal),
            detected: signal.is_none(),
            mode: settings.mode.as_str(),
            items: outcome.as_ref().ok().and_then(|o| o.items),
            refused: outcome.as_ref().map_or(&[], |o| o.refused.as_slice()),
            result,
            quota_scope: match &outcome {
                Ok(Outcome {
                    result: Err(err), ..
                }) => crate::protocol::reject::Problem::quota_scope(err),
                _ => None,
            },
        }),
    });
    let deprecated = verified_key_state == Some(KeyState::Deprecated);
    match outcome {
        Err(reject) => render(reject, format),
        Ok(Outcome {
            result: Ok(done), ..
        }) => match done {
            Done::Delivered(reply) | Done::Replayed(reply) | Done::Spooled(reply) => {
                let mut response = success(&reply);
                if deprecated {
                    mark_deprecated(response.headers_mut());
                }
                response
            }
        },
        Ok(Outcome {
            result: Err(err), ..
        }) => render(&err, format),
    }
}

/// Replay cache, prepare, forward.
async fn deliver(
    state: &AppState,
    admitted: &Admitted<'_>,
    parts: &Parts,
    arrival: (Option<Signal>, Option<ViaGrpc>),
    client_ip: IpAddr,
    now: i64,
) -> Outcome {
    let mut tally = Tally::default();
    let result = deliver_inner(state, admitted, parts, arrival, client_ip, now, &mut tally).await;
    if let Err(IngestError::ContentRejected { rule, items }) = &result {
        tally.refused.push((*rule, *items));
    }
    Outcome {
        result,
        items: tally.items,
        refused: tally.refused,
    }
}

/// What preparing an export found, kept whatever its outcome.
#[derive(Default)]
struct Tally {
    items: Option<u64>,
    refused: Vec<(&'static str, u64)>,
}

async fn deliver_inner(
    state: &AppState,
    admitted: &Admitted<'_>,
    parts: &Parts,
    (signal, via): (Option<Signal>, Option<ViaGrpc>),
    client_ip: IpAddr,
    now: i64,
    tally: &mut Tally,
) -> Result<Done, IngestError> {
    let settings = &state.settings.ingest;
    let (Some(verified), Some(raw), Some(otlp)) =
        (admitted.verified(), admitted.body.clone(), admitted.otlp)
    else {
        return Err(IngestError::Internal);
    };
    let signal = match (signal, verified.signal) {
        (Some(signal), _) | (None, Some(signal)) => signal,
        (None, None) => return Err(IngestError::Internal),
    };
    let ticket = match &verified.v2 {
        None => None,
        Some(v2) => {
            let wait = settings.collector.request_timeout + Duration::from_secs(1);
            match state
                .ingest
                .replay
                .begin(
                    verified.key_id.as_str(),
                    v2.nonce,
                    RequestPrint::of_signature(&verified.request.signature),
                    wait,
                )
                .await
            {
                Begin::Owner(ticket) => Some(ticket),
                Begin::Delivered(reply) => return Ok(Done::Replayed(reply)),
                Begin::StillInFlight => return Err(IngestError::ReplayInFlight),
                Begin::Reused => return Err(IngestError::NonceReused),
            }
        }
    };
    // A refusal from here on settles the ticket as failed (on drop).
    let job = Job {
        mode: settings.mode,
        signal,
        media: otlp.media,
        gzipped: otlp.gzipped,
        raw,
        max_inflated: settings.max_decompressed_bytes,
        add: enrichment(verified),
        drop: settings.drop_attributes.clone(),
        held: state.budget.hold_for(crate::pipeline::client_ip::limit_key(
            client_ip,
            state.settings.ipv6_prefix,
        )),
        content: state.ingest.content.clone(),
        guard: state
            .ingest
            .guard
            .as_ref()
            .map(|g| (g.clone(), verified.request.session_id.to_string(), now)),
    };
    let prepared = job.run_off_thread().await?;
    tally.items = prepared.items;
    tally.refused.extend(prepared.refused.counts());
    let our_answer = |collector: Option<&Accepted>| {
        Arc::new(partial::answer(
            signal,
            otlp.media,
            &prepared.refused,
            collector,
        ))
    };
    if prepared.emptied() {
        // Everything refused: nothing to forward, the client is told all.
        let reply = our_answer(None);
        if let Some(ticket) = ticket {
            ticket.delivered(reply.clone());
        }
        return Ok(Done::Delivered(reply));
    }
    if let Some(n) = prepared.items {
        let session = verified.request.session_id;
        state
            .abuse
            .charge_items(&admitted.scopes, n, client_ip, session, now)
            .await
            .map_err(IngestError::Quota)?;
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/x-protobuf"));
    let ingest = &state.ingest;
    let outgoing = Outgoing {
        signal,
        body: prepared.body.clone(),
        content_type,
        gzipped: otlp.gzipped,
        session_id: verified.request.session_id,
        client_version: verified.request.client_version,
    };
    // With the spool on, a commit to disk stands for delivery (the ticket too).
    let (delivery, done): (_, fn(Arc<Accepted>) -> Done) = match &ingest.spool {
        Some(spool) => (spool.append(outgoing, otlp.media).await, Done::Spooled),
        None => {
            ingest.metrics.in_flight.inc();
            let forward_started = Instant::now();
            let delivery = match via {
                Some(via) => ingest.collector.send_grpc(outgoing, via.timeout).await,
                None => ingest.collector.send(outgoing).await,
            };
            ingest.metrics.in_flight.dec();
            ingest
                .metrics
                .forward_duration_seconds
                .observe(forward_started.elapsed().as_secs_f64());
            (delivery, Done::Delivered)
        }
    };
    match delivery {
        Ok(accepted) => {
            let reply = if prepared.refused.total() > 0 {
                our_answer(Some(&accepted))
            } else {
                Arc::new(accepted)
            };
            if let Some(ticket) = ticket {
                ticket.delivered(reply.clone());
            }
            Ok(done(reply))
        }
        Err(err) => {
            if let Some(ticket) = ticket {
                ticket.failed();
            }
            Err(err)
        }
    }
}

/// The resource attributes `enrich` sets, from the verified headers.
fn enrichment(verified: &Verified<'_>) -> Vec<(&'static str, String)> {
    let mut add = Vec::with_capacity(2);
    if !verified.request.session_id.is_empty() {
        add.push(("session.id", verified.request.session_id.to_string()));
    }
    if let Some(version) = verified.request.client_version {
        add.push(("client.version", version.to_string()));
    }
    add
}

/// 200 with the collector's body and content type (its partial success
/// untouched when telegate refused nothing, else merged into ours).
fn success(reply: &Accepted) -> Response<Body> {
    let mut response = Response::new(Full::new(reply.body.clone()));
    *response.status_mut() = StatusCode::OK;
    if let Some(content_type) = &reply.content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    response
}
