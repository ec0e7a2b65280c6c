//! Harnesses for export bodies: OTLP decode, enrich and re-encode in both
//! media, and gzip inflation under its cap.

use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::ingest::body::{gunzip as gunzip_held, gunzip_size, gzip, InflateError};
use crate::ingest::otlp::{decode, Export, Media, Signal};
use crate::pipeline::budget::MemoryBudget;

/// OTLP/protobuf: the first byte picks the signal (modulo 3), the rest is
/// the body. See [`otlp`].
pub fn otlp_protobuf(data: &[u8]) {
    otlp(Media::Protobuf, data);
}

/// OTLP/JSON: the first byte picks the signal (modulo 3), the rest is the
/// body. See [`otlp`].
pub fn otlp_json(data: &[u8]) {
    otlp(Media::Json, data);
}

/// What the key id attribute is set to, and what the harness drops.
const ADD: &[(&str, &str)] = &[("telegate.key_id", "fuzz"), ("service.name", "added")];
const DROP: &[&str] = &["user.id", "service.name"];

/// Where decode succeeds: the export encodes in its media, decoding that
/// gives the same export (compared by its protobuf bytes, so a NaN equals
/// itself), and the enriched export (what is forwarded) encodes, decodes
/// again, keeps its item count and carries the added attribute once per
/// resource and no dropped one.
fn otlp(media: Media, data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let signal = Signal::ALL[usize::from(first) % Signal::ALL.len()];
    let Ok(export) = decode(signal, media, body) else {
        return;
    };
    let items = export.items();
    let again = round_trip(signal, media, &export);
    assert_eq!(again.items(), items);
    let mut enriched = export;
    let drop: Vec<String> = DROP.iter().map(|d| d.to_string()).collect();
    enriched.enrich(ADD, &drop);
    assert_eq!(enriched.items(), items);
    let forwarded = round_trip(signal, media, &enriched);
    for resource in resources(&forwarded) {
        let count = |key: &str| {
            resource
                .attributes
                .iter()
                .filter(|kv| kv.key == key)
                .count()
        };
        assert_eq!(count("telegate.key_id"), 1);
        assert_eq!(count("user.id") + count("service.name"), 0);
    }
}

/// Encodes in `media`, decodes again, and checks nothing changed.
fn round_trip(signal: Signal, media: Media, export: &Export) -> Export {
    let bytes = export.encode(media).expect("a decoded export encodes");
    let again = match decode(signal, media, &bytes) {
        Ok(again) => again,
        Err(err) => panic!("our own encoding does not decode: {err}"),
    };
    let proto = |e: &Export| e.encode(Media::Protobuf).expect("protobuf always encodes");
    assert!(proto(&again) == proto(export), "decode(encode(x)) != x");
    again
}

fn resources(export: &Export) -> Vec<&Resource> {
    let all: Vec<&Option<Resource>> = match export {
        Export::Traces(r) => r.resource_spans.iter().map(|x| &x.resource).collect(),
        Export::Metrics(r) => r.resource_metrics.iter().map(|x| &x.resource).collect(),
        Export::Logs(r) => r.resource_logs.iter().map(|x| &x.resource).collect(),
    };
    all.into_iter().flatten().collect()
}

/// Gzip inflation: the first two bytes are the limit in KiB (big endian,
/// modulo 1025, so at most 1 MiB is inflated per run) plus the third byte
/// in bytes, the rest is the body. `gunzip` and `gunzip_size` agree, never
/// return more than the limit, a body that inflated fits no smaller limit,
/// and it survives a gzip round trip.
pub fn gunzip(data: &[u8]) {
    let [hi, lo, extra, body @ ..] = data else {
        return;
    };
    let limit = (usize::from(u16::from_be_bytes([*hi, *lo])) % 1025) * 1024 + usize::from(*extra);
    let budget = MemoryBudget::new(usize::MAX / 2);
    let inflate = |body: &[u8], limit: usize| gunzip_held(body, limit, &mut budget.hold());
    let inflated = inflate(body, limit);
    let size = gunzip_size(body, limit);
    match (&inflated, &size) {
        (Ok(out), Ok(n)) => {
            assert_eq!(out.len() as u64, *n);
            assert!(out.len() <= limit);
            if let Some(smaller) = out.len().checked_sub(1) {
                assert_eq!(
                    inflate(body, smaller),
                    Err(InflateError::TooLarge { limit: smaller })
                );
            }
            assert_eq!(inflate(&gzip(out), limit).as_ref(), Ok(out));
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!(
            "gunzip {:?} but gunzip_size {b:?}",
            a.as_ref().map(Vec::len)
        ),
    }
}
