//! The quota buckets' unit tests: burst and refill, give-back, selection by policy and key state, purge.
use super::*;
use std::num::NonZeroU64;

fn spec(scope: QuotaScope, unit: QuotaUnit, rate: u64, period: u64, burst: u64) -> QuotaSpec {
    QuotaSpec {
        scope,
        unit,
        rate: NonZeroU64::new(rate).unwrap(),
        period_secs: NonZeroU64::new(period).unwrap(),
        burst: NonZeroU64::new(burst).unwrap(),
        policies: None,
        key_states: None,
    }
}

fn values<'a>(session: &'a str) -> ScopeValues<'a> {
    ScopeValues {
        session: Some(session),
        key: "a",
        client_version: Some("2.0"),
        address: "192.0.2.1".parse().unwrap(),
        signal: Some("metrics"),
    }
}

#[tokio::test]
async fn a_bucket_spends_its_burst_then_refills_at_the_rate() {
    let quotas = Quotas::new(vec![spec(
        QuotaScope::Session,
        QuotaUnit::Requests,
        60,
        60,
        3,
    )]);
    let s = quotas.scopes("default", KeyState::Active, &values("s1"));
    for _ in 0..3 {
        assert_eq!(quotas.charge(&s, QuotaUnit::Requests, 1, 100).await, Ok(()));
    }
    assert_eq!(
        quotas.charge(&s, QuotaUnit::Requests, 1, 100).await,
        Err(Reject::QuotaExceeded {
            scope: QuotaScope::Session,
            retry_after_secs: 1
        })
    );
    let other = quotas.scopes("default", KeyState::Active, &values("s2"));
    assert_eq!(
        quotas.charge(&other, QuotaUnit::Requests, 1, 100).await,
        Ok(()),
        "per session"
    );
    assert_eq!(
        quotas.charge(&s, QuotaUnit::Requests, 1, 101).await,
        Ok(()),
        "one a second"
    );
    assert!(quotas
        .charge(&s, QuotaUnit::Requests, 1, 101)
        .await
        .is_err());
    assert_eq!(
        quotas.charge(&s, QuotaUnit::Bytes, 1000, 101).await,
        Ok(()),
        "other unit"
    );
}

#[tokio::test]
async fn a_refusal_gives_back_what_the_other_quotas_took() {
    let quotas = Quotas::new(vec![
        spec(QuotaScope::Key, QuotaUnit::Items, 100, 60, 100),
        spec(QuotaScope::Session, QuotaUnit::Items, 10, 60, 10),
    ]);
    let s = quotas.scopes("default", KeyState::Active, &values("s1"));
    assert!(quotas.charge(&s, QuotaUnit::Items, 8, 0).await.is_ok());
    let refused = quotas.charge(&s, QuotaUnit::Items, 8, 0).await.unwrap_err();
    assert_eq!(refused.quota_scope(), Some("session"));
    assert_eq!(refused.retry_after(), Some(36), "6 items at 1/6 per second");
    // The key quota got its 8 back (92 left): nine fresh sessions take
    // 10 each (2 left), the tenth is refused by the key. Without the
    // give-back only 84 would be left and the ninth would fail.
    for n in 0..9 {
        let session = format!("fresh{n}");
        let t = quotas.scopes("default", KeyState::Active, &values(&session));
        assert!(
            quotas.charge(&t, QuotaUnit::Items, 10, 0).await.is_ok(),
            "fresh {n}"
        );
    }
    let last = quotas.scopes("default", KeyState::Active, &values("last"));
    assert_eq!(
        quotas
            .charge(&last, QuotaUnit::Items, 10, 0)
            .await
            .unwrap_err()
            .quota_scope(),
        Some("key"),
        "2 left of the key's 100"
    );
}

#[tokio::test]
async fn more_than_the_burst_waits_a_period_and_policies_and_states_select() {
    let mut deprecated = spec(QuotaScope::Address, QuotaUnit::Bytes, 100, 60, 100);
    deprecated.key_states = Some(vec![KeyState::Deprecated]);
    let mut bulk = spec(QuotaScope::Signal, QuotaUnit::Requests, 1, 60, 1);
    bulk.policies = Some(vec!["bulk".into()]);
    let quotas = Quotas::new(vec![deprecated, bulk]);
    let active = quotas.scopes("default", KeyState::Active, &values("s"));
    assert_eq!(active, Scopes::none(), "neither applies");
    let old = quotas.scopes("default", KeyState::Deprecated, &values("s"));
    assert_eq!(
        quotas
            .charge(&old, QuotaUnit::Bytes, 101, 0)
            .await
            .unwrap_err()
            .retry_after(),
        Some(60)
    );
    let b = quotas.scopes("bulk", KeyState::Active, &values("s"));
    assert!(quotas.charge(&b, QuotaUnit::Requests, 1, 0).await.is_ok());
    assert!(quotas.charge(&b, QuotaUnit::Requests, 1, 0).await.is_err());
}

#[tokio::test]
async fn purge_drops_refilled_buckets() {
    let quotas = Quotas::new(vec![spec(
        QuotaScope::Session,
        QuotaUnit::Requests,
        10,
        60,
        10,
    )]);
    for n in 0..100 {
        let session = format!("s{n}");
        let s = quotas.scopes("default", KeyState::Active, &values(&session));
        quotas.charge(&s, QuotaUnit::Requests, 1, 0).await.unwrap();
    }
    assert_eq!(quotas.bucket_count(), 100);
    assert_eq!(quotas.purge(30), 100, "not refilled yet");
    assert_eq!(quotas.purge(60), 0);
}
