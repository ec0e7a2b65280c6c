//! Gzip bodies under a cap: an export is inflated through a reader that
//! stops one byte past `ingest.max_decompressed_bytes`, so a gzip bomb costs
//! at most that much work and memory before it is refused (413). Reading the
//! body as sent is the pipeline's body stage ([`crate::pipeline::body`]).

use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    #[error("The decompressed body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("The body is not valid gzip")]
    BadGzip,
}

/// Inflates a gzip body (all members) into memory, refusing more than `limit` bytes.
pub fn gunzip(compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| InflateError::BadGzip)?;
    if out.len() > limit {
        return Err(InflateError::TooLarge { limit });
    }
    Ok(out)
}

/// Checks that a gzip body inflates to at most `limit` bytes without keeping
/// the result (passthrough mode). Returns the inflated size.
pub fn gunzip_size(compressed: &[u8], limit: usize) -> Result<u64, InflateError> {
    let mut reader = flate2::read::MultiGzDecoder::new(compressed).take(limit as u64 + 1);
    let size =
        std::io::copy(&mut reader, &mut std::io::sink()).map_err(|_| InflateError::BadGzip)?;
    if size > limit as u64 {
        return Err(InflateError::TooLarge { limit });
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

    #[test]
    fn gzip_round_trips_and_bombs_stop_at_the_limit() {
        let data = b"hello hello hello".repeat(10);
        let packed = gzip(&data);
        assert_eq!(gunzip(&packed, 1000).unwrap(), data);
        assert_eq!(gunzip_size(&packed, 1000).unwrap(), data.len() as u64);
        assert_eq!(
            gunzip(&packed, 100),
            Err(InflateError::TooLarge { limit: 100 })
        );
        // 64 MiB of zeros packs to ~64 KiB; inflating stops past 1 MiB.
        let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
        assert!(bomb.len() < 1024 * 1024, "{}", bomb.len());
        assert_eq!(
            gunzip(&bomb, 1024 * 1024),
            Err(InflateError::TooLarge { limit: 1024 * 1024 })
        );
        assert_eq!(
            gunzip_size(&bomb, 1024 * 1024),
            Err(InflateError::TooLarge { limit: 1024 * 1024 })
        );
        assert_eq!(gunzip(b"not gzip", 100), Err(InflateError::BadGzip));
        let mut truncated = packed.clone();
        truncated.truncate(packed.len() / 2);
        assert_eq!(gunzip(&truncated, 1000), Err(InflateError::BadGzip));
    }
}
