//! Capped log files for a task's stdout and stderr, and followers that
//! stream them while the task runs.
//!
//! A [`LogFile`] keeps at most `cap` bytes; anything written beyond that is
//! counted and dropped, so a chatty task can never fill the agent's disk.
//! Writes collect in a small in-memory buffer that is appended to the file
//! (open, write, close) whenever it passes 8 KiB and when the log is closed:
//! a running task holds no file descriptor for its logs, which matters at
//! 10,000 tasks with a 20,000 open-files limit. The file itself is created
//! by the first append, so a task that prints nothing leaves no log file:
//! creating inodes is a measurable part of launching a task, and on a busy
//! filesystem (many recent deletions) a slow one. A missing log file reads
//! as an empty log. Followers read the flushed part from the file and the
//! rest from the buffer, so they see every byte as soon as it is written.
//!
//! A log can also live only in memory ([`LogFile::in_memory`], at most
//! 1 MiB): for callers that read a task's output back themselves and
//! want no file, such as `wasmesos bench runtime`'s bare launches.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use tokio::sync::watch;

/// Buffered bytes that trigger an append to the file.
const FLUSH_AT: usize = 8 * 1024;
/// Buffered bytes beyond which writes are dropped while the disk refuses them.
const MAX_PENDING: usize = 1 << 20;
/// Largest chunk a follower returns at once.
const READ_CHUNK: u64 = 64 * 1024;

/// Where a follower starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStart {
    /// From the first byte.
    Beginning,
    /// From this byte offset (a follower started beyond the end waits for
    /// the log to grow that far).
    Offset(u64),
    /// The last this-many bytes written so far, then whatever follows.
    Tail(u64),
}

impl LogStart {
    fn resolve(self, len: u64) -> u64 {
        match self {
            LogStart::Beginning => 0,
            LogStart::Offset(offset) => offset,
            LogStart::Tail(n) => len.saturating_sub(n),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Bytes kept so far (in the file or the buffer).
    len: u64,
    /// No more bytes will come.
    closed: bool,
}

/// A capped log file that a task writes and followers read. Cheap to clone;
/// all clones are the same log. It ends (followers finish) when
/// [`close`](LogFile::close) is called — the runtime does so when the task
/// ends — or when every clone is dropped.
#[derive(Clone)]
pub struct LogFile {
    shared: Arc<Shared>,
}

struct Shared {
    /// `None`: an in-memory log, never flushed.
    path: Option<PathBuf>,
    cap: u64,
    state: Mutex<State>,
    progress: watch::Sender<Progress>,
}

#[derive(Default)]
struct State {
    /// Bytes in the file.
    flushed: u64,
    /// Bytes after `flushed`, not yet in the file.
    pending: Vec<u8>,
    /// `flushed + pending.len()`.
    kept: u64,
    dropped: u64,
    closed: bool,
    warned: bool,
}

impl std::fmt::Debug for LogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFile")
            .field("path", &self.shared.path)
            .field("cap", &self.shared.cap)
            .finish()
    }
}

