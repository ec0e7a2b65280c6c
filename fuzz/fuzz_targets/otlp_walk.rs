//! Fuzz target: `telegate::fuzzing::otlp_walk` (its doc: input format, checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| telegate::fuzzing::otlp_walk(data));
