//! [`FileQueue`]: the commands, each run as one transaction on the shared log.
//!
//! A transaction takes the handle's mutex, then the directory lock (`<dir>/lock`, `flock`),
//! catches up with the log, turns expired reservations back into ready jobs (appending a
//! `Timeout` record: whichever process notices first), decides, appends its records with one
//! `pwrite` at the end it knows, publishes that end in `run/sync` (with `fsync`), and unlocks.
//! Because every decision is made under the lock on up-to-date state, each ready job is reserved
//! by exactly one handle in one process.
//!
//! With `fsync`, changes that must survive a power loss (put, delete, release, bury, kick, pause)
//! then go through group commit (`durable.rs`): if the shared "durable up to" mark already covers
//! the record, nothing is left to do; else, once its group is complete, one handle, the leader,
//! fdatasyncs and moves the mark to the published end, covering what everyone appended
//! meanwhile, while the others sleep on a shared futex word until it is done.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::durable::{Durable, Mark, WAIT_MAX, beyond};
use crate::error::{Error, Result, io_err};
use crate::format::{self, Record, encode};
use crate::index::{BURIES, Index, JobMeta, KICKS, RELEASES, RESERVES, Slot, TIMEOUTS};
use crate::log::{Log, open_file, sync_dir};
use crate::notify::Notifier;
use crate::types::{
    Job, JobState, JobStats, MAX_JOB_SIZE_LIMIT, NewJob, Options, QueueStats, Reserved, TubeStats,
    validate_tube,
};

/// How often [`FileQueue::reserve_unless`] asks whether to stop while it waits.
pub const STOP_POLL: Duration = Duration::from_millis(50);
/// Shortest and longest time a group commit waits for its group to complete (as long as the
/// handle's last fdatasync took, within these bounds), and the largest group it waits for.
const GATHER_MIN: Duration = Duration::from_micros(20);
const GATHER_MAX: Duration = Duration::from_millis(1);
const GATHER_BATCH_MAX: u32 = 64;

/// A handle on a queue directory. Cheap to clone (clones share the handle, its reservations
/// and its index); `Send + Sync`, so async code can call it through `spawn_blocking`.
///
/// Reservations belong to the handle that made them: another handle (in this process or
/// another) gets [`Error::NotFound`] for `release`, `bury` and `touch` of them, as another
/// beanstalkd connection would.
#[derive(Clone)]
pub struct FileQueue {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    opts: Options,
    owner: u64,
    lock_file: File,
    lock_path: PathBuf,
    log: Mutex<Log>,
    sync: Durable,
    /// How long this handle's last fdatasync took, in nanoseconds (bounds a leader's wait).
    last_sync_ns: AtomicU64,
    failed: Mutex<Option<String>>,
    notifier: Notifier,
    waiting: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for FileQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileQueue")
            .field("dir", &self.inner.dir)
            .field("owner", &self.inner.owner)
            .finish()
    }
}

/// Wall-clock milliseconds since the Unix epoch (what records carry).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128 / 4) as u64
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

/// The state of one transaction: the log, the clock reading and the records to append.
struct Txn<'a> {
    log: &'a mut Log,
    now: u64,
    owner: u64,
    out: Vec<u8>,
}

