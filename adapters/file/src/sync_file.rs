//! `<dir>/run/sync`: the file that processes share for group commit: the "segment N is on disk up
//! to offset X" mark, the published end of the log, the epoch, the compaction note, the highest
//! segment, and the futex word (with the leader's `flock`) on which group commit meets.
//!
//! It lives in a subdirectory of its own because every write to a file of the queue directory
//! is an inotify event for every handle that watches it (the wake-ups of blocked reserves): the
//! small writes of every commit here would otherwise wake idle reservers and cost each writer an
//! event per watching handle.
//!
//! Layout (one page, all integers little-endian):
//! - at 0, the mark: `seg u64 | off u64 | seq u32 | batch u32 | epoch u32 | crc32 u32`:
//!   segment `seg` is on disk up to `off`, covering the durable transactions numbered up to
//!   `seq`, `batch` of them in the last fdatasync; it counts only while its `epoch` is the
//!   current one;
//! - at [`WORD_AT`], a `u32` generation that every process maps (`MAP_SHARED`, read-only) and
//!   waits on with a futex; leaders move it on with `pwrite`;
//! - at [`APPENDED_AT`], the end of the log: `seg u64 | end u64 | seq u32 | crc32 u32`, written by
//!   every writer (under the directory lock) once its records are completely in the file, `seq`
//!   counting the transactions that wait for durability;
//! - at [`COMPACTING_AT`], a `u32`: the (low bits of the) segment a compaction is moving the log
//!   to, from just before its rename until it has sealed the old segment, else 0. A compactor
//!   that dies in between leaves it set, and readers at the end of the old segment then look for
//!   the new one; after a power loss every process opens afresh and takes the highest segment;
//! - at [`HIGHEST_AT`], `seg u64 | crc32 u32`: the highest segment the log has reached, written
//!   under the directory lock by every handle that opens, switches to or compacts into a segment
//!   (with or without fsync). A handle at the end of an unsealed segment below it knows that
//!   the log went on without it (a compactor died before its seal) and follows;
//! - at [`EPOCH_AT`], a `u32` epoch, moved on whenever the log is found shorter than what the
//!   file claims (a repair cut it, it shrank): a mark written by a leader that read the
//!   published end before that is void, however late it lands.
//!
//! What the words mean to group commit (who leads, who waits, when the mark moves) is told in
//! `group_commit.rs`; this file only keeps the layout and reads and writes it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::dir::{RUN_DIR, make_subdir, open_file};
use crate::error::{Result, io_err};

/// Size of the sync file (one page: what is mapped).
const FILE_LEN: u64 = 4096;
/// Where the generation word lives.
const WORD_AT: usize = 64;
/// Where the published end of the log lives (its `seq` at +16).
const APPENDED_AT: usize = 128;
/// Where a compaction notes the segment it is moving to, until it has sealed the old one.
const COMPACTING_AT: usize = 192;
/// Where the epoch lives.
const EPOCH_AT: usize = 196;
/// Where the highest segment the log has reached is noted: `seg u64 | crc32 u32`.
const HIGHEST_AT: usize = 200;
/// Longest sleep on the generation word before looking at the mark again.
pub(crate) const WAIT_MAX: Duration = Duration::from_millis(5);
/// How long a waiter sleeps between looks when the file cannot be mapped.
const POLL: Duration = Duration::from_micros(100);

/// The sync file of one queue directory, as one handle sees it.
pub(crate) struct SyncFile {
    file: File,
    path: PathBuf,
    /// The shared read-only mapping; `None` where the file cannot be mapped.
    word: Option<Word>,
}

/// What the mark says: segment `seg` is on disk up to `off`, covering the durable transactions
/// up to number `seq`; the last fdatasync covered `batch` of them. Written in `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Mark {
    pub(crate) seg: u64,
    pub(crate) off: u64,
    pub(crate) seq: u32,
    pub(crate) batch: u32,
    pub(crate) epoch: u32,
}

/// The log's published end: complete up to `end` of segment `seg`, after `seq` transactions that
/// wait for durability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) seg: u64,
    pub(crate) end: u64,
    pub(crate) seq: u32,
}

/// Whether position (`seg`, `off`) lies past (`s`, `o`).
pub(crate) fn beyond(seg: u64, off: u64, s: u64, o: u64) -> bool {
    seg > s || (seg == s && off > o)
}

