//! Which tubes the handles of every process watch, in `<dir>/run/watch/`. beanstalkd keeps a
//! tube while a connection watches it, jobs or not: pausing the empty tube a runner waits on
//! works there, so it must here, although the runner is another process.
//!
//! A handle watches the tubes of its latest `reserve`, from then until its next `reserve` with
//! other tubes, or until it closes (as a beanstalkd connection keeps its watch list). It says so
//! in a file of its own, `run/watch/<owner>`, one tube per line, which it holds `flock`ed while
//! it lives: a file nobody holds was left by a process that died, and whoever finds it removes
//! it. A new list is written to `<owner>.new`, locked, then renamed over the old file, so that a
//! reader only ever sees a whole list held by a live handle. Files in `run/` make no inotify
//! events for the waiters, who watch the queue directory only.
//!
//! The list is rewritten only when it changes, so a caller that shares one handle between
//! several watch lists (a server with many connections) should give each its own handle, as
//! each beanstalkd connection has its own watch list.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::dir::{RUN_DIR, create_tmp, make_subdir};
use crate::error::{Result, io_err};
use crate::trust::{self, Trust};

/// The subdirectory of `run/` that holds the watch lists.
const WATCH_DIR: &str = "watch";

/// This handle's watch list, as published.
pub(crate) struct Watching {
    /// The tubes, sorted.
    tubes: Vec<String>,
    /// `run/watch/<owner>`, held locked.
    _file: File,
    /// Its path, removed when the handle closes (`None` once a newer list took the name).
    path: Option<PathBuf>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Publishes that the handle `owner` watches `tubes`, unless `current` says so already.
pub(crate) fn publish(
    dir: &Path,
    trust: Trust,
    owner: u64,
    tubes: &[&str],
    current: &mut Option<Watching>,
) -> Result<()> {
    // Checked without allocating: a runner reserves from the same tubes again and again.
    let same = |w: &Watching| {
        tubes
            .iter()
            .all(|t| w.tubes.binary_search_by(|x| x.as_str().cmp(t)).is_ok())
            && w.tubes.iter().all(|x| tubes.contains(&x.as_str()))
    };
    if current.as_ref().is_some_and(same) {
        return Ok(());
    }
    let mut sorted: Vec<String> = tubes.iter().map(|t| t.to_string()).collect();
    sorted.sort();
    sorted.dedup();
    let watch_dir = make_subdir(&make_subdir(dir, RUN_DIR, trust)?, WATCH_DIR, trust)?;
    let path = watch_dir.join(format!("{owner:016x}"));
    let new = watch_dir.join(format!("{owner:016x}.new"));
    let file = create_tmp(&new, trust)?;
    file.lock().map_err(io_err(&new, "lock"))?;
    let text: String = sorted.iter().map(|t| format!("{t}\n")).collect();
    file.write_all_at(text.as_bytes(), 0)
        .map_err(io_err(&new, "write"))?;
    std::fs::rename(&new, &path).map_err(io_err(&new, "rename"))?;
    // The rename replaced the old file: dropping it must not remove the new one.
    if let Some(old) = current.as_mut() {
        old.path = None;
    }
    *current = Some(Watching {
        tubes: sorted,
        _file: file,
        path: Some(path),
    });
    Ok(())
}

/// How many live handles (of any process, this one included) watch each tube. Removes the lists
/// of handles that died. Errors only cost a tube's existence, so they are logged, not returned.
pub(crate) fn watched(dir: &Path, trust: Trust) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let watch_dir = dir.join(RUN_DIR).join(WATCH_DIR);
    let Ok(entries) = std::fs::read_dir(&watch_dir) else {
        return counts;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        else {
            continue;
        };
        if trust::check_file(&path, &file, trust).is_err() {
            continue;
        }
        match file.try_lock() {
            Ok(()) => {
                // Nobody holds it: its handle died (or, for `.new`, died before the rename).
                let _ = std::fs::remove_file(&path);
                continue;
            }
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::debug!(file = %path.display(), error = %e, "cannot look at a watch list");
                continue;
            }
        }
        if name.ends_with(".new") {
            continue;
        }
        let mut text = String::new();
        if (&file).take(64 << 10).read_to_string(&mut text).is_ok() {
            for tube in text.lines() {
                *counts.entry(tube.to_string()).or_default() += 1;
            }
        }
    }
    counts
}
