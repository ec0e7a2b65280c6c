//! The walk's schema: the fields of each message of the three export
//! requests (opentelemetry-proto 0.28, as its generated code has them), as
//! one table per message indexed by the field's whole key (tag and wire
//! type), built at compile time. One load decides both what the field is
//! and whether its wire type is right, where a `match` on (message, tag)
//! and then a check of the wire type were a chain of comparisons per field.

/// The messages of the three requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
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

/// How many kinds there are (the table's rows).
const KINDS: usize = Kind::KeyValueList as usize + 1;

/// One more than the highest field number of any message (`Span.flags`,
/// 16). A larger tag is an unknown field.
const TAGS: usize = 17;

/// The table's columns: every key (`tag << 3 | wire type`) of a tag below
/// [`TAGS`]. Keys below 128 are one byte on the wire.
pub const KEYS: usize = TAGS * 8;

/// What a nested message adds to its parent's item count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Nothing (attributes, resources, ...).
    No,
    /// Its own count (a resource's scopes, a scope's metrics).
    Sum,
    /// One item (a span, a data point, a log record).
    One,
    /// `Metric.data`: the oneof's points (see the walk's module doc).
    Data,
}

/// A known field's type, as the generated code has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
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

/// What the walk does with a field of a given key: its type and its wire
/// type decided together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Not in the schema: skipped as prost's `skip_field` does.
    Unknown,
    /// A known field with another wire type than its own.
    WrongWire,
    /// Wire type 6 or 7, or tag 0: not a key.
    Invalid,
    /// A varint (a `repeated uint64` unpacked too).
    Varint,
    Fixed32,
    /// A fixed64 (a `repeated fixed64` unpacked too).
    Fixed64,
    /// Length-delimited UTF-8.
    Str,
    /// Length-delimited, any bytes.
    Bytes,
    /// `repeated uint64`, packed: varints.
    PackedVarint,
    /// `repeated fixed64`, packed: a multiple of 8 bytes.
    PackedFixed64,
    /// A nested message of kind [`Slot::child`].
    Message(Count),
}

/// One key of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub op: Op,
    /// For [`Op::Message`], the nested message's kind.
    pub child: Kind,
}

/// The walk's slot of a known field of type `ty` seen with wire type `wire`.
const fn slot(ty: Type, wire: u8) -> Slot {
    use Op::{Fixed32 as F32, Fixed64 as F64, WrongWire as Wrong};
    let (op, child) = match (ty, wire) {
        (_, 6 | 7) => (Op::Invalid, Kind::KeyValue),
        (Type::Varint, 0) | (Type::RepeatedVarint, 0) => (Op::Varint, Kind::KeyValue),
        (Type::Fixed32, 5) => (F32, Kind::KeyValue),
        (Type::Fixed64, 1) | (Type::RepeatedFixed64, 1) => (F64, Kind::KeyValue),
        (Type::Str, 2) => (Op::Str, Kind::KeyValue),
        (Type::Bytes, 2) => (Op::Bytes, Kind::KeyValue),
        (Type::RepeatedVarint, 2) => (Op::PackedVarint, Kind::KeyValue),
        (Type::RepeatedFixed64, 2) => (Op::PackedFixed64, Kind::KeyValue),
        (Type::Message(child, count), 2) => (Op::Message(count), child),
        _ => (Wrong, Kind::KeyValue),
    };
    Slot { op, child }
}

/// The slot of a key no known field has.
const fn unknown(key: usize) -> Slot {
    let op = match (key >> 3, key & 7) {
        (_, 6 | 7) | (0, _) => Op::Invalid,
        _ => Op::Unknown,
    };
    Slot {
        op,
        child: Kind::KeyValue,
    }
}

const fn message(child: Kind, count: Count) -> Type {
    Type::Message(child, count)
}

