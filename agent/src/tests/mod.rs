//! Agent-level tests of the task manager, without a master: modules are
//! placed in the module cache's directory (so nothing is fetched) and
//! status updates are read from the outbox.

mod density;
mod once;
mod pool;
mod results;
mod retention;

use std::path::PathBuf;
use std::time::Duration;

use crate::AgentConfig;
use crate::retention::RetentionPolicy;
use crate::tasks::TaskManager;
use tokio::sync::mpsc;
use wasmesos_api::proto::{self, AgentMessage, StatusUpdate, TaskState, agent_message};
use wasmesos_api::{Digest, Resources, TenantId};

/// WASI imports the test tasks use.
pub const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
"#;

/// Helpers: `$write_file(name, len, data, data_len, times)` creates the
/// sandbox file `name` and writes `data` into it `times` times; `$sleep(ns)`.
pub const HELPERS: &str = r#"
  (func $write_file (param $name i32) (param $name_len i32) (param $data i32) (param $len i32) (param $times i32)
    (local $fd i32)
    (if (call $path_open (i32.const 3) (i32.const 0) (local.get $name) (local.get $name_len)
          (i32.const 1) (i64.const 64) (i64.const 64) (i32.const 0) (i32.const 300))
      (then (call $proc_exit (i32.const 99))))
    (local.set $fd (i32.load (i32.const 300)))
    (i32.store (i32.const 0) (local.get $data))
    (i32.store (i32.const 4) (local.get $len))
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $times)))
        (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $times (i32.sub (local.get $times) (i32.const 1)))
        (br $l))))
  (func $sleep (param $ns i64)
    (i64.store (i32.const 400) (i64.const 0))
    (i32.store8 (i32.const 408) (i32.const 0))
    (i32.store (i32.const 416) (i32.const 1))
    (i64.store (i32.const 424) (local.get $ns))
    (i64.store (i32.const 432) (i64.const 0))
    (i32.store16 (i32.const 440) (i32.const 0))
    (drop (call $poll_oneoff (i32.const 400) (i32.const 512) (i32.const 1) (i32.const 600))))
"#;

/// The binary of a module with the imports, helpers, one page of memory and
/// `body`.
pub fn module(body: &str) -> Vec<u8> {
    let wat = format!("(module\n{IMPORTS}\n(memory (export \"memory\") 1)\n{HELPERS}\n{body}\n)");
    wat::parse_str(wat).expect("test WAT parses")
}

/// Spins until stopped.
pub fn spin() -> Vec<u8> {
    module(r#"(func (export "_start") (loop $l (br $l)))"#)
}

/// Sleeps `ms` milliseconds.
pub fn sleeper(ms: u64) -> Vec<u8> {
    module(&format!(
        r#"(func (export "_start") (call $sleep (i64.const {})))"#,
        ms * 1_000_000
    ))
}

/// A task manager in a temporary work dir, with its updates.
pub struct Agent {
    pub work: tempfile::TempDir,
    pub tasks: TaskManager,
    pub updates: mpsc::UnboundedReceiver<AgentMessage>,
    /// Updates read but not yet asked for.
    seen: Vec<StatusUpdate>,
}

/// What a test agent allows.
pub struct Setup {
    pub threads: usize,
    pub max_tasks: u32,
    /// 0: the agent's default (a quarter of `max_tasks`).
    pub max_metered_tasks: u32,
    pub retention: RetentionPolicy,
    pub slot_bytes: u64,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            threads: 2,
            max_tasks: 8,
            max_metered_tasks: 8,
            retention: RetentionPolicy::default(),
            slot_bytes: 64 << 20,
        }
    }
}

impl Agent {
    pub fn new(setup: Setup) -> Agent {
        Agent::in_dir(tempfile::tempdir().unwrap(), setup)
    }

    /// An agent on an existing work dir (as after a restart), set up the
    /// way `crate::start` sets one up (limits checked, pools sized).
    pub fn in_dir(work: tempfile::TempDir, setup: Setup) -> Agent {
        let mut cfg = AgentConfig::new(
            "http://127.0.0.1:1",
            "127.0.0.1:0".parse().unwrap(),
            Resources::new(setup.threads as f64, 1 << 30, 1 << 30),
            work.path().to_path_buf(),
        );
        cfg.task_threads = setup.threads;
        cfg.max_tasks = setup.max_tasks;
        cfg.max_metered_tasks = setup.max_metered_tasks;
        cfg.retention = setup.retention;
        cfg.runtime.max_memory_bytes = setup.slot_bytes;
        let (runtime, pool) = crate::task_runtime(&cfg).expect("the task runtime starts");
        let tasks = TaskManager::new(
            runtime,
            pool,
            work.path(),
            crate::task_limits(&cfg),
            crate::tasks::Isolation::InProcess,
        )
        .unwrap();
        let (tx, updates) = mpsc::unbounded_channel();
        tasks.outbox().attach(tx);
        Agent {
            work,
            tasks,
            updates,
            seen: Vec::new(),
        }
    }

    /// Puts `bytes` where the module cache finds them; returns the digest.
    pub fn module(&self, bytes: &[u8]) -> Digest {
        let digest = Digest::of(bytes);
        std::fs::write(self.work.path().join("modules").join(digest.hex()), bytes).unwrap();
        digest
    }

    pub fn task_dir(&self, task: &str) -> PathBuf {
        self.work.path().join("tasks/fw").join(task)
    }

    /// Launches `task` of framework `fw` running `digest`.
    pub fn launch(&self, task: &str, digest: &Digest, cpus: f64, limits: proto::Limits) {
        self.tasks.launch(proto::TaskLaunch {
            tenant: TenantId::default_tenant().to_string(),
            framework_id: "fw".into(),
            task_id: task.into(),
            spec: Some(proto::TaskSpec {
                module_digest: digest.to_string(),
                args: Vec::new(),
                env: Default::default(),
                resources: Some((&Resources::new(cpus, 16 << 20, 0)).into()),
                limits: Some(limits),
            }),
        });
    }

    async fn receive(&mut self) -> StatusUpdate {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(60), self.updates.recv())
                .await
                .expect("an update within a minute")
                .expect("the outbox is attached");
            if let Some(agent_message::Msg::Status(u)) = msg.msg {
                return u;
            }
        }
    }

    /// The first update of `task` matching `want`, waiting for it; other
    /// updates are kept for later calls.
    async fn take(&mut self, task: &str, want: impl Fn(TaskState) -> bool) -> StatusUpdate {
        if let Some(i) = self
            .seen
            .iter()
            .position(|u| u.task_id == task && want(u.state()))
        {
            return self.seen.remove(i);
        }
        loop {
            let u = self.receive().await;
            if u.task_id == task && want(u.state()) {
                return u;
            }
            self.seen.push(u);
        }
    }

    /// `task`'s update to `state`.
    pub async fn until(&mut self, task: &str, state: TaskState) -> StatusUpdate {
        self.take(task, |s| s == state).await
    }

    /// `task`'s terminal update.
    pub async fn until_end(&mut self, task: &str) -> StatusUpdate {
        self.take(task, TaskState::is_terminal).await
    }
}