impl LogFile {
    /// A log at `path`, empty (a file already there is removed), keeping at
    /// most `cap` bytes of what is written to it. The file is created when
    /// the first bytes are flushed.
    pub fn create(path: &Path, cap: u64) -> io::Result<LogFile> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(LogFile::with_path(Some(path.to_path_buf()), cap))
    }

    /// A log kept in memory only, at most `cap` bytes (and at most 1 MiB):
    /// no file is ever made; followers read it while it is alive.
    pub fn in_memory(cap: u64) -> LogFile {
        LogFile::with_path(None, cap.min(MAX_PENDING as u64))
    }

    fn with_path(path: Option<PathBuf>, cap: u64) -> LogFile {
        let (progress, _) = watch::channel(Progress::default());
        LogFile {
            shared: Arc::new(Shared {
                path,
                cap,
                state: Mutex::new(State::default()),
                progress,
            }),
        }
    }

    /// The file's path; `None` for an in-memory log.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// The most bytes this log keeps.
    pub fn cap(&self) -> u64 {
        self.shared.cap
    }

    /// Bytes kept so far.
    pub fn kept(&self) -> u64 {
        self.shared.lock().kept
    }

    /// Bytes written beyond the cap (or after closing) and dropped.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }

    /// Whether the log has been closed.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Appends `bytes`, keeping what fits under the cap and counting the
    /// rest as dropped. Never fails: a task's output must not fail the task.
    pub fn write(&self, bytes: &[u8]) {
        self.shared.write(bytes);
    }

    /// Moves buffered bytes to the file now.
    pub fn flush(&self) {
        let mut st = self.shared.lock();
        self.shared.flush_locked(&mut st);
    }

    /// Flushes and ends the log: later writes are dropped, followers finish
    /// once they have read everything.
    pub fn close(&self) {
        let mut st = self.shared.lock();
        self.shared.flush_locked(&mut st);
        st.closed = true;
        self.shared.progress.send_modify(|p| p.closed = true);
    }

    /// A follower from the first byte.
    pub fn follower(&self) -> LogFollower {
        self.follow(LogStart::Beginning)
    }

    /// A follower from `start`.
    pub fn follow(&self, start: LogStart) -> LogFollower {
        let progress = self.shared.progress.subscribe();
        let len = progress.borrow().len;
        LogFollower {
            path: self.shared.path.clone().unwrap_or_default(),
            shared: Arc::downgrade(&self.shared),
            progress: Some(progress),
            offset: start.resolve(len),
            file: None,
            growing: None,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, bytes: &[u8]) {
        let mut st = self.lock();
        let room = if st.closed {
            0
        } else {
            let under_cap = self.cap.saturating_sub(st.kept);
            let buffer_room = MAX_PENDING.saturating_sub(st.pending.len()) as u64;
            under_cap.min(buffer_room)
        };
        let take = (bytes.len() as u64).min(room) as usize;
        st.dropped += (bytes.len() - take) as u64;
        if take == 0 {
            return;
        }
        st.pending.extend_from_slice(&bytes[..take]);
        st.kept += take as u64;
        if st.pending.len() >= FLUSH_AT {
            self.flush_locked(&mut st);
        }
        let len = st.kept;
        self.progress.send_modify(|p| p.len = len);
    }

    fn flush_locked(&self, st: &mut State) {
        let Some(path) = &self.path else {
            return;
        };
        if st.pending.is_empty() {
            return;
        }
        let written = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut f| f.write_all(&st.pending));
        match written {
            Ok(()) => {
                st.flushed += st.pending.len() as u64;
                // Release the buffer: most tasks print little, and 10,000
                // idle buffers add up.
                st.pending = Vec::new();
            }
            Err(e) => {
                // Keep the bytes and retry at the next flush; while the disk
                // refuses, the buffer is bounded by MAX_PENDING.
                if !st.warned {
                    st.warned = true;
                    tracing::warn!(path = %path.display(), error = %e, "cannot append to task log");
                }
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut st = std::mem::take(self.state.get_mut().unwrap_or_else(PoisonError::into_inner));
        self.flush_locked(&mut st);
    }
}

/// Streams a log as it grows: [`next_chunk`](LogFollower::next_chunk) returns
/// bytes as they are written and `None` once the log is closed and
/// everything has been read.
pub struct LogFollower {
    path: PathBuf,
    shared: Weak<Shared>,
    /// `None` once the writer is gone (or for a finished log): read the file
    /// to its end.
    progress: Option<watch::Receiver<Progress>>,
    offset: u64,
    file: Option<Arc<File>>,
    /// For a log another process writes: `true` (or the sender dropped)
    /// once it will not grow any more; until then the file is polled.
    growing: Option<watch::Receiver<bool>>,
}

/// How often a follower of a log written by another process looks for
/// more.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl std::fmt::Debug for LogFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFollower")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .finish()
    }
}

