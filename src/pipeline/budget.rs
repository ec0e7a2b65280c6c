//! One process-wide budget for the bytes held by request bodies and by
//! their decompression (`server.body_budget_bytes`).
//!
//! Each body and each inflation is capped on its own (`ingest.max_body_bytes`,
//! `ingest.max_decompressed_bytes`), but caps per request do not bound a
//! process: 400 slow uploads of 4 MiB, or 100 concurrent gzip bombs each
//! inflating to its 20 MiB cap, add up to gigabytes. Every byte kept is
//! first taken from this budget, in 64 KiB units, as it arrives; when the
//! budget is spent, the request is refused at once (503 `server_busy` +
//! `Retry-After`) instead of waiting, and the process stays within it. What
//! a request holds is returned when its [`Held`] drops, at the end of the
//! request (bodies) or of the decoding (inflation).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's unit: small enough that a 1 KiB export holds little of
/// it, large enough that a 4 MiB body takes 64 steps, not 4,096.
pub const UNIT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    total_units: usize,
}

/// The budget is spent: refuse, retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the process-wide body budget is spent")]
pub struct Exhausted;

impl MemoryBudget {
    pub fn new(bytes: usize) -> MemoryBudget {
        let total_units = bytes.div_ceil(UNIT_BYTES).max(1);
        MemoryBudget {
            units: Arc::new(Semaphore::new(total_units)),
            total_units,
        }
    }

    /// Nothing held yet; grows with [`Held::grow_to`].
    pub fn hold(&self) -> Held {
        Held {
            budget: self.clone(),
            permit: None,
            units: 0,
        }
    }

    /// Bytes held right now across the process (for the gauge).
    pub fn in_use_bytes(&self) -> u64 {
        let free = self.units.available_permits();
        (self.total_units.saturating_sub(free) * UNIT_BYTES) as u64
    }
}

/// What one request (or one inflation) holds of the budget.
#[derive(Debug)]
pub struct Held {
    budget: MemoryBudget,
    permit: Option<OwnedSemaphorePermit>,
    units: usize,
}

impl Held {
    /// Holds enough for `bytes` in all (never less than already held).
    pub fn grow_to(&mut self, bytes: usize) -> Result<(), Exhausted> {
        let wanted = bytes.div_ceil(UNIT_BYTES);
        if wanted <= self.units {
            return Ok(());
        }
        let more = u32::try_from(wanted - self.units).map_err(|_| Exhausted)?;
        let permit = self
            .budget
            .units
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| Exhausted)?;
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.units = wanted;
        Ok(())
    }

    pub fn bytes(&self) -> usize {
        self.units * UNIT_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_grow_in_units_and_return_when_dropped() {
        let budget = MemoryBudget::new(4 * UNIT_BYTES);
        let mut a = budget.hold();
        a.grow_to(1).unwrap();
        assert_eq!(a.bytes(), UNIT_BYTES);
        a.grow_to(UNIT_BYTES).unwrap();
        assert_eq!(budget.in_use_bytes(), UNIT_BYTES as u64, "no second unit");
        a.grow_to(3 * UNIT_BYTES).unwrap();
        let mut b = budget.hold();
        b.grow_to(UNIT_BYTES).unwrap();
        assert_eq!(b.grow_to(2 * UNIT_BYTES), Err(Exhausted), "spent");
        assert_eq!(budget.in_use_bytes(), 4 * UNIT_BYTES as u64);
        drop(a);
        assert_eq!(budget.in_use_bytes(), UNIT_BYTES as u64);
        b.grow_to(4 * UNIT_BYTES).unwrap();
        drop(b);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    #[test]
    fn an_absurd_size_is_refused_not_wrapped() {
        let budget = MemoryBudget::new(UNIT_BYTES);
        assert_eq!(budget.hold().grow_to(usize::MAX), Err(Exhausted));
        assert_eq!(budget.in_use_bytes(), 0);
    }
}