impl Txn<'_> {
    /// Encodes `rec` for appending and applies it to the index right away.
    fn push(&mut self, rec: Record<'_>) {
        encode(&rec, &mut self.out);
        let body = match &rec {
            Record::Put { body, .. } => body.len(),
            _ => 0,
        };
        let body_off = self.log.offset + (self.out.len() - body) as u64;
        self.log.index.apply(&rec, body_off);
    }

    fn index(&self) -> &Index {
        &self.log.index
    }

    fn job(&self, id: u64) -> Result<&JobMeta> {
        self.log.index.jobs.get(&id).ok_or(Error::NotFound { id })
    }

    /// The job, if this handle holds its reservation.
    fn mine(&self, id: u64) -> Result<&JobMeta> {
        match self.job(id)? {
            j @ JobMeta {
                slot: Slot::Reserved { owner, .. },
                ..
            } if *owner == self.owner => Ok(j),
            _ => Err(Error::NotFound { id }),
        }
    }

    fn expire(&mut self) {
        while let Some(&(deadline, id)) = self.log.index.deadlines.first() {
            if deadline > self.now {
                break;
            }
            self.push(Record::Timeout { id });
        }
    }

    fn job_view(&self, id: u64, with_body: bool) -> Result<Job> {
        let stats = self.stats(id)?;
        let j = self.job(id)?;
        let body = if with_body {
            self.log.read_body(j.body_off, j.body_len)?
        } else {
            Vec::new()
        };
        Ok(Job { id, body, stats })
    }

    fn stats(&self, id: u64) -> Result<JobStats> {
        let j = self.job(id)?;
        let now = self.now;
        let (state, left) = match j.slot {
            Slot::Ready => (JobState::Ready, 0),
            Slot::Delayed { until } => (JobState::Delayed, until.saturating_sub(now)),
            Slot::Reserved { deadline, .. } => (JobState::Reserved, deadline.saturating_sub(now)),
            Slot::Buried { .. } => (JobState::Buried, 0),
        };
        Ok(JobStats {
            id,
            tube: self.index().tubes[j.tube as usize].name.to_string(),
            state,
            pri: j.pri,
            age: Duration::from_millis(now.saturating_sub(j.created_ms)),
            delay: Duration::from_millis(j.delay_ms),
            ttr: Duration::from_millis(j.ttr_ms),
            time_left: Duration::from_millis(left),
            file: 0,
            reserves: j.counters[RESERVES],
            timeouts: j.counters[TIMEOUTS],
            releases: j.counters[RELEASES],
            buries: j.counters[BURIES],
            kicks: j.counters[KICKS],
            reason: j.reason.as_deref().map(str::to_string),
        })
    }
}

/// Whether a transaction's records must be on disk before the call returns.
#[derive(Clone, Copy, PartialEq)]
enum Durability {
    /// Wait for group commit (when `Options::fsync`).
    Sync,
    /// Reservations, touches, timeouts: losing them on power loss only shortens a lease.
    Lazy,
}

