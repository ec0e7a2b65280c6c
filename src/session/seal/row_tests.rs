//! The embedded row format on its own: one blob per row round-trips,
//! hides its values, refuses a tampered or moved blob, reads the rows of
//! the earlier format (and asks to write them again), and never repeats a
//! nonce across a batch.

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;

use super::super::to_row;
use super::*;

const OLD: [u8; 32] = [7; 32];
const NEW: [u8; 32] = [9; 32];

fn private() -> Private {
    Private {
        client_ip: Some("203.0.113.9".into()),
        user_agent: Some("KOTORModSync/2.0.0.0 (Windows NT 10.0; Win64; x64)".into()),
        user_id: Some("alice".into()),
        metadata: Some(r#"{"team":"red"}"#.into()),
    }
}

fn shows(bytes: &[u8], value: &str) -> bool {
    bytes.windows(value.len()).any(|w| w == value.as_bytes())
}

#[test]
fn one_blob_per_row_hides_the_fields_and_opens_again() {
    let sealer = Sealer::from_keys(&[OLD]).unwrap();
    let stored = to_stored(Some(&sealer), "s1", private());
    assert_eq!(stored.seal.as_deref(), Some(sealer.key_id()));
    let blob = stored.blob.clone().unwrap();
    for clear in ["203.0.113.9", "KOTORModSync", "red", "alice"] {
        assert!(!shows(&blob, clear), "{clear} in the blob");
    }
    // Only the user id keeps a column (deterministic, for lookups).
    assert_eq!(stored.columns.user_id, Some(sealer.seal_user("alice")));
    assert_eq!(
        (
            stored.columns.client_ip.as_ref(),
            stored.columns.user_agent.as_ref()
        ),
        (None, None)
    );
    assert!(stored.columns.metadata.is_none());
    // Format byte, nonce, the three fields with a length byte each, tag.
    let plain = 3 + 11 + 50 + 14;
    assert_eq!(blob.len(), 1 + 12 + plain + 16);
    assert_eq!(
        from_stored(Some(&sealer), "s1", stored),
        Ok((private(), false))
    );
}

#[test]
fn absent_empty_and_long_fields_keep_their_shape() {
    let sealer = Sealer::from_keys(&[OLD]).unwrap();
    let private = Private {
        client_ip: None,
        user_agent: Some(String::new()),
        user_id: None,
        metadata: Some("m".repeat(20_000)),
    };
    let stored = to_stored(Some(&sealer), "s1", private.clone());
    assert_eq!(stored.columns, Private::default());
    assert_eq!(
        from_stored(Some(&sealer), "s1", stored),
        Ok((private, false))
    );
}

#[test]
fn a_tampered_or_moved_blob_does_not_open() {
    let sealer = Sealer::from_keys(&[OLD]).unwrap();
    let id = sealer.key_id().to_string();
    let stored = to_stored(Some(&sealer), "s1", private());
    let blob = stored.blob.clone().unwrap();
    // Every byte matters: the format, the nonce, the ciphertext, the tag.
    for at in 0..blob.len() {
        let mut altered = stored.clone();
        altered.blob.as_mut().unwrap()[at] ^= 0x01;
        assert_eq!(
            from_stored(Some(&sealer), "s1", altered),
            Err(SealError::DoesNotOpen(id.clone())),
            "byte {at} flipped"
        );
    }
    for cut in [0, 12, 28, blob.len() - 1] {
        let mut short = stored.clone();
        short.blob = Some(blob[..cut].to_vec());
        assert_eq!(
            from_stored(Some(&sealer), "s1", short),
            Err(SealError::DoesNotOpen(id.clone()))
        );
    }
    assert_eq!(
        from_stored(Some(&sealer), "s2", stored.clone()),
        Err(SealError::DoesNotOpen(id.clone())),
        "bound to its row"
    );
    let unmarked = StoredRow {
        seal: None,
        ..stored.clone()
    };
    assert_eq!(
        from_stored(Some(&sealer), "s1", unmarked),
        Err(SealError::Unmarked)
    );
    assert_eq!(
        from_stored(None, "s1", stored.clone()),
        Err(SealError::NoKey(id))
    );
    let wrong = Sealer::from_keys(&[NEW]).unwrap();
    assert_eq!(
        from_stored(Some(&wrong), "s1", stored),
        Err(SealError::UnknownKey(sealer.key_id().to_string()))
    );
}

#[test]
fn rows_of_the_earlier_format_read_and_ask_to_be_written_again() {
    let sealer = Sealer::from_keys(&[OLD]).unwrap();
    // The per-value format: every field `KEYID:base64`, no blob.
    let (seal, columns) = to_row(Some(&sealer), "s1", private());
    let earlier = StoredRow {
        seal,
        columns,
        blob: None,
    };
    assert_eq!(
        from_stored(Some(&sealer), "s1", earlier.clone()),
        Ok((private(), true)),
        "same key, earlier format: written again"
    );
    assert_eq!(
        from_stored(None, "s1", earlier),
        Err(SealError::NoKey(sealer.key_id().to_string()))
    );
    let clear = to_stored(None, "s1", private());
    assert_eq!(clear.blob, None);
    assert_eq!(
        from_stored(Some(&sealer), "s1", clear.clone()),
        Ok((private(), true))
    );
    assert_eq!(from_stored(None, "s1", clear), Ok((private(), false)));
    // A rotated list opens the old key's blob and asks for the new key.
    let stored = to_stored(Some(&sealer), "s1", private());
    let rotated = Sealer::from_keys(&[NEW, OLD]).unwrap();
    assert_eq!(
        from_stored(Some(&rotated), "s1", stored),
        Ok((private(), true))
    );
}

#[test]
fn no_nonce_repeats_across_a_batch_or_two_sealers_of_one_key() {
    let first = Sealer::from_keys(&[OLD]).unwrap();
    let second = Sealer::from_keys(&[OLD]).unwrap();
    let mut nonces = HashSet::new();
    for sealer in [&first, &second] {
        for n in 0..5_000 {
            let row = format!("s{n}");
            let blob = sealer.seal_row(&row, &private());
            assert!(nonces.insert(blob[1..13].to_vec()), "row {n}: nonce reused");
            // Per-value seals (statics, PostgreSQL) draw from the same count.
            let text = sealer.seal(&row, "client_ip", "203.0.113.9");
            let (_, body) = text.split_once(':').unwrap();
            let bytes = STANDARD_NO_PAD.decode(body).unwrap();
            assert!(
                nonces.insert(bytes[..12].to_vec()),
                "value {n}: nonce reused"
            );
        }
    }
    assert_eq!(nonces.len(), 20_000);
}

/// A row blob for key [`OLD`], row `s1`, nonce 01..0c and [`private`]'s
/// fields (no user id), computed apart from this code (Python's
/// `cryptography`: HMAC-SHA256 subkeys, AES-256-GCM and ChaCha20-Poly1305),
/// and for format 2 checked to open in the release that wrote that format.
/// A change of layout, subkey label or associated data breaks these.
const FORMAT_3_GOLDEN: &str = "030102030405060708090a0b0c2abd3a11f9fe4825681fc786d2322708083dd3c653c35d8ed58d925c717f0ad7b70e5773e30871f266f4a6fd8d5eed9c2a77642815f329141d86555cea56296e895aec3a6096a574539619d38ed63f3eeee9628d5f8c20002688195ef127";
const FORMAT_2_GOLDEN: &str = "020102030405060708090a0b0c5c16630887843568d114612dc9f85851038e15a6f7fe42552b338d60f7f9c24f0da4518546c8c3d67812ff6f25d7ab0ba52cc212574844fe37e97b7648902df4a89990b920751158824f37802c6edbd8586eb3efaae5fa5a1ad8145ad7f8";

fn golden_row(sealer: &Sealer, hex_blob: &str) -> StoredRow {
    StoredRow {
        seal: Some(sealer.key_id().to_string()),
        columns: Private::default(),
        blob: Some(hex::decode(hex_blob).unwrap()),
    }
}

fn without_user() -> Private {
    Private {
        user_id: None,
        ..private()
    }
}

#[test]
fn a_row_seals_to_the_golden_blob_of_format_3_and_opens_it() {
    let mut sealer = Sealer::from_keys(&[OLD]).unwrap();
    sealer.nonces = super::super::nonce::Nonces::starting_at(u128::from_le_bytes([
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0, 0,
    ]));
    let blob = sealer.seal_row("s1", &without_user());
    assert_eq!(hex::encode(&blob), FORMAT_3_GOLDEN);
    assert_eq!(
        from_stored(Some(&sealer), "s1", golden_row(&sealer, FORMAT_3_GOLDEN)),
        Ok((without_user(), false))
    );
}

#[test]
fn a_blob_of_format_2_opens_and_asks_to_be_sealed_again_in_format_3() {
    let sealer = Sealer::from_keys(&[OLD]).unwrap();
    let stored = golden_row(&sealer, FORMAT_2_GOLDEN);
    assert_eq!(
        from_stored(Some(&sealer), "s1", stored.clone()),
        Ok((without_user(), true)),
        "format 2 under the sealing key: written again"
    );
    assert_eq!(
        from_stored(Some(&sealer), "s2", stored.clone()),
        Err(SealError::DoesNotOpen(sealer.key_id().to_string())),
        "still bound to its row"
    );
    // Read as format 3 (the byte altered), it does not open: each format
    // has its own subkey.
    let mut relabelled = stored;
    relabelled.blob.as_mut().unwrap()[0] = 3;
    assert_eq!(
        from_stored(Some(&sealer), "s1", relabelled),
        Err(SealError::DoesNotOpen(sealer.key_id().to_string()))
    );
    assert_eq!(
        to_stored(Some(&sealer), "s1", private()).blob.unwrap()[0],
        3
    );
}
