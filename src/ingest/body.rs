//! Request bodies with hard caps: the bytes as sent are read up to
//! `ingest.max_body_bytes` (checked on `Content-Length` first, then while
//! streaming), within a deadline; a gzip body is inflated through a reader
//! that stops one byte past `ingest.max_decompressed_bytes`, so a gzip bomb
//! costs at most that much work and memory before it is refused (413).

use std::io::Read;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap};
use http_body_util::BodyExt;
use hyper::body::Body as HttpBody;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("The request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("The decompressed body is larger than {limit} bytes")]
    InflatedTooLarge { limit: usize },
    #[error("The request body could not be read")]
    Unreadable,
    #[error("The request body did not arrive in time")]
    Timeout,
    #[error("The body is not valid gzip")]
    BadGzip,
}

/// Whether the request announces a body (`Content-Length` > 0 or chunked).
pub fn announced(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len > 0)
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
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
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

/// Inflates a gzip body (all members) into memory, refusing more than `limit` bytes.
pub fn gunzip(compressed: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| BodyError::BadGzip)?;
    if out.len() > limit {
        return Err(BodyError::InflatedTooLarge { limit });
    }
    Ok(out)
}

/// Checks that a gzip body inflates to at most `limit` bytes without keeping
/// the result (passthrough mode). Returns the inflated size.
pub fn gunzip_size(compressed: &[u8], limit: usize) -> Result<u64, BodyError> {
    let mut reader = flate2::read::MultiGzDecoder::new(compressed).take(limit as u64 + 1);
    let size = std::io::copy(&mut reader, &mut std::io::sink()).map_err(|_| BodyError::BadGzip)?;
    if size > limit as u64 {
        return Err(BodyError::InflatedTooLarge { limit });
    }
    Ok(size)
}

/// Gzips `data` (fast level: the collector inflates it right away).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
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

    #[test]
    fn gzip_round_trips_and_bombs_stop_at_the_limit() {
        let data = b"hello hello hello".repeat(10);
        let packed = gzip(&data);
        assert_eq!(gunzip(&packed, 1000).unwrap(), data);
        assert_eq!(gunzip_size(&packed, 1000).unwrap(), data.len() as u64);
        assert_eq!(
            gunzip(&packed, 100),
            Err(BodyError::InflatedTooLarge { limit: 100 })
        );
        // 64 MiB of zeros packs to ~64 KiB; inflating stops past 1 MiB.
        let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
        assert!(bomb.len() < 1024 * 1024, "{}", bomb.len());
        assert_eq!(
            gunzip(&bomb, 1024 * 1024),
            Err(BodyError::InflatedTooLarge { limit: 1024 * 1024 })
        );
        assert_eq!(
            gunzip_size(&bomb, 1024 * 1024),
            Err(BodyError::InflatedTooLarge { limit: 1024 * 1024 })
        );
        assert_eq!(gunzip(b"not gzip", 100), Err(BodyError::BadGzip));
        let mut truncated = packed.clone();
        truncated.truncate(packed.len() / 2);
        assert_eq!(gunzip(&truncated, 1000), Err(BodyError::BadGzip));
    }
}
