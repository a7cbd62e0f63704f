//! Every fsync and fdatasync the queue makes goes through [`sync`], named by the [`SyncPoint`]
//! that asks for it, and is counted: kill -9 keeps the page cache, so no crash test can tell a
//! synced write from an unsynced one, but the count can (see `tests/sync_count.rs`).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Result, io_err};

/// The places where the queue waits for the disk. Public only for the tests that count the
/// syncs (and, later, switch one off to prove that a test notices); not part of the API.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPoint {
    /// The group commit leader's fdatasync of the current segment (`group_commit.rs`).
    GroupCommit,
    /// The directory, at the first group commit in a segment (its entry may be new).
    GroupCommitDir,
    /// A new segment's header, before it is renamed into place (`log.rs`, with `fsync`).
    SegmentCreate,
    /// The directory, after a new segment was renamed into place (with `fsync`).
    SegmentCreateDir,
    /// The segment a compaction wrote, before its rename (always).
    CompactionFile,
    /// The directory, after a compaction's rename (always).
    CompactionDir,
    /// The parent of a queue directory the queue just created (always).
    QueueDirCreate,
}

impl SyncPoint {
    /// Every sync point, in the order of [`COUNTS`].
    pub const ALL: [SyncPoint; 7] = [
        SyncPoint::GroupCommit,
        SyncPoint::GroupCommitDir,
        SyncPoint::SegmentCreate,
        SyncPoint::SegmentCreateDir,
        SyncPoint::CompactionFile,
        SyncPoint::CompactionDir,
        SyncPoint::QueueDirCreate,
    ];

    /// Only the group commit needs no more than the data (see `log.rs` on growing segments
    /// ahead of their data); the others sync a new file or a directory entry.
    fn data_only(self) -> bool {
        self == SyncPoint::GroupCommit
    }
}

/// Syncs done in this process, per [`SyncPoint`] (by its place in [`SyncPoint::ALL`]).
static COUNTS: [AtomicU64; SyncPoint::ALL.len()] = [const { AtomicU64::new(0) }; SyncPoint::ALL.len()];

/// Sync points switched off by [`skip_for_tests`], per [`SyncPoint`] (as in [`COUNTS`]).
static SKIPPED: [AtomicBool; SyncPoint::ALL.len()] = [const { AtomicBool::new(false) }; SyncPoint::ALL.len()];

/// Switches the syncs at `at` off (`skip`) or on again, in this whole process: only for the
/// power-cut tests that prove they notice a missing sync (`tests/power_cut_tester.rs`). Not part
/// of the API; nothing else may call it.
#[doc(hidden)]
pub fn skip_for_tests(at: SyncPoint, skip: bool) {
    SKIPPED[at as usize].store(skip, Ordering::SeqCst);
}

/// Waits until `file` is on disk: fdatasync for the group commit, fsync for the rest; counted
/// (a failed sync too: it was asked for).
pub(crate) fn sync(file: &File, at: SyncPoint) -> std::io::Result<()> {
    COUNTS[at as usize].fetch_add(1, Ordering::Relaxed);
    if SKIPPED[at as usize].load(Ordering::Relaxed) {
        return Ok(());
    }
    if at.data_only() {
        file.sync_data()
    } else {
        file.sync_all()
    }
}

/// fsyncs a directory, so that a create, rename or delete in it is durable.
pub(crate) fn sync_dir(dir: &Path, at: SyncPoint) -> Result<()> {
    File::open(dir)
        .and_then(|d| sync(&d, at))
        .map_err(io_err(dir, "fsync directory"))
}

/// How many syncs at `at` this process has made (or tried), by every handle: for the tests
/// that prove a durable command waits for the disk. Not part of the API.
#[doc(hidden)]
pub fn sync_count(at: SyncPoint) -> u64 {
    COUNTS[at as usize].load(Ordering::Relaxed)
}
