//! The in-memory index: the state of every job and tube, built by applying log records.
//!
//! Applying is deterministic and never fails: a record about an unknown job is ignored (its `Put`
//! may have been lost to corruption). Decisions (which job to reserve, whether a release is
//! allowed) are made by the queue on this index while it holds the directory lock; the index
//! itself never looks at the clock except in [`Index::promote`], which moves delayed jobs whose
//! time has come to ready (a pure function of time, so it needs no record). Sums of values read
//! from the log (times, counters) saturate, so no record can make applying overflow.

use std::collections::{BTreeSet, HashMap};

use crate::format::{MAX_DURATION_MS, MIN_TTR_MS, Record, Snapshot};

/// Priorities below this count as "urgent" (beanstalkd's `current-jobs-urgent`).
pub(crate) const URGENT_PRI: u32 = 1024;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Reservable.
    Ready,
    /// Ready at `until` (ms).
    Delayed { until: u64 },
    /// Held until `deadline` (ms), by the handle [`Index::owner`] names.
    Reserved { deadline: u64 },
    /// Buried, `seq`-th (FIFO for kick).
    Buried { seq: u64 },
}

/// What the index keeps per job (the body stays on disk). Kept small, as beanstalkd keeps its
/// jobs: the index of 100,000 jobs is most of a process's memory. What few jobs have (a
/// reservation's owner, a reason) lives in maps of its own in [`Index`].
#[derive(Debug, Clone)]
pub(crate) struct JobMeta {
    /// Index into `Index::tubes`.
    pub(crate) tube: u32,
    /// Priority.
    pub(crate) pri: u32,
    /// State.
    pub(crate) slot: Slot,
    /// Creation time, ms.
    pub(crate) created_ms: u64,
    /// Last delay, ms.
    pub(crate) delay_ms: u64,
    /// TTR, ms.
    pub(crate) ttr_ms: u64,
    /// Offset of the body in the current segment.
    pub(crate) body_off: u64,
    /// Body length.
    pub(crate) body_len: u32,
    /// reserves, timeouts, releases, buries, kicks.
    pub(crate) counters: [u32; 5],
}

/// Indexes into `JobMeta::counters`.
pub(crate) const RESERVES: usize = 0;
/// See [`RESERVES`].
pub(crate) const TIMEOUTS: usize = 1;
/// See [`RESERVES`].
pub(crate) const RELEASES: usize = 2;
/// See [`RESERVES`].
pub(crate) const BURIES: usize = 3;
/// See [`RESERVES`].
pub(crate) const KICKS: usize = 4;

/// A TTR from the log, within what the queue writes: a job with TTR 0 would time out before it
/// could be deleted (and be handed out again and again); one near `u64::MAX` would overflow
/// `now + ttr`.
fn clamp_ttr(ttr_ms: u64) -> u64 {
    ttr_ms.clamp(MIN_TTR_MS, MAX_DURATION_MS)
}

/// Adds one to a job counter; counters read from the log may already be at the top.
fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}

/// A tube: its job sets and its lifetime counters.
#[derive(Debug, Default)]
pub(crate) struct Tube {
    /// Name.
    pub(crate) name: Box<str>,
    /// Ready jobs by (priority, id).
    pub(crate) ready: BTreeSet<(u32, u64)>,
    /// Delayed jobs by (ready-at, id).
    pub(crate) delayed: BTreeSet<(u64, u64)>,
    /// Buried jobs by (bury sequence, id).
    pub(crate) buried: BTreeSet<(u64, u64)>,
    /// Reserved jobs.
    pub(crate) reserved: u64,
    /// Ready jobs with priority < 1024.
    pub(crate) urgent: u64,
    /// Jobs ever put.
    pub(crate) total_jobs: u64,
    /// Deletes of its jobs.
    pub(crate) cmd_delete: u64,
    /// Pauses.
    pub(crate) cmd_pause: u64,
    /// Paused until (ms), 0 if never.
    pub(crate) pause_until: u64,
    /// The pause asked, in seconds.
    pub(crate) pause_secs: u64,
}

impl Tube {
    /// Jobs in any state.
    pub(crate) fn jobs(&self) -> u64 {
        self.ready.len() as u64 + self.delayed.len() as u64 + self.buried.len() as u64 + self.reserved
    }
}

