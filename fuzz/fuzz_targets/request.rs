//! API requests to a live master in this process, over gRPC and HTTP
//! (`wasmesos_fuzzing::request`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wasmesos_fuzzing::request::check(data);
});
