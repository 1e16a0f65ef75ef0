//! `pi`: a scheduler component that estimates pi by fanning out Monte
//! Carlo tasks (`examples/pi-task`) and combining their result payloads.
//! A "user" message `{"run": {"tasks": T, "samples": N, "module": …}}`
//! queues T pieces; each runs `pi-task --samples N --seed S` and leaves
//! `{"hits":H,"samples":N}` as its result, which arrives with its FINISHED
//! status update. Failed pieces are retried (same seed) up to
//! `max_attempts`. `{"status": {}}` answers with the progress and the
//! estimate 4 × hits / samples. See README.md.
//!
//! [`run`] holds the requests and the durable layout; [`scheduler`] the
//! callbacks.

pub mod run;
pub mod scheduler;

wasmesos_sdk::scheduler!(scheduler::Pi);
