//! A validating walk over an OTLP/protobuf export's wire format: whether
//! prost would decode the bytes as the signal's `Export*ServiceRequest`,
//! and how many items ([`super::Export::items`]: spans, metric data points
//! by the metric's data kind, log records) it would hold, without building
//! the export. `ingest.mode = "validate"` forwards the bytes as sent, so
//! when neither the content policy nor the series guard needs the decoded
//! export, the walk replaces the decode (which allocates every `KeyValue`,
//! string and `Vec` only to drop them).
//!
//! It accepts exactly what prost 0.13 accepts (`fuzz/fuzz_targets/otlp_walk.rs`
//! compares the two on arbitrary bytes): a key is a varint of at most
//! 10 bytes (the tenth below 2) no larger than `u32::MAX`, wire type 0-5,
//! tag not 0; a known field must have its wire type (repeated numbers also
//! packed), a `string` must be UTF-8, a nested message must end exactly at
//! its length; an unknown field is skipped as prost's `skip_field` does,
//! groups included; and prost's recursion limit holds: the request is at
//! depth 100, each nested message one less, and at depth 0 neither a nested
//! message nor an unknown field may appear. `Metric.data` is a oneof: a
//! second field of the same kind merges into the first (its points add up),
//! one of another kind replaces it, as prost does.
//!
//! It costs a few instructions per byte (about 6.5 for the benchmark's
//! 1049-byte metrics export, `examples/walk_count`): the schema is a table
//! per message indexed by key ([`schema`]), one-byte keys and lengths are
//! taken as they are, strings are checked for ASCII a word at a time, the
//! commonest message (a string attribute) is checked in one go, and nested
//! messages are walked in one loop.

use super::{Malformed, Signal};
pub use bad::Bad;
use schema::{Count, Kind, Op, Slot, KEYS};

mod bad;
mod schema;

/// prost's `RECURSION_LIMIT`: the depth the top-level message decodes at.
const RECURSION_LIMIT: u32 = 100;

/// The items of the export `bytes` (already inflated) would decode to.
pub fn items(signal: Signal, bytes: &[u8]) -> Result<u64, Malformed> {
    let top = match signal {
        Signal::Traces => Kind::TraceRequest,
        Signal::Metrics => Kind::MetricsRequest,
        Signal::Logs => Kind::LogsRequest,
    };
    Ok(message(top, bytes, RECURSION_LIMIT)?)
}

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// How many nested messages one [`message`] call walks itself before it
/// recurses (exports nest about 6 deep; prost's limit is 100).
const NESTED: usize = 8;

/// What a message adds up to for its parent.
#[derive(Debug, Clone, Copy)]
struct Tally {
    items: u64,
    /// Metric.data: the key of the kind held, and its points.
    data_key: u32,
    data_points: u64,
}

impl Tally {
    const ZERO: Tally = Tally {
        items: 0,
        data_key: 0,
        data_points: 0,
    };

    /// Adds a nested message's own total `inner`, as its field counts.
    #[inline]
    fn add(&mut self, count: Count, key: u32, inner: u64) {
        match count {
            Count::No => {}
            Count::Sum => self.items += inner,
            Count::One => self.items += 1,
            Count::Data if self.data_key == key => self.data_points += inner,
            Count::Data => (self.data_key, self.data_points) = (key, inner),
        }
    }

    fn total(self) -> u64 {
        self.items + self.data_points
    }
}

/// A message whose walk is paused while one of its fields, a nested
/// message, is walked.
#[derive(Debug, Clone, Copy)]
struct Paused<'b> {
    kind: Kind,
    /// Its bytes after the nested message.
    rest: &'b [u8],
    tally: Tally,
    /// The nested message's field: how it counts.
    count: Count,
    key: u32,
}

const IDLE: Paused<'static> = Paused {
    kind: Kind::KeyValue,
    rest: &[],
    tally: Tally::ZERO,
    count: Count::No,
    key: 0,
};

