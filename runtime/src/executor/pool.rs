//! [`ExecutorPool`]: executor processes started ahead of need and reused
//! across tasks, each in a cgroup of its own (when the pool has a
//! [`CgroupTree`]).
//!
//! A task takes an idle executor (or starts one when none is idle), gets
//! its limits written into that executor's cgroup (only what changed since
//! the executor's last task), and is sent over. A kill asks the executor to
//! cancel and, if it has not answered within the grace period, SIGKILLs it.
//! An executor that dies under a task (the kernel's OOM killer at its
//! cgroup's memory limit, a crash) ends the task with
//! [`Exit::ProcessDied`] saying so, and is replaced in the background;
//! its cgroup goes back to a free list for the replacement, so a cgroup is
//! made once and reused. At most [`PoolConfig::idle`] executors wait idle;
//! one more finishing its task is retired. [`ExecutorPool::shutdown`]
//! kills them all and removes the cgroups.

use super::ExecutorError;
use super::protocol::{FromExecutor, RunRequest, Settings, ToExecutor, read_frame, write_frame};
use crate::CancellationToken;
use crate::cgroups::{CgroupLimits, CgroupTree, Leaf};
use crate::run::{Exit, RunOutcome, Usage};
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How an executor process is started and how many are kept.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The executor program (the `wasmesos` binary).
    pub program: PathBuf,
    /// Its arguments (`executor`).
    pub args: Vec<OsString>,
    /// The runtime settings sent to every executor.
    pub settings: Settings,
    /// Executors kept ready; also how many are started with the pool.
    pub idle: usize,
    /// How long a cancelled task may take to end before its executor is
    /// SIGKILLed.
    pub cancel_grace: Duration,
    /// How long a new executor may take to say it is ready.
    pub start_timeout: Duration,
    /// How long past a task's time limit the pool waits for its executor's
    /// answer before SIGKILLing it (the executor enforces the limit
    /// itself; this catches an executor that stopped answering).
    pub answer_slack: Duration,
}

impl PoolConfig {
    /// `idle` executors of `program args…` with `settings`, and default
    /// timeouts.
    pub fn new(program: PathBuf, args: Vec<OsString>, settings: Settings, idle: usize) -> Self {
        PoolConfig {
            program,
            args,
            settings,
            idle,
            cancel_grace: Duration::from_secs(2),
            start_timeout: Duration::from_secs(30),
            answer_slack: Duration::from_secs(30),
        }
    }
}

/// One task for the pool.
#[derive(Debug, Clone)]
pub struct Job {
    /// What the executor runs.
    pub request: RunRequest,
    /// What its executor's cgroup allows while it runs (ignored without
    /// cgroups).
    pub cgroup: CgroupLimits,
}

/// How a task run by the pool ended, and by which executor.
#[derive(Debug, Clone)]
pub struct Ran {
    /// Its outcome.
    pub outcome: RunOutcome,
    /// The executor's process id.
    pub pid: u32,
}

/// Executor processes for tasks. Cheap to clone.
#[derive(Clone)]
pub struct ExecutorPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ExecutorPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorPool")
            .field("idle", &self.idle())
            .field("cgroups", &self.inner.cgroups)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: PoolConfig,
    cgroups: Option<CgroupTree>,
    idle: Mutex<Vec<Executor>>,
    /// Cgroups of executors that are gone, for their replacements.
    spare: Mutex<Vec<Leaf>>,
    next_leaf: AtomicU64,
    /// Executors started (a figure for tests and logs).
    started: AtomicU64,
    closed: AtomicBool,
}

