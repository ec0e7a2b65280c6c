//! Fuzz target: `telegate::fuzzing::canonical` (its doc: input format, checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| telegate::fuzzing::canonical(data));
