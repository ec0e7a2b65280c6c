//! How the series guard hashes: an attribute set is the wrapping sum of
//! each pair's keyed hash (so order does not matter), and a series is the
//! keyed hash of (metric, attributes, resource part). Two keys: the
//! process's own random one for the local sets, and the one every replica
//! shares through Redis ([`SharedKeys`], SipHash-1-3) for the shared sets.
//! Both are secret to clients, so none can aim at a known series' hash.

use std::hash::{BuildHasher, Hash, Hasher};

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use siphasher::sip::SipHasher13;

/// The key replicas share (read from Redis once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedKeys(u64, u64);

impl SharedKeys {
    pub fn from_bytes(key: [u8; 16]) -> SharedKeys {
        let (a, b) = key.split_at(8);
        let word = |half: &[u8]| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(half);
            u64::from_le_bytes(bytes)
        };
        SharedKeys(word(a), word(b))
    }
}

impl BuildHasher for SharedKeys {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.0, self.1)
    }
}

/// Order-free hash of attributes: the sum of each pair's keyed hash.
pub(super) fn sum<'a, B: BuildHasher>(
    keys: &B,
    attributes: impl Iterator<Item = &'a KeyValue>,
) -> u64 {
    attributes.fold(0u64, |sum, kv| {
        let mut h = keys.build_hasher();
        kv.key.hash(&mut h);
        hash_value(kv.value.as_ref(), &mut h);
        sum.wrapping_add(h.finish())
    })
}

/// The series of a point: (metric hash, its attributes, the resource part).
pub(super) fn series<B: BuildHasher>(
    keys: &B,
    metric: u64,
    attributes: &[KeyValue],
    resource: u64,
) -> u64 {
    keys.hash_one((metric, sum(keys, attributes.iter()), resource))
}

fn hash_value(value: Option<&AnyValue>, h: &mut impl Hasher) {
    use any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        None => h.write_u8(0),
        Some(Value::StringValue(s)) => {
            h.write_u8(1);
            s.hash(h);
        }
        Some(Value::BoolValue(b)) => {
            h.write_u8(2);
            b.hash(h);
        }
        Some(Value::IntValue(i)) => {
            h.write_u8(3);
            i.hash(h);
        }
        Some(Value::DoubleValue(d)) => {
            h.write_u8(4);
            d.to_bits().hash(h);
        }
        Some(Value::BytesValue(b)) => {
            h.write_u8(5);
            b.hash(h);
        }
        Some(Value::ArrayValue(a)) => {
            h.write_u8(6);
            h.write_usize(a.values.len());
            for v in &a.values {
                hash_value(Some(v), h);
            }
        }
        Some(Value::KvlistValue(kv)) => {
            h.write_u8(7);
            h.write_usize(kv.values.len());
            for kv in &kv.values {
                kv.key.hash(h);
                hash_value(kv.value.as_ref(), h);
            }
        }
    }
}
