//! The agent's tasks: launch (sandbox, logs, fetch, compile, a slot, run),
//! kill, the result, and the status updates each step produces.
//!
//! Each task's whole life runs on the task pool (`TaskPool`), a tokio
//! runtime of its own sized to the agent's cpus, so that however busy the
//! tasks are the agent's stream, heartbeats and log serving (on the
//! agent's runtime) keep flowing. Within the pool, epoch yields keep busy
//! tasks from starving the rest and each task's `cpus` is a CPU quota.
//! Tasks with a fuel limit run on the runtime's fuel engine, the rest on
//! the faster epoch-only one. At most `max_tasks` run at once
//! (`max_metered_tasks` of them with fuel): more wait in STARTING for a
//! slot.
//!
//! With cgroup isolation ([`Isolation::Executors`]) the same steps run,
//! but the run itself happens in an executor process from the runtime's
//! `ExecutorPool`, in a cgroup holding it to the task's cpus and memory
//! (plus the executor's own overhead). The executor writes the task's log
//! files with the same caps; while it runs, logs are followed by polling
//! those files.
//!
//! On disk, a task lives in `<work>/tasks/<framework>/<task>/`: `sandbox/`
//! (its only filesystem, where it may leave a `result`), and `stdout` and
//! `stderr` once it has written to them; the directory's mtime is set when
//! it ends. The janitor (`retention`) removes finished tasks' directories
//! after the retention count or age.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use wasmesos_api::proto::{self, LogStream, TaskState, TaskUsage};
use wasmesos_api::{Digest, FrameworkId, Resources, TaskId, TenantId, now_ms};
use wasmesos_runtime::cgroups::CgroupLimits;
use wasmesos_runtime::executor::{ExecutorPool, Job, RunRequest};
use wasmesos_runtime::{
    CancellationToken, CpuQuota, Exit, InstantiateError, LogFile, Metering, RunOutcome, RunSpec,
    Runtime, TaskPool,
};

use crate::modules::ModuleCache;
use crate::outbox::Outbox;
use crate::result::{self, TaskResult};
use crate::retention::{self, Janitor, RetentionPolicy};

/// A task on this agent: (framework, task).
pub type TaskKey = (FrameworkId, TaskId);

struct Entry {
    state: TaskState,
    cancel: CancellationToken,
    stdout: LogFile,
    stderr: LogFile,
    /// Set when an executor process writes the logs (not `stdout` and
    /// `stderr` above): dropped with the entry when the task ends, which
    /// tells followers of the files that they will not grow any more.
    external_logs: Option<watch::Sender<bool>>,
}

/// Where tasks run.
pub enum Isolation {
    /// In the agent's process, on the task pool.
    InProcess,
    /// In executor processes under cgroups.
    Executors {
        /// The executors.
        pool: ExecutorPool,
        /// Memory an executor's cgroup allows beyond the task's.
        mem_overhead: u64,
    },
}

/// Where a task's log can be read from.
pub enum LogSource {
    /// The task runs (or ran in this process): follow it as it grows.
    Live(LogFile),
    /// Only the file is left (the task ended, or an earlier agent process
    /// ran it).
    File(PathBuf),
    /// An executor process writes the file: follow it until the receiver
    /// says the task ended (or its sender is gone).
    Growing(PathBuf, watch::Receiver<bool>),
    /// The task's directory was removed after the retention period.
    Removed,
}

/// How many tasks the manager runs at once, and how long it keeps them.
#[derive(Debug, Clone, Copy)]
pub struct TaskLimits {
    /// Tasks at once.
    pub max_tasks: u32,
    /// Tasks with a fuel limit at once (within `max_tasks`).
    pub max_metered_tasks: u32,
    /// When finished tasks' directories are removed.
    pub retention: RetentionPolicy,
}

#[derive(Clone)]
pub struct TaskManager {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    pool: Arc<TaskPool>,
    dir: PathBuf,
    modules: ModuleCache,
    outbox: Outbox,
    tasks: Mutex<HashMap<TaskKey, Entry>>,
    slots: Arc<Semaphore>,
    metered_slots: Arc<Semaphore>,
    janitor: Arc<Janitor>,
    isolation: Isolation,
}

/// A status update about to be made: a step, or how the task ended.
struct Update {
    state: TaskState,
    message: String,
    exit_code: Option<i32>,
    usage: Option<TaskUsage>,
    result: Vec<u8>,
}

impl Update {
    /// An update with no usage or result (a step, or an end without a run).
    fn plain(state: TaskState, message: impl Into<String>) -> Self {
        Self {
            state,
            message: message.into(),
            exit_code: None,
            usage: None,
            result: Vec::new(),
        }
    }
}

