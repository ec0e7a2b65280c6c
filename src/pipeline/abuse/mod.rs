//! The abuse controls, each a stage inside [`super::admission::admit`]
//! (issue 10): every client holds the signing secret, so a valid signature
//! says "a copy of the client", not who. In their order in admission:
//!
//! - after the rate limit: a banned address (403 `banned`), then the
//!   policy's networks (403 `network_denied`);
//! - after the signature verified: the key's state (403 `key_revoked`), the
//!   policy's and the key's client versions (403 `client_version_blocked`),
//!   a banned session, the `requests` quotas (429 `quota_exceeded`);
//! - after the body stage: the `bytes` quotas;
//! - after admission, on the ingest routes only: the `items` quotas, once
//!   the export is decoded ([`Abuse::charge_items`]). forwardAuth never
//!   decodes a body, so item quotas do not apply to `/auth`.
//!
//! Refusals feed the bans in one place, [`Abuse::refused`], called at the
//! end of admission (and by [`Abuse::charge_items`] for its own refusal).
//! A refusal before the signature verified counts against the address
//! only: its session id is the sender's claim, and counting it would let
//! anyone ban someone else's session.

mod ban_record;
pub mod bans;
mod bans_shared;
pub mod lease;
pub mod metrics;
pub mod quota;
pub mod shared;

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{Policy, QuotaUnit, Settings};
use crate::protocol::abuse::KeyState;
use crate::protocol::reject::Reject;
use bans::{BanMetrics, Bans};
use lease::Leases;
use metrics::AbuseMetrics;
use quota::{Quotas, ScopeValues, Scopes};
use shared::SharedAbuse;

use super::client_ip;
use super::signature::Verified;

/// The shared state of the abuse stages: quotas and bans.
pub struct Abuse {
    pub quotas: Quotas,
    /// `None`: `[bans]` is absent.
    pub bans: Option<Bans>,
    ipv6_prefix: u8,
}

impl Abuse {
    /// `shared`: the store replicas share quotas and bans through (the
    /// Redis store), `None` for memory.
    pub fn new(
        settings: &Settings,
        metrics: &AbuseMetrics,
        shared: Option<Arc<dyn SharedAbuse>>,
    ) -> Abuse {
        let mut quotas = Quotas::new(settings.quotas.clone());
        if let Some(link) = &shared {
            quotas = quotas.shared(Leases::new(
                link.clone(),
                metrics.quota_fallback_total.clone(),
            ));
        }
        let bans = settings.bans.map(|ban_settings| {
            let bans = Bans::new(
                ban_settings,
                BanMetrics {
                    bans_total: metrics.bans_total.clone(),
                    bans_active: metrics.bans_active.clone(),
                },
            );
            match &shared {
                Some(link) => bans.with_shared(link.clone()),
                None => bans,
            }
        });
        Abuse {
            quotas,
            bans,
            ipv6_prefix: settings.ipv6_prefix,
        }
    }

    /// Sends the refusals waiting for the shared counts, then refreshes the
    /// bans published by every replica (on a one-second timer, so a ban
    /// anywhere holds here within about two seconds).
    pub async fn sync_bans(&self, now: i64) {
        let Some(bans) = &self.bans else { return };
        let Some(link) = bans.link() else { return };
        bans.flush_counts(now).await;
        match link.bans(now, bans::MAX_SUBJECTS).await {
            Ok(list) => bans.set_shared(list, now),
            Err(err) => tracing::debug!(error = %err, "could not read the shared bans"),
        }
    }

    /// Lifts a ban here and in the shared store; `false`: none in force.
    pub async fn lift(&self, subject: &bans::Subject, now: i64) -> bool {
        let Some(bans) = &self.bans else { return false };
        let lifted = bans.lift(subject, now);
        if let Some(link) = bans.link() {
            if let Err(err) = link.lift(subject.to_string()).await {
                tracing::warn!(error = %err, "could not lift the shared ban");
            }
        }
        lifted
    }

    /// Whether bans are shared, so a timer should call [`Abuse::sync_bans`].
    pub fn shares_bans(&self) -> bool {
        self.bans.as_ref().is_some_and(|b| b.link().is_some())
    }

