//! Why the walk refused the bytes, in prost's words ([`Bad::text`]), and
//! how that becomes the ingest route's [`Malformed`].

use super::super::Malformed;

/// Why the bytes are not an export (one byte, not a string: the walk's
/// result stays small).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    Varint,
    KeyValue,
    WireTypeValue,
    TagZero,
    WireType,
    Underflow,
    Utf8,
    PackedLength,
    Recursion,
    EndGroup,
}

impl Bad {
    /// prost's wording.
    pub fn text(self) -> &'static str {
        match self {
            Bad::Varint => "invalid varint",
            Bad::KeyValue => "invalid key value",
            Bad::WireTypeValue => "invalid wire type value",
            Bad::TagZero => "invalid tag value: 0",
            Bad::WireType => "invalid wire type",
            Bad::Underflow => "buffer underflow",
            Bad::Utf8 => "invalid string value: data is not UTF-8 encoded",
            Bad::PackedLength => "delimited length exceeded",
            Bad::Recursion => "recursion limit reached",
            Bad::EndGroup => "unexpected end group tag",
        }
    }
}

impl From<Bad> for Malformed {
    fn from(bad: Bad) -> Malformed {
        Malformed(format!("not a protobuf export: {}", bad.text()))
    }
}
