//! Group commit: how a durable command waits until its record is on disk, with one fdatasync
//! for every record that all processes appended meanwhile. The leader and the waiters, together.
//!
//! After its transaction (see `transaction.rs`) has published the end of the log in `run/sync`
//! (see `sync_file.rs`), a handle whose record is not yet covered by the shared "durable up to"
//! mark tries to become the leader (this handle's leader mutex, then a non-blocking exclusive
//! `flock` on the sync file). The leader fdatasyncs the log and moves the mark to the published
//! end, so one fdatasync covers what all processes appended meanwhile. The others do not queue on
//! the lock (a lock's waiters wake too late and lose the race against a leader that comes
//! straight back, which starved them for milliseconds): they sleep on the generation word, which
//! a leader bumps and wakes once it has let go of the lock, and then look at the mark again. A
//! leader that dies leaves the word alone; its waiters look again after [`WAIT_MAX`].
//!
//! The leader needs no directory lock: the published end says how far the log is complete, and
//! an fdatasync started after that was published covers it. A handle only tries to lead once its
//! group is complete, that is once as many transactions wait as the last fdatasync covered (or
//! once it has waited as long as its last fdatasync took): the producers the last sync released
//! are appending again, and the one that completes the group syncs for all of them, instead of
//! the first one syncing alone and the rest waiting for the next round. With one producer every
//! group is complete at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, io_err};
use crate::queue::FileQueue;
use crate::sync::{SyncPoint, sync, sync_dir};
use crate::sync_file::{Mark, SyncFile, WAIT_MAX, beyond};

/// Shortest and longest time a group commit waits for its group to complete (as long as the
/// handle's last fdatasync took, within these bounds), and the largest group it waits for.
const GATHER_MIN: Duration = Duration::from_micros(20);
const GATHER_MAX: Duration = Duration::from_millis(1);
const GATHER_BATCH_MAX: u32 = 64;

/// One process's side of group commit (shared by its handles, see `shared.rs`).
pub(crate) struct GroupCommit {
    /// Held by this process's leader, so that its threads do not race each other for the `flock`.
    leader: Mutex<()>,
    /// How long this process's last fdatasync took, in nanoseconds (bounds a leader's wait).
    last_sync_ns: AtomicU64,
}

/// Held by the leader of a group commit; dropping it lets go and wakes the waiters.
pub(crate) struct Leader<'a> {
    sync: &'a SyncFile,
    in_process: Option<MutexGuard<'a, ()>>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // In this order: a waiter woken by the bump must find both locks free, or it would
        // sleep on a generation nobody moves until WAIT_MAX.
        self.in_process.take();
        self.sync.unlock_leader();
        self.sync.bump_and_wake();
    }
}

impl GroupCommit {
    /// No leader yet, and no fdatasync timed.
    pub(crate) fn new() -> GroupCommit {
        GroupCommit {
            leader: Mutex::new(()),
            last_sync_ns: AtomicU64::new(0),
        }
    }

    /// Becomes the leader, or `None` if another thread or process is.
    pub(crate) fn try_lead<'a>(&'a self, sync: &'a SyncFile) -> Result<Option<Leader<'a>>> {
        let guard = match self.leader.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(None),
        };
        Ok(sync.try_lock_leader()?.then(|| Leader {
            sync,
            in_process: Some(guard),
        }))
    }

    /// How long to wait for a group to complete: as long as the last fdatasync took.
    fn gather(&self) -> Duration {
        Duration::from_nanos(self.last_sync_ns.load(Ordering::Relaxed)).clamp(GATHER_MIN, GATHER_MAX)
    }

    fn note_sync_took(&self, took: Duration) {
        self.last_sync_ns
            .store(took.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }
}

