//! [`Shared`]: what the connections of one server share, behind one handle with a small API:
//! the command counters, how many connections use, watch and wait on each tube, the connection
//! counts, and draining mode. The queue itself is shared through the directory, not here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Per-tube counts of this server's connections.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TubeRefs {
    /// Connections using the tube.
    pub(crate) using: u64,
    /// Connections watching it.
    pub(crate) watching: u64,
    /// Connections waiting in a reserve that watches it.
    pub(crate) waiting: u64,
}

impl TubeRefs {
    fn is_empty(&self) -> bool {
        self.using == 0 && self.watching == 0 && self.waiting == 0
    }
}

/// The server-wide state of `pulpo serve`. Created once, shared by every connection.
#[derive(Debug)]
pub struct Shared {
    draining: AtomicBool,
    started: Instant,
    id: String,
    max_job_size: u64,
    counters: Mutex<Counters>,
}

/// Counts kept under one lock (they change together).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// `cmd-*`, by command name.
    pub(crate) cmds: HashMap<&'static str, u64>,
    /// Per-tube references.
    pub(crate) tubes: HashMap<String, TubeRefs>,
    /// Open connections.
    pub(crate) connections: u64,
    /// Connections ever opened.
    pub(crate) total_connections: u64,
    /// Open connections that have put.
    pub(crate) producers: u64,
    /// Open connections that have reserved.
    pub(crate) workers: u64,
    /// Connections waiting in a reserve.
    pub(crate) waiting: u64,
}

/// Which per-tube count a change concerns.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ref {
    Using,
    Watching,
    Waiting,
}

static TOTAL: AtomicU64 = AtomicU64::new(0);

impl Shared {
    /// A server's state; `max_job_size` is reported by `stats`.
    pub fn new(max_job_size: usize) -> Shared {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(TOTAL.fetch_add(1, Ordering::Relaxed));
        Shared {
            draining: AtomicBool::new(false),
            started: Instant::now(),
            id: format!("{:016x}", h.finish()),
            max_job_size: max_job_size as u64,
            counters: Mutex::new(Counters::default()),
        }
    }

    /// Puts the server in draining mode (SIGUSR1): puts get `DRAINING` from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn max_job_size(&self) -> u64 {
        self.max_job_size
    }

    /// Runs `f` on the counters under the lock.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Counters) -> T) -> T {
        f(&mut self.counters.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Counts one command by its wire name.
    pub(crate) fn count(&self, cmd: &'static str) {
        self.with(|c| *c.cmds.entry(cmd).or_default() += 1);
    }

    /// Adds `delta` (+1/-1) to `which` count of each tube in `tubes`.
    pub(crate) fn tube_ref(&self, tubes: &[String], which: Ref, delta: i64) {
        self.with(|c| {
            for tube in tubes {
                let refs = c.tubes.entry(tube.clone()).or_default();
                let field = match which {
                    Ref::Using => &mut refs.using,
                    Ref::Watching => &mut refs.watching,
                    Ref::Waiting => &mut refs.waiting,
                };
                *field = field.saturating_add_signed(delta);
                if refs.is_empty() {
                    c.tubes.remove(tube);
                }
            }
        });
    }

    /// This server's counts for `tube`.
    pub(crate) fn refs(&self, tube: &str) -> Option<TubeRefs> {
        self.with(|c| c.tubes.get(tube).copied())
    }
}
