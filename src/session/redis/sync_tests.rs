//! Tests of the Redis store's write-behind: the pending deltas stay
//! bounded, and a failed flush merges them back.

use super::*;

fn sighting(id: &str, now: i64) -> Sighting<'_> {
    Sighting {
        session_id: id,
        client_ip: "192.0.2.1".parse().unwrap(),
        user_agent: Some("ua"),
        client_version: None,
        key_id: "k1",
        bytes: 10,
        now,
    }
}

#[test]
fn pending_deltas_are_bounded_and_merge_back() {
    let pending = Pending::new(2);
    assert!(pending.record(&sighting("a", 100), 60));
    assert!(pending.record(&sighting("a", 110), 60));
    assert!(pending.record(&sighting("b", 100), 60));
    assert!(!pending.record(&sighting("c", 100), 60), "full: dropped");
    let taken = pending.take();
    assert_eq!(taken["a"].requests, 2);
    assert_eq!(
        (taken["a"].since, taken["a"].last, taken["a"].bytes),
        (100, 110, 20)
    );
    // A later sighting of `a` arrives while the flush fails.
    assert!(pending.record(&sighting("a", 120), 60));
    assert!(pending.record(&sighting("c", 120), 60));
    assert_eq!(
        pending.restore(taken.into_iter(), 60),
        1,
        "b no longer fits"
    );
    let merged = pending.take();
    assert_eq!((merged["a"].since, merged["a"].requests), (100, 3));
    // Idle past its end within one batch: a new life.
    assert!(pending.record(&sighting("a", 100), 60));
    assert!(pending.record(&sighting("a", 200), 60));
    assert_eq!(pending.take()["a"].since, 200);
}
