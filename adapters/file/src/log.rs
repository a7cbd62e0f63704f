//! The shared log's segments: finding the current one, replaying and catching up with it,
//! appending to it. Repairing damage lives in `log/repair.rs`, compaction in
//! `log/compaction.rs`.
//!
//! Every method that reads or writes the log runs while the caller holds the directory lock
//! (`<dir>/lock`), so the bytes past this process's offset were written completely by a live
//! writer, or are the torn tail of a dead one.

mod compaction;
mod repair;

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::dir::{create_tmp, open_file};
use crate::error::{Result, io_err};
use crate::format::{
    self, FRAME_LEN, Frame, Record, SEG_HEADER_LEN, decode, encode, parse_frame, parse_segment_header,
};
use crate::index::Index;
use crate::sync::{SyncPoint, sync, sync_dir};
use crate::sync_file::SyncFile;
use crate::trust::Trust;
use repair::{move_aside, salvage_next_id};

/// How much of the log is read at once while catching up with much of it.
const CHUNK: usize = 4 << 20;
/// How much is read first: a catch-up usually finds a few records, or none, before the end.
const FIRST_READ: usize = 4096;
/// How far a segment is grown past its data, with zeros, when a write reaches its end. An
/// fdatasync after a write that grows the file must also write the inode (its size); one after a
/// write into zeros already on disk need not, and takes about two thirds of the time on ext4.
pub(crate) const PREALLOC: u64 = 1 << 20;
/// Zeros, to grow segments with.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Records this process has read back from the log (replays and catch-ups), for the test that
/// the handles of one process follow the log once (see `shared.rs`).
static RECORDS_READ: AtomicU64 = AtomicU64::new(0);

/// How many records this process has read back from logs (replaying them or catching up with
/// other processes' writes); records a handle appends itself are not read back. For tests.
#[doc(hidden)]
pub fn records_read() -> u64 {
    RECORDS_READ.load(Ordering::Relaxed)
}

pub(super) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("log.{n}"))
}

/// This process's view of the log: the current segment and the index built from it.
pub(crate) struct Log {
    dir: PathBuf,
    fsync: bool,
    /// Whom its files are made for.
    trust: Trust,
    /// Current segment number.
    seg_no: u64,
    /// Current segment.
    seg: Arc<File>,
    /// Its path.
    seg_path: PathBuf,
    /// End of what has been applied (= end of the log after a catch-up). The log ends at the
    /// first frame header that is all zeros, or at the end of the file.
    offset: u64,
    /// The segment's length when last looked at (data, then zeros).
    file_len: u64,
    /// The state.
    index: Index,
    /// Damaged records skipped.
    corrupt: u64,
    buf: Vec<u8>,
    /// After a failed compaction: no new try until the log reaches this size or this moment.
    compact_retry: Option<(u64, std::time::Instant)>,
}

enum Step {
    /// Read up to the window's end (or repaired damage): there may be more.
    More,
    /// Reached the end of the log.
    End,
    /// The segment is sealed; the log goes on in the one given.
    Seal(u64),
}

impl Log {
    /// Finds (or creates) the current segment and replays it. Caller holds the directory lock.
    pub(crate) fn open(dir: &Path, fsync: bool, trust: Trust, sync: &SyncFile) -> Result<Log> {
        let (seg_no, seg, seg_path, floor) = open_current(dir, fsync, trust)?;
        let mut log = Log {
            dir: dir.to_path_buf(),
            fsync,
            trust,
            seg_no,
            seg: Arc::new(seg),
            seg_path,
            offset: SEG_HEADER_LEN,
            file_len: 0,
            index: Index::new(),
            corrupt: 0,
            buf: Vec::new(),
            compact_retry: None,
        };
        log.catch_up(sync)?;
        if floor > log.index.next_id {
            let mut out = Vec::new();
            encode(&Record::NextId { next: floor }, &mut out);
            log.index.apply(&Record::NextId { next: floor }, 0);
            log.write(&mut out)?;
        }
        Ok(log)
    }

    /// The current segment's number.
    pub(crate) fn seg_no(&self) -> u64 {
        self.seg_no
    }

    /// The current segment's path (for errors about it).
    pub(crate) fn seg_path(&self) -> &Path {
        &self.seg_path
    }

    /// The current segment, for a group commit leader to fdatasync without holding the log.
    pub(crate) fn seg_file(&self) -> Arc<File> {
        self.seg.clone()
    }

