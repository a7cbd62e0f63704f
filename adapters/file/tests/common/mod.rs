//! Setup that the file queue's integration tests share: the options they open queues with, a
//! queue directory in a fresh temporary directory, and the timing window a wait must land in.
//!
//! Each test binary uses only part of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pulpo_filequeue::{FileQueue, Options};
use tempfile::TempDir;

/// No delay.
pub(crate) const Z: Duration = Duration::ZERO;
/// A TTR no test waits for.
pub(crate) const TTR: Duration = Duration::from_secs(60);

/// Options without fsync: the tests of semantics and damage do not need the disk's cache
/// flushed, and run much faster without.
pub(crate) fn opts() -> Options {
    Options {
        fsync: false,
        ..Options::default()
    }
}

/// Options with fsync (the default): for the tests of group commit and durability.
pub(crate) fn synced() -> Options {
    Options {
        fsync: true,
        ..Options::default()
    }
}

/// A fresh temporary directory and the path of the queue directory `q` inside it, which is not
/// created (the queue creates it, with its modes). Everything goes when the `TempDir` drops.
pub(crate) fn queue_dir() -> (TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("q");
    (d, path)
}

/// A queue directory (as [`queue_dir`]) created with `files` in it, as damage or a forger
/// would leave them: for opening a queue on bytes a test wrote itself.
pub(crate) fn queue_dir_with(files: &[(&str, &[u8])]) -> (TempDir, PathBuf) {
    let (d, path) = queue_dir();
    fs::create_dir(&path).unwrap();
    for (name, bytes) in files {
        fs::write(path.join(name), bytes).unwrap();
    }
    (d, path)
}

/// Opens the queue at `path`; a failure fails the test.
pub(crate) fn open(path: &Path, opts: Options) -> FileQueue {
    FileQueue::open(path, opts).unwrap()
}

/// Opens the queue at `path` with an index of its own, as another process would (the handles of
/// one process share one): for tests of what one process sees of another's records.
#[allow(dead_code)]
pub(crate) fn open_other(path: &Path, opts: Options) -> FileQueue {
    FileQueue::open_private(path, opts).unwrap()
}

/// A queue directory (as [`queue_dir`]) that holds one job, put in tube `t` with `body` by a
/// handle that is closed again: for tests that damage or change the files and reopen. Returns
/// the directory, the queue's path and the job's id.
pub(crate) fn closed_queue_with_job(opts: Options, body: &[u8]) -> (TempDir, PathBuf, u64) {
    let (d, path) = queue_dir();
    let q = open(&path, opts);
    let id = q.put("t", 0, Z, TTR, body).unwrap();
    drop(q);
    (d, path, id)
}

/// A new queue without fsync in a fresh directory (`q.dir()` is its path, for more handles).
pub(crate) fn new_queue() -> (TempDir, FileQueue) {
    let (d, path) = queue_dir();
    (d, open(&path, opts()))
}

/// Asserts that a wait that `took` this long ended at or after `from` and before `until`.
#[track_caller]
pub(crate) fn assert_took(took: Duration, from: Duration, until: Duration) {
    assert!(took >= from && took < until, "{took:?}");
}