/// The whole state.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Every job.
    pub(crate) jobs: HashMap<u64, JobMeta>,
    /// Every tube ever seen.
    pub(crate) tubes: Vec<Tube>,
    /// The owner of each reserved job (the handle whose reservation it is).
    owners: HashMap<u64, u64>,
    /// The last reason given for each job that has one (release, bury).
    reasons: HashMap<u64, Box<str>>,
    tube_ids: HashMap<Box<str>, u32>,
    /// Reservation deadlines (deadline, id).
    pub(crate) deadlines: BTreeSet<(u64, u64)>,
    /// All delayed jobs (until, id), for promotion and wake-ups.
    pub(crate) delayed: BTreeSet<(u64, u64)>,
    /// The next id to give.
    pub(crate) next_id: u64,
    next_bury: u64,
    /// Reservations that timed out, since this index was built.
    pub(crate) timeouts: u64,
    /// Approximate bytes a compacted log would take.
    pub(crate) live_bytes: u64,
}

/// Bytes a job costs in a compacted log besides its body.
pub(crate) const SNAPSHOT_OVERHEAD: u64 = 120;

impl Index {
    /// An empty index; ids start at 1.
    pub(crate) fn new() -> Self {
        Index {
            next_id: 1,
            ..Default::default()
        }
    }

    /// The handle that holds job `id` reserved, if it is reserved.
    pub(crate) fn owner(&self, id: u64) -> Option<u64> {
        self.owners.get(&id).copied()
    }

    /// The last reason given for job `id`, if any.
    pub(crate) fn reason(&self, id: u64) -> Option<&str> {
        self.reasons.get(&id).map(|r| &**r)
    }

    /// The tube's number, if it was ever seen.
    pub(crate) fn tube_id(&self, name: &str) -> Option<u32> {
        self.tube_ids.get(name).copied()
    }

    /// The tube's number, creating it.
    pub(crate) fn tube_id_or_create(&mut self, name: &str) -> u32 {
        if let Some(&t) = self.tube_ids.get(name) {
            return t;
        }
        let t = self.tubes.len() as u32;
        self.tubes.push(Tube {
            name: name.into(),
            ..Default::default()
        });
        self.tube_ids.insert(name.into(), t);
        t
    }

    fn unlink(&mut self, id: u64) {
        let Some(j) = self.jobs.get(&id) else { return };
        let t = &mut self.tubes[j.tube as usize];
        match j.slot {
            Slot::Ready => {
                t.ready.remove(&(j.pri, id));
                if j.pri < URGENT_PRI {
                    t.urgent -= 1;
                }
            }
            Slot::Delayed { until } => {
                t.delayed.remove(&(until, id));
                self.delayed.remove(&(until, id));
            }
            Slot::Reserved { deadline } => {
                t.reserved -= 1;
                self.deadlines.remove(&(deadline, id));
                self.owners.remove(&id);
            }
            Slot::Buried { seq } => {
                t.buried.remove(&(seq, id));
            }
        }
    }

    fn link(&mut self, id: u64, slot: Slot) {
        let Some(j) = self.jobs.get_mut(&id) else { return };
        j.slot = slot;
        let t = &mut self.tubes[j.tube as usize];
        match slot {
            Slot::Ready => {
                t.ready.insert((j.pri, id));
                if j.pri < URGENT_PRI {
                    t.urgent += 1;
                }
            }
            Slot::Delayed { until } => {
                t.delayed.insert((until, id));
                self.delayed.insert((until, id));
            }
            Slot::Reserved { deadline } => {
                t.reserved += 1;
                self.deadlines.insert((deadline, id));
            }
            Slot::Buried { seq } => {
                t.buried.insert((seq, id));
            }
        }
    }

    fn moved(&mut self, id: u64, slot: Slot) {
        self.unlink(id);
        self.link(id, slot);
    }

    fn insert(&mut self, id: u64, meta: JobMeta) {
        if self.jobs.contains_key(&id) {
            self.remove(id);
        }
        let slot = meta.slot;
        self.live_bytes += meta.body_len as u64 + SNAPSHOT_OVERHEAD;
        self.jobs.insert(id, meta);
        self.link(id, slot);
        self.next_id = self.next_id.max(id.saturating_add(1));
    }