/// One executor process.
struct Executor {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    pid: u32,
    leaf: Option<Leaf>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How waiting for an executor's answer ended.
enum Waited {
    Done(RunOutcome),
    Refused(String),
    /// Its pipe closed: it died.
    Died,
    /// It did not end a cancelled task in time and was SIGKILLed.
    KilledHard,
    /// It did not answer by the task's time limit plus
    /// [`PoolConfig::answer_slack`].
    Hung,
    /// It answered with something out of place.
    Confused(String),
}

impl ExecutorPool {
    /// Starts `config.idle` executors (at the same time), each in a new
    /// cgroup of `cgroups` if given. Fails if any cannot start.
    pub async fn start(
        config: PoolConfig,
        cgroups: Option<CgroupTree>,
    ) -> Result<ExecutorPool, ExecutorError> {
        let pool = ExecutorPool {
            inner: Arc::new(Inner {
                config,
                cgroups,
                idle: Mutex::new(Vec::new()),
                spare: Mutex::new(Vec::new()),
                next_leaf: AtomicU64::new(0),
                started: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
        };
        let starting: Vec<_> = (0..pool.inner.config.idle)
            .map(|_| {
                let p = pool.clone();
                tokio::spawn(async move { p.spawn_executor().await })
            })
            .collect();
        let mut first_error = None;
        for s in starting {
            match s.await {
                Ok(Ok(e)) => lock(&pool.inner.idle).push(e),
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(e) => {
                    first_error = first_error.or(Some(ExecutorError::Protocol(e.to_string())))
                }
            }
        }
        if let Some(e) = first_error {
            pool.shutdown().await;
            return Err(e);
        }
        Ok(pool)
    }

    /// Executors waiting for a task.
    pub fn idle(&self) -> usize {
        lock(&self.inner.idle).len()
    }

    /// Executor processes started so far (replacements included).
    pub fn started(&self) -> u64 {
        self.inner.started.load(Ordering::Relaxed)
    }

    /// The cgroups executors run in, if any.
    pub fn cgroups(&self) -> Option<&CgroupTree> {
        self.inner.cgroups.as_ref()
    }

    /// Runs `job` on an executor. `started` is called once the task is
    /// instantiated (it is then RUNNING). `cancel` kills it. `Err` means
    /// the task could not be set up (or no executor could be had); a task
    /// that ran, however it ended, is `Ok`.
    pub async fn run(
        &self,
        job: Job,
        cancel: &CancellationToken,
        started: impl FnOnce(),
    ) -> Result<Ran, ExecutorError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(ExecutorError::Closed);
        }
        let popped = lock(&self.inner.idle).pop();
        let mut exec = match popped {
            Some(e) => e,
            None => self.spawn_executor().await?,
        };
        let pid = exec.pid;
        let mut oom_before = 0;
        let mut throttled_before = Duration::ZERO;
        if let Some(leaf) = &mut exec.leaf {
            if let Err(e) = leaf.apply(job.cgroup) {
                // Its cgroup may hold limits no task asked for: retire it.
                self.retire(exec).await;
                return Err(e.into());
            }
            oom_before = leaf.oom_kills();
            throttled_before = leaf.throttled();
        }
        let began = Instant::now();
        let config = &self.inner.config;
        let limit = job
            .request
            .timeout
            .unwrap_or(config.settings.default_timeout);
        let backstop = limit.saturating_add(config.answer_slack);
        let stdout_path = job.request.stdout.clone();
        let stderr_path = job.request.stderr.clone();
        let sent = write_frame(&mut exec.stdin, &ToExecutor::Run(Box::new(job.request))).await;
        let waited = match sent {
            Ok(()) => wait(&mut exec, cancel, started, config.cancel_grace, backstop).await,
            Err(_) => Waited::Died,
        };
        match waited {
            Waited::Done(mut outcome) => {
                if let Some(leaf) = &exec.leaf {
                    outcome.usage.cpu_throttled +=
                        leaf.throttled().saturating_sub(throttled_before);
                }
                self.give_back(exec).await;
                Ok(Ran { outcome, pid })
            }
            Waited::Refused(why) => {
                self.give_back(exec).await;
                Err(ExecutorError::Refused(why))
            }
            Waited::Confused(what) => {
                self.retire(exec).await;
                self.replace();
                Err(ExecutorError::Protocol(what))
            }
            Waited::KilledHard => {
                let _ = exec.child.start_kill();
                let _ = exec.child.wait().await;
                self.retire(exec).await;
                self.replace();
                let usage = usage_from_files(began, &stdout_path, &stderr_path);
                Ok(Ran {
                    outcome: RunOutcome {
                        exit: Exit::Killed,
                        usage,
                    },
                    pid,
                })
            }
            Waited::Hung => {
                let _ = exec.child.start_kill();
                let _ = exec.child.wait().await;
                tracing::warn!(pid, "executor stopped answering; killed it");
                self.retire(exec).await;
                self.replace();
                let usage = usage_from_files(began, &stdout_path, &stderr_path);
                let how = format!(
                    "its executor process stopped answering (nothing {} after the task's time \
                     limit) and was killed",
                    humantime(config.answer_slack)
                );
                Ok(Ran {
                    outcome: RunOutcome {
                        exit: Exit::ProcessDied(how),
                        usage,
                    },
                    pid,
                })
            }
            Waited::Died => {
                // Its pipe closed; it should be gone or going.
                let status =
                    match tokio::time::timeout(Duration::from_secs(1), exec.child.wait()).await {
                        Ok(status) => status,
                        Err(_) => {
                            let _ = exec.child.start_kill();
                            exec.child.wait().await
                        }
                    };
                let oom = exec
                    .leaf
                    .as_ref()
                    .is_some_and(|l| l.oom_kills() > oom_before);
                let how = match (&status, oom) {
                    (_, true) => format!(
                        "killed by the kernel: cgroup memory limit {} reached (out of memory)",
                        wasmesos_api::format_size(job.cgroup.mem_bytes)
                    ),
                    (Ok(s), false) => match (s.signal(), s.code()) {
                        (Some(9), _) => {
                            "its executor process was killed (SIGKILL) while running it".to_string()
                        }
                        (Some(sig), _) => {
                            format!("its executor process died of signal {sig} while running it")
                        }
                        (None, code) => format!(
                            "its executor process exited (code {}) while running it",
                            code.unwrap_or(-1)
                        ),
                    },
                    (Err(e), false) => format!("its executor process was lost: {e}"),
                };
                tracing::warn!(pid, "executor died: {how}");
                self.retire(exec).await;
                self.replace();
                let usage = usage_from_files(began, &stdout_path, &stderr_path);
                Ok(Ran {
                    outcome: RunOutcome {
                        exit: Exit::ProcessDied(how),
                        usage,
                    },
                    pid,
                })
            }
        }
    }

