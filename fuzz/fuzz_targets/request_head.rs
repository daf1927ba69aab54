#![no_main]
//! Request-head parser: first byte picks the limits, the rest is the input.
//! Properties are checked by `pounce::fuzzing::request_head`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| pounce::fuzzing::request_head(data));
