//! Stats: beanstalkd's `stats-job`, `stats-tube`, `stats` and `list-tubes`, read from the index
//! under a transaction, the count of this handle's waiters per tube that they report, and the
//! watch lists of all handles (`watchers.rs`), which keep tubes in existence.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::index::{BURIES, KICKS, RELEASES, RESERVES, Slot, TIMEOUTS, Tube};
use crate::queue::FileQueue;
use crate::transaction::{Durability, Txn};
use crate::types::{JobState, JobStats, QueueStats, TubeStats, validate_tube};
use crate::watchers;

impl FileQueue {
    /// beanstalkd's `stats-job`, plus the last reason.
    pub fn stats_job(&self, id: u64) -> Result<JobStats> {
        self.txn(Durability::Lazy, |tx| tx.job_stats(id))
    }

    /// How many of this handle's threads wait on `tube`.
    pub(crate) fn waiting_on(&self, tube: &str) -> u64 {
        let w = self.inner.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.get(tube).copied().unwrap_or(0)
    }

    /// Publishes the tubes of this `reserve` as this handle's watch list. A list that cannot be
    /// written (a full disk) only keeps an empty tube from existing for other processes, which
    /// must not fail the reserve.
    pub(crate) fn publish_watch(&self, tubes: &[&str]) {
        let mut current = self.inner.watching.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = watchers::publish(
            &self.inner.dir,
            self.trust(),
            self.inner.owner,
            tubes,
            &mut current,
        ) {
            tracing::debug!(error = %e, "could not publish the watch list");
        }
    }

    /// How many handles watch `tube`: live handles of any process that named it in their latest
    /// `reserve` (see `watchers.rs`), or at least this handle's waiting threads.
    pub(crate) fn watched_on(&self, tube: &str) -> u64 {
        let others = watchers::watched(&self.inner.dir, self.trust())
            .get(tube)
            .copied()
            .unwrap_or(0);
        others.max(self.waiting_on(tube))
    }

    /// Whether a tube exists by its own state (as beanstalkd would have it), a watch aside: see
    /// [`FileQueue::stats_tube`].
    pub(crate) fn tube_exists(&self, t: &Tube, now: u64) -> bool {
        t.jobs() > 0 || t.pause_until > now || &*t.name == "default" || self.waiting_on(&t.name) > 0
    }

    /// beanstalkd's `stats-tube`. A tube exists while it has jobs, is paused, is watched by a
    /// handle (of any process), or is `default`; others give [`Error::TubeNotFound`].
    pub fn stats_tube(&self, tube: &str) -> Result<TubeStats> {
        validate_tube(tube)?;
        let waiting = self.waiting_on(tube);
        let watching = self.watched_on(tube);
        self.txn(Durability::Lazy, |tx| {
            let now = tx.now;
            let empty = Tube::default();
            let t = match tx.index().tube_id(tube) {
                Some(t) => &tx.index().tubes[t as usize],
                None if tube == "default" || watching > 0 => &empty,
                None => {
                    return Err(Error::TubeNotFound {
                        name: tube.to_string(),
                    });
                }
            };
            if !self.tube_exists(t, now) && tube != "default" && watching == 0 {
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
                current_watching: watching,
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
            let sum = |f: &dyn Fn(&Tube) -> u64| ix.tubes.iter().map(f).fold(0, u64::saturating_add);
            Ok(QueueStats {
                current_jobs_urgent: sum(&|t| t.urgent),
                current_jobs_ready: sum(&|t| t.ready.len() as u64),
                current_jobs_reserved: sum(&|t| t.reserved),
                current_jobs_delayed: sum(&|t| t.delayed.len() as u64),
                current_jobs_buried: sum(&|t| t.buried.len() as u64),
                total_jobs: sum(&|t| t.total_jobs),
                current_tubes: tubes,
                job_timeouts: ix.timeouts,
                corrupt_records: tx.log.corrupt(),
                segment: tx.log.seg_no(),
                log_bytes: tx.log.end(),
                next_id: ix.next_id,
            })
        })
    }

    /// The tubes that exist: those with jobs, paused ones, those a handle watches, and
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
        names.extend(watchers::watched(&self.inner.dir, self.trust()).into_keys());
        names.push("default".to_string());
        names.sort();
        names.dedup();
        Ok(names)
    }
}

impl Txn<'_> {
    /// beanstalkd's `stats-job` of a job, plus the last reason.
    pub(crate) fn job_stats(&self, id: u64) -> Result<JobStats> {
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
            reason: self.index().reason(id).map(str::to_string),
        })
    }
}

/// Counts this handle's threads waiting on each tube, for `stats_tube`.
pub(crate) struct WaitGuard<'a> {
    q: &'a FileQueue,
    tubes: Vec<String>,
}

impl<'a> WaitGuard<'a> {
    pub(crate) fn new(q: &'a FileQueue, watch: &[&str]) -> Self {
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