    /// Kills every executor and removes the cgroups. Tasks still running
    /// end as their executors die.
    pub async fn shutdown(&self) {
        if self.inner.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        let idle: Vec<Executor> = lock(&self.inner.idle).drain(..).collect();
        for exec in idle {
            self.retire(exec).await;
        }
        if let Some(tree) = &self.inner.cgroups {
            let spare: Vec<Leaf> = lock(&self.inner.spare).drain(..).collect();
            let tree_dirs: Vec<PathBuf> = tree.parents().map(PathBuf::from).collect();
            let removed = tokio::task::spawn_blocking(move || {
                for leaf in &spare {
                    if let Err(e) = leaf.remove() {
                        tracing::warn!("{e}");
                    }
                }
                // Leaves of executors still busy: kill what is in them.
                for parent in &tree_dirs {
                    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
                        if entry.path().is_dir() {
                            crate::cgroups::tree::kill_and_remove(&entry.path());
                        }
                    }
                }
            })
            .await;
            if removed.is_err() {
                tracing::warn!("removing the executors' cgroups failed");
            }
            if let Err(e) = tree.remove() {
                tracing::warn!("{e}");
            }
        }
    }

    /// Starts one executor (in a spare or new cgroup) and waits until it is
    /// ready.
    async fn spawn_executor(&self) -> Result<Executor, ExecutorError> {
        let config = &self.inner.config;
        let leaf = match &self.inner.cgroups {
            Some(tree) => {
                let spare = lock(&self.inner.spare).pop();
                Some(match spare {
                    Some(leaf) => leaf,
                    None => {
                        let n = self.inner.next_leaf.fetch_add(1, Ordering::Relaxed);
                        tree.leaf(&format!("exec-{n}"))?
                    }
                })
            }
            None => None,
        };
        let mut child = Command::new(&config.program)
            .args(&config.args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ExecutorError::Spawn {
                program: config.program.clone(),
                source,
            })?;
        let (Some(pid), Some(stdin), Some(stdout)) =
            (child.id(), child.stdin.take(), child.stdout.take())
        else {
            return Err(ExecutorError::Protocol(
                "the executor process has no pid or pipes".into(),
            ));
        };
        self.inner.started.fetch_add(1, Ordering::Relaxed);
        let mut exec = Executor {
            child,
            stdin,
            stdout,
            pid,
            leaf,
        };
        if let Some(leaf) = &exec.leaf
            && let Err(e) = leaf.add(pid)
        {
            self.retire(exec).await;
            return Err(e.into());
        }
        let hello = async {
            write_frame(&mut exec.stdin, &ToExecutor::Hello(config.settings.clone())).await?;
            read_frame::<_, FromExecutor>(&mut exec.stdout).await
        };
        let answer = tokio::time::timeout(config.start_timeout, hello).await;
        match answer {
            Ok(Ok(FromExecutor::Ready { .. })) => Ok(exec),
            other => {
                let why = match other {
                    Ok(Ok(m)) => format!("answered {m:?} to its hello"),
                    Ok(Err(e)) => format!("did not answer its hello ({e}; see its stderr)"),
                    Err(_) => format!("was not ready within {:?}", config.start_timeout),
                };
                self.retire(exec).await;
                Err(ExecutorError::Protocol(format!(
                    "the executor process {} {why}",
                    config.program.display()
                )))
            }
        }
    }

