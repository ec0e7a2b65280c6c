//! Fuzz target: `telegate::fuzzing::header_v2` (its doc: input format, checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| telegate::fuzzing::header_v2(data));
