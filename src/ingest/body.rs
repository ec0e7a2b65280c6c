//! Gzip bodies under a cap: an export is inflated through a reader that
//! stops one byte past `ingest.max_decompressed_bytes`, so a gzip bomb costs
//! at most that much work and memory before it is refused (413). What it
//! inflates is held against the process-wide budget as it grows
//! ([`crate::pipeline::budget`]), so a hundred bombs at once are refused
//! (503 `server_busy`) instead of each taking its cap. Reading the body as
//! sent is the pipeline's body stage ([`crate::pipeline::body`]).

use std::io::Read;

use crate::pipeline::budget::{Held, UNIT_BYTES};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    #[error("The decompressed body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("The body is not valid gzip")]
    BadGzip,
    /// `server.body_budget_bytes` is spent.
    #[error("The gateway holds as many request bodies as it may")]
    Busy,
}

/// Inflates a gzip body (all members) into memory, refusing more than
/// `limit` bytes; every byte is held in `held` before it is written.
pub fn gunzip(compressed: &[u8], limit: usize, held: &mut Held) -> Result<Vec<u8>, InflateError> {
    let busy = |_| InflateError::Busy;
    // A unit to start with (or the whole limit, when it is smaller).
    let first = compressed
        .len()
        .saturating_mul(4)
        .max(UNIT_BYTES)
        .min(limit.max(1));
    held.grow_to(first).map_err(busy)?;
    let mut out = Vec::with_capacity(first);
    let mut reader = flate2::read::MultiGzDecoder::new(compressed).take(limit as u64 + 1);
    loop {
        if out.len() == out.capacity() {
            // Grow by a unit at a time, holding it first.
            held.grow_to(out.len() + UNIT_BYTES).map_err(busy)?;
            out.reserve_exact(UNIT_BYTES);
        }
        // At most the spare capacity: the Vec never grows past what is held.
        let spare = (out.capacity() - out.len()) as u64;
        let read = (&mut reader)
            .take(spare)
            .read_to_end(&mut out)
            .map_err(|_| InflateError::BadGzip)?;
        if read == 0 {
            break;
        }
    }
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
    use crate::pipeline::budget::MemoryBudget;

    fn held() -> Held {
        MemoryBudget::new(1 << 30).hold()
    }

    #[test]
    fn inflating_holds_the_budget_and_a_spent_one_refuses() {
        let data = vec![7u8; 3 * UNIT_BYTES];
        let packed = gzip(&data);
        let budget = MemoryBudget::new(8 * UNIT_BYTES);
        let mut one = budget.hold();
        assert_eq!(gunzip(&packed, 1 << 20, &mut one).unwrap(), data);
        assert!(one.bytes() >= data.len(), "held {}", one.bytes());
        let mut two = budget.hold();
        assert_eq!(
            gunzip(&packed, 1 << 20, &mut two).unwrap().len(),
            data.len()
        );
        let mut three = budget.hold();
        assert_eq!(
            gunzip(&packed, 1 << 20, &mut three),
            Err(InflateError::Busy),
            "the budget is spent: refused, not inflated"
        );
        drop((one, two, three));
        assert_eq!(budget.in_use_bytes(), 0);
    }

    #[test]
    fn gzip_round_trips_and_bombs_stop_at_the_limit() {
        let data = b"hello hello hello".repeat(10);
        let packed = gzip(&data);
        assert_eq!(gunzip(&packed, 1000, &mut held()).unwrap(), data);
        assert_eq!(gunzip_size(&packed, 1000).unwrap(), data.len() as u64);
        assert_eq!(
            gunzip(&packed, 100, &mut held()),
            Err(InflateError::TooLarge { limit: 100 })
        );
        // 64 MiB of zeros packs to ~64 KiB; inflating stops past 1 MiB.
        let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
        assert!(bomb.len() < 1024 * 1024, "{}", bomb.len());
        assert_eq!(
            gunzip(&bomb, 1024 * 1024, &mut held()),
            Err(InflateError::TooLarge { limit: 1024 * 1024 })
        );
        assert_eq!(
            gunzip_size(&bomb, 1024 * 1024),
            Err(InflateError::TooLarge { limit: 1024 * 1024 })
        );
        assert_eq!(
            gunzip(b"not gzip", 100, &mut held()),
            Err(InflateError::BadGzip)
        );
        let mut truncated = packed.clone();
        truncated.truncate(packed.len() / 2);
        assert_eq!(
            gunzip(&truncated, 1000, &mut held()),
            Err(InflateError::BadGzip)
        );
    }
}
