//! The walk against prost on the wire format's rules: varints, keys and
//! wire types, strings, lengths, unknown fields, repeated numbers and the
//! recursion limit.

use super::*;

#[test]
fn varints_keys_and_wire_types() {
    // A log record's severity_number (field 2, varint) as given.
    let logs_with = |record_bytes: &[u8]| len(1, &len(2, &len(2, record_bytes)));
    let sev = |value: &[u8]| logs_with(&[key(2, VARINT), value.to_vec()].concat());
    let ten = |last: u8| [vec![0xff; 9], vec![last]].concat();
    assert_eq!(same(Signal::Logs, &sev(&ten(0x01))), Some(1));
    assert_eq!(same(Signal::Logs, &sev(&ten(0x02))), None, "overflows u64");
    assert_eq!(
        same(Signal::Logs, &sev(&[vec![0x80; 10], vec![0]].concat())),
        None
    );
    assert_eq!(
        same(Signal::Logs, &sev(&[0x80, 0x80, 0x00])),
        Some(1),
        "padded"
    );
    assert_eq!(same(Signal::Logs, &sev(&[0x80])), None, "cut");
    // Keys: padded, above u32::MAX, tag 0, wire types 6 and 7.
    assert_eq!(same(Signal::Logs, &[0x8a, 0x80, 0x00, 0x00]), Some(0));
    assert_eq!(
        same(Signal::Logs, &[0x80, 0x80, 0x80, 0x80, 0x10, 0x00]),
        None
    );
    assert_eq!(same(Signal::Logs, &[0x00, 0x00]), None);
    assert_eq!(same(Signal::Logs, &[0x0e, 0x00]), None);
    assert_eq!(same(Signal::Logs, &[0x0f, 0x00]), None);
    // A known field with the wrong wire type: severity_text (3, string) as
    // a varint, time (1, fixed64) as fixed32, the body (5) as fixed64.
    assert_eq!(
        same(
            Signal::Logs,
            &logs_with(&[key(3, VARINT), vec![1]].concat())
        ),
        None
    );
    assert_eq!(
        same(
            Signal::Logs,
            &logs_with(&[key(1, FIXED32), vec![0; 4]].concat())
        ),
        None
    );
    assert_eq!(
        same(
            Signal::Logs,
            &logs_with(&[key(1, FIXED64), vec![0; 8]].concat())
        ),
        Some(1)
    );
    assert_eq!(
        same(
            Signal::Logs,
            &logs_with(&[key(5, FIXED64), vec![0; 8]].concat())
        ),
        None
    );
    assert_eq!(
        same(
            Signal::Logs,
            &logs_with(&[key(1, FIXED64), vec![0; 7]].concat())
        ),
        None
    );
}

#[test]
fn strings_are_utf8_bytes_are_not() {
    let logs_with = |record_bytes: &[u8]| len(1, &len(2, &len(2, record_bytes)));
    assert_eq!(
        same(Signal::Logs, &logs_with(&len(3, "é".as_bytes()))),
        Some(1)
    );
    assert_eq!(same(Signal::Logs, &logs_with(&len(3, &[0xc3]))), None);
    assert_eq!(same(Signal::Logs, &logs_with(&len(9, &[0xc3]))), Some(1));
    let kv = len(1, &[0xff, 0xfe]);
    assert_eq!(same(Signal::Logs, &logs_with(&len(6, &kv))), None);
}

#[test]
fn lengths_past_the_end_or_the_parent_are_refused() {
    let inner = len(2, &len(2, &[]));
    assert_eq!(same(Signal::Logs, &len(1, &inner)), Some(1));
    let mut long = len(1, &inner);
    long[1] += 1;
    assert_eq!(same(Signal::Logs, &long), None);
    // The scope's length runs past its resource's end (bytes follow).
    let mut crossing = [len(1, &inner), len(1, &inner)].concat();
    crossing[3] += 1;
    assert_eq!(same(Signal::Logs, &crossing), None);
    let huge = [key(1, LEN), vec![0xff; 9], vec![0x01]].concat();
    assert_eq!(same(Signal::Logs, &huge), None);
}

#[test]
fn unknown_fields_are_skipped_as_prost_does() {
    let logs_with = |record_bytes: &[u8]| len(1, &len(2, &len(2, record_bytes)));
    let cases: &[(&[u8], Option<u64>)] = &[
        (&[0xc8, 0x01, 0x05], Some(1)),                   // 25 varint
        (&[0xc9, 0x01, 0, 0, 0, 0, 0, 0, 0, 0], Some(1)), // 25 fixed64
        (&[0xcd, 0x01, 0, 0, 0, 0], Some(1)),             // 25 fixed32
        (&[0xcd, 0x01, 0, 0, 0], None),
        (&[0xca, 0x01, 0x02, 0xff, 0xff], Some(1)), // 25 bytes, not UTF-8
        (&[0xca, 0x01, 0x03, 0xff, 0xff], None),
        (&[0xcb, 0x01, 0xcc, 0x01], Some(1)), // 25 group, empty
        (&[0xcb, 0x01, 0x08, 0x01, 0x1b, 0x1c, 0xcc, 0x01], Some(1)), // nested group
        (&[0xcb, 0x01, 0xd4, 0x01], None),    // ends group 26
        (&[0xcb, 0x01, 0x08, 0x01], None),    // never ends
        (&[0xcc, 0x01], None),                // a lone end
        (&[0xcb, 0x01, 0x0e, 0xcc, 0x01], None), // wire type 6 inside
    ];
    for (field, expected) in cases {
        assert_eq!(
            same(Signal::Logs, &logs_with(field)),
            *expected,
            "{field:02x?}"
        );
        // The same field at the top level, where no record counts.
        assert_eq!(
            same(Signal::Logs, field),
            expected.map(|_| 0),
            "{field:02x?}"
        );
    }
}

