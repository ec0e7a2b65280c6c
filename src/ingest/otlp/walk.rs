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

use super::{Malformed, Signal};

/// prost's `RECURSION_LIMIT`: the depth the top-level message decodes at.
const RECURSION_LIMIT: u32 = 100;

/// Why the bytes are not an export (prost's wording where it has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bad(pub &'static str);

impl From<Bad> for Malformed {
    fn from(bad: Bad) -> Malformed {
        Malformed(format!("not a protobuf export: {}", bad.0))
    }
}

/// The items of the export `bytes` (already inflated) would decode to.
pub fn items(signal: Signal, bytes: &[u8]) -> Result<u64, Malformed> {
    let top = match signal {
        Signal::Traces => Kind::TraceRequest,
        Signal::Metrics => Kind::MetricsRequest,
        Signal::Logs => Kind::LogsRequest,
    };
    Ok(message(top, bytes, RECURSION_LIMIT)?)
}

/// The messages of the three requests (opentelemetry-proto 0.28).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TraceRequest,
    ResourceSpans,
    ScopeSpans,
    Span,
    Event,
    Link,
    Status,
    MetricsRequest,
    ResourceMetrics,
    ScopeMetrics,
    Metric,
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
    NumberPoint,
    HistogramPoint,
    ExponentialPoint,
    Buckets,
    SummaryPoint,
    Quantile,
    Exemplar,
    LogsRequest,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
    Resource,
    Scope,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

/// What a nested message adds to its parent's item count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    /// Nothing (attributes, resources, ...).
    No,
    /// Its own count (a resource's scopes, a scope's metrics).
    Sum,
    /// One item (a span, a data point, a log record).
    One,
    /// `Metric.data`: the oneof's points (see the module doc).
    Data,
}

/// A known field's type; anything else is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Unknown,
    /// int32/64, uint32/64, sint32, bool, enum: any varint.
    Varint,
    /// fixed32.
    Fixed32,
    /// fixed64, sfixed64, double.
    Fixed64,
    /// UTF-8, length-delimited.
    Str,
    /// Length-delimited, any bytes.
    Bytes,
    /// `repeated uint64`: varints, packed or not.
    RepeatedVarint,
    /// `repeated fixed64` / `repeated double`: packed or not.
    RepeatedFixed64,
    Message(Kind, Count),
}

