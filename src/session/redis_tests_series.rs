//! The series guard's and the ban counts' scripts against a real
//! `redis-server`: two stores on one Redis share one hash key and one
//! bound per metric (known series cost no slot, refreshes move from the
//! previous window, new metrics stop at `max_metrics`, keys expire), and
//! refusal deltas from two stores add up to one ban that escalates.

use super::*;
use crate::config::BanSettings;
use crate::pipeline::abuse::shared::RefusalDelta;
use crate::session::redis::series::{MetricAsk, SeriesVerdict, SeriesWindow};

use SeriesVerdict::{Added, Known, Refused};

/// This minute's window (Redis expires keys by its own clock).
fn this_window() -> i64 {
    (crate::clock::system_clock())() / 60
}

fn limits(window: i64) -> SeriesWindow {
    SeriesWindow {
        window,
        window_secs: 60,
        bound: 5,
        max_metrics: 2,
    }
}

fn ask(metric: u64, allowance: u32, refresh: &[u64], new: &[u64]) -> MetricAsk {
    MetricAsk {
        metric,
        allowance,
        refresh: refresh.to_vec(),
        new: new.to_vec(),
    }
}

#[tokio::test]
async fn two_stores_hold_one_series_bound() {
    let Some(server) = RedisServer::start("redis two_stores_hold_one_series_bound") else {
        return;
    };
    let shared = prefix();
    let w = this_window();
    let a = open(&server.url(), &shared, settings(), at_t0()).series();
    let store_b = open(&server.url(), &shared, settings(), at_t0());
    let b = store_b.series();
    let key = a.hash_key().await.unwrap();
    assert_eq!(
        b.hash_key().await.unwrap(),
        key,
        "one key for every replica"
    );
    assert_ne!(key, [0u8; 16]);
    let other = open(&server.url(), &prefix(), settings(), at_t0()).series();
    assert_ne!(
        other.hash_key().await.unwrap(),
        key,
        "random, not a constant"
    );

    let got = a.admit(limits(w), &[ask(1, 10, &[], &[1, 2, 3, 4])]).await;
    assert_eq!(got.unwrap(), [vec![Added; 4]]);
    // b: two known (no slot spent), one free slot, then the bound.
    let got = b
        .admit(limits(w), &[ask(1, 10, &[], &[3, 4, 5, 6, 7])])
        .await;
    assert_eq!(got.unwrap(), [vec![Known, Known, Added, Refused, Refused]]);
    // The session's own allowance, per metric; a third metric is past max_metrics.
    let got = a
        .admit(limits(w), &[ask(2, 1, &[], &[1, 2]), ask(3, 10, &[], &[1])])
        .await;
    assert_eq!(got.unwrap(), [vec![Added, Refused], vec![Refused]]);

    // Next window: the previous one still counts; a series seen again
    // (or refreshed) moves, so the two together stay within the bound.
    let got = b.admit(limits(w + 1), &[ask(1, 10, &[1], &[2, 8])]).await;
    assert_eq!(got.unwrap(), [vec![Known, Refused]]);
    let mut conn = store_b.inner.conn.clone();
    let card = |window: i64| format!("{shared}card:{window}:{:016x}", 1u64);
    let current: i64 = redis::cmd("SCARD")
        .arg(card(w + 1))
        .query_async(&mut conn)
        .await
        .unwrap();
    let previous: i64 = redis::cmd("SCARD")
        .arg(card(w))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((current, previous), (2, 3));
    // Two windows on, everything of window W is forgotten.
    let got = b.admit(limits(w + 2), &[ask(1, 10, &[], &[3, 9])]).await;
    assert_eq!(got.unwrap(), [vec![Added, Added]]);

    // Every key expires two windows after its own, plus a minute.
    let expire_at: i64 = redis::cmd("EXPIRETIME")
        .arg(card(w + 2))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(expire_at, (w + 4) * 60 + 60);
    let names: i64 = redis::cmd("EXPIRETIME")
        .arg(format!("{shared}card:{}:names", w + 2))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(names, expire_at);
}

const BANS: BanSettings = BanSettings {
    refusals: 5,
    within_secs: 60,
    ban_secs: 10,
    max_ban_secs: 25,
};

fn delta(count: u32, banned_here: bool) -> Vec<RefusalDelta> {
    vec![RefusalDelta {
        subject: "address:192.0.2.9".into(),
        count,
        banned_here,
    }]
}

#[tokio::test]
async fn refusal_counts_add_up_across_stores_and_escalate() {
    let Some(server) = RedisServer::start("redis refusal_counts_add_up") else {
        return;
    };
    let shared = prefix();
    let a = open(&server.url(), &shared, settings(), at_t0()).abuse();
    let b = open(&server.url(), &shared, settings(), at_t0()).abuse();
    assert!(a.counts_refusals());
    assert!(a
        .refusals(delta(2, false), BANS, T0)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .refusals(delta(2, false), BANS, T0)
        .await
        .unwrap()
        .is_empty());
    let trips = a.refusals(delta(1, false), BANS, T0 + 1).await.unwrap();
    assert_eq!(trips.len(), 1, "2 + 2 + 1 reach 5");
    assert_eq!((trips[0].ban_secs, trips[0].bans), (10, 1));
    assert!(!trips[0].banned_here);
    assert_eq!(
        b.bans(T0 + 1, 10).await.unwrap(),
        [("address:192.0.2.9".to_string(), T0 + 11)],
        "published for every replica"
    );
    // While banned, refusals are not counted; after it, the next ban doubles.
    assert!(b
        .refusals(delta(9, false), BANS, T0 + 2)
        .await
        .unwrap()
        .is_empty());
    let trips = b.refusals(delta(5, false), BANS, T0 + 12).await.unwrap();
    assert_eq!((trips[0].ban_secs, trips[0].bans), (20, 2));
    // A replica that banned on its own count: recorded, escalated, capped.
    let trips = a.refusals(delta(1, true), BANS, T0 + 40).await.unwrap();
    assert_eq!((trips[0].ban_secs, trips[0].bans), (25, 3));
    assert!(trips[0].banned_here);
    assert_eq!(
        a.bans(T0 + 40, 10).await.unwrap(),
        [("address:192.0.2.9".to_string(), T0 + 65)]
    );
}
