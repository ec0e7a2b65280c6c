//! Fuzz target: `telegate::fuzzing::config` (its doc: input format, checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| telegate::fuzzing::config(data));
