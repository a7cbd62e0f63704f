//! The transaction: every command runs as one, on the shared log.
//!
//! A transaction takes the mutex of the process's log (shared by its handles, see `shared.rs`), then the directory lock (`<dir>/lock`, `flock`),
//! checks that the directory is still the one the handle opened, catches up with the log, turns expired reservations back into ready jobs (appending a
//! `Timeout` record: whichever process notices first), decides, appends its records with one
//! `pwrite` at the end it knows, publishes that end in `run/sync` (with `fsync`), and unlocks.
//! Because every decision is made under the lock on up-to-date state, each ready job is reserved
//! by exactly one handle in one process.
//!
//! With `fsync`, changes that must survive a power loss (put, delete, release, bury, kick, pause)
//! then wait for group commit (`group_commit.rs`).

use std::sync::MutexGuard;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{Record, encode};
use crate::index::{Index, JobMeta, KICKS, RESERVES, Slot};
use crate::log::Log;
use crate::queue::FileQueue;
use crate::types::{Job, Reserved};

/// A duration in the milliseconds records carry (capped where the format caps it).
pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128 / 4) as u64
}

/// Whether a transaction's records must be on disk before the call returns.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Durability {
    /// Wait for group commit (when `Options::fsync`).
    Sync,
    /// Reservations, touches, timeouts: losing them on power loss only shortens a lease.
    Lazy,
}

/// A change in the log that must be durable and may not be yet: where its records end.
/// [`FileQueue::wait_durable`] returns once they are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pending {
    seg_no: u64,
    end: u64,
}

/// The state of one transaction: the log, the clock reading and the records to append.
pub(crate) struct Txn<'a> {
    /// The process's log, caught up.
    pub(crate) log: &'a mut Log,
    /// The clock reading the transaction decides by (ms since the Unix epoch).
    pub(crate) now: u64,
    /// This handle's owner id (reservations are this handle's when they carry it).
    pub(crate) owner: u64,
    /// The records to append, encoded.
    out: Vec<u8>,
}

impl Txn<'_> {
    /// Encodes `rec` for appending and applies it to the index right away.
    pub(crate) fn push(&mut self, rec: Record<'_>) {
        encode(&rec, &mut self.out);
        let body = match &rec {
            Record::Put { body, .. } => body.len(),
            _ => 0,
        };
        let body_off = self.log.end() + (self.out.len() - body) as u64;
        self.log.index_mut().apply(&rec, body_off);
    }

    /// The state the transaction decides on.
    pub(crate) fn index(&self) -> &Index {
        self.log.index()
    }

    /// The job, in any state.
    pub(crate) fn job(&self, id: u64) -> Result<&JobMeta> {
        self.log.index().jobs.get(&id).ok_or(Error::NotFound { id })
    }

    /// The job, if this handle holds its reservation.
    pub(crate) fn mine(&self, id: u64) -> Result<&JobMeta> {
        match self.job(id)? {
            j @ JobMeta {
                slot: Slot::Reserved { .. },
                ..
            } if self.index().owner(id) == Some(self.owner) => Ok(j),
            _ => Err(Error::NotFound { id }),
        }
    }

    /// Turns expired reservations back into ready jobs.
    fn expire(&mut self) {
        while let Some(&(deadline, id)) = self.log.index().deadlines.first() {
            if deadline > self.now {
                break;
            }
            self.push(Record::Timeout { id });
        }
    }

    /// The job as `peek` shows it; its body read from the log if `with_body`.
    pub(crate) fn job_view(&self, id: u64, with_body: bool) -> Result<Job> {
        let stats = self.job_stats(id)?;
        let j = self.job(id)?;
        let body = if with_body {
            self.log.read_body(j.body_off, j.body_len)?
        } else {
            Vec::new()
        };
        Ok(Job { id, body, stats })
    }

    /// Reserves job `id` for this handle for its TTR (the caller chose it and checked its state).
    pub(crate) fn reserve(&mut self, id: u64) -> Result<Reserved> {
        let j = self.job(id)?;
        let (off, len, ttr) = (j.body_off, j.body_len, j.ttr_ms);
        let age = Duration::from_millis(self.now.saturating_sub(j.created_ms));
        let (pri, reserves, kicks) = (j.pri, j.counters[RESERVES].saturating_add(1), j.counters[KICKS]);
        let tube = self.index().tubes[j.tube as usize].name.to_string();
        let body = self.log.read_body(off, len)?;
        self.push(Record::Reserve {
            id,
            owner: self.owner,
            deadline_ms: self.now + ttr,
        });
        Ok(Reserved {
            id,
            body,
            tube,
            pri,
            ttr: Duration::from_millis(ttr),
            reserves,
            kicks,
            age,
        })
    }
}

