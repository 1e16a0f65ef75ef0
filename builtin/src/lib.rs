//! The guests wasmesos ships inside its binary, as bytes: the jobs
//! scheduler component (deployed by the master as the built-in `jobs`
//! framework), the `hello` task module (for tests and demos), the `chaos`
//! scheduler component (a test fixture only), and the `service` and `pi`
//! example schedulers with the `pi-task` module (examples: nothing deploys
//! them; tests and users do, with `wasmesos framework deploy`). They are
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

/// The service scheduler (`examples/service`, an **example**: nothing
/// deploys it): a component of the same world as [`JOBS_SCHEDULER`] that
/// keeps N instances of a long-running task, replaces failed ones with
/// backoff, spreads them across agents, scales, and rolls out a new module
/// one instance at a time. Driven by config keys and "user" messages; see
/// `examples/service/README.md`.
pub const SERVICE_SCHEDULER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/service.wasm"));

/// The pi scheduler (`examples/pi`, an **example**: nothing deploys it): a
/// component of the same world as [`JOBS_SCHEDULER`] that fans out Monte
/// Carlo [`PI_TASK`]s on a "user" message and combines their result
/// payloads into an estimate of pi; see `examples/pi/README.md`.
pub const PI_SCHEDULER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pi.wasm"));

/// The `pi-task` task (`examples/pi-task`): a WASI preview 1 core module.
/// `--samples N --seed S` counts random points in the unit circle and
/// writes `{"hits":H,"samples":N}` to the file `result` in its sandbox.
pub const PI_TASK: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pi-task.wasm"));

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
    fn example_schedulers_are_components() {
        for bytes in [SERVICE_SCHEDULER, PI_SCHEDULER] {
            assert_eq!(&bytes[..8], b"\0asm\x0d\x00\x01\x00");
        }
    }

    #[test]
    fn tasks_are_core_modules() {
        // Magic, then version 1 with layer 0 (core module).
        for bytes in [HELLO_TASK, PI_TASK] {
            assert_eq!(&bytes[..8], b"\0asm\x01\x00\x00\x00");
        }
    }
}