impl TaskManager {
    /// A manager of tasks under `<work_dir>/tasks`, running them on `pool`.
    /// Counts the finished tasks an earlier process left toward retention
    /// and starts the janitor on the current tokio runtime.
    pub fn new(
        runtime: Runtime,
        pool: Arc<TaskPool>,
        work_dir: &Path,
        limits: TaskLimits,
        isolation: Isolation,
    ) -> std::io::Result<Self> {
        let dir = work_dir.join("tasks");
        std::fs::create_dir_all(&dir)?;
        let modules = ModuleCache::new(work_dir.join("modules"), runtime.clone())?;
        let janitor = Janitor::new(dir.clone(), limits.retention);
        tokio::spawn(janitor.clone().run());
        Ok(Self {
            inner: Arc::new(Inner {
                runtime,
                pool,
                dir,
                modules,
                outbox: Outbox::new(),
                tasks: Mutex::new(HashMap::new()),
                slots: Arc::new(Semaphore::new(limits.max_tasks.max(1) as usize)),
                metered_slots: Arc::new(Semaphore::new(limits.max_metered_tasks.max(1) as usize)),
                janitor,
                isolation,
            }),
        })
    }

    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    pub fn modules(&self) -> &ModuleCache {
        &self.inner.modules
    }

    /// Worker threads tasks run on.
    pub fn task_threads(&self) -> usize {
        self.inner.pool.threads()
    }

    /// Stops the executors, if tasks run in them, and removes their
    /// cgroups (on the task pool, where they were started).
    pub async fn shutdown(&self) {
        if let Isolation::Executors { pool, .. } = &self.inner.isolation {
            let pool = pool.clone();
            let _ = self
                .inner
                .pool
                .spawn(async move { pool.shutdown().await })
                .await;
        }
    }