    fn remove(&mut self, id: u64) -> Option<JobMeta> {
        self.unlink(id);
        let j = self.jobs.remove(&id)?;
        self.reasons.remove(&id);
        self.live_bytes -= j.body_len as u64 + SNAPSHOT_OVERHEAD;
        Some(j)
    }

    /// Moves delayed jobs whose time has come (`until <= now`) to ready.
    pub(crate) fn promote(&mut self, now: u64) {
        while let Some(&(until, id)) = self.delayed.first() {
            if until > now {
                break;
            }
            self.moved(id, Slot::Ready);
        }
    }

    /// Applies one record. `body_off` is the file offset of the record's body (for `Put` and
    /// `Snapshot`). Returns the next segment for a `Seal`.
    pub(crate) fn apply(&mut self, rec: &Record<'_>, body_off: u64) -> Option<u64> {
        match *rec {
            Record::Put {
                id,
                tube,
                pri,
                delay_ms,
                ttr_ms,
                created_ms,
                body,
            } => {
                let t = self.tube_id_or_create(tube);
                let total = &mut self.tubes[t as usize].total_jobs;
                *total = total.saturating_add(1);
                let slot = if delay_ms > 0 {
                    Slot::Delayed {
                        until: created_ms.saturating_add(delay_ms),
                    }
                } else {
                    Slot::Ready
                };
                let meta = JobMeta {
                    tube: t,
                    pri,
                    slot,
                    created_ms,
                    delay_ms,
                    ttr_ms: clamp_ttr(ttr_ms),
                    body_off,
                    body_len: body.len() as u32,
                    counters: [0; 5],
                };
                self.insert(id, meta);
            }
            Record::Reserve {
                id,
                owner,
                deadline_ms,
            } => {
                if let Some(j) = self.jobs.get_mut(&id) {
                    bump(&mut j.counters[RESERVES]);
                    self.moved(
                        id,
                        Slot::Reserved {
                            deadline: deadline_ms,
                        },
                    );
                    self.owners.insert(id, owner);
                }
            }
            Record::Delete { id } => {
                if let Some(j) = self.remove(id) {
                    let t = &mut self.tubes[j.tube as usize];
                    t.cmd_delete = t.cmd_delete.saturating_add(1);
                }
            }
            Record::Release {
                id,
                pri,
                delay_ms,
                at_ms,
                reason,
            } => {
                if self.jobs.contains_key(&id) {
                    self.unlink(id);
                    let j = self.jobs.get_mut(&id).unwrap();
                    j.pri = pri;
                    j.delay_ms = delay_ms;
                    bump(&mut j.counters[RELEASES]);
                    if let Some(r) = reason {
                        self.reasons.insert(id, r.into());
                    }
                    let slot = if delay_ms > 0 {
                        Slot::Delayed {
                            until: at_ms.saturating_add(delay_ms),
                        }
                    } else {
                        Slot::Ready
                    };
                    self.link(id, slot);
                }
            }
            Record::Bury { id, pri, reason } => {
                if self.jobs.contains_key(&id) {
                    self.unlink(id);
                    let j = self.jobs.get_mut(&id).unwrap();
                    j.pri = pri;
                    bump(&mut j.counters[BURIES]);
                    if let Some(r) = reason {
                        self.reasons.insert(id, r.into());
                    }
                    self.next_bury = self.next_bury.saturating_add(1);
                    self.link(id, Slot::Buried { seq: self.next_bury });
                }
            }
            Record::Touch { id, deadline_ms } => {
                if let Some(Slot::Reserved { .. }) = self.jobs.get(&id).map(|j| j.slot)
                    && let Some(owner) = self.owner(id)
                {
                    self.moved(
                        id,
                        Slot::Reserved {
                            deadline: deadline_ms,
                        },
                    );
                    self.owners.insert(id, owner);
                }
            }
            Record::Timeout { id } => {
                if let Some(j) = self.jobs.get_mut(&id)
                    && matches!(j.slot, Slot::Reserved { .. })
                {
                    bump(&mut j.counters[TIMEOUTS]);
                    self.timeouts = self.timeouts.saturating_add(1);
                    self.moved(id, Slot::Ready);
                }
            }
            Record::Kick { id } => {
                if let Some(j) = self.jobs.get_mut(&id)
                    && matches!(j.slot, Slot::Buried { .. } | Slot::Delayed { .. })
                {
                    bump(&mut j.counters[KICKS]);
                    self.moved(id, Slot::Ready);
                }
            }
            Record::Pause { tube, until_ms, secs } => {
                let t = self.tube_id_or_create(tube) as usize;
                let t = &mut self.tubes[t];
                t.pause_until = until_ms;
                t.pause_secs = secs;
                t.cmd_pause = t.cmd_pause.saturating_add(1);
            }
            Record::Snapshot(ref s) => self.apply_snapshot(s, body_off),
            Record::NextId { next } => self.next_id = self.next_id.max(next),
            Record::Seal { next_segment } => return Some(next_segment),
            Record::TubeCounters {
                tube,
                total_jobs,
                cmd_delete,
                cmd_pause,
            } => {
                let t = self.tube_id_or_create(tube) as usize;
                let t = &mut self.tubes[t];
                t.total_jobs = total_jobs;
                t.cmd_delete = cmd_delete;
                t.cmd_pause = cmd_pause;
            }
        }
        None
    }