    /// The end of what has been applied: the end of the log after a catch-up or a write.
    pub(crate) fn end(&self) -> u64 {
        self.offset
    }

    /// The state built from the log.
    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    /// The state, for a transaction that applies its records before it writes them.
    pub(crate) fn index_mut(&mut self) -> &mut Index {
        &mut self.index
    }

    /// How many damaged records were skipped.
    pub(crate) fn corrupt(&self) -> u64 {
        self.corrupt
    }

    /// Reads and applies everything appended since the last call, repairing damage.
    ///
    /// It does not stat the segment: on Linux a stat between a write and the fdatasync that
    /// follows makes the write update the inode's times, which the fdatasync then writes too
    /// (measured: a third fewer fdatasyncs per second). The end is found by reading.
    pub(crate) fn catch_up(&mut self, sync: &SyncFile) -> Result<()> {
        let mut window = FIRST_READ;
        loop {
            match self.read_some(window, sync)? {
                Step::More => window = CHUNK,
                Step::End => {
                    // A compaction renames `log.<N+1>` into place, then seals N, all under the
                    // lock; N+1 beside an unsealed N means the compactor died in between. N+1 is
                    // whole (synced before the rename): go on there, never append to N again.
                    // The note spares the look-up (a path walk, a fifth of a transaction's time)
                    // while no compaction is unfinished. A higher segment noted in run/sync says
                    // the same once the note is gone (N+1 opened by another process, which
                    // deleted N, and perhaps compacted in turn).
                    let before = self.seg_no;
                    let look = before < format::MAX_SEGMENT
                        && (sync.moved_past(before)
                            || (sync.compaction_noted(before + 1)
                                && segment_path(&self.dir, before + 1).exists()));
                    if look {
                        let (old, old_end) = (self.seg.clone(), self.offset);
                        self.switch(before + 1)?;
                        if self.seg_no != before {
                            if let Err(e) = sync.note_segment(self.seg_no, false) {
                                tracing::warn!(error = %e, "could not note the new segment");
                            }
                            tracing::warn!(
                                segment = before,
                                now = self.seg_no,
                                "the log went on past an unsealed segment (a compaction died); sealing it and switching"
                            );
                            // Seal N as the compactor would have, so that a handle still reading
                            // it (a process idle since) follows too.
                            if let Err(e) = seal(&old, old_end, self.seg_no) {
                                tracing::warn!(segment = before, error = %e,
                                    "could not seal the segment of a compaction that died");
                            }
                            window = FIRST_READ;
                            continue;
                        }
                    }
                    // Caught up: a window grown to read much of the log (a replay, a busy other
                    // process) is not kept, or every process would hold it for good.
                    self.buf.shrink_to(FIRST_READ);
                    return Ok(());
                }
                Step::Seal(next) => {
                    window = FIRST_READ;
                    self.switch(next)?;
                }
            }
        }
    }

    /// Re-reads the current segment from its start.
    fn reload(&mut self) -> Result<()> {
        self.index = Index::new();
        self.offset = SEG_HEADER_LEN;
        Ok(())
    }

    fn switch(&mut self, next: u64) -> Result<()> {
        let (n, seg, path, _) = open_current(&self.dir, self.fsync, self.trust)?;
        if n != self.seg_no {
            tracing::debug!(
                from = self.seg_no,
                to = n,
                sealed_to = next,
                "switching log segment"
            );
            self.seg_no = n;
            self.seg = Arc::new(seg);
            self.seg_path = path;
            self.compact_retry = None;
            self.reload()?;
        }
        Ok(())
    }