impl SyncFile {
    /// Opens `<dir>/run/sync` (creating `run/` with mode 0700), growing it to a page and mapping
    /// it. Caller holds the directory lock. A file that cannot be mapped (an odd filesystem) still works:
    /// waiters then poll every [`POLL`].
    pub(crate) fn open(dir: &Path, trust: crate::trust::Trust) -> Result<SyncFile> {
        let run = make_subdir(dir, RUN_DIR, trust)?;
        let path = run.join("sync");
        let file = open_file(&path, trust)?;
        let len = file.metadata().map_err(io_err(&path, "stat"))?.len();
        if len < FILE_LEN {
            // Written, not just extended: the page then has its disk block, and the small writes
            // of every commit never need a new one (they would fail on a full disk). The caller
            // holds the directory lock, so no other process uses a file this short.
            file.write_all_at(&[0u8; FILE_LEN as usize][len as usize..], len)
                .map_err(io_err(&path, "grow"))?;
        }
        let word = match Word::map(&file) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e,
                    "cannot map the sync file; group-commit waiters will poll");
                None
            }
        };
        Ok(SyncFile { file, path, word })
    }

    /// The mark; all zeros if missing or damaged, and no position (segment and offset 0) if
    /// written in an earlier epoch.
    pub(crate) fn read(&self) -> Mark {
        let mut b = [0u8; 32];
        if !self.fetch(&mut b, 0) || !crc_ok(&b) {
            return Mark::default();
        }
        let m = Mark {
            seg: u64_at(&b, 0),
            off: u64_at(&b, 8),
            seq: u32_at(&b, 16),
            batch: u32_at(&b, 20),
            epoch: u32_at(&b, 24),
        };
        if m.epoch == self.epoch() {
            m
        } else {
            Mark { seg: 0, off: 0, ..m }
        }
    }

    /// The current epoch; a leader takes it before it reads the published end, and writes its
    /// mark with it.
    pub(crate) fn epoch(&self) -> u32 {
        self.word_at(EPOCH_AT)
    }

    /// Voids every mark written so far. Caller holds the directory lock, after lowering what
    /// it had to (in that order: a leader that reads the new epoch then reads the lowered end).
    pub(crate) fn new_epoch(&self) -> Result<()> {
        self.put(EPOCH_AT, &self.epoch().wrapping_add(1).to_le_bytes())
    }

    /// Whether the mark says `off` of segment `seg` is on disk.
    #[cfg(test)]
    pub(crate) fn covers(&self, seg: u64, off: u64) -> bool {
        let m = self.read();
        !beyond(seg, off, m.seg, m.off)
    }

    /// Sets the mark. It need not be fsynced: it only ever claims what an fdatasync already
    /// did. Writers race only with a leader (others hold the directory lock); the loser's value
    /// is still true, and a reader that catches a torn mark sees zeros and syncs once more.
    pub(crate) fn write(&self, m: Mark) -> Result<()> {
        let mut b = [0u8; 28];
        b[..8].copy_from_slice(&m.seg.to_le_bytes());
        b[8..16].copy_from_slice(&m.off.to_le_bytes());
        b[16..20].copy_from_slice(&m.seq.to_le_bytes());
        b[20..24].copy_from_slice(&m.batch.to_le_bytes());
        b[24..28].copy_from_slice(&m.epoch.to_le_bytes());
        self.put(0, &with_crc(&b))
    }

    /// The published end of the log; `None` if missing or torn (being written).
    pub(crate) fn appended(&self) -> Option<Appended> {
        let mut b = [0u8; 24];
        if !self.fetch(&mut b, APPENDED_AT) {
            return None;
        }
        crc_ok(&b).then(|| Appended {
            seg: u64_at(&b, 0),
            end: u64_at(&b, 8),
            seq: u32_at(&b, 16),
        })
    }

    /// Publishes the end of the log after a write, counting one more waiting transaction if
    /// `waits`. Caller holds the directory lock, and the records up to `end` are completely in
    /// the file.
    pub(crate) fn publish(&self, seg: u64, end: u64, waits: bool) -> Result<()> {
        // The count alone, without its crc (it is read through the mapping where there is one:
        // no system call while the directory lock is held); a torn value only miscounts a
        // heuristic.
        let seq = self.word_at(APPENDED_AT + 16);
        let seq = if waits { seq.wrapping_add(1) } else { seq };
        self.put_appended(seg, end, seq)
    }

    /// Notes that a compaction is moving the log to segment `next` (0: none is unfinished).
    /// Caller holds the directory lock.
    pub(crate) fn note_compaction(&self, next: u64) -> Result<()> {
        self.put(COMPACTING_AT, &(next as u32).to_le_bytes())
    }

    /// Whether a reader at the end of segment `next - 1` must look for segment `next`: a
    /// compaction to it may have died before sealing.
    pub(crate) fn compaction_noted(&self, next: u64) -> bool {
        self.word_at(COMPACTING_AT) == next as u32
    }

    /// Copies bytes at `off` of the sync file into `b`: through the mapping where there is one
    /// (no system call; the page is the one `pwrite` writes), else with `pread`. A record read
    /// while it is being written fails its crc, as with `pread`.
    fn fetch(&self, b: &mut [u8], off: usize) -> bool {
        match &self.word {
            Some(w) => {
                for (i, chunk) in b.chunks_mut(4).enumerate() {
                    let v = w.at(off + 4 * i).load(Ordering::Acquire).to_ne_bytes();
                    chunk.copy_from_slice(&v[..chunk.len()]);
                }
                true
            }
            None => self.file.read_exact_at(b, off as u64).is_ok(),
        }
    }

    /// Whether the log has reached a segment after `seg` (see [`HIGHEST_AT`]).
    pub(crate) fn moved_past(&self, seg: u64) -> bool {
        self.highest().is_some_and(|h| h > seg)
    }

    /// The highest segment noted; `None` if missing or torn.
    fn highest(&self) -> Option<u64> {
        let mut b = [0u8; 12];
        (self.fetch(&mut b, HIGHEST_AT) && crc_ok(&b)).then(|| u64_at(&b, 0))
    }

    /// Notes that the log has reached segment `seg`: raises the highest segment noted, or sets
    /// it to `seg` if `reset` (at open, where `seg` is the highest segment in the directory, so
    /// anything above it is stale). Caller holds the directory lock.
    pub(crate) fn note_segment(&self, seg: u64, reset: bool) -> Result<()> {
        if !reset && self.highest().is_some_and(|h| h >= seg) {
            return Ok(());
        }
        self.put(HIGHEST_AT, &with_crc(&seg.to_le_bytes()))
    }

    /// The little-endian `u32` at `off` of the sync file (0 if it cannot be read).
    fn word_at(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        if !self.fetch(&mut b, off) {
            return 0;
        }
        u32::from_le_bytes(b)
    }

    /// Writes `bytes` at `off` of the sync file.
    fn put(&self, off: usize, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all_at(bytes, off as u64)
            .map_err(io_err(&self.path, "write"))
    }

    fn put_appended(&self, seg: u64, end: u64, seq: u32) -> Result<()> {
        let mut b = [0u8; 20];
        b[..8].copy_from_slice(&seg.to_le_bytes());
        b[8..16].copy_from_slice(&end.to_le_bytes());
        b[16..20].copy_from_slice(&seq.to_le_bytes());
        self.put(APPENDED_AT, &with_crc(&b))
    }

    /// The log was found to end at `end` of segment `seg` (a repair cut it, it shrank, or it was
    /// just opened): neither the mark nor the published end may claim anything past it, or later
    /// records written there would count as on disk before any fdatasync. Caller holds the
    /// directory lock.
    pub(crate) fn clamp(&self, seg: u64, end: u64) -> Result<()> {
        let m = self.read();
        let mark_past = beyond(m.seg, m.off, seg, end);
        let end_past = match self.appended() {
            Some(a) if !beyond(a.seg, a.end, seg, end) => false,
            a => {
                self.put_appended(seg, end, a.map_or(0, |a| a.seq))?;
                true
            }
        };
        if mark_past || end_past {
            // After the end is lowered: a leader that read the old end holds the old epoch.
            self.new_epoch()?;
        }
        Ok(())
    }

    /// The generation; take it before looking at the mark, then [`SyncFile::wait`] on it.
    pub(crate) fn generation(&self) -> u32 {
        self.word.as_ref().map_or(0, |w| w.get().load(Ordering::Acquire))
    }

    /// Takes the leader's `flock` on the file without waiting; `false` if another handle holds
    /// it.
    pub(crate) fn try_lock_leader(&self) -> Result<bool> {
        match self.file.try_lock() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(io_err(&self.path, "lock")(e)),
        }
    }

    /// Lets go of the leader's `flock`.
    pub(crate) fn unlock_leader(&self) {
        let _ = self.file.unlock();
    }

    /// Moves the generation on and wakes its sleepers. The word is written with `pwrite`, never
    /// through the mapping (which is read-only): a write fault on a full or copy-on-write
    /// filesystem would kill the process with SIGBUS, where `pwrite` just fails, and then the
    /// sleepers look again after [`WAIT_MAX`].
    pub(crate) fn bump_and_wake(&self) {
        let Some(w) = &self.word else { return };
        let next = w.get().load(Ordering::Acquire).wrapping_add(1);
        if self
            .file
            .write_all_at(&next.to_ne_bytes(), WORD_AT as u64)
            .is_ok()
        {
            w.wake();
        }
    }

    /// Sleeps until a leader finishes (the generation moves on from `seen`), at most `timeout`
    /// (and at most [`WAIT_MAX`]); may return early.
    pub(crate) fn wait(&self, seen: u32, timeout: Duration) {
        let timeout = timeout.min(WAIT_MAX);
        match &self.word {
            Some(w) => w.wait(seen, timeout),
            None => std::thread::sleep(POLL.min(timeout)),
        }
    }
}

