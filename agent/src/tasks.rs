//! The agent's tasks: launch (sandbox, logs, fetch, compile, run), kill,
//! and the status updates each step produces. Each task runs as its own
//! tokio task; the runtime's epoch yields keep busy ones from starving the
//! rest (and the agent's stream).
//!
//! On disk, a task lives in `<work>/tasks/<framework>/<task>/`: `sandbox/`
//! (its only filesystem), `stdout` and `stderr`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmesos_api::proto::{self, LogStream, TaskState, TaskUsage};
use wasmesos_api::{Digest, FrameworkId, Resources, TaskId, TenantId, now_ms};
use wasmesos_runtime::{
    CancellationToken, Exit, InstantiateError, LogFile, RunOutcome, RunSpec, Runtime,
};

use crate::modules::ModuleCache;
use crate::outbox::Outbox;

/// A task on this agent: (framework, task).
pub type TaskKey = (FrameworkId, TaskId);

struct Entry {
    state: TaskState,
    cancel: CancellationToken,
    stdout: LogFile,
    stderr: LogFile,
}

/// Where a task's log can be read from.
pub enum LogSource {
    /// The task runs (or ran in this process): follow it as it grows.
    Live(LogFile),
    /// Only the file is left (an earlier agent process ran it).
    File(PathBuf),
}

#[derive(Clone)]
pub struct TaskManager {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    dir: PathBuf,
    modules: ModuleCache,
    outbox: Outbox,
    tasks: Mutex<HashMap<TaskKey, Entry>>,
}

impl TaskManager {
    pub fn new(runtime: Runtime, work_dir: &std::path::Path) -> std::io::Result<Self> {
        let dir = work_dir.join("tasks");
        std::fs::create_dir_all(&dir)?;
        let modules = ModuleCache::new(work_dir.join("modules"), runtime.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                runtime,
                dir,
                modules,
                outbox: Outbox::new(),
                tasks: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    pub fn modules(&self) -> &ModuleCache {
        &self.inner.modules
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
                self.report(
                    &key,
                    TaskState::Error,
                    format!("cannot create the sandbox: {e}"),
                    None,
                    None,
                );
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
            },
        );
        let me = self.clone();
        tokio::spawn(async move {
            me.run(
                key,
                tenant,
                spec,
                dir.join("sandbox"),
                stdout,
                stderr,
                cancel,
            )
            .await
        });
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        key: TaskKey,
        tenant: TenantId,
        spec: proto::TaskSpec,
        sandbox: PathBuf,
        stdout: LogFile,
        stderr: LogFile,
        cancel: CancellationToken,
    ) {
        self.report(&key, TaskState::Starting, String::new(), None, None);
        let program = match Digest::parse(&spec.module_digest) {
            Err(e) => Err(e.to_string()),
            Ok(digest) => tokio::select! {
                p = self.inner.modules.program(&tenant, &digest) => p,
                _ = cancel.cancelled() => {
                    close(&stdout, &stderr);
                    self.report(&key, TaskState::Killed, "killed before it started".into(), None, None);
                    return;
                }
            },
        };
        let program = match program {
            Ok(p) => p,
            Err(e) => {
                close(&stdout, &stderr);
                self.report(&key, TaskState::Error, e, None, None);
                return;
            }
        };
        let resources = Resources::from(spec.resources.as_ref());
        let limits = spec.limits.unwrap_or_default();
        let mut args = vec![key.1.to_string()];
        args.extend(spec.args);
        let mut env: Vec<(String, String)> = spec.env.into_iter().collect();
        env.sort();
        let run_spec = RunSpec {
            args,
            env,
            sandbox,
            mem_bytes: resources.mem_bytes,
            fuel: (limits.fuel > 0).then_some(limits.fuel),
            timeout: (limits.timeout_ms > 0).then(|| Duration::from_millis(limits.timeout_ms)),
            stdout: stdout.clone(),
            stderr: stderr.clone(),
        };
        let outcome = match self.inner.runtime.instantiate(&program, run_spec).await {
            Ok(instance) => {
                self.report(&key, TaskState::Running, String::new(), None, None);
                instance.run(cancel).await
            }
            Err(InstantiateError::Task(outcome)) => outcome,
            Err(InstantiateError::Runtime(e)) => {
                close(&stdout, &stderr);
                self.report(&key, TaskState::Error, e.to_string(), None, None);
                return;
            }
        };
        close(&stdout, &stderr);
        self.finish(&key, outcome);
    }

    fn finish(&self, key: &TaskKey, outcome: RunOutcome) {
        let state = match &outcome.exit {
            Exit::Exited(0) => TaskState::Finished,
            Exit::Killed => TaskState::Killed,
            _ => TaskState::Failed,
        };
        let u = &outcome.usage;
        let usage = TaskUsage {
            fuel_consumed: u.fuel_consumed,
            wall_ms: u.wall.as_millis() as u64,
            cpu_ms: 0,
            peak_mem_bytes: u.peak_mem_bytes,
            stdout_bytes: u.stdout_bytes,
            stderr_bytes: u.stderr_bytes,
            log_bytes_dropped: u.log_bytes_dropped,
        };
        let message = if state == TaskState::Finished {
            String::new()
        } else {
            outcome.exit.message()
        };
        self.report(key, state, message, outcome.exit.exit_code(), Some(usage));
    }

    /// Records a task's new state and queues the update for the master.
    fn report(
        &self,
        key: &TaskKey,
        state: TaskState,
        message: String,
        exit_code: Option<i32>,
        usage: Option<TaskUsage>,
    ) {
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
            result: Vec::new(),
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
                TaskState::Killed,
                "unknown to the agent".into(),
                None,
                None,
            ),
        }
    }

    /// Where to read a task's `stream` from.
    pub fn log_source(&self, fw: &str, task: &str, stream: LogStream) -> Option<LogSource> {
        let key = (FrameworkId::new(fw).ok()?, TaskId::new(task).ok()?);
        if let Some(e) = self.tasks().get(&key) {
            return Some(LogSource::Live(match stream {
                LogStream::Stderr => e.stderr.clone(),
                _ => e.stdout.clone(),
            }));
        }
        let name = if stream == LogStream::Stderr {
            "stderr"
        } else {
            "stdout"
        };
        let path = self.task_dir(&key).join(name);
        path.exists().then_some(LogSource::File(path))
    }
}

fn close(stdout: &LogFile, stderr: &LogFile) {
    stdout.close();
    stderr.close();
}
