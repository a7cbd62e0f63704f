//! Repairs to the log: a torn tail left by a dead writer is truncated, damage in the middle is
//! skipped (and counted), a segment that shrank is read again, and files the queue cannot use
//! are moved to `<dir>/corrupt/` (with the ids they hold noted, so that none is reused).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{Log, Step};
use crate::dir::make_subdir;
use crate::error::{Error, Result, io_err};
use crate::format::{self, FRAME_LEN, Frame, Record, SEG_HEADER_LEN, decode, parse_frame};
use crate::sync_file::SyncFile;

impl Log {
    /// Nothing to read at `self.offset`: the end, unless the file shrank below it.
    pub(super) fn at_eof(&mut self, sync: &SyncFile) -> Result<Step> {
        let len = self.file_len()?;
        if len < SEG_HEADER_LEN {
            return Err(Error::Corrupt {
                path: self.seg_path.clone(),
                detail: "the segment was cut shorter than its header by something other than \
                         the queue; move it out of the directory and open the queue again"
                    .into(),
            });
        }
        if len < self.offset {
            tracing::warn!(file = %self.seg_path.display(), len, offset = self.offset,
                "log segment shrank below what was read; rebuilding the index");
            sync.clamp(self.seg_no, len)?;
            self.reload()?;
            return Ok(Step::More);
        }
        Ok(Step::End)
    }

    /// Damage at `pos`: skip to the next valid record, or truncate a torn tail.
    pub(super) fn repair(&mut self, pos: u64, sync: &SyncFile) -> Result<()> {
        let len = self.file_len()?;
        let mut rest = vec![0u8; len.saturating_sub(pos) as usize];
        self.seg
            .read_exact_at(&mut rest, pos)
            .map_err(io_err(&self.seg_path, "read"))?;
        match format::resync(&rest) {
            Some(skip) => {
                tracing::warn!(file = %self.seg_path.display(), offset = pos, bytes = skip,
                    "skipping damaged bytes in the log (a job or change there is lost)");
                self.corrupt += 1;
                self.offset = pos + skip as u64;
            }
            None => {
                tracing::warn!(file = %self.seg_path.display(), offset = pos, bytes = len - pos,
                    "truncating the torn tail of a writer that died while appending");
                self.seg
                    .set_len(pos)
                    .map_err(io_err(&self.seg_path, "truncate"))?;
                self.file_len = pos;
                sync.clamp(self.seg_no, pos)?;
                self.offset = pos;
            }
        }
        Ok(())
    }
}

/// Moves a file the queue cannot use into `<dir>/corrupt/` and says so.
pub(super) fn move_aside(dir: &Path, path: &Path, why: &str, trust: crate::trust::Trust) -> Result<()> {
    let corrupt = make_subdir(dir, "corrupt", trust)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let dest = corrupt.join(format!("{name}.{}", stamp.as_millis()));
    fs::rename(path, &dest).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        detail: format!("{why}; moving it to {} failed: {e}", dest.display()),
    })?;
    tracing::warn!(file = %path.display(), moved_to = %dest.display(), reason = why,
        "moved an unusable file out of the queue directory");
    Ok(())
}

/// The highest id found in valid records of a damaged segment (so that ids are never reused).
pub(super) fn salvage_next_id(f: &fs::File) -> u64 {
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return 0;
    };
    let mut data = vec![0u8; len as usize];
    if f.read_exact_at(&mut data, 0).is_err() {
        return 0;
    }
    let mut next = 0;
    let mut i = 0;
    while i + FRAME_LEN <= data.len() {
        if let Frame::Complete { total, body } = parse_frame(&data[i..])
            && let Some(rec) = decode(body)
        {
            next = next.max(match rec {
                Record::Put { id, .. } => id + 1,
                Record::Snapshot(s) => s.id + 1,
                Record::NextId { next } => next,
                _ => 0,
            });
            i += total;
        } else {
            i += 1;
        }
    }
    next
}