/// The generation word in a shared mapping of the sync file.
struct Word {
    map: NonNull<libc::c_void>,
}

// SAFETY: the mapping is only reached through `&AtomicU32`, which is Send + Sync.
unsafe impl Send for Word {}
// SAFETY: as above.
unsafe impl Sync for Word {}

impl Word {
    fn map(file: &File) -> std::io::Result<Word> {
        // SAFETY: a fresh read-only shared mapping of one page of a file at least that long
        // (grown by the caller, and never shrunk by the queue); unmapped in Drop. Reading a page
        // that is a hole in the file maps the zero page; only a file cut shorter from outside
        // could fault.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FILE_LEN as usize,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Word {
            map: NonNull::new(p).expect("mmap returned null"),
        })
    }

    fn get(&self) -> &AtomicU32 {
        self.at(WORD_AT)
    }

    fn at(&self, off: usize) -> &AtomicU32 {
        assert!(off.is_multiple_of(4) && off + 4 <= FILE_LEN as usize);
        // SAFETY: `off` is inside the page and 4-byte aligned (the mapping is page aligned); the
        // memory lives as long as `self`, and is only ever accessed atomically.
        unsafe { &*self.map.as_ptr().cast::<u8>().add(off).cast::<AtomicU32>() }
    }

    fn wait(&self, seen: u32, timeout: Duration) {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: a futex wait on a live, aligned u32 with a valid timeout; it returns at once
        // if the word is no longer `seen`. A shared (not private) futex: other processes wake it.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.get().as_ptr(),
                libc::FUTEX_WAIT,
                seen,
                &ts as *const libc::timespec,
            );
        }
    }

    fn wake(&self) {
        // SAFETY: a futex wake on a live, aligned u32.
        unsafe {
            libc::syscall(libc::SYS_futex, self.get().as_ptr(), libc::FUTEX_WAKE, i32::MAX);
        }
    }
}

