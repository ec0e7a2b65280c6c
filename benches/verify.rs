//! The pure verification path, without sockets: what one `/auth` decision
//! costs in CPU before hyper, logging and metrics.
//!
//!   cargo bench --bench verify
//!
//! - `canonical_tag`: one HMAC-SHA256 of a realistic v1 message (baseline).
//! - `canonical_message`: building that message (`MessageV1::to_bytes`).
//! - `pipeline/1_key`: `signed_request::parse` + `window::check` +
//!   `verify::verify` on a header map shaped like what Traefik forwards.
//! - `pipeline/3_keys_last`: the same with three live keys where only the last
//!   one matches (the worst case of a rotation: three HMACs).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use telegate::protocol::canonical::{self, MessageV1};
use telegate::protocol::keyring::{Key, KeyId, Keyring};
use telegate::protocol::signed_request::{self, HeaderNames, ParseOptions};
use telegate::protocol::{verify, window};
use telegate::secret::Secret;

const NOW: i64 = 1_800_000_000;
const SESSION: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const MATCHING: &str = "4378e5392e6598a7c1218de00911b661322ca0d61900dd7090a1c693722911be";

fn key(id: &str, text: &str) -> Key {
    Key::new(KeyId::new(id), &Secret::from_text(text).unwrap(), None)
}

fn message() -> MessageV1<'static> {
    MessageV1 {
        method: "POST",
        path: "/v1/metrics",
        timestamp: NOW - 7,
        session_id: SESSION,
    }
}

/// Roughly what Traefik forwards to `/auth` for one OTLP export.
fn headers() -> HeaderMap {
    let signature = canonical::sign_v1(&Secret::from_text(MATCHING).unwrap(), &message());
    let timestamp = (NOW - 7).to_string();
    let mut map = HeaderMap::new();
    for (name, value) in [
        ("host", "telegate:8080"),
        ("user-agent", "OTel-OTLP-Exporter-Dotnet/1.9.0"),
        ("content-type", "application/x-protobuf"),
        ("content-length", "1834"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-host", "otlp.example.org"),
        ("x-forwarded-method", "POST"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-uri", "/v1/metrics"),
        ("x-real-ip", "203.0.113.7"),
        ("x-kms-signature", signature.as_str()),
        ("x-kms-timestamp", timestamp.as_str()),
        ("x-kms-session-id", SESSION),
        ("x-kms-client-version", "2.0.0.0"),
    ] {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// parse + window + verify, as `auth::decide` runs them (minus rate limit).
fn pipeline(names: &HeaderNames, headers: &HeaderMap, ring: &Keyring) -> bool {
    let uri = headers["x-forwarded-uri"].to_str().unwrap();
    let method = headers["x-forwarded-method"].to_str().unwrap();
    let request = signed_request::parse(
        names,
        headers,
        method,
        signed_request::signed_path(uri),
        ParseOptions::default(),
    )
    .unwrap();
    window::check(request.timestamp, NOW, 300).unwrap();
    verify::verify(&request, ring, None, NOW).is_ok()
}

fn benches(c: &mut Criterion) {
    let names = HeaderNames::default();
    let headers = headers();

    let single = key("k1", MATCHING);
    let bytes = message().to_bytes();
    c.bench_function("canonical_tag", |b| {
        b.iter(|| single.tag(black_box(&bytes)))
    });
    c.bench_function("canonical_message", |b| {
        b.iter(|| black_box(message()).to_bytes())
    });

    let one = Keyring::new(vec![key("k1", MATCHING)]);
    let three = Keyring::new(vec![
        key(
            "k1",
            "a-retired-secret-that-is-still-live-0000000000000000000000000000",
        ),
        key(
            "k2",
            "another-live-secret-0000000000000000000000000000000000000000000",
        ),
        key("k3", MATCHING),
    ]);
    assert!(pipeline(&names, &headers, &one));
    assert!(pipeline(&names, &headers, &three));

    let mut group = c.benchmark_group("pipeline");
    group.bench_function("1_key", |b| {
        b.iter(|| pipeline(&names, black_box(&headers), &one))
    });
    group.bench_function("3_keys_last", |b| {
        b.iter(|| pipeline(&names, black_box(&headers), &three))
    });
    group.finish();
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