impl FileQueue {
    /// Opens the queue in `dir`, creating it (mode 0700, files 0600) if needed.
    ///
    /// Refuses a directory that group or others can write to ([`Error::Permissions`]). Replays
    /// the log to build this handle's index; files it cannot use are moved to `<dir>/corrupt/`.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<FileQueue> {
        let dir = dir.as_ref().to_path_buf();
        if opts.max_job_size > MAX_JOB_SIZE_LIMIT {
            return Err(Error::InvalidOptions(format!(
                "max_job_size {} is above the limit of {MAX_JOB_SIZE_LIMIT} bytes",
                opts.max_job_size
            )));
        }
        prepare_dir(&dir)?;
        let lock_path = dir.join("lock");
        let lock_file = open_file(&lock_path)?;
        lock_file.lock().map_err(io_err(&lock_path, "lock"))?;
        let opened = (|| {
            // Under the lock: a new run/sync is grown with zeros, which must not land on one that
            // another process has started to use.
            let sync = Durable::open(&dir)?;
            let log = Log::open(&dir, opts.fsync, &sync)?;
            // A mark or published end past the log (from a segment moved aside, or written
            // before a power loss undid the records) means nothing.
            sync.clamp(log.seg_no, log.offset)?;
            sync.note_segment(log.seg_no, true)?;
            Ok((log, sync))
        })();
        let _ = lock_file.unlock();
        let (log, sync) = opened?;
        let notifier = Notifier::new(&dir);
        Ok(FileQueue {
            inner: Arc::new(Inner {
                dir,
                opts,
                owner: new_owner(),
                lock_file,
                lock_path,
                log: Mutex::new(log),
                sync,
                last_sync_ns: AtomicU64::new(0),
                failed: Mutex::new(None),
                notifier,
                waiting: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The queue's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options this handle was opened with.
    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    fn failed(&self, reason: String) -> Error {
        let mut f = self.inner.failed.lock().unwrap_or_else(|e| e.into_inner());
        let reason = f.get_or_insert(reason).clone();
        Error::Failed {
            path: self.inner.dir.clone(),
            reason,
        }
    }

    fn check(&self) -> Result<()> {
        let f = self.inner.failed.lock().unwrap_or_else(|e| e.into_inner());
        match &*f {
            Some(reason) => Err(Error::Failed {
                path: self.inner.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn lock_log(&self) -> MutexGuard<'_, Log> {
        self.inner.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one transaction (see the module doc).
    fn txn<T>(&self, durability: Durability, f: impl FnOnce(&mut Txn<'_>) -> Result<T>) -> Result<T> {
        self.check()?;
        let mut log = self.lock_log();
        let inner = &*self.inner;
        inner.lock_file.lock().map_err(io_err(&inner.lock_path, "lock"))?;
        let result = (|| {
            log.catch_up(&inner.sync)?;
            let seg_before = log.seg_no;
            let now = now_ms();
            log.index.promote(now);
            let mut tx = Txn {
                log: &mut log,
                now,
                owner: inner.owner,
                out: Vec::new(),
            };
            tx.expire();
            let value = f(&mut tx);
            let mut out = std::mem::take(&mut tx.out);
            if !out.is_empty() {
                log.write(&mut out)?;
                // The records are in the log now: what follows must not fail the command, or
                // its caller would run it again. A compaction left undone is tried again later.
                if let Err(e) = log.maybe_compact(inner.opts.compact_min_bytes, now, &inner.sync) {
                    tracing::warn!(error = %e, "could not compact the log; will try again");
                }
            }
            let waits = !out.is_empty() && durability == Durability::Sync && inner.opts.fsync;
            if inner.opts.fsync
                && (!out.is_empty() || log.seg_no != seg_before)
                && let Err(e) = inner.sync.publish(log.seg_no, log.offset, waits)
            {
                // Leaders then find the published end short of the record and catch up under
                // the lock instead.
                tracing::warn!(error = %e, "could not publish the end of the log");
            }
            let commit = waits.then_some((log.seg_no, log.offset));
            value.map(|v| (v, commit))
        })();
        let _ = inner.lock_file.unlock();
        drop(log);
        let (value, commit) = result?;
        if let Some((seg_no, end)) = commit {
            self.commit(seg_no, end)?;
        }
        Ok(value)
    }

    /// Group commit (see `durable.rs`): returns once the log is on disk up to `end` of segment
    /// `seg_no`, fdatasyncing it as the leader or waiting for the leader that will.
    ///
    /// A handle leads only once its group is complete (as many transactions wait as the last
    /// fdatasync covered), or once it has waited as long as its last fdatasync took: the
    /// producers that the last sync released are appending again, and the one that completes the
    /// group syncs for all of them. With one producer every group is complete at once.
    fn commit(&self, seg_no: u64, end: u64) -> Result<()> {
        let d = &self.inner.sync;
        let start = Instant::now();
        let gather = Duration::from_nanos(self.inner.last_sync_ns.load(Ordering::Relaxed))
            .clamp(GATHER_MIN, GATHER_MAX);
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
            if ready && let Some(_leader) = d.try_lead()? {
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
        let d = &self.inner.sync;
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
                Some(a) if a.seg == seg_no && log.seg_no == seg_no && a.end >= end => {
                    (a.seg, a.end, a.seq, log.seg.clone(), log.seg_path.clone())
                }
                _ => {
                    inner.lock_file.lock().map_err(io_err(&inner.lock_path, "lock"))?;
                    let caught = log.catch_up(&inner.sync);
                    let seq = d.appended().map_or(mark.seq, |a| a.seq);
                    let _ = inner.lock_file.unlock();
                    caught?;
                    (log.seg_no, log.offset, seq, log.seg.clone(), log.seg_path.clone())
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
        if let Err(e) = file.sync_data() {
            let err = io_err(&path, "fdatasync")(e);
            return Err(self.failed(err.to_string()));
        }
        inner.last_sync_ns.store(
            t0.elapsed().as_nanos().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        if mark.seg < seg {
            // The first sync of this segment (new queue, or after a compaction, which may have
            // been made by a handle without fsync): make its directory entry durable too.
            sync_dir(&inner.dir).map_err(|e| self.failed(e.to_string()))?;
        }
        d.write(Mark {
            seg,
            off: upto,
            seq,
            batch: seq.wrapping_sub(mark.seq).clamp(1, GATHER_BATCH_MAX),
            epoch,
        })
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
        validate_tube(tube)?;
        let max = self.inner.opts.max_job_size;
        if let Some(j) = jobs.iter().find(|j| j.body.len() > max) {
            return Err(Error::JobTooBig {
                size: j.body.len(),
                max,
            });
        }
        self.txn(Durability::Sync, |tx| {
            // Only a damaged or forged log can move the next id this far; refuse before writing.
            let first = tx.index().next_id;
            if first.saturating_add(jobs.len() as u64) > format::MAX_JOB_ID + 1 {
                return Err(Error::Corrupt {
                    path: tx.log.seg_path.clone(),
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
        loop {
            if stop.is_some_and(|stop| stop()) {
                return Ok(None);
            }
            let seen = self.inner.notifier.seq();
            let (got, next_event) = self.txn(Durability::Lazy, |tx| {
                let tubes: Vec<u32> = watch.iter().filter_map(|t| tx.index().tube_id(t)).collect();
                if let Some(id) = tx.index().best_ready(&tubes, tx.now) {
                    let j = tx.job(id)?;
                    let (off, len, ttr) = (j.body_off, j.body_len, j.ttr_ms);
                    let (pri, reserves) = (j.pri, j.counters[RESERVES].saturating_add(1));
                    let tube = tx.index().tubes[j.tube as usize].name.to_string();
                    let body = tx.log.read_body(off, len)?;
                    tx.push(Record::Reserve {
                        id,
                        owner: tx.owner,
                        deadline_ms: tx.now + ttr,
                    });
                    let ttr = Duration::from_millis(ttr);
                    let reserved = Reserved {
                        id,
                        body,
                        tube,
                        pri,
                        ttr,
                        reserves,
                    };
                    return Ok((Some(reserved), None));
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
            self.inner.notifier.wait(seen, until);
        }
    }

    /// Deletes a job that is ready, delayed, buried, or reserved by this handle.
    pub fn delete(&self, id: u64) -> Result<()> {
        self.txn(Durability::Sync, |tx| {
            match tx.job(id)?.slot {
                Slot::Reserved { owner, .. } if owner != tx.owner => return Err(Error::NotFound { id }),
                _ => {}
            }
            tx.push(Record::Delete { id });
            Ok(())
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

    fn peek_by(
        &self,
        tube: &str,
        pick: impl FnOnce(&crate::index::Tube) -> Option<u64>,
    ) -> Result<Option<Job>> {
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

    /// beanstalkd's `stats-job`, plus the last reason.
    pub fn stats_job(&self, id: u64) -> Result<JobStats> {
        self.txn(Durability::Lazy, |tx| tx.stats(id))
    }

    fn waiting_on(&self, tube: &str) -> u64 {
        let w = self.inner.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.get(tube).copied().unwrap_or(0)
    }

    fn tube_exists(&self, t: &crate::index::Tube, now: u64) -> bool {
        t.jobs() > 0 || t.pause_until > now || &*t.name == "default" || self.waiting_on(&t.name) > 0
    }

    /// beanstalkd's `stats-tube`. A tube exists while it has jobs, is paused, is being waited
    /// on by this handle, or is `default`; others give [`Error::TubeNotFound`].
    pub fn stats_tube(&self, tube: &str) -> Result<TubeStats> {
        validate_tube(tube)?;
        let waiting = self.waiting_on(tube);
        self.txn(Durability::Lazy, |tx| {
            let now = tx.now;
            let empty = crate::index::Tube::default();
            let t = match tx.index().tube_id(tube) {
                Some(t) => &tx.index().tubes[t as usize],
                None if tube == "default" || waiting > 0 => &empty,
                None => {
                    return Err(Error::TubeNotFound {
                        name: tube.to_string(),
                    });
                }
            };
            if !self.tube_exists(t, now) && tube != "default" && waiting == 0 {
                return Err(Error::TubeNotFound {
                    name: tube.to_string(),
                });
            }
            let paused = t.pause_until > now;
            Ok(TubeStats {
                name: tube.to_string(),
                current_jobs_urgent: t.urgent,
                current_jobs_ready: t.ready.len() as u64,
                current_jobs_reserved: t.reserved,
                current_jobs_delayed: t.delayed.len() as u64,
                current_jobs_buried: t.buried.len() as u64,
                total_jobs: t.total_jobs,
                current_using: 0,
                current_waiting: waiting,
                current_watching: waiting,
                pause: Duration::from_secs(if paused { t.pause_secs } else { 0 }),
                cmd_delete: t.cmd_delete,
                cmd_pause_tube: t.cmd_pause,
                pause_time_left: Duration::from_millis(t.pause_until.saturating_sub(now)),
            })
        })
    }

    /// Queue-wide counts.
    pub fn stats(&self) -> Result<QueueStats> {
        let tubes = self.list_tubes()?.len() as u64;
        self.txn(Durability::Lazy, |tx| {
            let ix = tx.index();
            // Saturating: the tube counters come from the log, which may be damaged.
            let sum =
                |f: &dyn Fn(&crate::index::Tube) -> u64| ix.tubes.iter().map(f).fold(0, u64::saturating_add);
            Ok(QueueStats {
                current_jobs_urgent: sum(&|t| t.urgent),
                current_jobs_ready: sum(&|t| t.ready.len() as u64),
                current_jobs_reserved: sum(&|t| t.reserved),
                current_jobs_delayed: sum(&|t| t.delayed.len() as u64),
                current_jobs_buried: sum(&|t| t.buried.len() as u64),
                total_jobs: sum(&|t| t.total_jobs),
                current_tubes: tubes,
                job_timeouts: ix.timeouts,
                corrupt_records: tx.log.corrupt,
                segment: tx.log.seg_no,
                log_bytes: tx.log.offset,
                next_id: ix.next_id,
            })
        })
    }

    /// The tubes that exist: those with jobs, paused ones, those this handle waits on, and
    /// `default` (always). Sorted by name.
    pub fn list_tubes(&self) -> Result<Vec<String>> {
        let mut names = self.txn(Durability::Lazy, |tx| {
            let now = tx.now;
            Ok(tx
                .index()
                .tubes
                .iter()
                .filter(|t| self.tube_exists(t, now))
                .map(|t| t.name.to_string())
                .collect::<Vec<_>>())
        })?;
        names.extend(
            self.inner
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned(),
        );
        names.push("default".to_string());
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Pauses `tube`: no job of it is reserved until `delay` has passed (0 ends a pause).
    pub fn pause_tube(&self, tube: &str, delay: Duration) -> Result<()> {
        validate_tube(tube)?;
        let waiting = self.waiting_on(tube);
        self.txn(Durability::Sync, |tx| {
            // Like beanstalkd, only an existing tube can be paused.
            let now = tx.now;
            let exists = match tx.index().tube_id(tube) {
                Some(t) => self.tube_exists(&tx.index().tubes[t as usize], now),
                None => tube == "default" || waiting > 0,
            };
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
            tx.log.compact(now, &self.inner.sync)
        })
    }
}

/// Counts this handle's threads waiting on each tube, for `stats_tube`.
struct WaitGuard<'a> {
    q: &'a FileQueue,
    tubes: Vec<String>,
}

impl<'a> WaitGuard<'a> {
    fn new(q: &'a FileQueue, watch: &[&str]) -> Self {
        let mut w = q.inner.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let mut tubes: Vec<String> = watch.iter().map(|t| t.to_string()).collect();
        tubes.sort();
        tubes.dedup();
        for t in &tubes {
            *w.entry(t.clone()).or_default() += 1;
        }
        WaitGuard { q, tubes }
    }
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut w = self.q.inner.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for t in &self.tubes {
            if let Some(n) = w.get_mut(t) {
                *n -= 1;
                if *n == 0 {
                    w.remove(t);
                }
            }
        }
    }
}

/// Creates the directory (0700) or checks that group and others cannot write to it.
fn prepare_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) => {
            if !m.is_dir() {
                return Err(Error::Io {
                    path: dir.to_path_buf(),
                    op: "open queue directory",
                    source: std::io::Error::other("not a directory"),
                });
            }
            let mode = m.permissions().mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(Error::Permissions {
                    path: dir.to_path_buf(),
                    mode,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir, "create directory"))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) => Err(io_err(dir, "open queue directory")(e)),
    }
}

// The handle must stay usable from async code through `spawn_blocking`.
const _: fn() = || {
    fn is<T: Send + Sync + 'static>() {}
    is::<FileQueue>();
};