/// Walks one message's fields; `depth` is prost's recursion count for them.
///
/// The common cases are decided on the first byte: a key of a tag below 16
/// is one byte, and its slot in the schema says both what the field is and
/// whether its wire type is right; a varint or a length below 128 is one
/// byte too. Anything else goes the general way ([`long_key`], [`varint`]).
/// A nested message is walked in the same loop, its parent paused on a
/// small stack (a call per message cost more than its fields), and only
/// past [`NESTED`] levels by a recursive call. The rest of the message is
/// a slice passed by value (never by address), so it stays in registers.
fn message(kind: Kind, buf: &[u8], depth: u32) -> Result<u64, Bad> {
    let mut paused = [IDLE; NESTED];
    let mut open = 0usize;
    let (mut kind, mut buf, mut depth, mut tally) = (kind, buf, depth, Tally::ZERO);
    let mut slots = schema::keys(kind);
    loop {
        while let Some((&first, rest)) = buf.split_first() {
            let (slot, key) = match slots.get(usize::from(first)) {
                Some(slot) if first < 0x80 => {
                    buf = rest;
                    (*slot, u32::from(first))
                }
                _ => {
                    let (slot, key, rest) = long_key(slots, buf)?;
                    buf = rest;
                    (slot, key)
                }
            };
            buf = match slot.op {
                Op::Varint => skip_varint(buf)?,
                Op::Fixed32 => buf.get(4..).ok_or(Bad::Underflow)?,
                Op::Fixed64 => buf.get(8..).ok_or(Bad::Underflow)?,
                Op::Str => {
                    let (value, rest) = delimited(buf)?;
                    utf8(value)?;
                    rest
                }
                Op::Bytes => delimited(buf)?.1,
                Op::Message(count) => {
                    if depth == 0 {
                        return Err(Bad::Recursion);
                    }
                    let (value, rest) = delimited(buf)?;
                    if slot.child == Kind::KeyValue && string_attribute(value, depth - 1) {
                        rest
                    } else if let Some(frame) = paused.get_mut(open) {
                        *frame = Paused {
                            kind,
                            rest,
                            tally,
                            count,
                            key,
                        };
                        open += 1;
                        (kind, depth, tally) = (slot.child, depth - 1, Tally::ZERO);
                        slots = schema::keys(kind);
                        value
                    } else {
                        tally.add(count, key, message(slot.child, value, depth - 1)?);
                        rest
                    }
                }
                Op::PackedVarint => {
                    let (mut packed, rest) = delimited(buf)?;
                    while !packed.is_empty() {
                        packed = skip_varint(packed)?;
                    }
                    rest
                }
                Op::PackedFixed64 => {
                    let (packed, rest) = delimited(buf)?;
                    if packed.len() % 8 != 0 {
                        return Err(Bad::PackedLength);
                    }
                    rest
                }
                Op::Unknown => skip((key & 7) as u8, key >> 3, buf, depth)?,
                Op::WrongWire => return Err(Bad::WireType),
                Op::Invalid => return Err(invalid_key(key)),
            };
        }
        // This message ended exactly at its length: back to its parent.
        let Some(parent) = open.checked_sub(1).and_then(|i| paused.get(i)) else {
            return Ok(tally.total());
        };
        open -= 1;
        let inner = tally.total();
        (kind, buf, depth, tally) = (parent.kind, parent.rest, depth + 1, parent.tally);
        tally.add(parent.count, parent.key, inner);
        slots = schema::keys(kind);
    }
}

/// Whether `kv`, a `KeyValue` walked at `depth`, is the commonest message
/// of all, a string attribute, written as encoders write it and ASCII: the
/// key (field 1), then the value (field 2) holding only `string_value`
/// (field 1). Such bytes are a valid `KeyValue` (counting nothing),
/// decided by one ASCII check of the whole pair (so every length is one
/// byte and both strings are UTF-8) and a few comparisons, instead of two
/// nested walks; anything else (`false`) is left to [`message`].
#[inline]
fn string_attribute(kv: &[u8], depth: u32) -> bool {
    let [0x0a, key_len, rest @ ..] = kv else {
        return false;
    };
    let Some((_key, rest)) = rest.split_at_checked(usize::from(*key_len)) else {
        return false;
    };
    let [0x12, any_len, 0x0a, value_len, value @ ..] = rest else {
        return false;
    };
    // The value's message is exactly its one field, which ends the pair;
    // it is one level deeper, so needs depth left (the string does not).
    usize::from(*any_len) == usize::from(*value_len) + 2
        && value.len() == usize::from(*value_len)
        && depth > 0
        && ascii(kv)
}

/// A key of more than one byte (a tag of 16 or more, or a small one
/// written long), with its slot in `slots`.
#[cold]
#[inline(never)]
fn long_key<'b>(slots: &[Slot; KEYS], buf: &'b [u8]) -> Result<(Slot, u32, &'b [u8]), Bad> {
    let (tag, wire, rest) = key(buf)?;
    let key = tag << 3 | u32::from(wire);
    let slot = match slots.get(key as usize) {
        Some(slot) => *slot,
        None => Slot {
            op: Op::Unknown,
            child: Kind::KeyValue,
        },
    };
    Ok((slot, key, rest))
}

