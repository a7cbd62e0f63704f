//! Compaction: when the log is big and mostly dead (or on request), the live state is written
//! into segment N+1, which is renamed into place; segment N is sealed and removed.
//!
//! Runs under the directory lock, like every other change to the log. Between the rename and the
//! seal, the compaction note in `run/sync` tells readers at the end of segment N to look for N+1,
//! should the compactor die in between (see `Log::catch_up`).

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Log, seal, segment_path};
use crate::dir::create_tmp;
use crate::error::{Result, io_err};
use crate::format::{self, Record, encode};
use crate::sync::{SyncPoint, sync, sync_dir};
use crate::sync_file::{Mark, SyncFile};

/// How long after a failed compaction (say, on a full disk) the next try waits, unless the log
/// has grown by a quarter since: a try after every command would only fill the log with warnings.
const RETRY_AFTER: Duration = Duration::from_secs(30);

impl Log {
    /// Compacts when the log is big and mostly dead, unless a compaction failed a short while
    /// ago (see [`RETRY_AFTER`]).
    pub(crate) fn maybe_compact(&mut self, min_bytes: u64, now: u64, sync: &SyncFile) -> Result<()> {
        if self.offset < min_bytes || self.index.live_bytes.saturating_mul(2) >= self.offset {
            return Ok(());
        }
        if let Some((bytes, at)) = self.compact_retry
            && self.offset < bytes
            && Instant::now() < at
        {
            return Ok(());
        }
        let result = self.compact(now, sync);
        self.compact_retry = match result {
            Ok(()) => None,
            Err(_) => Some((
                self.offset.saturating_add(self.offset / 4),
                Instant::now() + RETRY_AFTER,
            )),
        };
        result
    }

    /// Writes the live state into segment N+1, seals segment N and switches to N+1.
    pub(crate) fn compact(&mut self, now: u64, sync: &SyncFile) -> Result<()> {
        if self.seg_no >= format::MAX_SEGMENT {
            // Only a renamed file can get here; keeping the log whole beats compacting it.
            tracing::warn!(
                segment = self.seg_no,
                "segment number at its limit; not compacting"
            );
            return Ok(());
        }
        let next = self.seg_no + 1;
        let t0 = std::time::Instant::now();
        let tmp = self.dir.join(format!("log.{next}.tmp"));
        let path = segment_path(&self.dir, next);
        let f = create_tmp(&tmp, self.trust)?;
        let moved = self.write_next(&f, &tmp, next, now).and_then(|written| {
            // From the rename until the seal, a reader at the end of this segment must look for
            // the next one (should this process die in between); the note tells it to.
            sync.note_compaction(next)?;
            fs::rename(&tmp, &path).map_err(io_err(&tmp, "rename"))?;
            Ok(written)
        });
        let written = match moved {
            Ok(written) => written,
            Err(e) => {
                // A full disk is the likely cause: the half-written file would hold the last free
                // space, and the commands that free space (delete) could not append.
                drop(f);
                if let Err(e) = fs::remove_file(&tmp) {
                    tracing::warn!(file = %tmp.display(), error = %e,
                        "could not remove the file of a failed compaction");
                }
                return Err(e);
            }
        };
        sync_dir(&self.dir, SyncPoint::CompactionDir)?;
        // After the rename (the note covers a death before this line): a handle idle at the end
        // of this segment follows, even once the note is cleared.
        if let Err(e) = sync.note_segment(next, false) {
            tracing::warn!(error = %e, "could not note the new segment");
        }
        // The new segment is complete; a lost seal only means readers find it by listing (the
        // note stays for them).
        if seal(&self.seg, self.offset, next).is_ok()
            && let Err(e) = sync.note_compaction(0)
        {
            // A note left set only costs readers a look-up at the end of the old segment.
            tracing::warn!(error = %e, "could not clear the compaction note");
        }
        let old = self.seg_path.clone();
        let old_len = self.offset;
        self.seg_no = next;
        self.seg = Arc::new(f);
        self.seg_path = path;
        self.file_len = written;
        self.reload()?;
        self.catch_up(sync)?;
        if let Err(e) = fs::remove_file(&old) {
            tracing::warn!(file = %old.display(), error = %e, "could not remove a compacted segment");
        }
        // The new segment was synced up to `written` above. A mark that cannot be written only
        // costs one more fdatasync.
        let m = sync.read();
        if let Err(e) = sync.write(Mark {
            seg: next,
            off: written,
            epoch: sync.epoch(),
            ..m
        }) {
            tracing::warn!(error = %e, "could not move the durable mark after compacting");
        }
        tracing::info!(segment = next, before = old_len, after = written, jobs = self.index.jobs.len(),
            took = ?t0.elapsed(), "compacted the log");
        Ok(())
    }

    /// Writes the live state as segment `next` into `f` (the temporary file `tmp`) and syncs
    /// it; returns its length.
    fn write_next(&self, f: &File, tmp: &Path, next: u64, now: u64) -> Result<u64> {
        let mut out = Vec::with_capacity(1 << 20);
        out.extend_from_slice(&format::segment_header(next));
        encode(
            &Record::NextId {
                next: self.index.next_id,
            },
            &mut out,
        );
        for t in &self.index.tubes {
            if t.pause_until > now {
                let r = Record::Pause {
                    tube: &t.name,
                    until_ms: t.pause_until,
                    secs: t.pause_secs,
                };
                encode(&r, &mut out);
            }
            if (t.total_jobs | t.cmd_delete | t.cmd_pause) != 0 {
                let r = Record::TubeCounters {
                    tube: &t.name,
                    total_jobs: t.total_jobs,
                    cmd_delete: t.cmd_delete,
                    cmd_pause: t.cmd_pause,
                };
                encode(&r, &mut out);
            }
        }
        let mut ids: Vec<u64> = self.index.jobs.keys().copied().collect();
        ids.sort_unstable();
        let mut written = 0u64;
        let flush = |out: &mut Vec<u8>, written: &mut u64| -> Result<()> {
            f.write_all_at(out, *written).map_err(io_err(tmp, "write"))?;
            *written += out.len() as u64;
            out.clear();
            Ok(())
        };
        for id in ids {
            let j = &self.index.jobs[&id];
            let body = self.read_body(j.body_off, j.body_len)?;
            let mut s = self.index.snapshot_of(id).expect("job in index");
            s.body = &body;
            encode(&Record::Snapshot(s), &mut out);
            if out.len() >= 1 << 20 {
                flush(&mut out, &mut written)?;
            }
        }
        flush(&mut out, &mut written)?;
        // Always synced, whatever `fsync` says: the old segment is deleted next, and with it what
        // other handles (with fsync) had made durable there.
        sync(f, SyncPoint::CompactionFile).map_err(io_err(tmp, "fsync"))?;
        Ok(written)
    }
}
