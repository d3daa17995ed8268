//! Fuzz target: the scenario parser must return a located error, never
//! panic, on arbitrary bytes (the property test in lab/tests/scenario.rs
//! runs the same check on every test run).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = lab::scenario::parse("fuzz.toml", &text) {
        let _ = e.to_string();
    }
});