    /// Reads up to `window` bytes from `self.offset` and applies the records in them.
    fn read_some(&mut self, window: usize, sync: &SyncFile) -> Result<Step> {
        let start = self.offset;
        let mut want = window;
        let mut buf = std::mem::take(&mut self.buf);
        let result = 'read: loop {
            buf.resize(want, 0);
            let got = match read_up_to(&self.seg, &mut buf, start) {
                Ok(n) => n,
                Err(e) => break Err(io_err(&self.seg_path, "read")(e)),
            };
            if got == 0 {
                break self.at_eof(sync);
            }
            // Whether the file ends within what was read (else more may follow the window).
            let eof = got < want;
            let mut i = 0;
            while i < got {
                let pos = start + i as u64;
                // Zeros where a frame header would be (or as the last bytes of the file): the end.
                let look = FRAME_LEN.min(got - i);
                if look < FRAME_LEN && !eof {
                    break; // the window ends inside a frame header: read on from here
                }
                if buf[i..i + look].iter().all(|&b| b == 0) {
                    self.offset = pos;
                    // Zeros below the durable mark are damage (say, a block the disk lost),
                    // not the end: the records after them were synced, so they are kept.
                    let m = sync.read();
                    if m.seg == self.seg_no && pos < m.off {
                        break 'read self.repair(pos, sync).map(|_| Step::More);
                    }
                    break 'read Ok(Step::End);
                }
                match parse_frame(&buf[i..got]) {
                    Frame::Complete { total, body } => {
                        i += total;
                        match decode(body) {
                            Some(rec) => {
                                RECORDS_READ.fetch_add(1, Ordering::Relaxed);
                                let body_off = pos + total as u64 - body_len(&rec);
                                if let Some(next) = self.index.apply(&rec, body_off) {
                                    self.offset = start + i as u64;
                                    break 'read Ok(Step::Seal(next));
                                }
                            }
                            None => {
                                tracing::warn!(file = %self.seg_path.display(), offset = pos,
                                    "skipping a log record of unknown type or shape");
                                self.corrupt += 1;
                            }
                        }
                    }
                    Frame::Incomplete { need } if !eof => {
                        if i == 0 {
                            // A record larger than the window: read exactly it, if the file
                            // holds that much (a damaged length could ask for 256 MiB).
                            let need = need.unwrap_or(FRAME_LEN).max(want);
                            if need > CHUNK && pos + need as u64 > self.file_len()? {
                                break 'read self.repair(pos, sync).map(|_| Step::More);
                            }
                            want = need;
                            continue 'read;
                        }
                        break; // read on from pos
                    }
                    Frame::Incomplete { .. } | Frame::Bad => {
                        self.offset = pos;
                        break 'read self.repair(pos, sync).map(|_| Step::More);
                    }
                }
            }
            self.offset = start + i as u64;
            break Ok(Step::More);
        };
        buf.clear();
        if buf.capacity() > CHUNK {
            buf.shrink_to(CHUNK);
        }
        self.buf = buf;
        result
    }

    /// The segment's length, looked up (see [`Log::catch_up`] on why this is done rarely).
    fn file_len(&mut self) -> Result<u64> {
        let len = self.seg.metadata().map_err(io_err(&self.seg_path, "stat"))?.len();
        self.file_len = len;
        Ok(len)
    }

    /// Writes already-applied bytes at the end, followed by a zero frame header, so that what
    /// lies after them on disk is never read as log (stale bytes of writes a power loss undid are
    /// overwritten before they could be). On failure the bytes are cut off again and the index is
    /// rebuilt from the file, so memory never runs ahead of the log.
    pub(crate) fn write(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let n = out.len();
        let end = self.offset + n as u64;
        self.make_room(end + FRAME_LEN as u64);
        out.extend_from_slice(&ZEROS[..FRAME_LEN]);
        let written = self.seg.write_all_at(out, self.offset);
        out.truncate(n);
        match written {
            Ok(()) => {
                self.offset = end;
                self.file_len = self.file_len.max(end + FRAME_LEN as u64);
                Ok(())
            }
            Err(e) => {
                let err = io_err(&self.seg_path, "append to")(e);
                let _ = self.seg.set_len(self.offset);
                self.file_len = self.offset;
                self.reload()?;
                Err(err)
            }
        }
    }

    /// Grows the segment with [`PREALLOC`] bytes of zeros past `need` if it is shorter. Runs
    /// under the directory lock, after a catch-up: nothing lies past the file's length or past
    /// `self.offset`, so the zeros never cover data. If the disk is too full to grow, the record
    /// is written anyway (growing the file itself) and the zeros are cut off again.
    fn make_room(&mut self, need: u64) {
        if need <= self.file_len {
            return;
        }
        if self.file_len().is_err() || need <= self.file_len {
            return;
        }
        let from = self.file_len.max(need);
        let to = need + PREALLOC;
        let mut at = from;
        while at < to {
            let n = ((to - at) as usize).min(ZEROS.len());
            if let Err(e) = self.seg.write_all_at(&ZEROS[..n], at) {
                tracing::debug!(file = %self.seg_path.display(), error = %e,
                    "could not grow the log segment ahead of its data");
                let _ = self.seg.set_len(self.file_len);
                return;
            }
            at += n as u64;
        }
        self.file_len = to;
    }

    /// Reads a body from the current segment.
    pub(crate) fn read_body(&self, off: u64, len: u32) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len as usize];
        self.seg
            .read_exact_at(&mut v, off)
            .map_err(io_err(&self.seg_path, "read"))?;
        Ok(v)
    }
}

