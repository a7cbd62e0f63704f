//! Wake-ups for blocked `reserve` calls when any process writes to the queue directory.
//!
//! Linux inotify (through `libc`, no extra crate) watches the directory for `IN_MODIFY` (an
//! append to a segment by any process, this one included), `IN_MOVED_TO` and `IN_CREATE` (a new
//! segment after compaction), and `IN_DELETE` / `IN_MOVE_SELF` (the directory's files removed,
//! or the directory moved away, which the next look at the queue reports). The threads of one
//! process's handles on a directory share one inotify descriptor (see `shared.rs`): one of them polls it (the "leader") while the others wait on a condition
//! variable; every drained batch of events bumps a sequence number, so a waiter that took its snapshot of the sequence before
//! looking at the queue never misses a write made after it looked.
//!
//! The watch is made when a handle first waits, not when it opens: a handle that only puts (a
//! producer) holds no inotify instance (a per-user limit, 128 by default) and its writers make no
//! events for it. Making the watch moves the sequence number on, so the first wait returns at
//! once, and so does any wait on a snapshot taken before the watch existed: their callers look at
//! the queue again with the watch in place.
//!
//! Without inotify (not Linux, or the per-user instance limit is reached) waiters fall back to
//! polling every [`FALLBACK_POLL`]: a write by another process is then seen within that time.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often waiters look again when inotify is unavailable.
pub(crate) const FALLBACK_POLL: Duration = Duration::from_millis(10);

#[derive(Default)]
struct State {
    seq: u64,
    polling: bool,
}

/// Change notification for one process's handles on a directory (see `shared.rs`).
pub(crate) struct Notifier {
    dir: PathBuf,
    /// The watch, made at the first wait; `None` inside if inotify cannot be used.
    fd: OnceLock<Option<OwnedFd>>,
    state: Mutex<State>,
    cv: Condvar,
}

impl Notifier {
    /// A notifier for `dir`; the watch is made at the first [`Notifier::wait`].
    pub(crate) fn new(dir: &Path) -> Notifier {
        Notifier {
            dir: dir.to_path_buf(),
            fd: OnceLock::new(),
            state: Mutex::default(),
            cv: Condvar::new(),
        }
    }

    /// Makes the watch; falls back to polling (with a warning) if inotify cannot be used.
    fn watch(&self) -> Option<OwnedFd> {
        match watch(&self.dir) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e,
                    "inotify unavailable; blocked reserves poll every {FALLBACK_POLL:?}");
                None
            }
        }
    }

    /// The current sequence number; take it before looking at the queue.
    pub(crate) fn seq(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).seq
    }

    /// Blocks until something was written after `seen` was taken, or until `deadline`.
    /// May return early (spuriously); callers look at the queue again and call back.
    pub(crate) fn wait(&self, seen: u64, deadline: Instant) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.fd.get().is_none() {
            // Writes made before the watch existed were not seen. The watch is made and the
            // sequence moved on in one step under the lock, so whoever finds the watch in place
            // also finds the sequence moved past any snapshot taken before it: every waiter of
            // this handle goes back to look at the queue again, this caller included.
            self.fd.get_or_init(|| self.watch());
            g.seq += 1;
            self.cv.notify_all();
            return;
        }
        loop {
            if g.seq != seen {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let left = deadline - now;
            let Some(fd) = self.fd.get().and_then(Option::as_ref) else {
                drop(g);
                std::thread::sleep(left.min(FALLBACK_POLL));
                return;
            };
            if !g.polling {
                g.polling = true;
                drop(g);
                let ms = left.as_millis().saturating_add(1).min(i32::MAX as u128) as i32;
                let mut pfd = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut pfd, 1, ms) };
                let got = drain(fd);
                let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
                g.polling = false;
                if got {
                    g.seq += 1;
                }
                self.cv.notify_all();
                return;
            }
            g = self.cv.wait_timeout(g, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

fn watch(dir: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: plain syscalls; the fd is owned right away.
    unsafe {
        let raw = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(raw);
        // The directory removed (its `lock` deleted: `IN_DELETE_SELF` would come only once this
        // process closes the files it holds in it) or moved away: waiters must wake to find out.
        let mask =
            libc::IN_MODIFY | libc::IN_MOVED_TO | libc::IN_CREATE | libc::IN_DELETE | libc::IN_MOVE_SELF;
        if libc::inotify_add_watch(raw, path.as_ptr(), mask) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fd)
    }
}

/// Reads all pending events; true if there were any.
fn drain(fd: &OwnedFd) -> bool {
    let mut buf = [0u8; 4096];
    let mut got = false;
    loop {
        // SAFETY: reading into a local buffer of the given size.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return got;
        }
        got = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_taken_before_the_watch_existed_does_not_sleep() {
        // Two threads of one handle: one took its snapshot and looked before the other's first
        // wait made the watch. A write in between made no event, so that snapshot must not be
        // waited on.
        let d = tempfile::tempdir().unwrap();
        let n = Notifier::new(d.path());
        let early = n.seq();
        let t = Instant::now();
        n.wait(n.seq(), Instant::now() + Duration::from_secs(30));
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the first wait returns at once"
        );
        let t = Instant::now();
        n.wait(early, Instant::now() + Duration::from_secs(30));
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "an early snapshot sent to sleep"
        );
        // With the watch in place, a write wakes a waiter.
        let seen = n.seq();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                std::fs::write(d.path().join("log.1"), b"x").unwrap();
            });
            let t = Instant::now();
            n.wait(seen, Instant::now() + Duration::from_secs(30));
            assert!(t.elapsed() < Duration::from_secs(10), "not woken by a write");
        });
    }
}
