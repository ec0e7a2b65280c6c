//! The one AEAD call of an embedded row seal on its own (docs/benchmarks.md,
//! issue 14): ChaCha20-Poly1305 (format 2) against AES-256-GCM (format 3)
//! over the benchmark row's sizes (65 bytes of plaintext; 50 bytes of
//! associated data as format 2 binds, the 36-byte session id as format 3
//! does), the cipher built once as the sealer keeps it. Prints nanoseconds
//! per call; ITERATIONS bounds the loop.
//!
//!   cargo run --release --example seal_aead [-- ITERATIONS]

use std::hint::black_box;
use std::time::Instant;

use aes_gcm::Aes256Gcm;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

fn per_call(name: &str, iterations: u32, mut seal: impl FnMut(u32)) {
    for n in 0..iterations / 10 {
        seal(n);
    }
    let started = Instant::now();
    for n in 0..iterations {
        seal(n);
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!("{name}: {ns:.0} ns/call (iterations={iterations})");
}

fn nonce(n: u32) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&n.to_le_bytes());
    nonce
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: u32 = std::env::args().nth(1).map_or(Ok(200_000), |t| t.parse())?;
    let key = [7u8; 32];
    let row = "00000001-0000-4000-a000-000000001eef";
    let format_2_aad = [
        b"telegate/seal/v1\0row_private\0".as_slice(),
        row.as_bytes(),
    ]
    .concat();
    let plain = [0x41u8; 65];
    let mut buffer = plain;
    let chacha = ChaCha20Poly1305::new(&key.into());
    let gcm = Aes256Gcm::new(&key.into());
    per_call("chacha20poly1305 (format 2)", iterations, |n| {
        buffer.copy_from_slice(&plain);
        let tag = chacha.encrypt_in_place_detached(&nonce(n).into(), &format_2_aad, &mut buffer);
        black_box(tag.ok());
    });
    per_call("aes-256-gcm (format 3)", iterations, |n| {
        buffer.copy_from_slice(&plain);
        let tag = gcm.encrypt_in_place_detached(&nonce(n).into(), row.as_bytes(), &mut buffer);
        black_box(tag.ok());
    });
    Ok(())
}
