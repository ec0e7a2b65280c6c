//! Nonces for the randomised seals, without a syscall per value: one
//! random 96-bit base per [`super::Sealer`] (drawn from the OS once, when
//! the keys are loaded), and a 64-bit counter added to it per value.
//!
//! Why no nonce repeats under a key:
//! - within one sealer the counter never repeats (an atomic fetch-add; its
//!   2^64 values would take centuries at any rate a store writes), so the
//!   nonces `base + n mod 2^96` are distinct;
//! - two sealers (two processes, restarts, a store reopened) with the same
//!   key use the ranges `[b1, b1 + n1)` and `[b2, b2 + n2)` of two random
//!   bases: they meet only when the bases are less than `max(n1, n2)`
//!   apart, about `(n1 + n2) / 2^96` for a pair. With 2^16 restarts of
//!   2^32 values each that is about 2^-32 over all pairs, far below the
//!   birthday bound of random nonces for the same count (2^48 values drawn
//!   at random: about 2^-1);
//! - the deterministic seals (user id, lookups) use an HMAC of the value
//!   as nonce (SIV-like); one meeting a counter nonce is a 2^-96 event per
//!   pair, as with random nonces.
//!
//! The same argument holds for both ciphers that draw from this count:
//! ChaCha20-Poly1305 (per-value seals) and AES-256-GCM (the embedded row
//! blobs, format 3), each with its own subkey, so a nonce shared between
//! the two is not a reuse. For AES-256-GCM uniqueness matters more (one
//! repeat under a key gives away its GHASH key, so forgeries under every
//! nonce, where ChaCha20-Poly1305 loses only that nonce's one-time key);
//! its 96-bit nonces are used as GCM intends (the block counter in the
//! other 32 bits starts afresh per nonce, so distinct nonces never share a
//! keystream block), and its deterministic use stays out: the user id and
//! lookups are sealed with ChaCha20-Poly1305 only. GCM's bound on data per
//! key (AES is a permutation: 2^32 rows of 8 blocks each, 2^35 blocks, tell
//! its keystream from random with odds about 2^70 / 2^129 = 2^-59) is far
//! beyond what one storage key seals before a rotation.

use std::sync::atomic::{AtomicU64, Ordering};

use super::NONCE_BYTES;

const MASK_96: u128 = (1 << 96) - 1;

pub(super) struct Nonces {
    base: u128,
    next: AtomicU64,
}

impl Nonces {
    /// A fresh random base; the OS RNG failing is not recoverable for any
    /// request either.
    pub(super) fn new() -> Nonces {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes[..NONCE_BYTES]).expect("OS RNG");
        Nonces {
            base: u128::from_le_bytes(bytes),
            next: AtomicU64::new(0),
        }
    }

    /// Counting from `base` (the golden vectors of the seal formats).
    #[cfg(test)]
    pub(super) fn starting_at(base: u128) -> Nonces {
        Nonces {
            base: base & MASK_96,
            next: AtomicU64::new(0),
        }
    }

    /// The next nonce: never one this sealer gave before.
    pub(super) fn next(&self) -> [u8; NONCE_BYTES] {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let value = self.base.wrapping_add(u128::from(n)) & MASK_96;
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(&value.to_le_bytes()[..NONCE_BYTES]);
        nonce
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_count_up_from_the_base_and_wrap_within_96_bits() {
        let nonces = Nonces {
            base: MASK_96 - 1,
            next: AtomicU64::new(0),
        };
        let mut expected = [0xff; NONCE_BYTES];
        expected[0] = 0xfe;
        assert_eq!(nonces.next(), expected, "the base itself, little-endian");
        assert_eq!(nonces.next(), [0xff; NONCE_BYTES]);
        assert_eq!(
            nonces.next(),
            [0; NONCE_BYTES],
            "wraps to zero, not past 96 bits"
        );
        assert_eq!(nonces.next()[0], 1);
    }

    #[test]
    fn two_sealers_start_from_different_bases() {
        assert_ne!(Nonces::new().next(), Nonces::new().next());
    }
}
