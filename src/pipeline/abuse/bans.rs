//! Escalating bans (Authelia's regulation, fail2ban): refusals from one
//! address (IPv6 by `rate_limit.ipv6_prefix`) or one session are counted in
//! a window of `within_secs`; at `refusals` the subject is banned for
//! `ban_secs`, doubled for each ban it had before, up to `max_ban_secs`.
//! A subject that stays clean for `max_ban_secs` after its last ban starts
//! again from `ban_secs`.
//!
//! Memory is bounded: at most [`MAX_SUBJECTS`] subjects per kind; at the cap
//! the stale are purged, and a new subject is not counted while the map is
//! still full (a ban in force is never dropped for room). While no ban is in
//! force the check costs one atomic load.
//!
//! With a store shared by replicas, bans are published there and the
//! refusals are counted there too, in batches ([`super::bans_shared`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::{IntCounter, IntGauge};
use serde::Serialize;

use super::ban_record::{check, check_until, escalate, note, purge, Record};
use super::bans_shared::{SharedCounts, Sink};
use super::shared::SharedAbuse;
use crate::config::BanSettings;
use crate::protocol::reject::Reject;

/// Subjects tracked at most, per kind (addresses, sessions).
pub const MAX_SUBJECTS: usize = 100_000;
/// A ban imposed here is in the shared store within this long; one still
/// missing after it was lifted elsewhere.
const PUBLISH_GRACE_SECS: i64 = 3;
/// Longest session id kept (longer ones are cut; they are bounded upstream).
const MAX_SESSION_LEN: usize = 128;

/// Who a ban is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Address(IpAddr),
    Session(String),
}

impl Subject {
    /// `address:192.0.2.1`, `address:2001:db8::` (a /64), `session:ID`; a
    /// bare address is read as `address:`.
    pub fn parse(text: &str) -> Option<Subject> {
        if let Some(id) = text.strip_prefix("session:") {
            return (!id.is_empty()).then(|| Subject::Session(id.to_string()));
        }
        let address = text.strip_prefix("address:").unwrap_or(text);
        address.parse().ok().map(Subject::Address)
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Address(ip) => write!(f, "address:{ip}"),
            Subject::Session(id) => write!(f, "session:{id}"),
        }
    }
}

/// One ban in force, as `GET /bans` lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BanView {
    pub subject: String,
    /// Unix seconds.
    pub until: i64,
    pub remaining_secs: i64,
    /// Bans this subject had, this one included.
    pub bans: u32,
}

pub struct BanMetrics {
    pub bans_total: IntCounter,
    pub bans_active: IntGauge,
}

pub struct Bans {
    settings: BanSettings,
    addresses: Mutex<HashMap<IpAddr, Record>>,
    sessions: Mutex<HashMap<String, Record>>,
    /// False: no ban can be in force (purged), the check is skipped.
    any: Arc<AtomicBool>,
    metrics: BanMetrics,
    /// Bans published by every replica (the shared store), as of the last
    /// refresh ([`Bans::set_shared`]), and the store to publish to.
    shared: Option<Arc<dyn SharedAbuse>>,
    remote: Arc<Mutex<Remote>>,
    /// Refusals counted across replicas, when the store does.
    counts: Option<Arc<SharedCounts>>,
}

/// The shared bans in force, by subject kind: Unix seconds each ends.
#[derive(Default)]
pub(super) struct Remote {
    addresses: HashMap<IpAddr, i64>,
    sessions: HashMap<String, i64>,
}

impl Remote {
    /// A shared ban seen before the next refresh (the longer one kept).
    pub(super) fn insert(&mut self, subject: Subject, until: i64) {
        let held = match subject {
            Subject::Address(ip) => self.addresses.entry(ip).or_default(),
            Subject::Session(id) => self.sessions.entry(id).or_default(),
        };
        *held = until.max(*held);
    }
}

impl Bans {
    pub fn new(settings: BanSettings, metrics: BanMetrics) -> Bans {
        Bans {
            settings,
            addresses: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            any: Arc::new(AtomicBool::new(false)),
            metrics,
            shared: None,
            remote: Arc::new(Mutex::new(Remote::default())),
            counts: None,
        }
    }