impl Drop for Word {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `map`; no reference to it outlives `self`.
        unsafe {
            libc::munmap(self.map.as_ptr(), FILE_LEN as usize);
        }
    }
}

/// `b` followed by its crc32.
fn with_crc<const N: usize>(b: &[u8; N]) -> Vec<u8> {
    let mut v = b.to_vec();
    v.extend_from_slice(&crc32fast::hash(b).to_le_bytes());
    v
}

/// Whether the last four bytes of `b` are the crc32 of the rest.
fn crc_ok(b: &[u8]) -> bool {
    let (data, crc) = b.split_at(b.len() - 4);
    crc32fast::hash(data).to_le_bytes() == crc
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a mark in the current epoch, as a leader that took it just now would.
    fn write_mark(s: &SyncFile, seg: u64, off: u64, seq: u32, batch: u32) {
        s.write(Mark {
            seg,
            off,
            seq,
            batch,
            epoch: s.epoch(),
        })
        .unwrap();
    }

    fn open() -> (tempfile::TempDir, SyncFile) {
        let d = tempfile::tempdir().unwrap();
        let s = SyncFile::open(d.path(), crate::trust::Trust::Owner).unwrap();
        (d, s)
    }

    #[test]
    fn a_new_sync_file_claims_nothing() {
        let (_d, s) = open();
        assert_eq!(s.read(), Mark::default());
        assert_eq!(s.appended(), None);
        assert!(!s.covers(1, 10));
    }

    #[test]
    fn publish_counts_waiting_transactions() {
        let (_d, s) = open();
        write_mark(&s, 1, 100, 0, 3);
        s.publish(1, 200, true).unwrap();
        s.publish(1, 250, false).unwrap(); // a lazy write is not counted
        s.publish(1, 300, true).unwrap();
        s.publish(1, 400, true).unwrap();
        assert_eq!(
            s.appended(),
            Some(Appended {
                seg: 1,
                end: 400,
                seq: 3
            })
        );
        // The mapping shows the count as written.
        assert_eq!(s.word_at(APPENDED_AT + 16), 3);
    }

    #[test]
    fn clamp_takes_back_claims_past_the_end_of_the_log() {
        let (_d, s) = open();
        write_mark(&s, 2, 5000, 7, 2);
        s.publish(2, 6000, true).unwrap();
        s.clamp(2, 4000).unwrap();
        assert!(!s.covers(2, 4001), "the mark may not cover bytes past the end");
        assert_eq!(s.read().seq, 7, "the counters survive");
        assert_eq!(s.appended().map(|a| (a.seg, a.end)), Some((2, 4000)));
        // A later segment is past any position of an earlier one.
        write_mark(&s, 3, 10, 7, 2);
        s.clamp(2, 4000).unwrap();
        assert!(!s.covers(2, 1));
        // Claims below the end stay.
        write_mark(&s, 2, 100, 7, 2);
        s.publish(2, 3000, false).unwrap();
        s.clamp(2, 4000).unwrap();
        assert!(s.covers(2, 100));
        assert_eq!(s.appended().map(|a| a.end), Some(3000));
    }

    #[test]
    fn torn_records_read_as_missing() {
        let (d, s) = open();
        s.publish(1, 300, true).unwrap();
        write_mark(&s, 1, 300, 1, 1);
        let f = File::options()
            .write(true)
            .open(d.path().join(RUN_DIR).join("sync"))
            .unwrap();
        f.write_all_at(&[0xff], 3).unwrap();
        f.write_all_at(&[0xff], APPENDED_AT as u64 + 9).unwrap();
        assert_eq!(s.read(), Mark::default());
        assert_eq!(s.appended(), None);
    }

    #[test]
    fn a_compaction_note_names_the_next_segment_until_cleared() {
        let (_d, s) = open();
        assert!(!s.compaction_noted(2), "a new file notes nothing");
        s.note_compaction(2).unwrap();
        assert!(s.compaction_noted(2));
        assert!(!s.compaction_noted(3));
        s.note_compaction(0).unwrap();
        assert!(!s.compaction_noted(2));
    }

    #[test]
    fn a_mark_from_before_a_clamp_is_void_however_late_it_lands() {
        let (_d, s) = open();
        s.publish(1, 1000, true).unwrap();
        // A leader takes the epoch, then the published end...
        let epoch = s.epoch();
        let end = s.appended().unwrap().end;
        // ...a repair cuts the log below that end meanwhile...
        s.clamp(1, 500).unwrap();
        // ...and the leader's mark lands after the clamp.
        s.write(Mark {
            seg: 1,
            off: end,
            seq: 1,
            batch: 1,
            epoch,
        })
        .unwrap();
        assert!(!s.covers(1, 600), "a late mark claims bytes past the cut");
        assert_eq!(s.read().seq, 1, "the counters of a void mark still count");
        // A leader starting now sees the new epoch and the lowered end.
        let epoch = s.epoch();
        assert_eq!(s.appended().unwrap().end, 500);
        s.write(Mark {
            seg: 1,
            off: 500,
            seq: 1,
            batch: 1,
            epoch,
        })
        .unwrap();
        assert!(s.covers(1, 500));
        // A new epoch voids every mark.
        s.new_epoch().unwrap();
        assert!(!s.covers(1, 1));
    }

    #[test]
    fn the_highest_segment_only_rises_except_at_open() {
        let (_d, s) = open();
        assert!(!s.moved_past(1), "a new file notes nothing");
        s.note_segment(3, false).unwrap();
        assert!(s.moved_past(2));
        assert!(!s.moved_past(3));
        s.note_segment(2, false).unwrap();
        assert!(s.moved_past(2), "a lower segment does not lower it");
        s.note_segment(2, true).unwrap();
        assert!(!s.moved_past(2), "an open sets what the directory holds");
    }
}