impl FileQueue {
    /// Marks the process's state of the queue failed, and so every handle on it (the first reason sticks) and returns the error saying so.
    pub(crate) fn failed(&self, reason: String) -> Error {
        let mut f = self.inner.shared.failed.lock().unwrap_or_else(|e| e.into_inner());
        let reason = f.get_or_insert(reason).clone();
        Error::Failed {
            path: self.inner.dir.clone(),
            reason,
        }
    }

    /// Fails if the handle is failed (see [`FileQueue::failed`]).
    pub(crate) fn check(&self) -> Result<()> {
        let f = self.inner.shared.failed.lock().unwrap_or_else(|e| e.into_inner());
        match &*f {
            Some(reason) => Err(Error::Failed {
                path: self.inner.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The process's view of the log (poison ignored: the log is rebuilt on a failed write).
    pub(crate) fn lock_log(&self) -> MutexGuard<'_, Log> {
        self.inner.shared.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one transaction (see the module doc).
    pub(crate) fn txn<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T>,
    ) -> Result<T> {
        let (value, pending) = self.txn_deferred(durability, f)?;
        if let Some(pending) = pending {
            self.wait_durable(pending)?;
        }
        Ok(value)
    }

    /// [`FileQueue::txn`] that returns before its group commit: with what the caller must
    /// still wait for ([`FileQueue::wait_durable`]) when the change must be durable.
    pub(crate) fn txn_deferred<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T>,
    ) -> Result<(T, Option<Pending>)> {
        self.check()?;
        let mut log = self.lock_log();
        let inner = &*self.inner;
        inner.shared.lock.lock()?;
        let result = (|| {
            // A directory removed or replaced under the handle would otherwise go unnoticed: the
            // handle would carry on in unlinked files while a new queue there starts from id 1.
            inner.shared.lock.check_same(false)?;
            log.catch_up(&inner.shared.sync)?;
            let seg_before = log.seg_no();
            let now = inner.opts.clock.now_ms();
            log.index_mut().promote(now);
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
                if let Err(e) = log.maybe_compact(inner.opts.compact_min_bytes, now, &inner.shared.sync) {
                    tracing::warn!(error = %e, "could not compact the log; will try again once it has grown or in a while");
                }
            }
            let waits = !out.is_empty() && durability == Durability::Sync && inner.opts.fsync;
            if inner.opts.fsync
                && (!out.is_empty() || log.seg_no() != seg_before)
                && let Err(e) = inner.shared.sync.publish(log.seg_no(), log.end(), waits)
            {
                // Leaders then find the published end short of the record and catch up under
                // the lock instead.
                tracing::warn!(error = %e, "could not publish the end of the log");
            }
            let commit = waits.then_some((log.seg_no(), log.end()));
            value.map(|v| (v, commit))
        })();
        inner.shared.lock.unlock();
        drop(log);
        let (value, commit) = result?;
        Ok((value, commit.map(|(seg_no, end)| Pending { seg_no, end })))
    }

    /// Returns once the change `pending` stands for is on disk (group commit: see
    /// `group_commit.rs`). Any handle of the process may wait for any of its changes, so one
    /// thread can wait for many, in the order they were made: the first wait's fdatasync
    /// usually covers the rest.
    pub fn wait_durable(&self, pending: Pending) -> Result<()> {
        self.commit(pending.seg_no, pending.end)
    }
}
