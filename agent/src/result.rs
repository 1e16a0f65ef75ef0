//! A task's result: the small file `result` it may leave in its sandbox,
//! read once it has ended and sent to its framework with the terminal
//! status update.
//!
//! The sandbox is the task's to shape, so the file is read defensively: a
//! symlink is not followed (it could name a file outside the sandbox that
//! the agent, unlike the task, may read), anything but a regular file is
//! refused (a FIFO would block the read), and no more than the limit plus
//! one byte is ever read.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The file a task writes its result to, relative to its sandbox.
pub const RESULT_FILE: &str = "result";

/// The largest result sent; a larger one is dropped (and said so).
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// What the sandbox held.
#[derive(Debug, PartialEq, Eq)]
pub enum TaskResult {
    /// No `result` file.
    None,
    /// Its bytes (at most [`MAX_RESULT_BYTES`]).
    Bytes(Vec<u8>),
    /// There is one but it is not sent; the reason is for the status
    /// message.
    Dropped(String),
}

/// Reads `<sandbox>/result`.
pub fn read(sandbox: &Path) -> TaskResult {
    let path = sandbox.join(RESULT_FILE);
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return TaskResult::None,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return TaskResult::Dropped("result dropped: it is a symlink, not a file".into());
        }
        Err(e) => return TaskResult::Dropped(format!("result dropped: cannot open it: {e}")),
    };
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return TaskResult::Dropped("result dropped: it is not a regular file".into()),
        Err(e) => return TaskResult::Dropped(format!("result dropped: {e}")),
    }
    let mut bytes = Vec::new();
    if let Err(e) = file
        .take(MAX_RESULT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
    {
        return TaskResult::Dropped(format!("result dropped: cannot read it: {e}"));
    }
    if bytes.len() > MAX_RESULT_BYTES {
        let size = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
        return TaskResult::Dropped(format!(
            "result dropped: it is {} and a result may be at most {}",
            wasmesos_api::format_size(size),
            wasmesos_api::format_size(MAX_RESULT_BYTES as u64)
        ));
    }
    TaskResult::Bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_small_and_too_large() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), TaskResult::None);

        std::fs::write(dir.path().join(RESULT_FILE), b"42\n").unwrap();
        assert_eq!(read(dir.path()), TaskResult::Bytes(b"42\n".to_vec()));

        let exactly = vec![7u8; MAX_RESULT_BYTES];
        std::fs::write(dir.path().join(RESULT_FILE), &exactly).unwrap();
        assert_eq!(read(dir.path()), TaskResult::Bytes(exactly));

        std::fs::write(dir.path().join(RESULT_FILE), vec![0u8; 100_000]).unwrap();
        match read(dir.path()) {
            TaskResult::Dropped(why) => {
                assert!(why.contains("at most 64KiB"), "{why}");
                assert!(why.contains("97.7KiB") || why.contains("KiB"), "{why}");
            }
            other => panic!("expected a dropped result, got {other:?}"),
        }
    }

    #[test]
    fn symlinks_fifos_and_directories_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"outside the sandbox").unwrap();
        let sandbox = dir.path().join("sandbox");
        std::fs::create_dir(&sandbox).unwrap();

        std::os::unix::fs::symlink(&secret, sandbox.join(RESULT_FILE)).unwrap();
        assert!(matches!(read(&sandbox), TaskResult::Dropped(why) if why.contains("symlink")));

        std::fs::remove_file(sandbox.join(RESULT_FILE)).unwrap();
        std::fs::create_dir(sandbox.join(RESULT_FILE)).unwrap();
        assert!(matches!(read(&sandbox), TaskResult::Dropped(_)));

        std::fs::remove_dir(sandbox.join(RESULT_FILE)).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            sandbox.join(RESULT_FILE),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        // Would block forever if opened for a plain read.
        assert!(matches!(read(&sandbox), TaskResult::Dropped(why) if why.contains("regular file")));
    }
}
