//! What the handles of one process share per queue directory: the directory lock, the log with
//! its index, `run/sync`, group commit and the inotify watch. N handles (a runner's workers, a
//! server's connections, a program's producers) then follow the log once, not N times each, and
//! hold one index in memory; what stays per handle is its owner id (its reservations), its watch
//! list and its waiting threads (see `queue.rs`).
//!
//! The registry maps a directory (its lock file's device and inode, so that a directory removed
//! and made anew is another one) and the options the log depends on to the live shared state, by
//! weak reference: it goes away with the last handle. Sharing is only a saving: two states for one
//! directory in one process (a failed one replaced, or a test's private handle) behave as two
//! processes do, which the queue supports anyway.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::dir::DirLock;
use crate::error::Result;
use crate::group_commit::GroupCommit;
use crate::log::Log;
use crate::notify::Notifier;
use crate::sync_file::SyncFile;
use crate::trust::Trust;
use crate::types::Options;

/// One process's state of one queue directory, shared by its handles.
pub(crate) struct Shared {
    /// `<dir>/lock`, held around every transaction.
    pub(crate) lock: DirLock,
    /// The process's view of the log: the current segment and the index of every job.
    pub(crate) log: Mutex<Log>,
    /// `<dir>/run/sync`.
    pub(crate) sync: SyncFile,
    /// The process's side of group commit.
    pub(crate) group: GroupCommit,
    /// Why the state failed (after an fsync error), if it did: every handle on it then refuses
    /// every command, and the next open makes a fresh state that reads the log again.
    pub(crate) failed: Mutex<Option<String>>,
    /// Wakes blocked reserves (one inotify instance per process and directory).
    pub(crate) notifier: Notifier,
}

/// What makes two opens share a state: the same directory, read the same way.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    /// The lock file's device and inode.
    id: (u64, u64),
    fsync: bool,
    trust: Trust,
    /// [`crate::Clock::identity`]: an index promotes delayed jobs by its readers' clock.
    clock: usize,
}

type Registry = Mutex<HashMap<Key, Weak<Shared>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

impl Shared {
    /// The live state of `dir` for these options, or a new one (replaying the log) if there is
    /// none, or only a failed one. `private`: a new one in any case, kept out of the registry
    /// (for tests that play another process in this one).
    pub(crate) fn get(dir: &Path, opts: &Options, trust: Trust, private: bool) -> Result<Arc<Shared>> {
        let lock = DirLock::open(dir, trust)?;
        let key = Key {
            id: lock.id(),
            fsync: opts.fsync,
            trust,
            clock: opts.clock.identity(),
        };
        if private {
            return Shared::open(dir, opts, trust, lock).map(Arc::new);
        }
        // Held while a new state replays the log, so that a second open waits and shares it
        // rather than replaying the same log beside it.
        let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(live) = map.get(&key).and_then(Weak::upgrade)
            && live.failed.lock().unwrap_or_else(|e| e.into_inner()).is_none()
        {
            return Ok(live);
        }
        let fresh = Arc::new(Shared::open(dir, opts, trust, lock)?);
        map.insert(key, Arc::downgrade(&fresh));
        Ok(fresh)
    }

    fn open(dir: &Path, opts: &Options, trust: Trust, lock: DirLock) -> Result<Shared> {
        let (log, sync) = lock.with(|| {
            // Under the lock: a new run/sync is grown with zeros, which must not land on one that
            // another process has started to use.
            let sync = SyncFile::open(dir, trust)?;
            let log = Log::open(dir, opts.fsync, trust, &sync)?;
            // A mark or published end past the log (from a segment moved aside, or written
            // before a power loss undid the records) means nothing.
            sync.clamp(log.seg_no(), log.end())?;
            sync.note_segment(log.seg_no(), true)?;
            Ok((log, sync))
        })?;
        Ok(Shared {
            lock,
            log: Mutex::new(log),
            sync,
            group: GroupCommit::new(),
            failed: Mutex::new(None),
            notifier: Notifier::new(dir),
        })
    }
}