    /// Right after the rate limit: a banned address, then the policy's networks.
    pub fn check_address(&self, policy: &Policy, ip: IpAddr, now: i64) -> Result<(), Reject> {
        if let Some(bans) = &self.bans {
            bans.check_address(self.address(ip), now)?;
        }
        if !policy.filters.network_allows(ip) {
            return Err(Reject::NetworkDenied);
        }
        Ok(())
    }

    /// Right after the signature verified: key state, client versions, a
    /// banned session, the `requests` quotas. Returns the request's scopes
    /// for the later charges.
    pub async fn check_verified(
        &self,
        policy: &Policy,
        verified: &Verified<'_>,
        signal: Option<&str>,
        ip: IpAddr,
        now: i64,
    ) -> Result<Scopes, Reject> {
        if verified.key_state == KeyState::Revoked {
            return Err(Reject::KeyRevoked);
        }
        let version = verified.request.client_version;
        let key_allows = verified
            .key_versions
            .as_ref()
            .is_none_or(|filter| filter.allows(version));
        if !policy.filters.versions.allows(version) || !key_allows {
            return Err(Reject::ClientVersionBlocked);
        }
        let session = verified.request.session_id;
        if let Some(bans) = &self.bans {
            bans.check_session(session, now)?;
        }
        if self.quotas.is_empty() {
            return Ok(Scopes::none());
        }
        let values = ScopeValues {
            session: Some(session),
            key: verified.key_id.as_str(),
            client_version: version,
            address: self.address(ip),
            signal,
        };
        let scopes = self
            .quotas
            .scopes(&policy.name, verified.key_state, &values);
        self.quotas
            .charge(&scopes, QuotaUnit::Requests, 1, now)
            .await?;
        Ok(scopes)
    }

    /// After the body stage: the body's bytes.
    pub async fn charge_bytes(&self, scopes: &Scopes, bytes: u64, now: i64) -> Result<(), Reject> {
        self.quotas
            .charge(scopes, QuotaUnit::Bytes, bytes, now)
            .await
    }

    /// After an export is decoded (ingest routes): its spans, data points or
    /// log records. A refusal counts toward a ban like any other.
    pub async fn charge_items(
        &self,
        scopes: &Scopes,
        items: u64,
        ip: IpAddr,
        session: &str,
        now: i64,
    ) -> Result<(), Reject> {
        let charged = self
            .quotas
            .charge(scopes, QuotaUnit::Items, items, now)
            .await;
        if let Err(reject) = &charged {
            self.refused(reject, ip, Some(session), now);
        }
        charged
    }

    /// The one place refusals feed the bans. `session`: only once the
    /// signature verified (see the module doc).
    pub fn refused(&self, reject: &Reject, ip: IpAddr, session: Option<&str>, now: i64) {
        let Some(bans) = &self.bans else { return };
        if counts_toward_ban(reject) {
            bans.note(self.address(ip), session, now);
        }
    }

    /// Drops idle buckets and stale ban records (on the purge timer).
    pub fn purge(&self, now: i64) {
        self.quotas.purge(now);
        if let Some(bans) = &self.bans {
            bans.purge(now);
        }
    }

    /// The address as bans and quotas key it: IPv6 by its prefix.
    pub fn address(&self, ip: IpAddr) -> IpAddr {
        client_ip::limit_key(crate::ip::canonical(ip), self.ipv6_prefix)
    }
}

/// The refusals that say "forging or flooding", not "misconfigured": a
/// signature that does not hold, a timestamp outside the window, a header
/// or body that does not match what was signed, a revoked key, a quota.
fn counts_toward_ban(reject: &Reject) -> bool {
    matches!(
        reject,
        Reject::BadSignature
            | Reject::StaleTimestamp
            | Reject::FutureTimestamp
            | Reject::MalformedTimestamp
            | Reject::MalformedHeader
            | Reject::BodyMismatch
            | Reject::KeyRevoked
            | Reject::QuotaExceeded { .. }
    )
}