#[test]
fn repeated_numbers_packed_or_not() {
    // A histogram point's bucket_counts (6, fixed64) and a buckets'
    // bucket_counts (2, uint64).
    let histogram = |point: &[u8]| {
        let metric = len(9, &len(1, point));
        len(1, &len(2, &len(2, &metric)))
    };
    let exponential = |buckets: &[u8]| {
        let metric = len(10, &len(1, &len(8, buckets)));
        len(1, &len(2, &len(2, &metric)))
    };
    let m = Signal::Metrics;
    assert_eq!(same(m, &histogram(&len(6, &[0; 16]))), Some(1));
    assert_eq!(same(m, &histogram(&len(6, &[0; 12]))), None);
    assert_eq!(same(m, &histogram(&len(7, &[]))), Some(1));
    assert_eq!(
        same(m, &histogram(&[key(6, FIXED64), vec![0; 8]].concat())),
        Some(1)
    );
    assert_eq!(
        same(m, &histogram(&[key(6, VARINT), vec![0]].concat())),
        None
    );
    assert_eq!(same(m, &exponential(&len(2, &[0x01, 0xff, 0x01]))), Some(1));
    assert_eq!(same(m, &exponential(&len(2, &[0x01, 0xff]))), None);
    assert_eq!(
        same(m, &exponential(&[key(2, VARINT), vec![0x7f]].concat())),
        Some(1)
    );
    assert_eq!(
        same(m, &exponential(&[key(2, FIXED64), vec![0; 8]].concat())),
        None
    );
}

/// A log record whose body is `n` arrays nested, innermost `innermost`.
fn nested(n: usize, innermost: &[u8]) -> Vec<u8> {
    let mut value = innermost.to_vec();
    for _ in 0..n {
        value = len(5, &len(1, &value));
    }
    len(1, &len(2, &len(2, &len(5, &value))))
}

#[test]
fn the_recursion_limit_is_prosts() {
    // The body is at depth 96, each array level two less: 48 levels put
    // the innermost value at depth 0, where only a known scalar may be.
    let string = len(1, b"x");
    assert_eq!(same(Signal::Logs, &nested(48, &string)), Some(1));
    assert_eq!(same(Signal::Logs, &nested(49, &string)), None);
    assert_eq!(same(Signal::Logs, &nested(48, &len(6, &[]))), None);
    assert_eq!(same(Signal::Logs, &nested(48, &[0xc8, 0x01, 0x00])), None);
    // At depth 2 a group's fields are at depth 1 and a nested group's at
    // depth 0 (skipping a field there is refused, ending the group is not).
    let at_two = |field: &[u8]| same(Signal::Logs, &nested(47, field));
    assert_eq!(at_two(&[0xcb, 0x01, 0xcc, 0x01]), Some(1));
    assert_eq!(at_two(&[0xcb, 0x01, 0x08, 0x01, 0xcc, 0x01]), Some(1));
    assert_eq!(at_two(&[0xcb, 0x01, 0x1b, 0x1c, 0xcc, 0x01]), Some(1));
    assert_eq!(
        at_two(&[0xcb, 0x01, 0x1b, 0x08, 0x01, 0x1c, 0xcc, 0x01]),
        None
    );
    assert_eq!(
        same(Signal::Logs, &nested(48, &[0xcb, 0x01, 0xcc, 0x01])),
        None
    );
    // A string attribute in a kvlist at depth 2: the list's pair is walked
    // at depth 0, where its value (a message) is refused, short way or not;
    // one level up it is not.
    let pair = [len(1, b"k"), len(2, &len(1, b"v"))].concat();
    let kvlist = len(6, &len(1, &pair));
    assert_eq!(same(Signal::Logs, &nested(47, &kvlist)), None);
    assert_eq!(same(Signal::Logs, &nested(46, &kvlist)), Some(1));
    let key_only = len(6, &len(1, &len(1, b"k")));
    assert_eq!(same(Signal::Logs, &nested(47, &key_only)), Some(1));
    let deep = AnyValue {
        value: Some(any_value::Value::StringValue("x".into())),
    };
    assert_eq!(
        same(Signal::Logs, &logs(1, Some(deep)).encode_to_vec()),
        Some(1)
    );
}
