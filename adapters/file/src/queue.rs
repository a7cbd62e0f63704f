//! [`FileQueue`]: the public handle and the beanstalkd-like commands (put, reserve, delete,
//! release, bury, touch, kick, peek, pause, compact), each run as one transaction on the shared
//! log (see `transaction.rs`), durable ones through group commit (see `group_commit.rs`). The
//! stats commands are in `stats.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::dir::prepare_dir;
use crate::error::{Error, Result};
use crate::format::{self, Record};
use crate::index::{Slot, Tube};
use crate::shared::Shared;
use crate::stats::WaitGuard;
use crate::transaction::{Durability, Pending, ms};
use crate::trust::Trust;
use crate::types::{Job, MAX_JOB_SIZE_LIMIT, NewJob, Options, Reserved, validate_tube};
use crate::watchers::Watching;

/// How often [`FileQueue::reserve_unless`] asks whether to stop while it waits.
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// A handle on a queue directory. Cheap to clone (clones share the handle, its reservations
/// and its index); `Send + Sync`, so async code can call it through `spawn_blocking`.
///
/// Reservations belong to the handle that made them: another handle (in this process or
/// another) gets [`Error::NotFound`] for `release`, `bury` and `touch` of them, as another
/// beanstalkd connection would.
#[derive(Clone)]
pub struct FileQueue {
    pub(crate) inner: Arc<Inner>,
}

/// What the clones of a handle share.
pub(crate) struct Inner {
    /// The queue's directory.
    pub(crate) dir: PathBuf,
    /// The options it was opened with.
    pub(crate) opts: Options,
    /// This handle's id in reservation records.
    pub(crate) owner: u64,
    /// What this process's handles on the directory share: the lock, the log and its index,
    /// group commit, the inotify watch (see `shared.rs`).
    pub(crate) shared: Arc<Shared>,
    /// This handle's threads waiting in `reserve`, per tube (see `stats.rs`).
    pub(crate) waiting: Mutex<HashMap<String, u64>>,
    /// The tubes of this handle's latest `reserve`, as published to other processes.
    pub(crate) watching: Mutex<Option<Watching>>,
}

impl std::fmt::Debug for FileQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileQueue")
            .field("dir", &self.inner.dir)
            .field("owner", &self.inner.owner)
            .finish()
    }
}

fn new_owner() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() | 1
}

