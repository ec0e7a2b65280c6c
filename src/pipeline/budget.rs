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
//!
//! One client must not spend the whole budget and starve everyone else:
//! behind Traefik every connection comes from Traefik's address, so the
//! per-address connection cap does not bound a client there. A hold made
//! for a client ([`MemoryBudget::hold_for`], keyed by the resolved client
//! address cut to its rate-limit key) also counts against that client's
//! share (`server.body_budget_per_client_bytes`); past it the client is
//! refused the same way while others still fit. The ledger has one entry
//! per client with something held, so it is bounded by the requests in
//! flight.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's unit: small enough that a 1 KiB export holds little of
/// it, large enough that a 4 MiB body takes 64 steps, not 4,096.
pub const UNIT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    total_units: usize,
    /// Most units one client may hold (`total_units`: no share).
    client_units: usize,
    /// Units held per client, only for clients holding some.
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
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
            client_units: total_units,
            clients: Arc::default(),
        }
    }

    /// Caps what one client holds at `bytes` (at least one unit).
    pub fn with_client_share(mut self, bytes: usize) -> MemoryBudget {
        self.client_units = bytes.div_ceil(UNIT_BYTES).clamp(1, self.total_units);
        self
    }

    /// Nothing held yet; grows with [`Held::grow_to`]. Counts against the
    /// process only (the session API's small bodies, tests).
    pub fn hold(&self) -> Held {
        Held {
            budget: self.clone(),
            permit: None,
            units: 0,
            client: None,
        }
    }

    /// As [`MemoryBudget::hold`], also against `client`'s share.
    pub fn hold_for(&self, client: IpAddr) -> Held {
        let mut held = self.hold();
        held.client = Some(client);
        held
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
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
    client: Option<IpAddr>,
}

impl Held {
    /// Holds enough for `bytes` in all (never less than already held).
    pub fn grow_to(&mut self, bytes: usize) -> Result<(), Exhausted> {
        let wanted = bytes.div_ceil(UNIT_BYTES);
        if wanted <= self.units {
            return Ok(());
        }
        let more = wanted - self.units;
        let count = u32::try_from(more).map_err(|_| Exhausted)?;
        // The client's share first: it is the cheaper refusal to undo.
        if let Some(client) = self.client {
            let mut clients = self.budget.clients();
            let held = clients.entry(client).or_insert(0);
            if *held + more > self.budget.client_units {
                if *held == 0 {
                    clients.remove(&client);
                }
                return Err(Exhausted);
            }
            *held += more;
        }
        let permit = match self.budget.units.clone().try_acquire_many_owned(count) {
            Ok(permit) => permit,
            Err(_) => {
                self.release_client(more);
                return Err(Exhausted);
            }
        };
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.units = wanted;
        Ok(())
    }

    /// Gives `units` back to the client's share (the entry goes at zero).
    fn release_client(&self, units: usize) {
        // Most holds end empty (an inflation never begun): no ledger lock.
        let Some(client) = self.client.filter(|_| units > 0) else {
            return;
        };
        let mut clients = self.budget.clients();
        if let Some(held) = clients.get_mut(&client) {
            *held = held.saturating_sub(units);
            if *held == 0 {
                clients.remove(&client);
            }
        }
    }

    pub fn bytes(&self) -> usize {
        self.units * UNIT_BYTES
    }
}

impl Drop for Held {
    /// The process units go back with the permit; the client's here.
    fn drop(&mut self) {
        self.release_client(self.units);
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
    fn one_client_holds_at_most_its_share_and_others_still_fit() {
        let budget = MemoryBudget::new(8 * UNIT_BYTES).with_client_share(3 * UNIT_BYTES);
        let (greedy, other) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let mut a = budget.hold_for(greedy);
        a.grow_to(2 * UNIT_BYTES).unwrap();
        let mut b = budget.hold_for(greedy);
        assert_eq!(b.grow_to(2 * UNIT_BYTES), Err(Exhausted), "past the share");
        b.grow_to(UNIT_BYTES).unwrap();
        assert_eq!(budget.in_use_bytes(), 3 * UNIT_BYTES as u64);
        let mut c = budget.hold_for(other);
        c.grow_to(3 * UNIT_BYTES).unwrap();
        drop((a, b));
        let mut d = budget.hold_for(greedy);
        d.grow_to(3 * UNIT_BYTES).unwrap();
        drop((c, d));
        assert_eq!(budget.in_use_bytes(), 0);
        assert!(budget.clients().is_empty(), "no entry outlives its holds");
    }

    #[test]
    fn a_refusal_by_the_process_gives_the_client_share_back() {
        let budget = MemoryBudget::new(2 * UNIT_BYTES).with_client_share(2 * UNIT_BYTES);
        let (one, two) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let mut a = budget.hold_for(one);
        a.grow_to(2 * UNIT_BYTES).unwrap();
        let mut b = budget.hold_for(two);
        assert_eq!(
            b.grow_to(UNIT_BYTES),
            Err(Exhausted),
            "the process is spent"
        );
        assert!(!budget.clients().contains_key(&two));
        drop(a);
        b.grow_to(2 * UNIT_BYTES).unwrap();
    }

    #[test]
    fn an_absurd_size_is_refused_not_wrapped() {
        let budget = MemoryBudget::new(UNIT_BYTES);
        assert_eq!(budget.hold().grow_to(usize::MAX), Err(Exhausted));
        assert_eq!(budget.in_use_bytes(), 0);
    }
}
