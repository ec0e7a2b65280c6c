//! Fuzz target: `telegate::fuzzing::session_body` (its doc: input format, checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| telegate::fuzzing::session_body(data));