    /// Finished tasks whose directories are kept.
    pub fn finished_kept(&self) -> usize {
        self.inner.janitor.kept()
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, HashMap<TaskKey, Entry>> {
        self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn task_dir(&self, key: &TaskKey) -> PathBuf {
        self.inner.dir.join(key.0.as_str()).join(key.1.as_str())
    }

    /// Tasks not yet ended, for re-registration.
    pub fn running(&self) -> Vec<proto::RunningTask> {
        self.tasks()
            .iter()
            .map(|((fw, task), e)| proto::RunningTask {
                framework_id: fw.to_string(),
                task_id: task.to_string(),
                state: e.state as i32,
            })
            .collect()
    }

    /// Kills every task this agent runs; returns how many it asked to stop.
    pub fn kill_all(&self) -> usize {
        let tokens: Vec<CancellationToken> =
            self.tasks().values().map(|e| e.cancel.clone()).collect();
        for t in &tokens {
            t.cancel();
        }
        tokens.len()
    }

    /// Tasks this agent runs now.
    pub fn count(&self) -> usize {
        self.tasks().len()
    }

    /// Starts a task. A launch the agent already has is ignored (the master
    /// may resend after a reconnect).
    pub fn launch(&self, launch: proto::TaskLaunch) {
        let (Ok(fw), Ok(task), Ok(tenant)) = (
            FrameworkId::new(launch.framework_id.clone()),
            TaskId::new(launch.task_id.clone()),
            TenantId::new(launch.tenant.clone()),
        ) else {
            tracing::warn!(task = %launch.task_id, "launch with malformed ids ignored");
            return;
        };
        let key = (fw, task);
        if self.tasks().contains_key(&key) {
            return;
        }
        // Exactly once: a task's directory is made before it starts, so one
        // that exists means this launch was seen before (by this process,
        // or by an earlier one that stopped while the task ran). Never run
        // it twice; say it is gone, and let its framework decide.
        if self.task_dir(&key).exists() {
            tracing::warn!(task = %key.1, "a launch seen before; not starting it again");
            let lost = Update::plain(
                TaskState::Lost,
                "launched on this agent before (the agent restarted since); not started again",
            );
            self.report(&key, lost);
            return;
        }
        let spec = launch.spec.unwrap_or_default();
        let cap = spec
            .limits
            .as_ref()
            .map(|l| l.log_bytes)
            .filter(|b| *b > 0)
            .unwrap_or(self.inner.runtime.config().default_log_bytes);
        let dir = self.task_dir(&key);
        let prepared = (|| -> std::io::Result<(LogFile, LogFile)> {
            std::fs::create_dir_all(dir.join("sandbox"))?;
            Ok((
                LogFile::create(&dir.join("stdout"), cap)?,
                LogFile::create(&dir.join("stderr"), cap)?,
            ))
        })();
        let (stdout, stderr) = match prepared {
            Ok(logs) => logs,
            Err(e) => {
                let end =
                    Update::plain(TaskState::Error, format!("cannot create the sandbox: {e}"));
                self.report(&key, end);
                return;
            }
        };
        let cancel = CancellationToken::new();
        self.tasks().insert(
            key.clone(),
            Entry {
                state: TaskState::Staging,
                cancel: cancel.clone(),
                stdout: stdout.clone(),
                stderr: stderr.clone(),
                external_logs: match self.inner.isolation {
                    Isolation::InProcess => None,
                    Isolation::Executors { .. } => Some(watch::channel(false).0),
                },
            },
        );
        let me = self.clone();
        let logs = (stdout, stderr);
        self.inner.pool.spawn(async move {
            let end = me.lifecycle(&key, tenant, spec, &dir, &logs, cancel).await;
            close(&logs);
            // Marks the end on disk, for the janitor of a later process.
            if let Err(e) = retention::mark_ended(&dir) {
                tracing::debug!(task = %key.1, "cannot mark the task's end: {e}");
            }
            // Counted for retention before the end is reported, so the
            // order of ends is the order their statuses were seen in.
            me.inner.janitor.finished(key.clone(), SystemTime::now());
            me.report(&key, end);
        });
    }

    /// Fetch, compile, wait for a slot, run, read the result.
    async fn lifecycle(
        &self,
        key: &TaskKey,
        tenant: TenantId,
        spec: proto::TaskSpec,
        dir: &Path,
        (stdout, stderr): &(LogFile, LogFile),
        cancel: CancellationToken,
    ) -> Update {
        self.report(key, Update::plain(TaskState::Starting, ""));
        let limits = spec.limits.unwrap_or_default();
        let fuel = (limits.fuel > 0).then_some(limits.fuel);
        let metering = Metering::for_fuel(fuel);
        let killed_early = || Update::plain(TaskState::Killed, "killed before it started");
        let program = match Digest::parse(&spec.module_digest) {
            Err(e) => Err(e.to_string()),
            Ok(digest) => tokio::select! {
                p = self.inner.modules.program(&tenant, &digest, metering) => p,
                _ = cancel.cancelled() => return killed_early(),
            },
        };
        let program = match program {
            Ok(p) => p,
            Err(e) => return Update::plain(TaskState::Error, e),
        };
        let _slots = tokio::select! {
            s = self.slots(metering) => s,
            _ = cancel.cancelled() => return killed_early(),
        };
        let resources = Resources::from(spec.resources.as_ref());
        let mut args = vec![key.1.to_string()];
        args.extend(spec.args);
        let mut env: Vec<(String, String)> = spec.env.into_iter().collect();
        env.sort();
        let sandbox = dir.join("sandbox");
        let timeout = (limits.timeout_ms > 0).then(|| Duration::from_millis(limits.timeout_ms));
        let outcome = match &self.inner.isolation {
            Isolation::InProcess => {
                let run_spec = RunSpec {
                    args,
                    env,
                    sandbox: Some(sandbox.clone()),
                    mem_bytes: resources.mem_bytes,
                    fuel,
                    cpu: CpuQuota::from_milli(resources.cpus_milli),
                    timeout,
                    stdout: stdout.clone(),
                    stderr: stderr.clone(),
                };
                match self.inner.runtime.instantiate(&program, run_spec).await {
                    Ok(instance) => {
                        self.report(key, Update::plain(TaskState::Running, ""));
                        instance.run(cancel).await
                    }
                    Err(InstantiateError::Task(outcome)) => outcome,
                    Err(InstantiateError::Runtime(e)) => {
                        return Update::plain(TaskState::Error, e.to_string());
                    }
                }
            }
            Isolation::Executors { pool, mem_overhead } => {
                let job = Job {
                    request: RunRequest {
                        digest: program.digest().to_string(),
                        module: self.inner.modules.path(program.digest()),
                        args,
                        env,
                        sandbox: sandbox.clone(),
                        stdout: dir.join("stdout"),
                        stderr: dir.join("stderr"),
                        log_bytes: stdout.cap(),
                        mem_bytes: resources.mem_bytes,
                        fuel,
                        timeout,
                    },
                    cgroup: CgroupLimits {
                        cpus_milli: resources.cpus_milli,
                        mem_bytes: match resources.mem_bytes {
                            0 => 0,
                            mem => mem.saturating_add(*mem_overhead),
                        },
                    },
                };
                let running = {
                    let (me, key) = (self.clone(), key.clone());
                    move || me.report(&key, Update::plain(TaskState::Running, ""))
                };
                match pool.run(job, &cancel, running).await {
                    Ok(ran) => ran.outcome,
                    Err(e) => return Update::plain(TaskState::Error, e.to_string()),
                }
            }
        };
        ended(outcome, result::read(&sandbox))
    }

    /// A place among the tasks running at once (and among those with fuel,
    /// for a task with a fuel limit): waits while all are taken.
    async fn slots(&self, metering: Metering) -> Vec<OwnedSemaphorePermit> {
        let mut permits = Vec::with_capacity(2);
        if metering == Metering::Fuel {
            let metered = self.inner.metered_slots.clone().acquire_owned().await;
            permits.extend(metered.ok());
        }
        permits.extend(self.inner.slots.clone().acquire_owned().await.ok());
        permits
    }

    /// Records a task's new state and queues the update for the master.
    fn report(&self, key: &TaskKey, end: Update) {
        let Update {
            state,
            message,
            exit_code,
            usage,
            result,
        } = end;
        {
            let mut tasks = self.tasks();
            if state.is_terminal() {
                // Its logs stay readable from the files; a late kill finds
                // nothing to do.
                tasks.remove(key);
            } else if let Some(e) = tasks.get_mut(key) {
                e.state = state;
            }
        }
        tracing::debug!(framework = %key.0, task = %key.1, state = state.name(), "{message}");
        self.inner.outbox.push(proto::StatusUpdate {
            update_id: String::new(),
            framework_id: key.0.to_string(),
            task_id: key.1.to_string(),
            state: state as i32,
            message,
            exit_code,
            timestamp_ms: now_ms(),
            usage,
            result,
        });
    }

    /// Kills a task. Killing a task the agent does not have (it ended, or
    /// an earlier agent process ran it) reports it KILLED, so a master that
    /// still thinks it runs settles; a master that knows it ended ignores
    /// the report.
    pub fn kill(&self, fw: &str, task: &str) {
        let (Ok(fw), Ok(task)) = (FrameworkId::new(fw), TaskId::new(task)) else {
            return;
        };
        let key = (fw, task);
        let cancel = self.tasks().get(&key).map(|e| e.cancel.clone());
        match cancel {
            Some(token) => token.cancel(),
            None => self.report(
                &key,
                Update::plain(TaskState::Killed, "unknown to the agent"),
            ),
        }
    }

    /// Where to read a task's `stream` from.
    pub fn log_source(&self, fw: &str, task: &str, stream: LogStream) -> Option<LogSource> {
        let key = (FrameworkId::new(fw).ok()?, TaskId::new(task).ok()?);
        if let Some(e) = self.tasks().get(&key) {
            let log = match stream {
                LogStream::Stderr => &e.stderr,
                _ => &e.stdout,
            };
            return Some(match (&e.external_logs, log.path()) {
                (Some(ended), Some(path)) => {
                    LogSource::Growing(path.to_path_buf(), ended.subscribe())
                }
                _ => LogSource::Live(log.clone()),
            });
        }
        let name = if stream == LogStream::Stderr {
            "stderr"
        } else {
            "stdout"
        };
        let dir = self.task_dir(&key);
        if dir.is_dir() {
            // A task that wrote nothing has no log file: an empty log.
            Some(LogSource::File(dir.join(name)))
        } else if self.inner.janitor.was_removed(&key) {
            Some(LogSource::Removed)
        } else {
            None
        }
    }
}

/// The terminal update of a task that ran: its state, message, usage and
/// result.
fn ended(outcome: RunOutcome, result: TaskResult) -> Update {
    let state = match &outcome.exit {
        Exit::Exited(0) => TaskState::Finished,
        Exit::Killed => TaskState::Killed,
        _ => TaskState::Failed,
    };
    let u = &outcome.usage;
    let usage = TaskUsage {
        fuel_consumed: u.fuel_consumed,
        wall_ms: u.wall.as_millis() as u64,
        cpu_ms: u.cpu.as_millis() as u64,
        cpu_throttled_ms: u.cpu_throttled.as_millis() as u64,
        peak_mem_bytes: u.peak_mem_bytes,
        stdout_bytes: u.stdout_bytes,
        stderr_bytes: u.stderr_bytes,
        log_bytes_dropped: u.log_bytes_dropped,
    };
    let mut message = if state == TaskState::Finished {
        String::new()
    } else {
        outcome.exit.message()
    };
    let result = match result {
        TaskResult::None => Vec::new(),
        TaskResult::Bytes(bytes) => bytes,
        TaskResult::Dropped(why) => {
            if !message.is_empty() {
                message.push_str("; ");
            }
            message.push_str(&why);
            Vec::new()
        }
    };
    Update {
        state,
        message,
        exit_code: outcome.exit.exit_code(),
        usage: Some(usage),
        result,
    }
}

fn close((stdout, stderr): &(LogFile, LogFile)) {
    stdout.close();
    stderr.close();
}