/// The schema: each message's fields by tag, as the generated code has them.
fn field(kind: Kind, tag: u32) -> Field {
    use Count::{Data, No, One, Sum};
    use Field::{Bytes, Fixed32, Fixed64, Message as M, RepeatedFixed64, RepeatedVarint, Str};
    use Field::{Unknown, Varint};
    use Kind as K;
    let kv = M(K::KeyValue, No);
    match (kind, tag) {
        (K::TraceRequest, 1) => M(K::ResourceSpans, Sum),
        (K::ResourceSpans, 1) | (K::ResourceMetrics, 1) | (K::ResourceLogs, 1) => {
            M(K::Resource, No)
        }
        (K::ResourceSpans, 2) => M(K::ScopeSpans, Sum),
        (K::ScopeSpans, 1) | (K::ScopeMetrics, 1) | (K::ScopeLogs, 1) => M(K::Scope, No),
        (K::ScopeSpans, 2) => M(K::Span, One),
        (K::ResourceSpans | K::ScopeSpans | K::ResourceMetrics | K::ScopeMetrics, 3) => Str,
        (K::ResourceLogs | K::ScopeLogs, 3) => Str,
        (K::Span, 1 | 2 | 4) => Bytes,
        (K::Span, 3 | 5) => Str,
        (K::Span, 6 | 10 | 12 | 14) => Varint,
        (K::Span, 7 | 8) => Fixed64,
        (K::Span, 9) => kv,
        (K::Span, 11) => M(K::Event, No),
        (K::Span, 13) => M(K::Link, No),
        (K::Span, 15) => M(K::Status, No),
        (K::Span, 16) => Fixed32,
        (K::Event, 1) => Fixed64,
        (K::Event, 2) => Str,
        (K::Event, 3) => kv,
        (K::Event, 4) => Varint,
        (K::Link, 1 | 2) => Bytes,
        (K::Link, 3) => Str,
        (K::Link, 4) => kv,
        (K::Link, 5) => Varint,
        (K::Link, 6) => Fixed32,
        (K::Status, 2) => Str,
        (K::Status, 3) => Varint,
        (K::MetricsRequest, 1) => M(K::ResourceMetrics, Sum),
        (K::ResourceMetrics, 2) => M(K::ScopeMetrics, Sum),
        (K::ScopeMetrics, 2) => M(K::Metric, Sum),
        (K::Metric, 1..=3) => Str,
        (K::Metric, 5) => M(K::Gauge, Data),
        (K::Metric, 7) => M(K::Sum, Data),
        (K::Metric, 9) => M(K::Histogram, Data),
        (K::Metric, 10) => M(K::ExponentialHistogram, Data),
        (K::Metric, 11) => M(K::Summary, Data),
        (K::Metric, 12) => kv,
        (K::Gauge | K::Sum, 1) => M(K::NumberPoint, One),
        (K::Sum, 2 | 3) | (K::Histogram, 2) | (K::ExponentialHistogram, 2) => Varint,
        (K::Histogram, 1) => M(K::HistogramPoint, One),
        (K::ExponentialHistogram, 1) => M(K::ExponentialPoint, One),
        (K::Summary, 1) => M(K::SummaryPoint, One),
        (K::NumberPoint, 2..=4 | 6) => Fixed64,
        (K::NumberPoint, 5) => M(K::Exemplar, No),
        (K::NumberPoint, 7) => kv,
        (K::NumberPoint, 8) => Varint,
        (K::HistogramPoint, 2..=5 | 11 | 12) => Fixed64,
        (K::HistogramPoint, 6 | 7) => RepeatedFixed64,
        (K::HistogramPoint, 8) => M(K::Exemplar, No),
        (K::HistogramPoint, 9) => kv,
        (K::HistogramPoint, 10) => Varint,
        (K::ExponentialPoint, 1) => kv,
        (K::ExponentialPoint, 2..=5 | 7 | 12..=14) => Fixed64,
        (K::ExponentialPoint, 6 | 10) => Varint,
        (K::ExponentialPoint, 8 | 9) => M(K::Buckets, No),
        (K::ExponentialPoint, 11) => M(K::Exemplar, No),
        (K::Buckets, 1) => Varint,
        (K::Buckets, 2) => RepeatedVarint,
        (K::SummaryPoint, 2..=5) => Fixed64,
        (K::SummaryPoint, 6) => M(K::Quantile, No),
        (K::SummaryPoint, 7) => kv,
        (K::SummaryPoint, 8) => Varint,
        (K::Quantile, 1 | 2) => Fixed64,
        (K::Exemplar, 2 | 3 | 6) => Fixed64,
        (K::Exemplar, 4 | 5) => Bytes,
        (K::Exemplar, 7) => kv,
        (K::LogsRequest, 1) => M(K::ResourceLogs, Sum),
        (K::ResourceLogs, 2) => M(K::ScopeLogs, Sum),
        (K::ScopeLogs, 2) => M(K::LogRecord, One),
        (K::LogRecord, 1 | 11) => Fixed64,
        (K::LogRecord, 2 | 7) => Varint,
        (K::LogRecord, 3 | 12) => Str,
        (K::LogRecord, 5) => M(K::AnyValue, No),
        (K::LogRecord, 6) => kv,
        (K::LogRecord, 8) => Fixed32,
        (K::LogRecord, 9 | 10) => Bytes,
        (K::Resource, 1) => kv,
        (K::Resource, 2) => Varint,
        (K::Scope, 1 | 2) => Str,
        (K::Scope, 3) => kv,
        (K::Scope, 4) => Varint,
        (K::KeyValue, 1) => Str,
        (K::KeyValue, 2) => M(K::AnyValue, No),
        (K::AnyValue, 1) => Str,
        (K::AnyValue, 2 | 3) => Varint,
        (K::AnyValue, 4) => Fixed64,
        (K::AnyValue, 5) => M(K::ArrayValue, No),
        (K::AnyValue, 6) => M(K::KeyValueList, No),
        (K::AnyValue, 7) => Bytes,
        (K::ArrayValue, 1) => M(K::AnyValue, No),
        (K::KeyValueList, 1) => kv,
        _ => Unknown,
    }
}

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Walks one message's fields; `depth` is prost's recursion count for them.
fn message(kind: Kind, mut buf: &[u8], depth: u32) -> Result<u64, Bad> {
    let mut items = 0u64;
    // Metric.data: the tag of the kind held, and its points.
    let (mut data_tag, mut data_points) = (0u32, 0u64);
    while !buf.is_empty() {
        let (tag, wire) = key(&mut buf)?;
        match field(kind, tag) {
            Field::Unknown => skip(wire, tag, &mut buf, depth)?,
            Field::Varint => {
                expect(wire, VARINT)?;
                varint(&mut buf)?;
            }
            Field::Fixed32 => fixed(wire, FIXED32, 4, &mut buf)?,
            Field::Fixed64 => fixed(wire, FIXED64, 8, &mut buf)?,
            Field::Str => {
                expect(wire, LEN)?;
                std::str::from_utf8(delimited(&mut buf)?)
                    .map_err(|_| Bad("invalid string value: data is not UTF-8 encoded"))?;
            }
            Field::Bytes => {
                expect(wire, LEN)?;
                delimited(&mut buf)?;
            }
            Field::RepeatedVarint if wire == LEN => {
                let mut packed = delimited(&mut buf)?;
                while !packed.is_empty() {
                    varint(&mut packed)?;
                }
            }
            Field::RepeatedVarint => {
                expect(wire, VARINT)?;
                varint(&mut buf)?;
            }
            Field::RepeatedFixed64 if wire == LEN => {
                if delimited(&mut buf)?.len() % 8 != 0 {
                    return Err(Bad("delimited length exceeded"));
                }
            }
            Field::RepeatedFixed64 => fixed(wire, FIXED64, 8, &mut buf)?,
            Field::Message(child, count) => {
                expect(wire, LEN)?;
                if depth == 0 {
                    return Err(Bad("recursion limit reached"));
                }
                let inner = message(child, delimited(&mut buf)?, depth - 1)?;
                match count {
                    Count::No => {}
                    Count::Sum => items += inner,
                    Count::One => items += 1,
                    Count::Data if data_tag == tag => data_points += inner,
                    Count::Data => (data_tag, data_points) = (tag, inner),
                }
            }
        }
    }
    Ok(items + data_points)
}

