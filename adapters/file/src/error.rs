//! The error type of the file queue, one variant per cause.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong with a [`crate::FileQueue`] call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The job does not exist, or is not in a state that allows the command for this handle
    /// (e.g. `release` of a job reserved by another handle), exactly like beanstalkd's `NOT_FOUND`.
    #[error("job {id} not found (or not reserved by this handle)")]
    NotFound {
        /// The id asked for.
        id: u64,
    },
    /// The tube has no jobs, is not paused and is not `default`, so it does not exist.
    #[error("tube {name:?} does not exist")]
    TubeNotFound {
        /// The tube asked for.
        name: String,
    },
    /// A job body is larger than `Options::max_job_size`.
    #[error("job body of {size} bytes is larger than the maximum of {max} bytes (Options::max_job_size)")]
    JobTooBig {
        /// The body's size in bytes.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A tube name breaks beanstalkd's naming rules.
    #[error(transparent)]
    InvalidTube(pulpo_model::InvalidTubeName),
    /// An option passed to `FileQueue::open` is out of range.
    #[error("invalid option: {0}")]
    InvalidOptions(String),
    /// A system call on a file of the queue failed.
    #[error("{op} {path:?} failed: {source}; {}", hint(source))]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What was being done (e.g. "fdatasync").
        op: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// An fsync failed earlier: the state on disk is unknown, so this handle refuses all further
    /// work (sled's rule). Open a new handle to recover from what is on disk.
    #[error("the queue in {path:?} has failed ({reason}); open it again to recover from what is on disk")]
    Failed {
        /// The queue's directory.
        path: PathBuf,
        /// The first error, as text.
        reason: String,
    },
    /// A file of the queue cannot be used and could not be moved aside.
    #[error("corrupt queue file {path:?}: {detail}")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The queue directory can be written by group or others: jobs could be forged or deleted.
    #[error(
        "queue directory {path:?} is writable by group or others (mode {mode:o}); \
         run `chmod go-w {}` (or `chmod 700`) and try again",
        path.display()
    )]
    Permissions {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The queue directory, a parent of it, or a file or subdirectory in it is not what the queue
    /// can trust: another user's, writable by others, a symbolic link or a special file where the
    /// queue keeps a file of its own. Opening it could let someone forge jobs or make the queue
    /// write elsewhere.
    #[error("refusing {path:?}: {problem}")]
    Untrusted {
        /// The directory or file concerned.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        problem: String,
    },
    /// The queue directory was removed, or replaced by another, while this handle used it. The
    /// handle stops rather than carry on in files nobody else sees, or in a new queue whose job
    /// ids start again from 1.
    #[error(
        "the queue directory {path:?} was removed or replaced while in use (its lock file is gone \
         or is another file); stopping so that job ids never start again from 1: find out what \
         removed it, then start again (a new directory is a new, empty queue)"
    )]
    Replaced {
        /// The queue's directory.
        path: PathBuf,
    },
}

/// What a person can do about an I/O error, by its kind.
fn hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => "free space on the disk and retry",
        io::ErrorKind::PermissionDenied => "check the owner and permissions of the queue directory",
        io::ErrorKind::NotFound => "was the queue directory removed while in use?",
        io::ErrorKind::ReadOnlyFilesystem => "the filesystem is read-only; remount it read-write",
        _ => "check the disk and the system log",
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds a closure turning an `io::Error` into [`Error::Io`] for `path` and `op`.
pub(crate) fn io_err(path: &std::path::Path, op: &'static str) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { path, op, source }
}
