//! Per-client-IP rate limits (governor's keyed GCRA), one limiter per policy
//! that asks for its own quota, the default limiter for the rest, and the
//! session API's own ([`RateLimits::check_session_api`]).
//!
//! governor's keyed map only grows, so [`RateLimits::purge`] runs on a timer
//! (`retain_recent` + `shrink_to_fit`): a flood of distinct addresses costs
//! memory for one purge interval, not forever.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::config::{Policy, RateSpec};
use crate::pipeline::client_ip;
use crate::protocol::reject::Reject;

type Keyed<C> =
    RateLimiter<IpAddr, DashMapStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

pub struct RateLimits<C: Clock = DefaultClock> {
    default: Arc<Keyed<C>>,
    by_policy: HashMap<String, Arc<Keyed<C>>>,
    /// `None`: the session API shares the default limiter.
    session_api: Option<Arc<Keyed<C>>>,
    clock: C,
    ipv6_prefix: u8,
}

impl RateLimits<DefaultClock> {
    pub fn new<'a>(
        default: RateSpec,
        policies: impl IntoIterator<Item = &'a Policy>,
        ipv6_prefix: u8,
    ) -> Self {
        RateLimits::with_clock(default, policies, ipv6_prefix, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    pub fn with_clock<'a>(
        default: RateSpec,
        policies: impl IntoIterator<Item = &'a Policy>,
        ipv6_prefix: u8,
        clock: C,
    ) -> Self {
        let limiter =
            |spec: RateSpec| Arc::new(RateLimiter::dashmap_with_clock(quota(spec), clock.clone()));
        let by_policy = policies
            .into_iter()
            .filter_map(|p| p.rate_limit.map(|spec| (p.name.clone(), limiter(spec))))
            .collect();
        RateLimits {
            default: limiter(default),
            by_policy,
            session_api: None,
            clock,
            ipv6_prefix,
        }
    }

    /// Gives the session API a limiter of its own (`rate_limit.session_api`).
    pub fn with_session_api(mut self, spec: RateSpec) -> Self {
        let limiter = RateLimiter::dashmap_with_clock(quota(spec), self.clock.clone());
        self.session_api = Some(Arc::new(limiter));
        self
    }

    /// Takes one cell for `ip` under `policy`'s limiter; a refusal carries the
    /// whole seconds until the next cell (at least 1, for `Retry-After`).
    pub fn check(&self, policy: &str, ip: IpAddr) -> Result<(), Reject> {
        let limiter = self.by_policy.get(policy).unwrap_or(&self.default);
        self.take(limiter, ip)
    }

    /// [`RateLimits::check`] for a session API request (any route, any caller).
    pub fn check_session_api(&self, ip: IpAddr) -> Result<(), Reject> {
        self.take(self.session_api.as_ref().unwrap_or(&self.default), ip)
    }

    fn take(&self, limiter: &Keyed<C>, ip: IpAddr) -> Result<(), Reject> {
        let key = client_ip::limit_key(ip, self.ipv6_prefix);
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Reject::RateLimited {
                retry_after_secs: secs.max(1),
            }
        })
    }

    /// Drops keys whose state is back to idle; returns the keys left.
    pub fn purge(&self) -> usize {
        self.limiters()
            .map(|limiter| {
                limiter.retain_recent();
                limiter.shrink_to_fit();
                limiter.len()
            })
            .sum()
    }

    /// Keys currently tracked across every limiter.
    pub fn key_count(&self) -> usize {
        self.limiters().map(|limiter| limiter.len()).sum()
    }

    fn limiters(&self) -> impl Iterator<Item = &Arc<Keyed<C>>> {
        std::iter::once(&self.default)
            .chain(self.by_policy.values())
            .chain(self.session_api.as_ref())
    }
}

