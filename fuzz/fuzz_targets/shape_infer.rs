//! `cargo fuzz run shape_infer`: see tests/fuzzing/mod.rs for what it checks.
#![no_main]

#[path = "../../tests/fuzzing/mod.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::shape_infer(data);
});
