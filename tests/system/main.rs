//! Whole-system tests: real `wasmesos master` and `wasmesos agent` (or
//! `wasmesos up`) processes on loopback, driven through the real CLI.
//! One test binary, a module per topic (as wasmtime's `tests/all`).
//!
//! Tests wait for conditions with generous deadlines and never assert on
//! how fast anything was.

mod harness;
mod procs;

mod bad_input;
mod durability;
mod examples;
mod frameworks;
mod ha;
mod isolation;
mod lifecycle;
mod python;
mod roles;
mod snapshot;
mod submit;
mod tenancy;
mod tls;
mod ui;
