//! Fuzz target: `telegate::fuzzing::grpc_unframe` (its doc: input format, checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| telegate::fuzzing::grpc_unframe(data));
