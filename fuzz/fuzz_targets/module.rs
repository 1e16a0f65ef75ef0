//! Module and component bytes through the master's upload check, the
//! agent runtime and the scheduler host (`wasmesos_fuzzing::module`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wasmesos_fuzzing::module::check(data);
});
