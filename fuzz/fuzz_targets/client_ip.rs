//! Fuzz target: `telegate::fuzzing::client_ip` (its doc: input format, checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| telegate::fuzzing::client_ip(data));
