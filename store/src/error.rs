//! The one error type of every store operation, whatever the backend.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{LeaseId, Revision};

/// What went wrong in a store operation. Every message says what was wrong
/// and what to do about it.
///
/// `Clone` so that one failed group commit can answer every caller whose
/// transaction was in it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot serve requests right now (a failed commit, an
    /// unreachable etcd). Retrying later may succeed.
    #[error(
        "the store is unavailable: {0}; retry, and check the master's log and disk if it persists"
    )]
    Unavailable(String),

    /// The revision asked for is older than the oldest history kept.
    #[error(
        "revision {requested} has been compacted (history is kept from revision {compacted}): \
         re-read the current state with range and watch from its revision + 1"
    )]
    Compacted {
        /// The revision the caller asked for.
        requested: Revision,
        /// The oldest revision whose history is still kept.
        compacted: Revision,
    },

    /// The lease does not exist: it expired, was revoked, or belonged to an
    /// earlier process.
    #[error(
        "lease {0} not found: it expired, was revoked or belonged to an earlier master process; \
         grant a new lease and re-create the keys attached to it"
    )]
    LeaseNotFound(LeaseId),

    /// Another process holds the state file.
    #[error(
        "state file {} is in use by another process: is another master running with this data \
         dir? Stop it or choose another --data-dir",
        path.display()
    )]
    InUse {
        /// The state file.
        path: PathBuf,
    },

    /// Stored data could not be decoded, or the file is damaged.
    #[error(
        "the store's data is corrupt: {0}; restore the state file from a backup or move it \
         aside to start empty"
    )]
    Corrupt(String),

    /// Reading or writing the state file failed.
    #[error("store I/O failed: {0}; check the disk, free space and the data dir's permissions")]
    Io(#[source] Arc<std::io::Error>),

    /// A transaction the store refuses as written (etcd refuses it too).
    #[error("invalid transaction: {0}")]
    InvalidTxn(String),

    /// An argument out of range (a negative revision, a zero TTL, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The store is out of space (etcd's NOSPACE alarm): writes fail until
    /// an operator frees space.
    #[error(
        "the store is full ({0}): compact and defragment etcd (etcdctl compact, etcdctl defrag), \
         or raise its --quota-backend-bytes, then disarm the alarm (etcdctl alarm disarm)"
    )]
    Full(String),

    /// The store was closed (the master is shutting down, or the store's
    /// writer stopped after an error).
    #[error(
        "the store is closed: the master is shutting down or its store failed; restart the master"
    )]
    Closed,
}

impl From<std::io::Error> for StoreError {
    fn from(err: std::io::Error) -> Self {
        StoreError::Io(Arc::new(err))
    }
}
