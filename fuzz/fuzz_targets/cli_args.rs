//! `cargo fuzz run cli_args`: see tests/fuzzing/mod.rs (`cli_args`) for what it checks.
#![no_main]

#[path = "../../tests/fuzzing/mod.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::cli_args(data);
});
