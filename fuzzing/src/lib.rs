//! What the fuzz targets run, kept in the workspace so that the test suite
//! replays their corpus on every run and the targets cannot rot.
//!
//! Two surfaces take bytes from strangers:
//! - [`module`]: the bytes of a task module or scheduler component, through
//!   every check they meet — the master's upload validation
//!   ([`wasmesos_master::validate_module`]), the agent runtime's detection,
//!   validation, compilation and WASI linking
//!   ([`wasmesos_runtime::Runtime::compile`]), and the scheduler host's
//!   compilation and world check ([`wasmesos_schedhost::SchedHost::compile`]).
//! - [`request`]: API requests to a live master started in this process —
//!   every gRPC method of both services with arbitrary message bytes (so
//!   tonic's framing, prost decoding, authentication, authorisation and the
//!   handlers all run), and the JSON API and sign-in form over HTTP — as an
//!   operator, a tenant, an agent and nobody.
//!
//! A finding is a panic anywhere in the process (the master's tasks
//! included: a panic hook records it), a dropped connection, a 500 answer
//! to a read, or an inconsistency (a module the runtime accepts that the
//! upload check refused).
//!
//! Neighbours: `fuzz/` holds the `cargo fuzz` targets, one line each over
//! this crate; `tests/corpus.rs` replays [`module::seeds`],
//! [`request::seeds`] and the files under `fuzzing/corpus/`.

pub mod module;
pub mod request;

mod raw_codec;
