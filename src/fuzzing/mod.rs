//! The fuzz harnesses: one function per parser of outside bytes, each
//! taking the fuzzer's bytes and asserting what must hold for every input
//! (no panic, and the properties its doc names). `fuzz/fuzz_targets/*.rs`
//! call them under libFuzzer (`cargo +nightly fuzz run <target>`), and
//! `tests/it/fuzz_corpus.rs` replays `fuzz/corpus/<target>/` through the very
//! same functions on stable, so CI never needs nightly.
//!
//! Not an API: public only so the fuzz crate and the integration test can
//! call it. The input formats are text where the parsed thing is text, so
//! the seed corpus stays readable (see each target's doc).

mod api;
mod frames;
mod payload;
mod protocol;
mod walk;

use http::{HeaderMap, HeaderName, HeaderValue};

pub use api::{config, session_body, session_path};
pub use frames::{grpc_unframe, path_rules};
pub use payload::{gunzip, otlp_json, otlp_protobuf};
pub use protocol::{canonical, client_ip, header_v1, header_v2};
pub use walk::otlp_walk;

/// A harness: the fuzzer's input in, a panic when a property fails.
pub type Harness = fn(&[u8]);

/// Every target by the name of its `fuzz/fuzz_targets/<name>.rs` and its
/// corpus folder `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Harness)] = &[
    ("header_v1", header_v1),
    ("header_v2", header_v2),
    ("canonical", canonical),
    ("client_ip", client_ip),
    ("otlp_protobuf", otlp_protobuf),
    ("otlp_json", otlp_json),
    ("gunzip", gunzip),
    ("session_path", session_path),
    ("session_body", session_body),
    ("config", config),
    ("grpc_unframe", grpc_unframe),
    ("path_rules", path_rules),
    ("otlp_walk", otlp_walk),
];

/// A request head as text: the first line is `METHOD PATH`, every further
/// line `name: value` (appended, so a name may repeat). Lines whose name or
/// value `http` refuses are skipped, as hyper would refuse them earlier.
fn request_head(data: &[u8]) -> (String, String, HeaderMap) {
    let mut lines = data.split(|&b| b == b'\n');
    let first = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let (method, path) = first.split_once(' ').unwrap_or((&first, ""));
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    (method.to_string(), path.to_string(), headers)
}
