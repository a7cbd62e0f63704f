//! Wake-ups for blocked `reserve` calls when any process writes to the queue directory.
//!
//! Linux inotify (through `libc`, no extra crate) watches the directory for `IN_MODIFY` (an
//! append to a segment by any process, this one included), `IN_MOVED_TO` and `IN_CREATE` (a new
//! segment after compaction). Threads of one handle share one inotify descriptor: one of them
//! polls it (the "leader") while the others wait on a condition variable; every drained batch of
//! events bumps a sequence number, so a waiter that took its snapshot of the sequence before
//! looking at the queue never misses a write made after it looked.
//!
//! The watch is made when a handle first waits, not when it opens: a handle that only puts (a
//! producer) holds no inotify instance (a per-user limit, 128 by default) and its writers make no
//! events for it. The first wait returns at once, and the caller looks at the queue again with
//! the watch in place.
//!
//! Without inotify (not Linux, or the per-user instance limit is reached) waiters fall back to
//! polling every [`FALLBACK_POLL`]: a write by another process is then seen within that time.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often waiters look again when inotify is unavailable.
pub const FALLBACK_POLL: Duration = Duration::from_millis(10);

#[derive(Default)]
struct State {
    seq: u64,
    polling: bool,
}

/// Change notification for one handle.
pub struct Notifier {
    dir: PathBuf,
    /// The watch, made at the first wait; `None` inside if inotify cannot be used.
    fd: OnceLock<Option<OwnedFd>>,
    state: Mutex<State>,
    cv: Condvar,
}

impl Notifier {
    /// A notifier for `dir`; the watch is made at the first [`Notifier::wait`].
    pub fn new(dir: &Path) -> Notifier {
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
    pub fn seq(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).seq
    }

    /// Blocks until something was written after `seen` was taken, or until `deadline`.
    /// May return early (spuriously); callers look at the queue again and call back.
    pub fn wait(&self, seen: u64, deadline: Instant) {
        if self.fd.get().is_none() {
            // Writes made before the watch existed were not seen: the caller looks again.
            self.fd.get_or_init(|| self.watch());
            return;
        }
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
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
        let mask = libc::IN_MODIFY | libc::IN_MOVED_TO | libc::IN_CREATE;
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
