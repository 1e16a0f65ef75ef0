//! `service`: a scheduler component that keeps N instances of a
//! long-running task up. It replaces instances that fail or are lost (after
//! a backoff that doubles per consecutive failure), spreads them across
//! agents (at most ceil(N / agents) per agent, emptiest first), scales up
//! and down (killing the extras), and rolls out a new module one instance
//! at a time: a new instance starts, and an old one is killed once the new
//! one is RUNNING.
//!
//! What to run comes from the config (`module`, `instances`, `cpus`, `mem`,
//! `args`) or from "user" messages (`{"deploy": …}`, `{"upgrade": …}`,
//! `{"scale": …}`, `{"status": {}}`) — see README.md. [`spec`] parses
//! them, [`plan`] decides what to launch and kill, [`scheduler`] carries it
//! out, and [`state`] keeps everything durable.

pub mod config;
pub mod plan;
pub mod scheduler;
pub mod spec;
pub mod state;

wasmesos_sdk::scheduler!(scheduler::Service);
