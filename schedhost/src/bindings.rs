//! The one `bindgen!` over `wit/`: host-side bindings of the
//! `wasmesos:scheduler@0.1.0` world. Exports are called with `call_async`
//! (epoch yields and time limits need it); imports answer from memory and
//! are synchronous.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "scheduler",
    exports: { default: async },
});
