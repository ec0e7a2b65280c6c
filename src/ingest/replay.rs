//! The v2 replay cache: idempotent retries, never a second delivery.
//!
//! Each (key id, nonce) gets a slot remembered for twice the window (a
//! timestamp is accepted up to `max_skew` either side of now, so a nonce
//! can be valid that long). The first request owns the slot:
//! - delivered: later requests with the nonce get the same 200 and body,
//!   without forwarding again (an SDK retry after a lost response);
//! - failed (refused, collector down, dropped connection): the next request
//!   with the nonce takes the slot over and is processed again;
//! - still running: a concurrent duplicate waits for its outcome (bounded),
//!   and answers 503 `replay_in_flight` + `Retry-After` if it does not come.
//!
//! Only the very same request is answered from the first outcome: each slot
//! keeps the first request's [`RequestPrint`] (a digest of its signature,
//! which covers method, path, session, timestamp, nonce and body hash). The
//! nonce re-signed over another body, path or session is refused as
//! `nonce_reused`, never answered with the first request's 200 while its own
//! data is silently not forwarded.
//!
//! With the memory session store the slots are per replica (a tokio `watch`
//! channel each, bounded by `ingest.replay_capacity`, least recently used
//! evicted first). With the Redis store they are shared by every replica
//! ([`SharedNonces`]: `SET p NX EX`, then the answer, or `DEL` on failure;
//! a duplicate polls about every 50 ms). When Redis cannot answer, the
//! local cache takes over (counted as `store_errors_total{op="replay"}`):
//! an export never fails because the shared cache is down.
//!
//! v1 has no nonce and never comes here.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::forward::Accepted;
use crate::session::embedded::PersistedNonces;
use crate::session::redis::{Claim, SharedNonces};

/// Rounds of waiting for a concurrent duplicate (each ends on a state change).
const MAX_WAIT_ROUNDS: usize = 16;
/// How often a duplicate asks Redis whether the first request finished.
const SHARED_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
enum State {
    InFlight,
    Delivered(Arc<Accepted>),
    Failed,
}

/// Which request a nonce was first used by: the first 16 bytes of the
/// SHA-256 of its signature (the signature itself is not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrint([u8; 16]);

impl RequestPrint {
    pub fn of_signature(signature: &[u8]) -> RequestPrint {
        let digest = Sha256::digest(signature);
        let mut print = [0; 16];
        print.copy_from_slice(&digest[..16]);
        RequestPrint(print)
    }

    fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// One nonce's slot: who first used it, and how that went.
struct SlotState {
    print: RequestPrint,
    state: watch::Sender<State>,
    /// Where a delivery is kept across a restart (the embedded store).
    persist: Option<Persist>,
}

/// A slot's way to the embedded store.
struct Persist {
    nonces: PersistedNonces,
    key: String,
    ttl: Duration,
}

impl Persist {
    fn delivered(&self, print: RequestPrint, reply: &Accepted) {
        let mut value = print.hex().into_bytes();
        value.extend_from_slice(&encode(reply));
        self.nonces.remember(&self.key, value, self.ttl.as_secs());
    }
}

type Slot = Arc<SlotState>;

/// How a request with a v2 nonce goes on.
#[derive(Debug)]
pub enum Begin {
    /// Process it; settle the ticket with the outcome.
    Owner(Ticket),
    /// Already delivered: answer this, forward nothing.
    Delivered(Arc<Accepted>),
    /// A request with this nonce is still running after the wait.
    StillInFlight,
    /// Another request (another body, path or session) used this nonce first.
    Reused,
}

/// Where a ticket's outcome goes.
enum Settle {
    Local(Slot),
    Shared {
        nonces: SharedNonces,
        key: String,
        print: String,
    },
}

/// The right (and duty) to settle a nonce's outcome. Dropped unsettled (the
/// request was cancelled), the nonce counts as failed, so a retry proceeds.
pub struct Ticket {
    settle: Settle,
    settled: bool,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = match &self.settle {
            Settle::Local(_) => "local",
            Settle::Shared { .. } => "shared",
        };
        f.debug_struct("Ticket")
            .field("settle", &place)
            .field("settled", &self.settled)
            .finish()
    }
}

