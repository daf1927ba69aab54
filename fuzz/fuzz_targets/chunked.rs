#![no_main]
//! Chunked body decoder: first byte picks the body limit, the rest is the
//! input. Properties are checked by `pounce::fuzzing::chunked`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| pounce::fuzzing::chunked(data));
