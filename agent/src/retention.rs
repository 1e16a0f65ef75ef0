//! Clean-up of finished tasks: a task's directory (sandbox and logs) is
//! kept after it ends so its logs and files can be read, and removed once
//! more than `keep` finished tasks are newer or it is older than `max_age`,
//! oldest first — a million tasks do not leave a million directories.
//!
//! A task's end is marked by setting its directory's mtime when it ends
//! (not by a marker file: creating inodes is a measurable part of a task's
//! cost), so an agent that restarts finds the finished tasks an earlier
//! process left and counts them from their ends (or, for a task that was
//! running when the agent died, from its last log write).
//! The agent remembers the last tasks it removed, to tell someone asking
//! for their logs that they were removed rather than never there.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use wasmesos_api::{FrameworkId, TaskId};

use crate::tasks::TaskKey;

/// How many removed tasks are remembered (so their logs can be reported as
/// removed).
const REMEMBER_REMOVED: usize = 100_000;

/// How long finished tasks are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// At most this many finished tasks are kept (the newest).
    pub keep: usize,
    /// None is kept longer than this after it ended.
    pub max_age: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            keep: 1000,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// The finished tasks still on disk, oldest first, and the recently removed.
#[derive(Debug)]
pub struct Retention {
    policy: RetentionPolicy,
    finished: VecDeque<(TaskKey, SystemTime)>,
    removed: HashSet<TaskKey>,
    removed_order: VecDeque<TaskKey>,
}

impl Retention {
    pub fn new(policy: RetentionPolicy) -> Self {
        Self {
            policy,
            finished: VecDeque::new(),
            removed: HashSet::new(),
            removed_order: VecDeque::new(),
        }
    }

    /// A task ended at `at`.
    pub fn finished(&mut self, key: TaskKey, at: SystemTime) {
        // Ends arrive in time order but for clock steps; keep the queue
        // sorted so the front is always the oldest.
        let pos = self.finished.partition_point(|(_, t)| *t <= at);
        self.finished.insert(pos, (key, at));
    }

    /// Finished tasks kept now.
    pub fn len(&self) -> usize {
        self.finished.len()
    }

    /// Takes the tasks due for removal at `now`: beyond the count, or too
    /// old. They are remembered as removed.
    pub fn due(&mut self, now: SystemTime) -> Vec<TaskKey> {
        let mut out = Vec::new();
        while let Some((_, at)) = self.finished.front() {
            let too_many = self.finished.len() > self.policy.keep;
            let too_old = now.duration_since(*at).unwrap_or_default() > self.policy.max_age;
            if !(too_many || too_old) {
                break;
            }
            let (key, _) = self.finished.pop_front().expect("front exists");
            self.remember_removed(key.clone());
            out.push(key);
        }
        out
    }

    /// When the oldest kept task falls due by age (if ever).
    pub fn next_due(&self) -> Option<SystemTime> {
        self.finished
            .front()
            .map(|(_, at)| *at + self.policy.max_age)
    }

    /// Whether `key` was removed by this agent process.
    pub fn was_removed(&self, key: &TaskKey) -> bool {
        self.removed.contains(key)
    }

    fn remember_removed(&mut self, key: TaskKey) {
        if self.removed.insert(key.clone()) {
            self.removed_order.push_back(key);
        }
        while self.removed_order.len() > REMEMBER_REMOVED {
            if let Some(old) = self.removed_order.pop_front() {
                self.removed.remove(&old);
            }
        }
    }
}

/// Keeps the retention list of one agent and removes what falls due, in
/// the background.
#[derive(Debug)]
pub struct Janitor {
    tasks_dir: PathBuf,
    retention: Mutex<Retention>,
    wake: Notify,
}

/// The longest the janitor sleeps: also the slack of age-based removal.
const MAX_NAP: Duration = Duration::from_secs(60);

