//! The compiled-code cache directory as a trust boundary.
//!
//! wasmtime loads a cached artifact by mapping it and jumping into it: it
//! is native code that is trusted completely (deserialising it is `unsafe`
//! in wasmtime's own API). Whoever can write a file into this directory can
//! therefore run code as the agent. So the runtime creates it private
//! (mode 0700), and refuses to use one that is a symlink, is owned by
//! another user, or is writable by its group or others. The agent keeps it
//! beside, never inside, the task sandboxes, so no task can reach it through
//! its WASI filesystem either.

use crate::error::RuntimeError;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Permission bits that let someone other than the owner create files.
const WRITABLE_BY_OTHERS: u32 = 0o022;

/// Creates `dir` (mode 0700) if it is missing and checks that only this
/// process's user can write into it.
pub(crate) fn prepare(dir: &Path) -> Result<(), RuntimeError> {
    let refuse = |reason: String| RuntimeError::UnsafeCacheDir {
        path: dir.to_path_buf(),
        reason,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| refuse(format!("cannot create it: {e}")))?;
    let meta =
        std::fs::symlink_metadata(dir).map_err(|e| refuse(format!("cannot stat it: {e}")))?;
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "it is a symlink: point the agent at the real directory".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(refuse("it is not a directory".into()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(refuse(format!(
            "it is owned by uid {}, not by the agent's user (uid {me}): \
             `chown {me} {}` or use another work dir",
            meta.uid(),
            dir.display()
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & WRITABLE_BY_OTHERS != 0 {
        return Err(refuse(format!(
            "its mode is {mode:04o}, so others can write into it: `chmod 700 {}`",
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_a_private_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("compiled");
        prepare(&dir).unwrap();
        assert_eq!(mode_of(&dir), 0o700);
        // An existing private directory is fine too.
        prepare(&dir).unwrap();
    }

    #[test]
    fn refuses_a_directory_others_can_write() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("compiled");
        std::fs::create_dir(&dir).unwrap();
        for mode in [0o777, 0o770, 0o702] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = prepare(&dir).unwrap_err().to_string();
            assert!(err.contains("chmod 700"), "{mode:o}: {err}");
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&dir).unwrap();
    }

    #[test]
    fn refuses_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = root.path().join("compiled");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = prepare(&link).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
    }

    #[test]
    fn refuses_a_directory_of_another_user() {
        if rustix::process::geteuid().as_raw() != 0 {
            // Only root can give a directory away; the check itself is the
            // same comparison either way.
            eprintln!("skipped: needs root to chown a directory to another user");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("compiled");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
        let err = prepare(&dir).unwrap_err().to_string();
        assert!(err.contains("owned by uid 4242"), "{err}");
    }
}