    fn apply_snapshot(&mut self, s: &Snapshot<'_>, body_off: u64) {
        let tube = self.tube_id_or_create(s.tube);
        let slot = match s.state {
            1 => Slot::Delayed { until: s.state_time },
            2 => Slot::Reserved {
                deadline: s.state_time,
            },
            3 => {
                self.next_bury = self.next_bury.max(s.state_time);
                Slot::Buried { seq: s.state_time }
            }
            _ => Slot::Ready,
        };
        let meta = JobMeta {
            tube,
            pri: s.pri,
            slot,
            created_ms: s.created_ms,
            delay_ms: s.delay_ms,
            ttr_ms: clamp_ttr(s.ttr_ms),
            body_off,
            body_len: s.body.len() as u32,
            counters: s.counters,
        };
        self.insert(s.id, meta);
        if let Slot::Reserved { .. } = slot {
            self.owners.insert(s.id, s.owner);
        }
        if let Some(r) = s.reason {
            self.reasons.insert(s.id, r.into());
        }
    }

    /// The snapshot of job `id` (for compaction), body left empty.
    pub(crate) fn snapshot_of(&self, id: u64) -> Option<Snapshot<'_>> {
        let j = self.jobs.get(&id)?;
        let (state, state_time, owner) = match j.slot {
            Slot::Ready => (0, 0, 0),
            Slot::Delayed { until } => (1, until, 0),
            Slot::Reserved { deadline } => (2, deadline, self.owner(id).unwrap_or(0)),
            Slot::Buried { seq } => (3, seq, 0),
        };
        Some(Snapshot {
            id,
            tube: &self.tubes[j.tube as usize].name,
            pri: j.pri,
            state,
            state_time,
            owner,
            created_ms: j.created_ms,
            delay_ms: j.delay_ms,
            ttr_ms: j.ttr_ms,
            counters: j.counters,
            reason: self.reason(id),
            body: &[],
        })
    }

    /// The best ready job among `watch` (tube numbers) whose tube is not paused at `now`.
    pub(crate) fn best_ready(&self, watch: &[u32], now: u64) -> Option<u64> {
        watch
            .iter()
            .map(|&t| &self.tubes[t as usize])
            .filter(|t| t.pause_until <= now)
            .filter_map(|t| t.ready.first())
            .min()
            .map(|&(_, id)| id)
    }

    /// The earliest moment after which the state may change by time alone: a delayed job
    /// becoming ready, a reservation expiring or a pause ending.
    pub(crate) fn next_event(&self, now: u64) -> Option<u64> {
        let pauses = self
            .tubes
            .iter()
            .map(|t| t.pause_until)
            .filter(|&u| u > now)
            .min();
        [
            self.delayed.first().map(|d| d.0),
            self.deadlines.first().map(|d| d.0),
            pauses,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