impl Janitor {
    /// A janitor for `tasks_dir`, counting the finished tasks already
    /// there (an earlier agent process ran them).
    pub fn new(tasks_dir: PathBuf, policy: RetentionPolicy) -> Arc<Self> {
        let mut retention = Retention::new(policy);
        let found = scan(&tasks_dir);
        if !found.is_empty() {
            tracing::info!(
                tasks = found.len(),
                "found the directories of tasks an earlier agent process ran"
            );
        }
        for (key, at) in found {
            retention.finished(key, at);
        }
        Arc::new(Self {
            tasks_dir,
            retention: Mutex::new(retention),
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Retention> {
        self.retention.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A task ended now: count it and let the janitor look.
    pub fn finished(&self, key: TaskKey, at: SystemTime) {
        self.lock().finished(key, at);
        self.wake.notify_one();
    }

    /// Whether this agent process removed `key`'s directory.
    pub fn was_removed(&self, key: &TaskKey) -> bool {
        self.lock().was_removed(key)
    }

    /// Finished tasks whose directories are kept.
    pub fn kept(&self) -> usize {
        self.lock().len()
    }

    /// Removes what is due now, on the blocking pool.
    pub async fn sweep(&self) {
        let due = self.lock().due(SystemTime::now());
        if due.is_empty() {
            return;
        }
        let dir = self.tasks_dir.clone();
        let removed = tokio::task::spawn_blocking(move || {
            for key in &due {
                if let Err(e) = remove(&dir, key) {
                    tracing::warn!(framework = %key.0, task = %key.1, "cannot remove the task's directory: {e}");
                }
            }
            due.len()
        })
        .await
        .unwrap_or(0);
        tracing::debug!(removed, "removed the directories of finished tasks");
    }

    /// Sweeps whenever a task ends and when the oldest kept task falls due
    /// by age, forever.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.sweep().await;
            let nap = self
                .lock()
                .next_due()
                .map(|due| due.duration_since(SystemTime::now()).unwrap_or_default())
                .unwrap_or(MAX_NAP)
                .clamp(Duration::from_millis(10), MAX_NAP);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }
}

/// Marks the end of the task whose directory is `dir`.
pub fn mark_ended(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.set_modified(SystemTime::now())
}

/// The task directories under `tasks_dir` (`<framework>/<task>/`) with the
/// time each ended: the latest change of the directory or its logs.
/// Unreadable entries are skipped.
pub fn scan(tasks_dir: &Path) -> Vec<(TaskKey, SystemTime)> {
    let mut out = Vec::new();
    let Ok(frameworks) = std::fs::read_dir(tasks_dir) else {
        return out;
    };
    for fw in frameworks.flatten() {
        let Ok(fw_id) = FrameworkId::new(fw.file_name().to_string_lossy()) else {
            continue;
        };
        let Ok(tasks) = std::fs::read_dir(fw.path()) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(task_id) = TaskId::new(task.file_name().to_string_lossy()) else {
                continue;
            };
            if let Some(at) = ended_at(&task.path()) {
                out.push(((fw_id.clone(), task_id), at));
            }
        }
    }
    out
}

fn ended_at(dir: &Path) -> Option<SystemTime> {
    let mtime = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    ["stdout", "stderr", ""]
        .into_iter()
        .filter_map(|name| mtime(dir.join(name)))
        .max()
}

/// Removes a task's directory, and its framework's directory if that is
/// now empty.
pub fn remove(tasks_dir: &Path, key: &TaskKey) -> std::io::Result<()> {
    let fw_dir = tasks_dir.join(key.0.as_str());
    match std::fs::remove_dir_all(fw_dir.join(key.1.as_str())) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Fails while other tasks of the framework remain: that is fine.
    let _ = std::fs::remove_dir(&fw_dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(task: &str) -> TaskKey {
        (FrameworkId::new("fw").unwrap(), TaskId::new(task).unwrap())
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    #[test]
    fn keeps_the_newest_by_count_oldest_removed_first() {
        let mut r = Retention::new(RetentionPolicy {
            keep: 2,
            max_age: Duration::from_secs(3600),
        });
        r.finished(key("b"), at(2));
        r.finished(key("a"), at(1));
        r.finished(key("c"), at(3));
        assert_eq!(r.due(at(4)), vec![key("a")]);
        assert_eq!(r.len(), 2);
        assert!(r.was_removed(&key("a")));
        assert!(!r.was_removed(&key("b")));
        assert!(r.due(at(4)).is_empty());
    }

    #[test]
    fn removes_by_age() {
        let mut r = Retention::new(RetentionPolicy {
            keep: 100,
            max_age: Duration::from_secs(60),
        });
        r.finished(key("a"), at(0));
        r.finished(key("b"), at(30));
        assert_eq!(r.next_due(), Some(at(60)));
        assert!(r.due(at(60)).is_empty());
        assert_eq!(r.due(at(61)), vec![key("a")]);
        assert_eq!(r.due(at(100)), vec![key("b")]);
        assert_eq!(r.next_due(), None);
    }

    #[test]
    fn scans_what_an_earlier_process_left_and_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let ended = dir.path().join("fw/t1");
        std::fs::create_dir_all(ended.join("sandbox")).unwrap();
        mark_ended(&ended).unwrap();
        let crashed = dir.path().join("fw/t2");
        std::fs::create_dir_all(&crashed).unwrap();
        std::fs::write(crashed.join("stdout"), "x").unwrap();
        let mut found = scan(dir.path());
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let keys: Vec<_> = found.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, vec![key("t1"), key("t2")]);

        remove(dir.path(), &key("t1")).unwrap();
        assert!(!ended.exists());
        assert!(dir.path().join("fw").exists());
        remove(dir.path(), &key("t2")).unwrap();
        assert!(!dir.path().join("fw").exists());
        // Removing what is gone is not an error.
        remove(dir.path(), &key("t2")).unwrap();
    }
}
