//! When each key last verified a request, for the status page ("is anyone
//! still on the old key?" without opening Prometheus).
//!
//! One `AtomicI64` per key id behind an `ArcSwap`'d map: a verification is a
//! lock-free load, a hash lookup and an atomic max. A key id seen for the
//! first time (a key added by a reload) takes the slow path once and copies
//! the map. Ids come from the operator's config, so the map stays small; a
//! key dropped from the ring keeps its slot, harmlessly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::protocol::keyring::KeyId;

#[derive(Default)]
pub struct KeyUsage {
    last_used: ArcSwap<HashMap<KeyId, Arc<AtomicI64>>>,
}

impl KeyUsage {
    /// Records that `id` verified a request at `now` (Unix seconds).
    pub fn mark(&self, id: &KeyId, now: i64) {
        if let Some(slot) = self.last_used.load().get(id) {
            slot.fetch_max(now, Ordering::Relaxed);
            return;
        }
        self.last_used.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.entry(id.clone())
                .or_insert_with(|| Arc::new(AtomicI64::new(i64::MIN)));
            map
        });
        if let Some(slot) = self.last_used.load().get(id) {
            slot.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Unix seconds of the key's last successful verification since start.
    pub fn last_used(&self, id: &KeyId) -> Option<i64> {
        self.last_used
            .load()
            .get(id)
            .map(|slot| slot.load(Ordering::Relaxed))
            .filter(|t| *t != i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_use_per_key() {
        let usage = KeyUsage::default();
        let (a, b) = (KeyId::new("a"), KeyId::new("b"));
        assert_eq!(usage.last_used(&a), None);
        usage.mark(&a, 100);
        usage.mark(&a, 90); // a late, out-of-order request never moves it back
        usage.mark(&b, 95);
        assert_eq!(usage.last_used(&a), Some(100));
        assert_eq!(usage.last_used(&b), Some(95));
        assert_eq!(usage.last_used(&KeyId::new("c")), None);
    }

    #[test]
    fn concurrent_first_uses_all_land() {
        let usage = Arc::new(KeyUsage::default());
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let usage = usage.clone();
                std::thread::spawn(move || usage.mark(&KeyId::new(&format!("k{i}")), 10 + i))
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        for i in 0..8 {
            assert_eq!(usage.last_used(&KeyId::new(&format!("k{i}"))), Some(10 + i));
        }
    }
}