/// Runs a shared settlement in the background (its failure is counted by
/// the store; a pending key then lapses with the window).
fn spawn_settle(work: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(work);
    }
}

impl Ticket {
    fn local(slot: Slot) -> Ticket {
        Ticket {
            settle: Settle::Local(slot),
            settled: false,
        }
    }

    fn shared(nonces: SharedNonces, key: String, print: String) -> Ticket {
        Ticket {
            settle: Settle::Shared { nonces, key, print },
            settled: false,
        }
    }

    pub fn delivered(mut self, reply: Arc<Accepted>) {
        self.settled = true;
        match &self.settle {
            Settle::Local(slot) => {
                if let Some(persist) = &slot.persist {
                    persist.delivered(slot.print, &reply);
                }
                slot.state.send_replace(State::Delivered(reply));
            }
            Settle::Shared { nonces, key, print } => {
                let (nonces, key, print) = (nonces.clone(), key.clone(), print.clone());
                spawn_settle(async move {
                    let _ = nonces.deliver(&key, &print, &encode(&reply)).await;
                });
            }
        }
    }

    pub fn failed(mut self) {
        self.fail();
    }

    fn fail(&mut self) {
        self.settled = true;
        match &self.settle {
            Settle::Local(slot) => {
                slot.state.send_replace(State::Failed);
            }
            Settle::Shared { nonces, key, .. } => {
                let (nonces, key) = (nonces.clone(), key.clone());
                spawn_settle(async move {
                    let _ = nonces.release(&key).await;
                });
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled {
            self.fail();
        }
    }
}

/// The collector's answer as Redis keeps it: content type, newline, body
/// (a header value holds no newline).
fn encode(reply: &Accepted) -> Vec<u8> {
    let content_type = reply
        .content_type
        .as_ref()
        .map_or(&b""[..], |v| v.as_bytes());
    let mut out = Vec::with_capacity(content_type.len() + 1 + reply.body.len());
    out.extend_from_slice(content_type);
    out.push(b'\n');
    out.extend_from_slice(&reply.body);
    out
}

/// A delivered slot from a kept value: print (hex), then [`encode`]'s form.
fn restored(value: &[u8]) -> Option<Slot> {
    let (print_hex, answer) = value.split_at_checked(32)?;
    let mut print = [0u8; 16];
    hex::decode_to_slice(print_hex, &mut print).ok()?;
    let reply = decode(answer)?;
    Some(Arc::new(SlotState {
        print: RequestPrint(print),
        state: watch::Sender::new(State::Delivered(Arc::new(reply))),
        persist: None,
    }))
}

fn decode(stored: &[u8]) -> Option<Accepted> {
    let split = stored.iter().position(|&b| b == b'\n')?;
    let (content_type, body) = (&stored[..split], &stored[split + 1..]);
    let content_type = match content_type {
        [] => None,
        bytes => Some(HeaderValue::from_bytes(bytes).ok()?),
    };
    Some(Accepted {
        content_type,
        body: Bytes::copy_from_slice(body),
    })
}

pub struct ReplayCache {
    slots: Cache<String, Slot>,
    shared: Option<SharedNonces>,
    persisted: Option<PersistedNonces>,
    ttl: Duration,
}

impl ReplayCache {
    /// `ttl`: how long a nonce is remembered (twice the window).
    pub fn new(capacity: u64, ttl: Duration) -> ReplayCache {
        ReplayCache {
            slots: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            shared: None,
            persisted: None,
            ttl,
        }
    }

    /// Shares the nonces through Redis (the session store's connection);
    /// the local cache stays as the fallback.
    pub fn with_shared(mut self, nonces: SharedNonces) -> ReplayCache {
        self.shared = Some(nonces);
        self
    }

    /// Keeps delivered nonces in the embedded store, and takes back those
    /// still inside their window: a retry after a restart is answered from
    /// its first outcome (blocking: call it at start).
    pub fn with_persisted(mut self, nonces: PersistedNonces) -> ReplayCache {
        match nonces.live() {
            Ok(live) => {
                for (key, value) in live {
                    if let Some(slot) = restored(&value) {
                        self.slots.insert(key, slot);
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "replay cache: cannot read kept nonces"),
        }
        self.persisted = Some(nonces);
        self
    }

    /// Nonces remembered right now in this replica (approximate, for the gauge).
    pub fn len(&self) -> u64 {
        self.slots.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Claims `(key_id, nonce)` for the request `print`, or reports the
    /// first request's outcome (when it was this very request); waits at
    /// most `wait` for a concurrent first request to finish.
    pub async fn begin(
        &self,
        key_id: &str,
        nonce: &str,
        print: RequestPrint,
        wait: Duration,
    ) -> Begin {
        // Neither a key id nor a hex nonce contains '|'.
        let key = format!("{key_id}|{}", nonce.to_ascii_lowercase());
        if let Some(nonces) = &self.shared {
            if let Some(begun) = self.begin_shared(nonces, &key, print, wait).await {
                return begun;
            }
        }
        self.begin_local(key, print, wait).await
    }

    /// `None`: Redis did not answer (counted by the store); go local.
    async fn begin_shared(
        &self,
        nonces: &SharedNonces,
        key: &str,
        print: RequestPrint,
        wait: Duration,
    ) -> Option<Begin> {
        let deadline = tokio::time::Instant::now() + wait;
        let ttl = self.ttl.as_secs().max(1);
        let ours = print.hex();
        // An older replica's value has no print: taken as the same request.
        let other = |held: &Option<String>| held.as_ref().is_some_and(|p| *p != ours);
        loop {
            match nonces.claim(key, &ours, ttl).await.ok()? {
                Claim::Claimed => {
                    return Some(Begin::Owner(Ticket::shared(
                        nonces.clone(),
                        key.to_string(),
                        ours,
                    )))
                }
                Claim::Delivered { print, .. } | Claim::Pending { print } if other(&print) => {
                    return Some(Begin::Reused)
                }
                Claim::Delivered { answer, .. } => {
                    return match decode(&answer) {
                        Some(reply) => Some(Begin::Delivered(Arc::new(reply))),
                        None => {
                            tracing::warn!("replay cache (redis): unreadable delivered answer");
                            None
                        }
                    };
                }
                Claim::Pending { .. } => {
                    if tokio::time::Instant::now() + SHARED_POLL > deadline {
                        return Some(Begin::StillInFlight);
                    }
                    tokio::time::sleep(SHARED_POLL).await;
                }
            }
        }
    }

    async fn begin_local(&self, key: String, print: RequestPrint, wait: Duration) -> Begin {
        let persist = self.persisted.as_ref().map(|nonces| Persist {
            nonces: nonces.clone(),
            key: key.clone(),
            ttl: self.ttl,
        });
        let entry = self.slots.entry(key).or_insert_with(|| {
            Arc::new(SlotState {
                print,
                state: watch::Sender::new(State::InFlight),
                persist,
            })
        });
        let fresh = entry.is_fresh();
        let slot = entry.into_value();
        if fresh {
            return Begin::Owner(Ticket::local(slot));
        }
        if slot.print != print {
            return Begin::Reused;
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut seen = slot.state.subscribe();
        for _ in 0..MAX_WAIT_ROUNDS {
            let mut took_over = false;
            slot.state.send_if_modified(|state| {
                took_over = matches!(state, State::Failed);
                if took_over {
                    *state = State::InFlight;
                }
                took_over
            });
            if took_over {
                return Begin::Owner(Ticket::local(slot));
            }
            if let State::Delivered(reply) = &*seen.borrow_and_update() {
                return Begin::Delivered(reply.clone());
            }
            match tokio::time::timeout_at(deadline, seen.changed()).await {
                Ok(Ok(())) => continue,
                // The sender lives in `slot`, held here: cannot close.
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Begin::StillInFlight
    }
}

#[cfg(test)]
mod tests;