    /// Publishes every ban to `link` and enforces the bans it holds; counts
    /// refusals there too when it does.
    pub fn with_shared(mut self, link: Arc<dyn SharedAbuse>) -> Bans {
        if link.counts_refusals() {
            let sink = Sink {
                remote: self.remote.clone(),
                any: self.any.clone(),
                bans_total: self.metrics.bans_total.clone(),
            };
            let counts = SharedCounts::new(link.clone(), self.settings, sink);
            self.counts = Some(Arc::new(counts));
        }
        self.shared = Some(link);
        self
    }

    /// Sends the refusals still waiting to the shared count (the ban timer).
    pub async fn flush_counts(&self, now: i64) {
        if let Some(counts) = &self.counts {
            counts.flush(now).await;
        }
    }

    /// The store bans are shared through, if any.
    pub fn link(&self) -> Option<&Arc<dyn SharedAbuse>> {
        self.shared.as_ref()
    }

    /// Replaces the shared bans with `bans` (subject, until), read from the
    /// store; subjects that do not parse are skipped.
    pub fn set_shared(&self, bans: Vec<(String, i64)>, now: i64) {
        let mut remote = Remote::default();
        for (text, until) in bans.into_iter().filter(|(_, until)| *until > now) {
            match Subject::parse(&text) {
                Some(Subject::Address(ip)) => {
                    remote.addresses.insert(ip, until);
                }
                Some(Subject::Session(id)) => {
                    remote.sessions.insert(id, until);
                }
                None => {}
            }
        }
        if !remote.addresses.is_empty() || !remote.sessions.is_empty() {
            self.any.store(true, Ordering::Relaxed);
        }
        // A ban of ours that is published (older than the grace) but gone
        // from the store was lifted through another replica.
        let lifted = |r: &Record| r.until > now && now - r.since >= PUBLISH_GRACE_SECS;
        for (ip, r) in lock(&self.addresses).iter_mut() {
            if lifted(r) && !remote.addresses.contains_key(ip) {
                r.until = now;
                r.count = 0;
            }
        }
        for (id, r) in lock(&self.sessions).iter_mut() {
            if lifted(r) && !remote.sessions.contains_key(id) {
                r.until = now;
                r.count = 0;
            }
        }
        *lock(&self.remote) = remote;
    }

    /// 403 `banned` with the seconds left, when `address` is banned.
    pub fn check_address(&self, address: IpAddr, now: i64) -> Result<(), Reject> {
        if !self.any.load(Ordering::Relaxed) {
            return Ok(());
        }
        check(&lock(&self.addresses), &address, now)?;
        check_until(lock(&self.remote).addresses.get(&address), now)
    }

    /// As [`Bans::check_address`], for a (verified) session id.
    pub fn check_session(&self, session: &str, now: i64) -> Result<(), Reject> {
        if !self.any.load(Ordering::Relaxed) || session.is_empty() {
            return Ok(());
        }
        check(&lock(&self.sessions), session, now)?;
        check_until(lock(&self.remote).sessions.get(session), now)
    }

    /// Counts one refusal against `address` and, when known, `session`.
    pub fn note(&self, address: IpAddr, session: Option<&str>, now: i64) {
        let banned = note(&self.settings, &mut lock(&self.addresses), address, now);
        self.share(banned.is_some(), || Subject::Address(address), now);
        self.announce(banned, || Subject::Address(address), now);
        if let Some(session) = session.filter(|s| !s.is_empty()) {
            let session = cut(session);
            let mut map = lock(&self.sessions);
            let banned = match map.get_mut(session) {
                Some(record) => escalate(&self.settings, record, now),
                None => note(&self.settings, &mut map, session.to_string(), now),
            };
            drop(map);
            self.share(
                banned.is_some(),
                || Subject::Session(session.to_string()),
                now,
            );
            self.announce(banned, || Subject::Session(session.to_string()), now);
        }
    }

    /// Adds the refusal to the shared count, when refusals are shared.
    fn share(&self, banned_here: bool, subject: impl FnOnce() -> Subject, now: i64) {
        if let Some(counts) = &self.counts {
            counts.add(subject().to_string(), banned_here, now);
        }
    }

