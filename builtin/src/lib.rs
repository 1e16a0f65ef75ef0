//! The guests wasmesos ships inside its binary, as bytes: the jobs
//! scheduler component (deployed by the master as the built-in `jobs`
//! framework), the `hello` task module (for tests and demos) and the
//! `chaos` scheduler component (a test fixture only). They are
//! built from `examples/` (with `sdk/` and `wit/`) for wasm targets by this
//! crate's build script; nothing here depends on a Wasm runtime, so any
//! crate (master, agent, cli, tests) can embed them cheaply.

/// The jobs scheduler (`examples/jobs`): a WebAssembly component
/// implementing `wasmesos:scheduler/scheduler@0.1.0`, built for
/// `wasm32-wasip2`. It imports WASI 0.2 (as every Rust wasip2 component
/// does), so its host must link WASI with nothing granted.
pub const JOBS_SCHEDULER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/jobs.wasm"));

/// The chaos scheduler (`examples/chaos`): a component of the same world as
/// [`JOBS_SCHEDULER`] that misbehaves on demand — traps, spins, exhausts
/// memory, fuel or stack, floods state or the log — when sent a "user"
/// message naming the misbehaviour (or through its `on-registered` config
/// key). A **test fixture** for the scheduler host's limits and isolation
/// (`schedhost/tests`): nothing deploys it. Its vocabulary is at the top of
/// `examples/chaos/src/lib.rs`.
pub const CHAOS_SCHEDULER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/chaos.wasm"));

/// The `hello` task (`examples/hello`): a WASI preview 1 core module built
/// for `wasm32-wasip1`. It prints a greeting, its args and env, and obeys
/// flags such as `--exit N`, `--sleep-ms N`, `--trap`, `--spin`,
/// `--alloc-mib N`, `--write FILE` and `--print-lines N` (see the comment
/// at the top of `examples/hello/src/main.rs`).
pub const HELLO_TASK: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hello.wasm"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_scheduler_is_a_component() {
        // Magic, then version 0x0d with layer 1 (component).
        assert_eq!(&JOBS_SCHEDULER[..8], b"\0asm\x0d\x00\x01\x00");
    }

    #[test]
    fn chaos_scheduler_is_a_component() {
        assert_eq!(&CHAOS_SCHEDULER[..8], b"\0asm\x0d\x00\x01\x00");
    }

    #[test]
    fn hello_task_is_a_core_module() {
        // Magic, then version 1 with layer 0 (core module).
        assert_eq!(&HELLO_TASK[..8], b"\0asm\x01\x00\x00\x00");
    }
}
