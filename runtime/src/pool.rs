//! [`TaskPool`]: the threads tasks run on, apart from the agent's own.
//!
//! A busy task yields at every epoch tick, but tokio then polls the next
//! ready future on that worker, which is as likely to be another busy task
//! as the agent's heartbeat. Running tasks on a runtime of their own, with
//! one worker per cpu the agent offers, leaves the agent's networking
//! runtime idle and ready: the operating system schedules its threads as
//! soon as a message or a timer needs them, however saturated the task
//! workers are.
//!
//! The pool's workers look at their timers and I/O, and at tasks spawned
//! from outside, between every two polls (tokio's defaults are every 61 and
//! 31): a busy task's poll lasts a whole epoch tick, so at the defaults a
//! sleeping task sharing a worker with busy ones would wake up to 61 ticks
//! (over half a second) late, and a new task would wait 31 ticks to start.

use crate::error::RuntimeError;
use std::future::Future;
use tokio::runtime::{Builder, Handle};
use tokio::task::JoinHandle;

/// Scheduler ticks between two looks at timers and I/O.
const EVENT_INTERVAL: u32 = 1;
/// Scheduler ticks between two looks at tasks spawned from other threads.
const GLOBAL_QUEUE_INTERVAL: u32 = 1;

/// A tokio runtime for tasks only. Dropping it stops its workers without
/// waiting for the tasks on it (their futures are dropped).
pub struct TaskPool {
    runtime: Option<tokio::runtime::Runtime>,
    threads: usize,
}

impl std::fmt::Debug for TaskPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskPool")
            .field("threads", &self.threads)
            .finish()
    }
}

impl TaskPool {
    /// Starts `threads` worker threads (at least one), named
    /// `wasmesos-task`.
    pub fn new(threads: usize) -> Result<TaskPool, RuntimeError> {
        let threads = threads.max(1);
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("wasmesos-task")
            .event_interval(EVENT_INTERVAL)
            .global_queue_interval(GLOBAL_QUEUE_INTERVAL)
            .enable_all()
            .build()
            .map_err(|e| {
                RuntimeError::Config(format!("cannot start {threads} task threads: {e}"))
            })?;
        Ok(TaskPool {
            runtime: Some(runtime),
            threads,
        })
    }

    /// Its worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// A handle to spawn on it from anywhere.
    pub fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives until the pool is dropped")
            .handle()
    }

    /// Runs `future` on the task threads; await the handle from any runtime.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(future)
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        // A runtime dropped from async code would panic while waiting for
        // its workers; tasks are cancelled either way.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
