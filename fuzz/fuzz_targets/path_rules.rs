//! Fuzz target: `telegate::fuzzing::path_rules` (its doc: input format, checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| telegate::fuzzing::path_rules(data));
