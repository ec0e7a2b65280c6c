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
}

impl From<BodyError> for Reject {
    fn from(err: BodyError) -> Reject {
        match err {
            BodyError::TooLarge { limit } => Reject::BodyTooLarge { limit },
            BodyError::Unreadable => Reject::UnreadableBody,
            BodyError::Timeout => Reject::BodyTimeout,
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

/// Bytes past the limit that are still read (and discarded) so the client,
/// which is still sending, gets a clean 413 instead of a broken pipe. A body
/// declared larger than limit + this is refused without reading.
pub const DRAIN_BYTES: usize = 8 * 1024 * 1024;

/// The whole body as sent, unless it is longer than `limit` or takes longer
/// than `deadline` to arrive.
pub async fn read<B>(
    body: B,
    headers: &HeaderMap,
    limit: usize,
    deadline: Duration,
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
    match tokio::time::timeout(deadline, collect(body, limit, capacity)).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(result) => result,
    }
}

async fn collect<B>(body: B, limit: usize, capacity: usize) -> Result<Bytes, BodyError>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::with_capacity(capacity);
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers
        };
        total = total.saturating_add(data.remaining());
        if total <= limit {
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

    #[tokio::test]
    async fn bodies_are_capped_on_the_declared_and_the_real_length() {
        let deadline = Duration::from_secs(1);
        let ok = read(
            Full::new(Bytes::from_static(b"abc")),
            &HeaderMap::new(),
            3,
            deadline,
        )
        .await
        .unwrap();
        assert_eq!(&ok[..], b"abc");
        let none = HeaderMap::new();
        let long = read(Full::new(Bytes::from_static(b"abcd")), &none, 3, deadline);
        assert_eq!(long.await, Err(BodyError::TooLarge { limit: 3 }));
        let declared_length = headers(&[("content-length", &(3 + DRAIN_BYTES + 1).to_string())]);
        let declared = read(Full::new(Bytes::new()), &declared_length, 3, deadline);
        assert_eq!(declared.await, Err(BodyError::TooLarge { limit: 3 }));
    }

    #[test]
    fn announced_bodies() {
        assert!(!announced(&HeaderMap::new()));
        assert!(!announced(&headers(&[("content-length", "0")])));
        assert!(announced(&headers(&[("content-length", "5")])));
        assert!(announced(&headers(&[("transfer-encoding", "chunked")])));
    }
}