    fn announce(&self, banned: Option<(u64, u32)>, subject: impl FnOnce() -> Subject, now: i64) {
        let Some((secs, bans)) = banned else { return };
        self.any.store(true, Ordering::Relaxed);
        let subject = subject();
        if let Some(link) = &self.shared {
            let link = link.clone();
            let text = subject.to_string();
            let until = now.saturating_add(secs as i64);
            tokio::spawn(async move {
                if let Err(err) = link.ban(text, until).await {
                    tracing::warn!(error = %err, "could not share a ban: it holds on this replica only");
                }
            });
        }
        self.metrics.bans_total.inc();
        self.metrics.bans_active.inc();
        tracing::warn!(
            target: "telegate::ban",
            subject = %subject,
            ban_secs = secs,
            bans,
            refusals = self.settings.refusals,
            within_secs = self.settings.within_secs,
            "banned after repeated refusals"
        );
    }

    /// The bans in force, longest first, at most `limit`.
    pub fn list(&self, now: i64, limit: usize) -> Vec<BanView> {
        let mut views: Vec<BanView> = Vec::new();
        let view = |subject: Subject, r: &Record| BanView {
            subject: subject.to_string(),
            until: r.until,
            remaining_secs: r.until - now,
            bans: r.repeats,
        };
        for (ip, r) in lock(&self.addresses).iter().filter(|(_, r)| r.until > now) {
            views.push(view(Subject::Address(*ip), r));
        }
        for (id, r) in lock(&self.sessions).iter().filter(|(_, r)| r.until > now) {
            views.push(view(Subject::Session(id.clone()), r));
        }
        let remote = lock(&self.remote);
        let shared = remote
            .addresses
            .iter()
            .map(|(ip, until)| (Subject::Address(*ip), *until))
            .chain(
                remote
                    .sessions
                    .iter()
                    .map(|(id, until)| (Subject::Session(id.clone()), *until)),
            );
        for (subject, until) in shared.filter(|(_, until)| *until > now) {
            let text = subject.to_string();
            if !views.iter().any(|v| v.subject == text) {
                views.push(BanView {
                    subject: text,
                    until,
                    remaining_secs: until - now,
                    bans: 0,
                });
            }
        }
        drop(remote);
        views.sort_by(|a, b| b.until.cmp(&a.until).then(a.subject.cmp(&b.subject)));
        views.truncate(limit);
        views
    }

    /// Lifts a ban and forgets the subject's refusals; `false`: none in force.
    pub fn lift(&self, subject: &Subject, now: i64) -> bool {
        let record = match subject {
            Subject::Address(ip) => lock(&self.addresses).remove(ip),
            Subject::Session(id) => lock(&self.sessions).remove(id.as_str()),
        };
        let local = record.is_some_and(|r| r.until > now);
        if local {
            self.metrics.bans_active.dec();
        }
        let mut remote = lock(&self.remote);
        let shared = match subject {
            Subject::Address(ip) => remote.addresses.remove(ip),
            Subject::Session(id) => remote.sessions.remove(id.as_str()),
        };
        drop(remote);
        let lifted = local || shared.is_some_and(|until| until > now);
        if lifted {
            tracing::info!(target: "telegate::ban", %subject, "ban lifted");
        }
        lifted
    }

    /// Drops subjects with no ban in force, no refusal in the window and
    /// no ban within `max_ban_secs`; recounts the bans in force.
    pub fn purge(&self, now: i64) -> usize {
        let settings = &self.settings;
        let active = purge(settings, &mut lock(&self.addresses), now)
            + purge(settings, &mut lock(&self.sessions), now);
        self.metrics.bans_active.set(active as i64);
        let remote = lock(&self.remote);
        let shared = remote.addresses.values().chain(remote.sessions.values());
        let any_shared = shared.copied().any(|until| until > now);
        drop(remote);
        self.any.store(active > 0 || any_shared, Ordering::Relaxed);
        active
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn cut(session: &str) -> &str {
    if session.len() <= MAX_SESSION_LEN {
        return session;
    }
    let mut end = MAX_SESSION_LEN;
    while !session.is_char_boundary(end) {
        end -= 1;
    }
    &session[..end]
}

#[cfg(test)]
#[path = "bans_tests.rs"]
mod tests;
