//! The body stage: a request body read with hard caps. The bytes as sent
//! are read up to a limit (checked on `Content-Length` first, then while
//! streaming), within a deadline, and only after the credential checks, so a
//! request that fails them costs no body. Ingest, `/auth` with Traefik's
//! `forwardBody` and the session API all read through here.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap};
use http_body_util::BodyExt;
use hyper::body::Body as HttpBody;

use super::budget::Held;
use crate::protocol::reject::Reject;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("The request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("The request body could not be read")]
    Unreadable,
    #[error("The request body did not arrive in time")]
    Timeout,
    /// `server.body_budget_bytes` is spent.
    #[error("The gateway holds as many request bodies as it may")]
    Busy,
}

impl From<BodyError> for Reject {
    fn from(err: BodyError) -> Reject {
        match err {
            BodyError::TooLarge { limit } => Reject::BodyTooLarge { limit },
            BodyError::Unreadable => Reject::UnreadableBody,
            BodyError::Timeout => Reject::BodyTimeout,
            BodyError::Busy => Reject::ServerBusy,
        }
    }
}

/// Whether the request announces a body (`Content-Length` > 0 or chunked).
pub fn announced(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    declared_length(headers).is_some_and(|len| len > 0)
}

/// `Content-Length`, when it is a number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Whether `Content-Length` already says the body is longer than `limit`:
/// small API bodies are refused at once, with nothing read.
pub fn declared_over(headers: &HeaderMap, limit: usize) -> bool {
    declared_length(headers).is_some_and(|len| len > limit as u64)
}

/// The error a body adapter yields for a body over a limit of its own
/// (a gRPC message's length prefix, its inflated size): read as
/// `body_too_large`, not `unreadable_body`.
#[derive(Debug)]
pub struct OverLimit {
    pub limit: usize,
}

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "body over {} bytes", self.limit)
    }
}

impl std::error::Error for OverLimit {}

/// Bytes past the limit that are still read (and discarded) so the client,
/// which is still sending, gets a clean 413 instead of a broken pipe. A body
/// declared larger than limit + this is refused without reading.
pub const DRAIN_BYTES: usize = 8 * 1024 * 1024;

/// The whole body as sent, unless it is longer than `limit`, takes longer
/// than `deadline` to arrive, or does not fit the process-wide budget: every
/// byte kept is first added to `held` (bytes drained past the limit are not
/// kept, so not held).
pub async fn read<B>(
    body: B,
    headers: &HeaderMap,
    limit: usize,
    deadline: Duration,
    held: &mut Held,
) -> Result<Bytes, BodyError>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let declared = declared_length(headers);
    if declared.is_some_and(|len| len > (limit + DRAIN_BYTES) as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let capacity = declared.map_or(0, |len| len.min(limit as u64) as usize);
    held.grow_to(capacity).map_err(|_| BodyError::Busy)?;
    match tokio::time::timeout(deadline, collect(body, limit, capacity, held)).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(result) => result,
    }
}

async fn collect<B>(
    body: B,
    limit: usize,
    capacity: usize,
    held: &mut Held,
) -> Result<Bytes, BodyError>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::with_capacity(capacity);
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| match err.into().downcast::<OverLimit>() {
            Ok(over) => BodyError::TooLarge { limit: over.limit },
            Err(_) => BodyError::Unreadable,
        })?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers
        };
        total = total.saturating_add(data.remaining());
        if total <= limit {
            held.grow_to(total).map_err(|_| BodyError::Busy)?;
            while data.has_remaining() {
                let chunk = data.chunk();
                let n = chunk.len();
                buf.extend_from_slice(chunk);
                data.advance(n);
            }
        } else if total > limit + DRAIN_BYTES {
            return Err(BodyError::TooLarge { limit });
        }
    }
    if total > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        crate::test_support::header_map(pairs)
    }

    fn held() -> Held {
        crate::pipeline::budget::MemoryBudget::new(1 << 30).hold()
    }

    #[tokio::test]
    async fn bodies_are_capped_on_the_declared_and_the_real_length() {
        let deadline = Duration::from_secs(1);
        let ok = read(
            Full::new(Bytes::from_static(b"abc")),
            &HeaderMap::new(),
            3,
            deadline,
            &mut held(),
        )
        .await
        .unwrap();
        assert_eq!(&ok[..], b"abc");
        let none = HeaderMap::new();
        let mut h = held();
        let long = read(
            Full::new(Bytes::from_static(b"abcd")),
            &none,
            3,
            deadline,
            &mut h,
        );
        assert_eq!(long.await, Err(BodyError::TooLarge { limit: 3 }));
        let declared_length = headers(&[("content-length", &(3 + DRAIN_BYTES + 1).to_string())]);
        let mut h = held();
        let declared = read(
            Full::new(Bytes::new()),
            &declared_length,
            3,
            deadline,
            &mut h,
        );
        assert_eq!(declared.await, Err(BodyError::TooLarge { limit: 3 }));
    }

    #[tokio::test]
    async fn a_body_past_the_budget_is_refused_and_gives_its_share_back() {
        use crate::pipeline::budget::{MemoryBudget, UNIT_BYTES};
        let budget = MemoryBudget::new(2 * UNIT_BYTES);
        let deadline = Duration::from_secs(1);
        let none = HeaderMap::new();
        let mut first = budget.hold();
        let body = Bytes::from(vec![1u8; UNIT_BYTES + 1]);
        let kept = read(
            Full::new(body.clone()),
            &none,
            1 << 20,
            deadline,
            &mut first,
        );
        assert_eq!(kept.await.map(|b| b.len()), Ok(UNIT_BYTES + 1));
        let mut second = budget.hold();
        let refused = read(
            Full::new(body.clone()),
            &none,
            1 << 20,
            deadline,
            &mut second,
        );
        assert_eq!(refused.await, Err(BodyError::Busy));
        drop((first, second));
        assert_eq!(budget.in_use_bytes(), 0);
        let mut third = budget.hold();
        let again = read(Full::new(body), &none, 1 << 20, deadline, &mut third);
        assert!(again.await.is_ok(), "the budget came back");
    }

    #[test]
    fn announced_bodies() {
        assert!(!announced(&HeaderMap::new()));
        assert!(!announced(&headers(&[("content-length", "0")])));
        assert!(announced(&headers(&[("content-length", "5")])));
        assert!(announced(&headers(&[("transfer-encoding", "chunked")])));
    }
}
