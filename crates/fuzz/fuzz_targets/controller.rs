#![no_main]
//! libFuzzer driver for `setpoint_fuzz_targets::controller`; the body and its properties live in that crate.

libfuzzer_sys::fuzz_target!(|data: &[u8]| setpoint_fuzz_targets::controller(data));