const VARINT: Type = Type::Varint;
const FIXED32: Type = Type::Fixed32;
const FIXED64: Type = Type::Fixed64;
const STR: Type = Type::Str;
const BYTES: Type = Type::Bytes;
const KV: Type = Type::Message(Kind::KeyValue, Count::No);

/// Every known field: (message, field numbers, type).
const FIELDS: &[(Kind, &[u8], Type)] = {
    use Count::{Data, No, One, Sum};
    use Kind as K;
    &[
        (K::TraceRequest, &[1], message(K::ResourceSpans, Sum)),
        (K::ResourceSpans, &[1], message(K::Resource, No)),
        (K::ResourceSpans, &[2], message(K::ScopeSpans, Sum)),
        (K::ResourceSpans, &[3], STR),
        (K::ScopeSpans, &[1], message(K::Scope, No)),
        (K::ScopeSpans, &[2], message(K::Span, One)),
        (K::ScopeSpans, &[3], STR),
        (K::Span, &[1, 2, 4], BYTES),
        (K::Span, &[3, 5], STR),
        (K::Span, &[6, 10, 12, 14], VARINT),
        (K::Span, &[7, 8], FIXED64),
        (K::Span, &[9], KV),
        (K::Span, &[11], message(K::Event, No)),
        (K::Span, &[13], message(K::Link, No)),
        (K::Span, &[15], message(K::Status, No)),
        (K::Span, &[16], FIXED32),
        (K::Event, &[1], FIXED64),
        (K::Event, &[2], STR),
        (K::Event, &[3], KV),
        (K::Event, &[4], VARINT),
        (K::Link, &[1, 2], BYTES),
        (K::Link, &[3], STR),
        (K::Link, &[4], KV),
        (K::Link, &[5], VARINT),
        (K::Link, &[6], FIXED32),
        (K::Status, &[2], STR),
        (K::Status, &[3], VARINT),
        (K::MetricsRequest, &[1], message(K::ResourceMetrics, Sum)),
        (K::ResourceMetrics, &[1], message(K::Resource, No)),
        (K::ResourceMetrics, &[2], message(K::ScopeMetrics, Sum)),
        (K::ResourceMetrics, &[3], STR),
        (K::ScopeMetrics, &[1], message(K::Scope, No)),
        (K::ScopeMetrics, &[2], message(K::Metric, Sum)),
        (K::ScopeMetrics, &[3], STR),
        (K::Metric, &[1, 2, 3], STR),
        (K::Metric, &[5], message(K::Gauge, Data)),
        (K::Metric, &[7], message(K::Sum, Data)),
        (K::Metric, &[9], message(K::Histogram, Data)),
        (K::Metric, &[10], message(K::ExponentialHistogram, Data)),
        (K::Metric, &[11], message(K::Summary, Data)),
        (K::Metric, &[12], KV),
        (K::Gauge, &[1], message(K::NumberPoint, One)),
        (K::Sum, &[1], message(K::NumberPoint, One)),
        (K::Sum, &[2, 3], VARINT),
        (K::Histogram, &[1], message(K::HistogramPoint, One)),
        (K::Histogram, &[2], VARINT),
        (
            K::ExponentialHistogram,
            &[1],
            message(K::ExponentialPoint, One),
        ),
        (K::ExponentialHistogram, &[2], VARINT),
        (K::Summary, &[1], message(K::SummaryPoint, One)),
        (K::NumberPoint, &[2, 3, 4, 6], FIXED64),
        (K::NumberPoint, &[5], message(K::Exemplar, No)),
        (K::NumberPoint, &[7], KV),
        (K::NumberPoint, &[8], VARINT),
        (K::HistogramPoint, &[2, 3, 4, 5, 11, 12], FIXED64),
        (K::HistogramPoint, &[6, 7], Type::RepeatedFixed64),
        (K::HistogramPoint, &[8], message(K::Exemplar, No)),
        (K::HistogramPoint, &[9], KV),
        (K::HistogramPoint, &[10], VARINT),
        (K::ExponentialPoint, &[1], KV),
        (K::ExponentialPoint, &[2, 3, 4, 5, 7, 12, 13, 14], FIXED64),
        (K::ExponentialPoint, &[6, 10], VARINT),
        (K::ExponentialPoint, &[8, 9], message(K::Buckets, No)),
        (K::ExponentialPoint, &[11], message(K::Exemplar, No)),
        (K::Buckets, &[1], VARINT),
        (K::Buckets, &[2], Type::RepeatedVarint),
        (K::SummaryPoint, &[2, 3, 4, 5], FIXED64),
        (K::SummaryPoint, &[6], message(K::Quantile, No)),
        (K::SummaryPoint, &[7], KV),
        (K::SummaryPoint, &[8], VARINT),
        (K::Quantile, &[1, 2], FIXED64),
        (K::Exemplar, &[2, 3, 6], FIXED64),
        (K::Exemplar, &[4, 5], BYTES),
        (K::Exemplar, &[7], KV),
        (K::LogsRequest, &[1], message(K::ResourceLogs, Sum)),
        (K::ResourceLogs, &[1], message(K::Resource, No)),
        (K::ResourceLogs, &[2], message(K::ScopeLogs, Sum)),
        (K::ResourceLogs, &[3], STR),
        (K::ScopeLogs, &[1], message(K::Scope, No)),
        (K::ScopeLogs, &[2], message(K::LogRecord, One)),
        (K::ScopeLogs, &[3], STR),
        (K::LogRecord, &[1, 11], FIXED64),
        (K::LogRecord, &[2, 7], VARINT),
        (K::LogRecord, &[3, 12], STR),
        (K::LogRecord, &[5], message(K::AnyValue, No)),
        (K::LogRecord, &[6], KV),
        (K::LogRecord, &[8], FIXED32),
        (K::LogRecord, &[9, 10], BYTES),
        (K::Resource, &[1], KV),
        (K::Resource, &[2], VARINT),
        (K::Scope, &[1, 2], STR),
        (K::Scope, &[3], KV),
        (K::Scope, &[4], VARINT),
        (K::KeyValue, &[1], STR),
        (K::KeyValue, &[2], message(K::AnyValue, No)),
        (K::AnyValue, &[1], STR),
        (K::AnyValue, &[2, 3], VARINT),
        (K::AnyValue, &[4], FIXED64),
        (K::AnyValue, &[5], message(K::ArrayValue, No)),
        (K::AnyValue, &[6], message(K::KeyValueList, No)),
        (K::AnyValue, &[7], BYTES),
        (K::ArrayValue, &[1], message(K::AnyValue, No)),
        (K::KeyValueList, &[1], KV),
    ]
};