/// A field key: (tag, wire type), as prost's `decode_key` checks it.
fn key(buf: &[u8]) -> Result<(u32, u8, &[u8]), Bad> {
    let (key, rest) = varint(buf)?;
    let key = u32::try_from(key).map_err(|_| Bad::KeyValue)?;
    if key & 7 > u32::from(FIXED32) || key >> 3 == 0 {
        return Err(invalid_key(key));
    }
    Ok((key >> 3, (key & 7) as u8, rest))
}

/// Why `key` (wire type 6 or 7, or tag 0) is not one, in prost's order.
fn invalid_key(key: u32) -> Bad {
    match key & 7 > u32::from(FIXED32) {
        true => Bad::WireTypeValue,
        false => Bad::TagZero,
    }
}

/// A `string`'s bytes: UTF-8. Most are short and ASCII (attribute keys and
/// values, names), which [`ascii`] checks in a few loads; only the rest
/// need the full check.
#[inline]
fn utf8(value: &[u8]) -> Result<(), Bad> {
    match ascii(value) || std::str::from_utf8(value).is_ok() {
        true => Ok(()),
        false => Err(Bad::Utf8),
    }
}

/// Whether every byte of `value` is below 0x80: a word at a time, the
/// last word overlapping (shorter values by halves or bytes).
#[inline(always)]
fn ascii(value: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if let Some(tail) = value.last_chunk::<8>() {
        // A chunk of 8 is always a word (`HIGH` otherwise: not ASCII).
        let all = value
            .chunks_exact(8)
            .fold(u64::from_ne_bytes(*tail), |all, word| {
                all | word.try_into().map_or(HIGH, u64::from_ne_bytes)
            });
        return all & HIGH == 0;
    }
    if let (Some(head), Some(tail)) = (value.first_chunk::<4>(), value.last_chunk::<4>()) {
        return (u32::from_ne_bytes(*head) | u32::from_ne_bytes(*tail)) & HIGH as u32 == 0;
    }
    value.iter().fold(0, |all, byte| all | byte) < 0x80
}

/// The rest after a varint whose value is not needed (one byte, below 128,
/// is the common case).
#[inline]
fn skip_varint(buf: &[u8]) -> Result<&[u8], Bad> {
    match buf.split_first() {
        Some((&byte, rest)) if byte < 0x80 => Ok(rest),
        _ => varint(buf).map(|(_, rest)| rest),
    }
}

/// A varint of at most 10 bytes whose tenth byte is 0 or 1 (no overflow),
/// and the rest.
fn varint(buf: &[u8]) -> Result<(u64, &[u8]), Bad> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            if i == 9 && byte >= 2 {
                break;
            }
            return Ok((value, &buf[i + 1..]));
        }
    }
    Err(Bad::Varint)
}

/// A length-delimited value's bytes and the rest (a length below 128 is
/// one byte).
#[inline]
fn delimited(buf: &[u8]) -> Result<(&[u8], &[u8]), Bad> {
    let (len, rest) = match buf.split_first() {
        Some((&byte, rest)) if byte < 0x80 => (usize::from(byte), rest),
        _ => long_length(buf)?,
    };
    rest.split_at_checked(len).ok_or(Bad::Underflow)
}

#[cold]
#[inline(never)]
fn long_length(buf: &[u8]) -> Result<(usize, &[u8]), Bad> {
    let (len, rest) = varint(buf)?;
    Ok((usize::try_from(len).map_err(|_| Bad::Underflow)?, rest))
}

/// An unknown field, skipped as prost's `skip_field` does (a group up to
/// its matching end, each field inside one level deeper); the rest.
#[cold]
#[inline(never)]
fn skip(wire: u8, tag: u32, buf: &[u8], depth: u32) -> Result<&[u8], Bad> {
    if depth == 0 {
        return Err(Bad::Recursion);
    }
    match wire {
        VARINT => varint(buf).map(|(_, rest)| rest),
        FIXED64 => buf.get(8..).ok_or(Bad::Underflow),
        LEN => delimited(buf).map(|(_, rest)| rest),
        START_GROUP => {
            let mut buf = buf;
            loop {
                let (inner_tag, inner_wire, rest) = key(buf)?;
                if inner_wire == END_GROUP {
                    return match inner_tag == tag {
                        true => Ok(rest),
                        false => Err(Bad::EndGroup),
                    };
                }
                buf = skip(inner_wire, inner_tag, rest, depth - 1)?;
            }
        }
        FIXED32 => buf.get(4..).ok_or(Bad::Underflow),
        _ => Err(Bad::EndGroup),
    }
}

#[cfg(test)]
mod tests;