impl FileQueue {
    /// Returns once the log is on disk up to `end` of segment `seg_no`, fdatasyncing it as the
    /// leader or waiting for the leader that will (see the module doc).
    pub(crate) fn commit(&self, seg_no: u64, end: u64) -> Result<()> {
        let d = &self.inner.shared.sync;
        let start = Instant::now();
        let gather = self.inner.shared.group.gather();
        loop {
            let seen = d.generation();
            let mark = d.read();
            if !beyond(seg_no, end, mark.seg, mark.off) {
                return Ok(());
            }
            let complete = match d.appended() {
                Some(a) => a.seg != seg_no || a.seq.wrapping_sub(mark.seq) >= mark.batch.max(1),
                None => true,
            };
            let waited = start.elapsed();
            let ready = complete || waited >= gather;
            if ready && let Some(_leader) = self.inner.shared.group.try_lead(d)? {
                return self.sync_all_appended(seg_no, end);
            }
            self.check()?;
            d.wait(seen, if ready { WAIT_MAX } else { gather - waited });
        }
    }

    /// The leader's part: fdatasyncs the segment and moves the mark to the published end of the
    /// log; where that end does not cover the caller's record (another segment, a torn or
    /// missing record), it catches up under the directory lock instead.
    fn sync_all_appended(&self, seg_no: u64, end: u64) -> Result<()> {
        let d = &self.inner.shared.sync;
        let inner = &*self.inner;
        let mark = d.read();
        if !beyond(seg_no, end, mark.seg, mark.off) {
            return Ok(());
        }
        // The epoch before the published end: should a repair cut the log below that end
        // meanwhile, it moves the epoch on and the mark written below is void.
        let epoch = d.epoch();
        let appended = d.appended();
        let (seg, upto, seq, file, path) = {
            let mut log = self.lock_log();
            match appended {
                Some(a) if a.seg == seg_no && log.seg_no() == seg_no && a.end >= end => {
                    (a.seg, a.end, a.seq, log.seg_file(), log.seg_path().to_path_buf())
                }
                _ => {
                    inner.shared.lock.lock()?;
                    let caught = log.catch_up(&inner.shared.sync);
                    let seq = d.appended().map_or(mark.seq, |a| a.seq);
                    inner.shared.lock.unlock();
                    caught?;
                    (
                        log.seg_no(),
                        log.end(),
                        seq,
                        log.seg_file(),
                        log.seg_path().to_path_buf(),
                    )
                }
            }
        };
        if seg == seg_no && upto < end {
            // Another process cut the log below our record (it found damage there).
            return Err(Error::Corrupt {
                path,
                detail: format!(
                    "the record ending at byte {end} was cut off the log by a repair after a \
                     damaged write; the command did not take effect, run it again"
                ),
            });
        }
        let t0 = Instant::now();
        if let Err(e) = sync(&file, SyncPoint::GroupCommit) {
            let err = io_err(&path, "fdatasync")(e);
            return Err(self.failed(err.to_string()));
        }
        inner.shared.group.note_sync_took(t0.elapsed());
        if mark.seg < seg {
            // The first sync of this segment (new queue, or after a compaction, which may have
            // been made by a handle without fsync): make its directory entry durable too.
            sync_dir(&inner.dir, SyncPoint::GroupCommitDir).map_err(|e| self.failed(e.to_string()))?;
        }
        d.write(Mark {
            seg,
            off: upto,
            seq,
            batch: seq.wrapping_sub(mark.seq).clamp(1, GATHER_BATCH_MAX),
            epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_wakes_when_a_leader_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let s = SyncFile::open(d.path(), crate::trust::Trust::Owner).unwrap();
        let g = GroupCommit::new();
        let seen = s.generation();
        let leader = g.try_lead(&s).unwrap().expect("nobody else leads");
        assert!(g.try_lead(&s).unwrap().is_none(), "one leader at a time");
        std::thread::scope(|sc| {
            let waiter = sc.spawn(|| {
                let t = std::time::Instant::now();
                while s.generation() == seen {
                    assert!(
                        t.elapsed() < Duration::from_secs(10),
                        "the generation never moved"
                    );
                    s.wait(seen, Duration::from_secs(1));
                }
            });
            std::thread::sleep(Duration::from_millis(20));
            drop(leader);
            waiter.join().unwrap();
        });
        assert!(g.try_lead(&s).unwrap().is_some(), "free again");
    }
}