impl FileQueue {
    /// Opens the queue in `dir`, creating it (mode 0700, files 0600; with [`Options::group`]
    /// 2770 and 0660) if needed.
    ///
    /// Refuses a directory that group or others can write to ([`Error::Permissions`]), and one
    /// that is not the effective user's, sits in a parent others could write to, or holds links
    /// or special files where the queue keeps its own ([`Error::Untrusted`]). Replays
    /// the log to build this handle's index; files it cannot use are moved to `<dir>/corrupt/`.
    ///
    /// Handles of one process on one directory share its index and the work of following the
    /// log (see `shared.rs`); each keeps its own reservations.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<FileQueue> {
        FileQueue::open_as(dir.as_ref(), opts, false)
    }

    /// [`FileQueue::open`] with an index of its own, as another process would have: for tests of
    /// what one process sees of another's records, not for queue users.
    #[doc(hidden)]
    pub fn open_private(dir: impl AsRef<Path>, opts: Options) -> Result<FileQueue> {
        FileQueue::open_as(dir.as_ref(), opts, true)
    }

    fn open_as(dir: &Path, opts: Options, private: bool) -> Result<FileQueue> {
        let dir = dir.to_path_buf();
        if opts.max_job_size > MAX_JOB_SIZE_LIMIT {
            return Err(Error::InvalidOptions(format!(
                "max_job_size {} is above the limit of {MAX_JOB_SIZE_LIMIT} bytes",
                opts.max_job_size
            )));
        }
        let trust = Trust::of(&opts);
        prepare_dir(&dir, trust)?;
        let shared = Shared::get(&dir, &opts, trust, private)?;
        Ok(FileQueue {
            inner: Arc::new(Inner {
                dir,
                opts,
                owner: new_owner(),
                shared,
                waiting: Mutex::new(HashMap::new()),
                watching: Mutex::new(None),
            }),
        })
    }

    /// Whom the queue trusts, by its options.
    pub(crate) fn trust(&self) -> Trust {
        Trust::of(&self.inner.opts)
    }

    /// The queue's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options this handle was opened with.
    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    /// Puts a job in `tube`; returns its id once the job is durable (with `fsync`).
    ///
    /// `ttr` below one second counts as one second (beanstalkd turns 0 into 1).
    pub fn put(&self, tube: &str, pri: u32, delay: Duration, ttr: Duration, body: &[u8]) -> Result<u64> {
        Ok(self.put_many(
            tube,
            &[NewJob {
                pri,
                delay,
                ttr,
                body,
            }],
        )?[0])
    }

    /// Puts several jobs in `tube` with one lock and one fsync; returns their ids in order.
    pub fn put_many(&self, tube: &str, jobs: &[NewJob<'_>]) -> Result<Vec<u64>> {
        let (ids, pending) = self.put_many_deferred(tube, jobs)?;
        if let Some(pending) = pending {
            self.wait_durable(pending)?;
        }
        Ok(ids)
    }

    /// [`FileQueue::put_many`] that returns before the jobs are durable: with what to wait for
    /// ([`FileQueue::wait_durable`]) before telling anyone they are in (with `fsync`). For a
    /// server that waits for many clients' changes on one thread.
    pub fn put_many_deferred(&self, tube: &str, jobs: &[NewJob<'_>]) -> Result<(Vec<u64>, Option<Pending>)> {
        validate_tube(tube)?;
        let max = self.inner.opts.max_job_size;
        if let Some(j) = jobs.iter().find(|j| j.body.len() > max) {
            return Err(Error::JobTooBig {
                size: j.body.len(),
                max,
            });
        }
        self.txn_deferred(Durability::Sync, |tx| {
            // Only a damaged or forged log can move the next id this far; refuse before writing.
            let first = tx.index().next_id;
            if first.saturating_add(jobs.len() as u64) > format::MAX_JOB_ID + 1 {
                return Err(Error::Corrupt {
                    path: tx.log.seg_path().to_path_buf(),
                    detail: format!("job ids are used up (next id {first}); the log sets an impossible id"),
                });
            }
            let mut ids = Vec::with_capacity(jobs.len());
            for j in jobs {
                let id = tx.index().next_id;
                tx.push(Record::Put {
                    id,
                    tube,
                    pri: j.pri,
                    delay_ms: ms(j.delay),
                    ttr_ms: ms(j.ttr).max(1000),
                    created_ms: tx.now,
                    body: j.body,
                });
                ids.push(id);
            }
            Ok(ids)
        })
    }

    /// Reserves the most urgent ready job (lowest priority value, then lowest id) of the tubes
    /// in `watch` that are not paused, waiting up to `timeout` for one (`None`: forever,
    /// `Some(ZERO)`: don't wait). `Ok(None)` when the time is up.
    ///
    /// Waiting blocks the thread without spinning: it sleeps until a write to the directory
    /// (inotify) or the next moment a job may become ready by time (delay end, TTR end, pause end).
    pub fn reserve(&self, watch: &[&str], timeout: Option<Duration>) -> Result<Option<Reserved>> {
        self.reserve_inner(watch, timeout, None)
    }

    /// [`FileQueue::reserve`] that gives up early, without reserving anything, once `stop`
    /// returns true: it is asked before every try and at least every [`STOP_POLL`] while waiting.
    /// For a caller that must stop waiting on request but cannot abandon a blocked thread (a job
    /// reserved after the caller has gone would sit reserved until its TTR).
    pub fn reserve_unless(
        &self,
        watch: &[&str],
        timeout: Option<Duration>,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Option<Reserved>> {
        self.reserve_inner(watch, timeout, Some(stop))
    }

    fn reserve_inner(
        &self,
        watch: &[&str],
        timeout: Option<Duration>,
        stop: Option<&(dyn Fn() -> bool + Sync)>,
    ) -> Result<Option<Reserved>> {
        for t in watch {
            validate_tube(t)?;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let _waiting = WaitGuard::new(self, watch);
        self.publish_watch(watch);
        loop {
            if stop.is_some_and(|stop| stop()) {
                return Ok(None);
            }
            let seen = self.inner.shared.notifier.seq();
            let (got, next_event) = self.txn(Durability::Lazy, |tx| {
                let tubes: Vec<u32> = watch.iter().filter_map(|t| tx.index().tube_id(t)).collect();
                if let Some(id) = tx.index().best_ready(&tubes, tx.now) {
                    return Ok((Some(tx.reserve(id)?), None));
                }
                let next = tx.index().next_event(tx.now).map(|t| t.saturating_sub(tx.now));
                Ok((None, next))
            })?;
            if got.is_some() {
                return Ok(got);
            }
            let now = Instant::now();
            let mut until = deadline.unwrap_or(now + Duration::from_secs(3600));
            if let Some(d) = next_event {
                until = until.min(now + Duration::from_millis(d + 1));
            }
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            if stop.is_some() {
                until = until.min(now + STOP_POLL);
            }
            self.inner.shared.notifier.wait(seen, until);
            // Woken, or the time is up: a directory moved away and replaced wakes its waiters
            // too, and must not send them back to sleep on the old one.
            self.inner.shared.lock.check_same(true)?;
        }
    }

    /// Reserves up to `max` ready jobs of the tubes in `watch`, most urgent first, in one
    /// transaction and without waiting: what `max` calls of `reserve(watch, Some(ZERO))` would
    /// get, for a caller answering several buffered reserves at once. Fewer (or none) when
    /// fewer are ready.
    pub fn reserve_ready(&self, watch: &[&str], max: usize) -> Result<Vec<Reserved>> {
        for t in watch {
            validate_tube(t)?;
        }
        self.publish_watch(watch);
        self.txn(Durability::Lazy, |tx| {
            let tubes: Vec<u32> = watch.iter().filter_map(|t| tx.index().tube_id(t)).collect();
            let mut got = Vec::new();
            while got.len() < max {
                let Some(id) = tx.index().best_ready(&tubes, tx.now) else {
                    break;
                };
                got.push(tx.reserve(id)?);
            }
            Ok(got)
        })
    }

    /// Reserves the job with this id if it is ready, delayed or buried (in a paused tube too),
    /// as beanstalkd's `reserve-job` does; a reserved job, even one this handle holds, is
    /// [`Error::NotFound`].
    pub fn reserve_job(&self, id: u64) -> Result<Reserved> {
        self.txn(Durability::Lazy, |tx| match tx.job(id)?.slot {
            Slot::Reserved { .. } => Err(Error::NotFound { id }),
            Slot::Ready | Slot::Delayed { .. } | Slot::Buried { .. } => tx.reserve(id),
        })
    }

    /// Deletes a job that is ready, delayed, buried, or reserved by this handle.
    pub fn delete(&self, id: u64) -> Result<()> {
        self.delete_many(&[id])?
            .pop()
            .unwrap_or(Err(Error::NotFound { id }))
    }

    /// Deletes several jobs (each as [`FileQueue::delete`] would) with one lock and one
    /// fsync; returns each one's outcome, in order. The outer error is the transaction's.
    pub fn delete_many(&self, ids: &[u64]) -> Result<Vec<Result<()>>> {
        let (done, pending) = self.delete_many_deferred(ids)?;
        if let Some(pending) = pending {
            self.wait_durable(pending)?;
        }
        Ok(done)
    }

    /// [`FileQueue::delete_many`] that returns before the deletes are durable, as
    /// [`FileQueue::put_many_deferred`] does.
    #[allow(clippy::type_complexity)]
    pub fn delete_many_deferred(&self, ids: &[u64]) -> Result<(Vec<Result<()>>, Option<Pending>)> {
        self.txn_deferred(Durability::Sync, |tx| {
            Ok(ids
                .iter()
                .map(|&id| {
                    match tx.job(id)?.slot {
                        Slot::Reserved { .. } if tx.index().owner(id) != Some(tx.owner) => {
                            return Err(Error::NotFound { id });
                        }
                        _ => {}
                    }
                    tx.push(Record::Delete { id });
                    Ok(())
                })
                .collect())
        })
    }

    /// Puts a job reserved by this handle back: ready, or delayed by `delay`, with priority
    /// `pri`. `reason` (e.g. the last error) is stored with the job and shown by `stats_job`.
    ///
    /// A reservation whose TTR passed is gone even if nobody reserved the job again (beanstalkd
    /// made it ready): releasing it gives [`Error::NotFound`].
    pub fn release(&self, id: u64, pri: u32, delay: Duration, reason: Option<&str>) -> Result<()> {
        self.txn(Durability::Sync, |tx| {
            tx.mine(id)?;
            tx.push(Record::Release {
                id,
                pri,
                delay_ms: ms(delay),
                at_ms: tx.now,
                reason,
            });
            Ok(())
        })
    }

    /// Buries a job reserved by this handle, with priority `pri` and an optional reason.
    pub fn bury(&self, id: u64, pri: u32, reason: Option<&str>) -> Result<()> {
        self.txn(Durability::Sync, |tx| {
            tx.mine(id)?;
            tx.push(Record::Bury { id, pri, reason });
            Ok(())
        })
    }

    /// Gives a job reserved by this handle a full TTR again from now.
    pub fn touch(&self, id: u64) -> Result<()> {
        self.txn(Durability::Lazy, |tx| {
            let ttr = tx.mine(id)?.ttr_ms;
            tx.push(Record::Touch {
                id,
                deadline_ms: tx.now + ttr,
            });
            Ok(())
        })
    }

    /// Kicks up to `bound` jobs of `tube`: buried ones (oldest burial first) if it has any,
    /// else delayed ones (soonest first). Returns how many were kicked.
    pub fn kick(&self, tube: &str, bound: u64) -> Result<u64> {
        validate_tube(tube)?;
        self.txn(Durability::Sync, |tx| {
            let Some(t) = tx.index().tube_id(tube) else {
                return Ok(0);
            };
            let t = &tx.index().tubes[t as usize];
            let ids: Vec<u64> = if t.buried.is_empty() {
                t.delayed.iter().take(bound as usize).map(|x| x.1).collect()
            } else {
                t.buried.iter().take(bound as usize).map(|x| x.1).collect()
            };
            for &id in &ids {
                tx.push(Record::Kick { id });
            }
            Ok(ids.len() as u64)
        })
    }

    /// Kicks one buried or delayed job.
    pub fn kick_job(&self, id: u64) -> Result<()> {
        self.txn(Durability::Sync, |tx| {
            match tx.job(id)?.slot {
                Slot::Buried { .. } | Slot::Delayed { .. } => tx.push(Record::Kick { id }),
                _ => return Err(Error::NotFound { id }),
            }
            Ok(())
        })
    }

    /// The job with this id, in any state.
    pub fn peek(&self, id: u64) -> Result<Job> {
        self.txn(Durability::Lazy, |tx| tx.job_view(id, true))
    }

    fn peek_by(&self, tube: &str, pick: impl FnOnce(&Tube) -> Option<u64>) -> Result<Option<Job>> {
        validate_tube(tube)?;
        self.txn(Durability::Lazy, |tx| {
            let Some(t) = tx.index().tube_id(tube) else {
                return Ok(None);
            };
            match pick(&tx.index().tubes[t as usize]) {
                Some(id) => tx.job_view(id, true).map(Some),
                None => Ok(None),
            }
        })
    }

    /// The ready job of `tube` that would be reserved next (ignoring a pause).
    pub fn peek_ready(&self, tube: &str) -> Result<Option<Job>> {
        self.peek_by(tube, |t| t.ready.first().map(|x| x.1))
    }

    /// The delayed job of `tube` that becomes ready soonest.
    pub fn peek_delayed(&self, tube: &str) -> Result<Option<Job>> {
        self.peek_by(tube, |t| t.delayed.first().map(|x| x.1))
    }

    /// The buried job of `tube` that a kick would take first (buried longest ago).
    pub fn peek_buried(&self, tube: &str) -> Result<Option<Job>> {
        self.peek_by(tube, |t| t.buried.first().map(|x| x.1))
    }

    /// Pauses `tube`: no job of it is reserved until `delay` has passed (0 ends a pause).
    pub fn pause_tube(&self, tube: &str, delay: Duration) -> Result<()> {
        validate_tube(tube)?;
        let watched = self.watched_on(tube) > 0;
        self.txn(Durability::Sync, |tx| {
            // Like beanstalkd, only an existing tube can be paused: one with jobs, or one that a
            // handle watches.
            let now = tx.now;
            let exists = watched
                || tube == "default"
                || tx
                    .index()
                    .tube_id(tube)
                    .is_some_and(|t| self.tube_exists(&tx.index().tubes[t as usize], now));
            if !exists {
                return Err(Error::TubeNotFound {
                    name: tube.to_string(),
                });
            }
            tx.push(Record::Pause {
                tube,
                until_ms: tx.now + ms(delay),
                secs: delay.as_secs(),
            });
            Ok(())
        })
    }

    /// Rewrites the log with only the live jobs now (it also happens by itself when the log is
    /// at least `Options::compact_min_bytes` and less than half live).
    pub fn compact(&self) -> Result<()> {
        self.txn(Durability::Lazy, |tx| {
            let now = tx.now;
            tx.log.compact(now, &self.inner.shared.sync)
        })
    }
}

// The handle must stay usable from async code through `spawn_blocking`.
const _: fn() = || {
    fn is<T: Send + Sync + 'static>() {}
    is::<FileQueue>();
};
