//! The replay cache's local half: first outcome, takeover after a failure,
//! bounded waits, and a nonce reused by another request refused.

use super::*;
use bytes::Bytes;

const WAIT: Duration = Duration::from_secs(5);
/// Two different requests' prints.
const A: RequestPrint = RequestPrint([0xa; 16]);
const B: RequestPrint = RequestPrint([0xb; 16]);

fn reply(text: &'static str) -> Arc<Accepted> {
    Arc::new(Accepted {
        content_type: None,
        body: Bytes::from_static(text.as_bytes()),
    })
}

fn cache() -> ReplayCache {
    ReplayCache::new(100, Duration::from_secs(600))
}

#[tokio::test]
async fn a_delivered_nonce_answers_from_the_first_outcome() {
    let cache = cache();
    let Begin::Owner(ticket) = cache.begin("k", "AB01", A, WAIT).await else {
        panic!("first request owns the nonce")
    };
    ticket.delivered(reply("first"));
    match cache.begin("k", "ab01", A, WAIT).await {
        Begin::Delivered(r) => assert_eq!(&r.body[..], b"first"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        cache.begin("other-key", "ab01", A, WAIT).await,
        Begin::Owner(_)
    ));
}

#[tokio::test]
async fn a_failed_or_abandoned_nonce_is_processed_again() {
    let cache = cache();
    let Begin::Owner(ticket) = cache.begin("k", "n1", A, WAIT).await else {
        panic!()
    };
    ticket.failed();
    let Begin::Owner(ticket) = cache.begin("k", "n1", A, WAIT).await else {
        panic!("a failed first attempt is processed again")
    };
    drop(ticket);
    let Begin::Owner(ticket) = cache.begin("k", "n1", A, WAIT).await else {
        panic!("an abandoned attempt counts as failed")
    };
    ticket.delivered(reply("ok"));
    assert!(matches!(
        cache.begin("k", "n1", A, WAIT).await,
        Begin::Delivered(_)
    ));
}

#[tokio::test]
async fn a_concurrent_duplicate_waits_for_the_first_outcome() {
    let cache = Arc::new(cache());
    let Begin::Owner(ticket) = cache.begin("k", "n2", A, WAIT).await else {
        panic!()
    };
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.begin("k", "n2", A, WAIT).await })
    };
    tokio::task::yield_now().await;
    ticket.delivered(reply("once"));
    match waiter.await.unwrap() {
        Begin::Delivered(r) => assert_eq!(&r.body[..], b"once"),
        other => panic!("{other:?}"),
    }

    let Begin::Owner(ticket) = cache.begin("k", "n3", A, WAIT).await else {
        panic!()
    };
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.begin("k", "n3", A, WAIT).await })
    };
    tokio::task::yield_now().await;
    ticket.failed();
    assert!(
        matches!(waiter.await.unwrap(), Begin::Owner(_)),
        "after a failure the waiter takes over"
    );
}

#[tokio::test]
async fn the_wait_is_bounded() {
    let cache = cache();
    let Begin::Owner(_ticket) = cache.begin("k", "n4", A, WAIT).await else {
        panic!()
    };
    assert!(matches!(
        cache.begin("k", "n4", A, Duration::from_millis(50)).await,
        Begin::StillInFlight
    ));
}

#[tokio::test]
async fn another_request_reusing_a_nonce_is_refused_whatever_the_first_outcome() {
    let cache = cache();
    let Begin::Owner(ticket) = cache.begin("k", "n5", A, WAIT).await else {
        panic!()
    };
    assert!(
        matches!(cache.begin("k", "n5", B, WAIT).await, Begin::Reused),
        "while the first is in flight"
    );
    ticket.delivered(reply("first"));
    assert!(
        matches!(cache.begin("k", "n5", B, WAIT).await, Begin::Reused),
        "after delivery: never the first request's answer"
    );
    assert!(matches!(
        cache.begin("k", "n5", A, WAIT).await,
        Begin::Delivered(_)
    ));
    let Begin::Owner(ticket) = cache.begin("k", "n6", A, WAIT).await else {
        panic!()
    };
    ticket.failed();
    assert!(
        matches!(cache.begin("k", "n6", B, WAIT).await, Begin::Reused),
        "after a failure only the same request may take over"
    );
    assert!(matches!(
        cache.begin("k", "n6", A, WAIT).await,
        Begin::Owner(_)
    ));
}

#[test]
fn a_print_is_a_digest_of_the_signature() {
    let one = RequestPrint::of_signature(&[1; 32]);
    assert_eq!(one, RequestPrint::of_signature(&[1; 32]));
    assert_ne!(one, RequestPrint::of_signature(&[2; 32]));
    assert_eq!(one.hex().len(), crate::session::redis::PRINT_HEX_LEN);
}