/// Appends a seal at `at` of a segment: the log goes on in segment `next`.
pub(super) fn seal(seg: &File, at: u64, next: u64) -> std::io::Result<()> {
    let mut rec = Vec::new();
    encode(&Record::Seal { next_segment: next }, &mut rec);
    seg.write_all_at(&rec, at)
}

/// Reads from `at` until `buf` is full or the file ends; returns how much was read.
fn read_up_to(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], at + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Bytes after the body's start in a record (the body comes last in `Put` and `Snapshot`).
fn body_len(rec: &Record<'_>) -> u64 {
    match rec {
        Record::Put { body, .. } => body.len() as u64,
        Record::Snapshot(s) => s.body.len() as u64,
        _ => 0,
    }
}

/// The number of a segment named `log.<rest>`: canonical decimal (`log.07` or `log.+7` would be
/// read as segment 7 and then opened as `log.7`, another file), at most [`format::MAX_SEGMENT`].
fn segment_number(rest: &str) -> Option<u64> {
    let n: u64 = rest.parse().ok()?;
    (n <= format::MAX_SEGMENT && n.to_string() == rest).then_some(n)
}

/// Finds the highest valid segment (moving foreign ones aside, removing compacted ones and
/// leftover temporaries), or creates segment 1. Returns (number, file, path, id floor).
fn open_current(dir: &Path, fsync: bool, trust: Trust) -> Result<(u64, File, PathBuf, u64)> {
    let mut segs = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err(dir, "list"))? {
        let e = e.map_err(io_err(dir, "list"))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("log.") else {
            continue;
        };
        if rest.ends_with(".tmp") {
            // Written by a compaction that died (compaction runs under the lock we hold).
            let _ = fs::remove_file(e.path());
        } else if let Some(n) = segment_number(rest) {
            segs.push(n);
        } else {
            move_aside(dir, &e.path(), "not a segment name the queue writes", trust)?;
        }
    }
    segs.sort_unstable_by(|a, b| b.cmp(a));
    let highest_seen = segs.first().copied().unwrap_or(0);
    let mut floor = 0;
    let mut chosen = None;
    for &n in &segs {
        let path = segment_path(dir, n);
        if chosen.is_some() {
            // Older than the current segment: left over from a compaction.
            let _ = fs::remove_file(&path);
            continue;
        }
        let f = open_file(&path, trust)?;
        let mut h = [0u8; SEG_HEADER_LEN as usize];
        let check = match f.read_exact_at(&mut h, 0) {
            Err(_) => Err("shorter than a segment header"),
            Ok(()) => parse_segment_header(&h).and_then(|m| {
                if m == n {
                    Ok(())
                } else {
                    Err("header names another segment")
                }
            }),
        };
        match check {
            Ok(()) => chosen = Some((n, f, path)),
            Err(why) => {
                floor = floor.max(salvage_next_id(&f));
                move_aside(dir, &path, why, trust)?;
            }
        }
    }
    if let Some((n, f, path)) = chosen {
        return Ok((n, f, path, floor));
    }
    // Every file numbered `highest_seen` was moved aside above, so at the limit its name is free.
    let n = (highest_seen + 1).min(format::MAX_SEGMENT);
    let path = segment_path(dir, n);
    let tmp = dir.join(format!("log.{n}.tmp"));
    let f = create_tmp(&tmp, trust)?;
    f.write_all_at(&format::segment_header(n), 0)
        .map_err(io_err(&tmp, "write"))?;
    if fsync {
        sync(&f, SyncPoint::SegmentCreate).map_err(io_err(&tmp, "fsync"))?;
    }
    fs::rename(&tmp, &path).map_err(io_err(&tmp, "rename"))?;
    if fsync {
        sync_dir(dir, SyncPoint::SegmentCreateDir)?;
    }
    Ok((n, f, path, floor))
}
