//! What the accept loop bounds per connection, beside hyper's own caps: how
//! many one address may hold ([`PerAddress`]), and how long one may sit
//! idle ([`Activity`], [`idle`]).
//!
//! hyper's HTTP/1 side closes an idle keep-alive connection at its header
//! read timeout, but its h2 side has no idle timeout at all: a peer that
//! sent the preface and then only answers PINGs would hold its slot for
//! good. So idleness is measured here, the same way for both protocols:
//! no request in flight for `server.header_read_timeout_secs` and the
//! connection is closed gracefully (h2: GOAWAY).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::ip::{self, TrustedProxies};
use crate::pipeline::client_ip;

/// Open connections per peer address (IPv6 grouped by prefix, as the rate
/// limits are), capped. Trusted proxies are exempt: one Traefik carries
/// every client. The map holds only addresses with a connection open, so
/// it is bounded by `server.max_connections`.
pub struct PerAddress {
    cap: usize,
    ipv6_prefix: u8,
    exempt: TrustedProxies,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection's place in its address's count; given back on drop.
pub struct AddressSlot {
    owner: Arc<PerAddress>,
    /// `None`: an exempt peer, not counted.
    key: Option<IpAddr>,
}

impl PerAddress {
    pub fn new(cap: usize, ipv6_prefix: u8, exempt: TrustedProxies) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            cap,
            ipv6_prefix,
            exempt,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new connection from `peer`, or `None` when its address
    /// already holds the cap.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<AddressSlot> {
        if self.exempt.contains(peer) {
            return Some(AddressSlot {
                owner: self.clone(),
                key: None,
            });
        }
        let key = client_ip::limit_key(ip::canonical(peer), self.ipv6_prefix);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            owner: self.clone(),
            key: Some(key),
        })
    }

    /// Addresses with a connection open (for tests).
    pub fn addresses(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

/// Requests in flight on one connection, and when the last one ended.
pub struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` when the connection last became idle.
    idle_since_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    /// Marks one request in flight until the guard drops (also when hyper
    /// drops the request's future: a reset stream is not busy forever).
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Since when the connection has had nothing in flight; `None` while busy.
    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let ms = self.idle_since_ms.load(Ordering::Acquire);
        Some(self.started + Duration::from_millis(ms))
    }
}

/// One request in flight (see [`Activity::begin`]).
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        let ms = activity.started.elapsed().as_millis() as u64;
        activity.idle_since_ms.fetch_max(ms, Ordering::AcqRel);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Resolves once the connection has had no request in flight for `timeout`.
/// Wakes at most once per `timeout` while requests keep it busy.
pub async fn idle(activity: &Activity, timeout: Duration) {
    loop {
        match activity.idle_since() {
            Some(since) if since.elapsed() >= timeout => return,
            Some(since) => tokio::time::sleep_until(since + timeout).await,
            None => tokio::time::sleep(timeout).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_holds_at_most_the_cap_and_gets_slots_back() {
        let exempt = TrustedProxies::new(vec!["10.0.0.1/32".parse().unwrap()]);
        let limits = PerAddress::new(2, 64, exempt);
        let a = limits.admit(ip("192.0.2.1")).unwrap();
        let _b = limits.admit(ip("192.0.2.1")).unwrap();
        assert!(limits.admit(ip("192.0.2.1")).is_none());
        assert!(
            limits.admit(ip("::ffff:192.0.2.1")).is_none(),
            "mapped IPv4"
        );
        assert!(limits.admit(ip("192.0.2.2")).is_some(), "another address");
        assert!(
            limits.admit(ip("2001:db8::1")).is_some() && limits.admit(ip("2001:db8::1")).is_some()
        );
        let _c = limits.admit(ip("2001:db8::1")).unwrap();
        let _d = limits.admit(ip("2001:db8::2")).unwrap();
        assert!(limits.admit(ip("2001:db8::3")).is_none(), "one /64");
        drop(a);
        assert!(
            limits.admit(ip("192.0.2.1")).is_some(),
            "given back on drop"
        );
        let proxies: Vec<_> = (0..5).map(|_| limits.admit(ip("10.0.0.1"))).collect();
        assert!(
            proxies.iter().all(Option::is_some),
            "a trusted proxy is exempt"
        );
        drop(proxies);
        drop((_b, _c, _d));
        assert_eq!(limits.addresses(), 0, "no entry outlives its connections");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_the_last_request_to_end() {
        let activity = Arc::new(Activity::default());
        let timeout = Duration::from_secs(10);
        let busy = activity.begin();
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move { idle(&activity, timeout).await }
        });
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(!idle.is_finished(), "busy is never idle");
        drop(busy);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!idle.is_finished(), "idle for 9 s of 10");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(idle.is_finished());
    }
}