    /// Keeps `exec` for the next task, or retires it if enough are idle.
    async fn give_back(&self, exec: Executor) {
        let mut exec = Some(exec);
        if !self.inner.closed.load(Ordering::Relaxed) {
            let mut idle = lock(&self.inner.idle);
            if idle.len() < self.inner.config.idle {
                idle.extend(exec.take());
            }
        }
        if let Some(exec) = exec {
            self.retire(exec).await;
        }
    }

    /// Ends `exec` (closing its stdin, then SIGKILL if it lingers) and
    /// keeps its cgroup for another executor.
    async fn retire(&self, exec: Executor) {
        let Executor {
            mut child,
            stdin,
            stdout,
            leaf,
            ..
        } = exec;
        drop(stdin);
        drop(stdout);
        if tokio::time::timeout(Duration::from_secs(1), child.wait())
            .await
            .is_err()
        {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        if let Some(leaf) = leaf {
            if self.inner.closed.load(Ordering::Relaxed) {
                if let Err(e) = leaf.remove() {
                    tracing::warn!("{e}");
                }
            } else {
                lock(&self.inner.spare).push(leaf);
            }
        }
    }

    /// Starts a replacement for an executor that is gone, in the
    /// background, if fewer than `idle` wait.
    fn replace(&self) {
        let pool = self.clone();
        tokio::spawn(async move {
            if pool.inner.closed.load(Ordering::Relaxed) || pool.idle() >= pool.inner.config.idle {
                return;
            }
            match pool.spawn_executor().await {
                Ok(exec) => pool.give_back(exec).await,
                Err(e) => tracing::warn!("cannot replace an executor: {e}"),
            }
        });
    }
}

/// Waits for the executor's answer to a run request, asking it to cancel
/// when `cancel` fires and SIGKILLing it `grace` later.
async fn wait(
    exec: &mut Executor,
    cancel: &CancellationToken,
    started: impl FnOnce(),
    grace: Duration,
    backstop: Duration,
) -> Waited {
    let mut started = Some(started);
    let mut deadline: Option<tokio::time::Instant> = None;
    let hung = tokio::time::sleep(backstop);
    tokio::pin!(hung);
    loop {
        let hard_kill = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            answer = read_frame::<_, FromExecutor>(&mut exec.stdout) => match answer {
                Ok(FromExecutor::Started) => {
                    if let Some(f) = started.take() {
                        f();
                    }
                }
                Ok(FromExecutor::Done(outcome)) => return Waited::Done(outcome),
                Ok(FromExecutor::Refused(why)) => return Waited::Refused(why),
                Ok(other) => return Waited::Confused(format!("the executor answered {other:?} to a run request")),
                Err(_) => return Waited::Died,
            },
            _ = cancel.cancelled(), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + grace);
                if write_frame(&mut exec.stdin, &ToExecutor::Cancel).await.is_err() {
                    return Waited::Died;
                }
            }
            _ = hard_kill => return Waited::KilledHard,
            _ = &mut hung => return Waited::Hung,
        }
    }
}

/// `30s`, `1.5s`.
fn humantime(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// What is known of a task whose executor did not report: its wall time
/// and what reached its log files.
fn usage_from_files(began: Instant, stdout: &PathBuf, stderr: &PathBuf) -> Usage {
    let size = |p: &PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    Usage {
        wall: began.elapsed(),
        stdout_bytes: size(stdout),
        stderr_bytes: size(stderr),
        ..Usage::default()
    }
}