/// [`FIELDS`] as rows by kind, columns by key; a field listed twice, or a
/// tag out of range, fails the build.
static SCHEMA: [[Slot; KEYS]; KINDS] = {
    let mut table = [[unknown(0); KEYS]; KINDS];
    let mut kind = 0;
    while kind < KINDS {
        let mut key = 0;
        while key < KEYS {
            table[kind][key] = unknown(key);
            key += 1;
        }
        kind += 1;
    }
    let mut i = 0;
    while i < FIELDS.len() {
        let (kind, tags, ty) = FIELDS[i];
        let mut j = 0;
        while j < tags.len() {
            let tag = tags[j] as usize;
            assert!(tag > 0 && tag < TAGS, "a field number out of range");
            assert!(
                matches!(table[kind as usize][tag << 3].op, Op::Unknown),
                "a field listed twice"
            );
            let mut wire = 0;
            while wire < 8 {
                table[kind as usize][tag << 3 | wire] = slot(ty, wire as u8);
                wire += 1;
            }
            j += 1;
        }
        i += 1;
    }
    table
};

/// The slots of `kind` by key (a key of [`KEYS`] or more is a tag the
/// schema does not know).
#[inline]
pub fn keys(kind: Kind) -> &'static [Slot; KEYS] {
    &SCHEMA[kind as usize]
}
