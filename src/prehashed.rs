//! Maps and sets keyed by values that are already keyed hashes (SipHash
//! under a key clients never see): hashing them again is wasted work, and
//! the spread a table needs is already there. Only for such keys: a key a
//! client can choose would let it aim every entry at one bucket.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Passes a `u64` through as its own hash.
#[derive(Default)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    // Only reached through a key type other than u64 (none is meant to be).
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A set of keyed hashes.
pub type PrehashedSet = HashSet<u64, BuildHasherDefault<Prehashed>>;
/// A map from keyed hashes.
pub type PrehashedMap<V> = HashMap<u64, V, BuildHasherDefault<Prehashed>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn a_hash_is_its_own_hash() {
        let build = BuildHasherDefault::<Prehashed>::default();
        for n in [0, 1, 0xdead_beef_u64, u64::MAX] {
            assert_eq!(build.hash_one(n), n);
        }
        let set: PrehashedSet = [3, 1, 2].into_iter().collect();
        assert!(set.contains(&2) && !set.contains(&4));
    }
}