/// A field key: (tag, wire type), as prost's `decode_key` checks it.
fn key(buf: &mut &[u8]) -> Result<(u32, u8), Bad> {
    let key = varint(buf)?;
    let key = u32::try_from(key).map_err(|_| Bad("invalid key value"))?;
    let wire = (key & 7) as u8;
    if wire > FIXED32 {
        return Err(Bad("invalid wire type value"));
    }
    let tag = key >> 3;
    if tag == 0 {
        return Err(Bad("invalid tag value: 0"));
    }
    Ok((tag, wire))
}

fn expect(wire: u8, expected: u8) -> Result<(), Bad> {
    match wire == expected {
        true => Ok(()),
        false => Err(Bad("invalid wire type")),
    }
}

/// A fixed-width value of wire type `expected`.
fn fixed(wire: u8, expected: u8, width: usize, buf: &mut &[u8]) -> Result<(), Bad> {
    expect(wire, expected)?;
    advance(buf, width as u64)
}

/// A varint of at most 10 bytes whose tenth byte is 0 or 1 (no overflow).
fn varint(buf: &mut &[u8]) -> Result<u64, Bad> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            if i == 9 && byte >= 2 {
                break;
            }
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(Bad("invalid varint"))
}

/// A length-delimited value's bytes.
fn delimited<'b>(buf: &mut &'b [u8]) -> Result<&'b [u8], Bad> {
    let len = varint(buf)?;
    let whole: &'b [u8] = buf;
    let len = usize::try_from(len)
        .ok()
        .filter(|&len| len <= whole.len())
        .ok_or(Bad("buffer underflow"))?;
    let (value, rest) = whole.split_at(len);
    *buf = rest;
    Ok(value)
}

fn advance(buf: &mut &[u8], len: u64) -> Result<(), Bad> {
    let whole: &[u8] = buf;
    match usize::try_from(len).ok().and_then(|len| whole.get(len..)) {
        Some(rest) => {
            *buf = rest;
            Ok(())
        }
        None => Err(Bad("buffer underflow")),
    }
}

/// An unknown field, skipped as prost's `skip_field` does (a group up to
/// its matching end, each field inside one level deeper).
fn skip(wire: u8, tag: u32, buf: &mut &[u8], depth: u32) -> Result<(), Bad> {
    if depth == 0 {
        return Err(Bad("recursion limit reached"));
    }
    match wire {
        VARINT => varint(buf).map(drop),
        FIXED64 => advance(buf, 8),
        LEN => delimited(buf).map(drop),
        START_GROUP => loop {
            let (inner_tag, inner_wire) = key(buf)?;
            if inner_wire == END_GROUP {
                return match inner_tag == tag {
                    true => Ok(()),
                    false => Err(Bad("unexpected end group tag")),
                };
            }
            skip(inner_wire, inner_tag, buf, depth - 1)?;
        },
        FIXED32 => advance(buf, 4),
        _ => Err(Bad("unexpected end group tag")),
    }
}

#[cfg(test)]
mod tests;