fn quota(spec: RateSpec) -> Quota {
    Quota::per_second(spec.per_second).allow_burst(spec.burst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMethod;
    use governor::clock::FakeRelativeClock;
    use std::num::NonZeroU32;
    use std::time::Duration;

    fn spec(per_second: u32, burst: u32) -> RateSpec {
        RateSpec {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        }
    }

    fn policy(name: &str, rate: Option<RateSpec>) -> Policy {
        Policy {
            name: name.into(),
            max_skew_secs: 300,
            rate_limit: rate,
            key_ids: None,
            require_build: None,
            methods: [AuthMethod::Hmac].into(),
            min_signature_version: 1,
            forward_body: false,
            filters: Default::default(),
            access: Default::default(),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn burst_then_refill_at_the_rate() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(spec(10, 20), [], 64, clock.clone());
        let client = ip("192.0.2.1");
        for n in 0..20 {
            assert_eq!(limits.check("default", client), Ok(()), "request {n}");
        }
        assert_eq!(
            limits.check("default", client),
            Err(Reject::RateLimited {
                retry_after_secs: 1
            })
        );
        clock.advance(Duration::from_millis(100));
        assert_eq!(limits.check("default", client), Ok(()));
        assert!(limits.check("default", client).is_err());
    }

    #[test]
    fn clients_are_limited_separately_and_ipv6_by_prefix() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(spec(1, 1), [], 64, clock);
        assert!(limits.check("default", ip("192.0.2.1")).is_ok());
        assert!(limits.check("default", ip("192.0.2.2")).is_ok());
        assert!(limits.check("default", ip("2001:db8::1")).is_ok());
        assert!(
            limits.check("default", ip("2001:db8::2")).is_err(),
            "same /64"
        );
        assert!(
            limits.check("default", ip("2001:db8:0:1::1")).is_ok(),
            "other /64"
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(spec(1, 1), [], 64, clock.clone());
        let client = ip("192.0.2.1");
        assert!(limits.check("default", client).is_ok());
        clock.advance(Duration::from_millis(100));
        assert_eq!(
            limits.check("default", client),
            Err(Reject::RateLimited {
                retry_after_secs: 1
            })
        );
    }

    #[test]
    fn a_policy_with_its_own_quota_has_its_own_limiter() {
        let clock = FakeRelativeClock::default();
        let policies = [policy("bulk", Some(spec(100, 5))), policy("plain", None)];
        let limits = RateLimits::with_clock(spec(1, 1), policies.iter(), 64, clock);
        let client = ip("192.0.2.1");
        for _ in 0..5 {
            assert!(limits.check("bulk", client).is_ok());
        }
        assert!(limits.check("bulk", client).is_err());
        assert!(
            limits.check("plain", client).is_ok(),
            "plain shares the default"
        );
        assert!(limits.check("default", client).is_err());
    }

    #[test]
    fn the_session_api_has_its_own_limiter_or_shares_the_default() {
        let clock = FakeRelativeClock::default();
        let client = ip("192.0.2.1");
        let limits =
            RateLimits::with_clock(spec(1, 1), [], 64, clock.clone()).with_session_api(spec(1, 3));
        for _ in 0..3 {
            assert!(limits.check_session_api(client).is_ok());
        }
        assert!(limits.check_session_api(client).is_err());
        assert!(limits.check("default", client).is_ok(), "apart from /auth");
        assert_eq!(limits.key_count(), 2, "both limiters are purged");
        let shared = RateLimits::with_clock(spec(1, 1), [], 64, clock);
        assert!(shared.check_session_api(client).is_ok());
        assert!(shared.check("default", client).is_err(), "shared");
    }

    #[test]
    fn purge_drops_idle_keys() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(spec(10, 20), [], 64, clock.clone());
        for n in 0..1000u32 {
            let octets = n.to_be_bytes();
            let _ = limits.check(
                "default",
                IpAddr::from([10, octets[1], octets[2], octets[3]]),
            );
        }
        assert_eq!(limits.key_count(), 1000);
        assert_eq!(limits.purge(), 1000, "keys used just now are kept");
        clock.advance(Duration::from_secs(10));
        assert_eq!(limits.purge(), 0);
    }
}