impl LogFollower {
    /// Reads a finished log from disk (after the task ended, or after an
    /// agent restart): returns its bytes from `start` and then ends. A
    /// missing file is an empty log (nothing was ever written to it).
    pub fn open(path: &Path, start: LogStart) -> io::Result<LogFollower> {
        let (file, len) = match File::open(path) {
            Ok(file) => {
                let len = file.metadata()?.len();
                (Some(Arc::new(file)), len)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (None, 0),
            Err(e) => return Err(e),
        };
        Ok(LogFollower {
            path: path.to_path_buf(),
            shared: Weak::new(),
            progress: None,
            offset: start.resolve(len),
            file,
            growing: None,
        })
    }

    /// Follows a log that another process (an executor) appends to `path`:
    /// reads what is there, then polls the file for more until `ended`
    /// turns `true` or its sender is dropped, and ends after a last read.
    pub fn growing(
        path: &Path,
        start: LogStart,
        ended: watch::Receiver<bool>,
    ) -> io::Result<LogFollower> {
        let mut follower = LogFollower::open(path, start)?;
        follower.growing = Some(ended);
        Ok(follower)
    }

    /// The offset of the next byte this follower returns.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next bytes (at most 64 KiB), waiting for the task to write them;
    /// `None` when the log has ended and everything was read.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            let Some(progress) = self.progress.as_mut() else {
                // Writer gone (or in another process): the file is the log.
                let chunk = self.read_file(self.offset, READ_CHUNK).await?;
                let Some(ended) = self.growing.as_mut() else {
                    return Ok(self.advance(chunk));
                };
                if !chunk.is_empty() {
                    return Ok(self.advance(chunk));
                }
                if *ended.borrow_and_update() {
                    // One last read: the writer's final bytes.
                    self.growing = None;
                    continue;
                }
                tokio::select! {
                    changed = ended.changed() => if changed.is_err() {
                        self.growing = None;
                    },
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                }
                continue;
            };
            let Progress { len, closed } = *progress.borrow_and_update();
            if self.offset < len {
                let chunk = self.read_live(len).await?;
                if !chunk.is_empty() {
                    return Ok(self.advance(chunk));
                }
            }
            if closed {
                return Ok(None);
            }
            let progress = self.progress.as_mut().expect("checked above");
            if progress.changed().await.is_err() {
                self.progress = None;
            }
        }
    }

    /// Everything from the current offset to the end of the log (waits for
    /// the log to end).
    pub async fn read_to_end(mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    fn advance(&mut self, chunk: Vec<u8>) -> Option<Vec<u8>> {
        if chunk.is_empty() {
            return None;
        }
        self.offset += chunk.len() as u64;
        Some(chunk)
    }

    /// Reads up to `len` from the writer's buffer or, for flushed bytes, the
    /// file.
    async fn read_live(&mut self, len: u64) -> io::Result<Vec<u8>> {
        let want = (len - self.offset).min(READ_CHUNK);
        let from_file = match self.shared.upgrade() {
            Some(shared) => {
                let st = shared.lock();
                if self.offset >= st.flushed {
                    let start = (self.offset - st.flushed) as usize;
                    let end = st.pending.len().min(start + want as usize);
                    return Ok(st.pending.get(start..end).unwrap_or_default().to_vec());
                }
                // Flushed bytes never change: read them without the lock.
                want.min(st.flushed - self.offset)
            }
            None => want,
        };
        self.read_file(self.offset, from_file).await
    }

    async fn read_file(&mut self, offset: u64, max: u64) -> io::Result<Vec<u8>> {
        let file = match &self.file {
            Some(file) => file.clone(),
            None => {
                let file = match File::open(&self.path) {
                    Ok(file) => Arc::new(file),
                    // Never flushed (yet): nothing to read.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                };
                self.file = Some(file.clone());
                file
            }
        };
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0; max as usize];
            let n = file.read_at(&mut buf, offset)?;
            buf.truncate(n);
            Ok(buf)
        })
        .await
        .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_counts_and_follows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let log = LogFile::create(&path, 20_000).unwrap();
        let mut early = log.follower();
        log.write(b"hello ");
        assert_eq!(early.next_chunk().await.unwrap().unwrap(), b"hello ");
        // Past the flush threshold, then past the cap.
        log.write(&[b'x'; 10_000]);
        log.write(&[b'y'; 15_000]);
        assert_eq!(log.kept(), 20_000);
        assert_eq!(log.dropped(), 5_006);
        let tail = log.follow(LogStart::Tail(3));
        log.close();
        log.write(b"late");
        assert_eq!(log.dropped(), 5_010);

        let rest = early.read_to_end().await.unwrap();
        assert_eq!(rest.len(), 20_000 - 6);
        assert_eq!(tail.read_to_end().await.unwrap(), b"yyy");
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk.len(), 20_000);
        assert!(on_disk.starts_with(b"hello xxx"));

        let from = LogFollower::open(&path, LogStart::Offset(19_998)).unwrap();
        assert_eq!(from.read_to_end().await.unwrap(), b"yy");
    }

    #[tokio::test]
    async fn an_in_memory_log_caps_counts_and_follows_without_a_file() {
        let log = LogFile::in_memory(20_000);
        assert_eq!(log.path(), None);
        let early = log.follower();
        log.write(b"hello ");
        log.write(&[b'x'; 30_000]);
        assert_eq!(log.kept(), 20_000);
        assert_eq!(log.dropped(), 10_006);
        log.flush();
        log.close();
        let all = early.read_to_end().await.unwrap();
        assert_eq!(all.len(), 20_000);
        assert!(all.starts_with(b"hello xxx"));
        // Never more than the buffer's 1 MiB, whatever the cap.
        assert_eq!(LogFile::in_memory(u64::MAX).cap(), MAX_PENDING as u64);
    }

    #[tokio::test]
    async fn a_log_nothing_was_written_to_has_no_file_and_reads_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, b"stale").unwrap();
        let log = LogFile::create(&path, 100).unwrap();
        assert!(!path.exists(), "a stale log is removed");
        let follower = log.follower();
        log.close();
        assert!(!path.exists());
        assert_eq!(follower.read_to_end().await.unwrap(), b"");
        let from_disk = LogFollower::open(&path, LogStart::Beginning).unwrap();
        assert_eq!(from_disk.read_to_end().await.unwrap(), b"");
    }

    #[tokio::test]
    async fn follower_ends_when_every_handle_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let log = LogFile::create(&path, 100).unwrap();
        let follower = log.follower();
        log.write(b"abc");
        drop(log);
        assert_eq!(follower.read_to_end().await.unwrap(), b"abc");
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
    }

    #[tokio::test]
    async fn a_growing_file_is_followed_until_its_writer_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let (ended, rx) = watch::channel(false);
        // The file does not exist yet: the writer has not flushed.
        let mut f = LogFollower::growing(&path, LogStart::Beginning, rx.clone()).unwrap();
        let writer = {
            let path = path.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                std::fs::write(&path, b"one ").unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                let mut file = OpenOptions::new().append(true).open(&path).unwrap();
                file.write_all(b"two").unwrap();
                ended.send(true).unwrap();
            })
        };
        assert_eq!(f.next_chunk().await.unwrap().unwrap(), b"one ");
        let rest = f.read_to_end().await.unwrap();
        assert_eq!(rest, b"two");
        writer.await.unwrap();
        // Started after the end, from the tail: reads and ends.
        let tail = LogFollower::growing(&path, LogStart::Tail(3), rx).unwrap();
        assert_eq!(tail.read_to_end().await.unwrap(), b"two");
    }

    #[tokio::test]
    async fn follower_from_offset_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::create(&dir.path().join("out"), 100).unwrap();
        let mut f = log.follow(LogStart::Offset(2));
        let writer = log.clone();
        let task = tokio::spawn(async move {
            writer.write(b"a");
            tokio::task::yield_now().await;
            writer.write(b"bcd");
            writer.close();
        });
        assert_eq!(f.next_chunk().await.unwrap().unwrap(), b"cd");
        assert_eq!(f.next_chunk().await.unwrap(), None);
        task.await.unwrap();
    }
}
