//! Model test: random operations against the queue and a `BTreeMap` model, with "reopen" and
//! "compact" among them; the whole observable state is compared after every step.
//!
//! Time moves only by the `Tick` operation (the queue runs on a manual clock), so that short
//! delays and TTRs run out exactly when the model says: a delayed job becomes ready, a
//! reservation times out (counted in `timeouts`), `touch` gives a full TTR again from now.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use pulpo_filequeue::{Clock, Error, FileQueue, JobState, Options};

mod common;

use common::{open, opts, queue_dir};

const TUBES: [&str; 3] = ["a", "b", "c"];
/// One hour: longer than any case's ticks add up to.
const LONG: u64 = 3_600_000;
/// The shortest TTR; a shorter one counts as this.
const MIN_TTR: u64 = 1000;

/// A delay (ms): none, short ones that ticks reach, or one that never runs out in a case.
fn delay() -> impl Strategy<Value = u64> {
    prop_oneof![3 => Just(0), 1 => Just(500), 1 => Just(1000), 1 => Just(2500), 1 => Just(LONG)]
}

/// A TTR (ms): below the minimum, at it, short, or one that never runs out in a case.
fn ttr() -> impl Strategy<Value = u64> {
    prop_oneof![Just(500), Just(MIN_TTR), Just(2000), Just(LONG)]
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        tube: usize,
        pri: u32,
        delay: u64,
        ttr: u64,
        len: usize,
    },
    Reserve {
        mask: u8,
    },
    Delete(usize),
    Release {
        pick: usize,
        pri: u32,
        delay: u64,
        reason: bool,
    },
    Bury {
        pick: usize,
        pri: u32,
    },
    Touch(usize),
    Kick {
        tube: usize,
        bound: u64,
    },
    KickJob(usize),
    Reopen,
    Compact,
    /// Moves the clock on by this many milliseconds.
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..4u32, delay(), ttr(), 0..64usize)
            .prop_map(|(tube, pri, delay, ttr, len)| Op::Put { tube, pri, delay, ttr, len }),
        3 => (1..8u8).prop_map(|mask| Op::Reserve { mask }),
        2 => any::<usize>().prop_map(Op::Delete),
        2 => (any::<usize>(), 0..4u32, delay(), any::<bool>())
            .prop_map(|(pick, pri, delay, reason)| Op::Release { pick, pri, delay, reason }),
        2 => (any::<usize>(), 0..4u32).prop_map(|(pick, pri)| Op::Bury { pick, pri }),
        1 => any::<usize>().prop_map(Op::Touch),
        1 => (0..3usize, 1..4u64).prop_map(|(tube, bound)| Op::Kick { tube, bound }),
        1 => any::<usize>().prop_map(Op::KickJob),
        1 => Just(Op::Reopen),
        1 => Just(Op::Compact),
        // Up to 3 s in quarters (so that ticks add up to the delays and TTRs exactly), or 1 ms
        // (just past a moment a job's time ran out at).
        3 => prop_oneof![(1..=12u64).prop_map(|q| q * 250), Just(1)].prop_map(Op::Tick),
    ]
}

/// A job's state; times are ms on the model's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
enum St {
    Ready,
    /// Ready at this time.
    Delayed(u64),
    /// Held by handle `owner` until `deadline`.
    Reserved {
        owner: u64,
        deadline: u64,
    },
    /// Buried, this many-th (kick takes the oldest first).
    Buried(u64),
}

#[derive(Debug, Clone)]
struct M {
    tube: usize,
    pri: u32,
    ttr: u64,
    st: St,
    body: Vec<u8>,
    reason: Option<String>,
    reserves: u32,
    timeouts: u32,
}

struct Model {
    jobs: BTreeMap<u64, M>,
    ever: Vec<u64>,
    seq: u64,
    owner: u64,
    /// The clock, in ms since the case began.
    now: u64,
    /// Reservations timed out since the log was last compacted (what `job_timeouts` counts:
    /// a handle counts the timeouts it replays, and a compaction leaves none to replay).
    timeouts: u64,
}

impl Model {
    fn pick(&self, p: usize) -> u64 {
        if self.ever.is_empty() || p.is_multiple_of(5) {
            999_999
        } else {
            self.ever[p % self.ever.len()]
        }
    }
    fn mine(&self, id: u64) -> bool {
        matches!(self.jobs.get(&id), Some(M { st: St::Reserved { owner, .. }, .. }) if *owner == self.owner)
    }

    /// What time alone does, as every command first does it: delays that ran out make their
    /// jobs ready, reservations whose TTR ran out are timed out.
    fn settle(&mut self) {
        for j in self.jobs.values_mut() {
            match j.st {
                St::Delayed(until) if until <= self.now => j.st = St::Ready,
                St::Reserved { deadline, .. } if deadline <= self.now => {
                    j.st = St::Ready;
                    j.timeouts += 1;
                    self.timeouts += 1;
                }
                _ => {}
            }
        }
    }

    /// The state of a job delayed by `delay` from now.
    fn delayed(&self, delay: u64) -> St {
        if delay == 0 {
            St::Ready
        } else {
            St::Delayed(self.now + delay)
        }
    }
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (_dir, path) = queue_dir();
    let clock = Clock::manual();
    let opts = Options {
        clock: clock.clone(),
        ..opts()
    };
    let mut q = open(&path, opts.clone());
    let mut m = Model {
        jobs: BTreeMap::new(),
        ever: Vec::new(),
        seq: 0,
        owner: 0,
        now: 0,
        timeouts: 0,
    };
    for op in ops {
        m.settle();
        match op {
            Op::Put {
                tube,
                pri,
                delay,
                ttr,
                len,
            } => {
                let body: Vec<u8> = (0..len)
                    .map(|i| (i as u8).wrapping_mul(31).wrapping_add(pri as u8))
                    .collect();
                let id = q.put(TUBES[tube], pri, ms(delay), ms(ttr), &body).unwrap();
                prop_assert!(m.ever.iter().all(|&e| e < id), "ids grow and are never reused");
                m.jobs.insert(
                    id,
                    M {
                        tube,
                        pri,
                        ttr: ttr.max(MIN_TTR),
                        st: m.delayed(delay),
                        body,
                        reason: None,
                        reserves: 0,
                        timeouts: 0,
                    },
                );
                m.ever.push(id);
            }
            Op::Reserve { mask } => {
                let watch: Vec<&str> = (0..3)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| TUBES[i])
                    .collect();
                let got = q.reserve(&watch, Some(Duration::ZERO)).unwrap();
                let want = m
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.st == St::Ready && mask & (1 << j.tube) != 0)
                    .map(|(&id, j)| (j.pri, id))
                    .min();
                prop_assert_eq!(got.as_ref().map(|r| r.id), want.map(|w| w.1));
                if let Some(r) = got {
                    let j = m.jobs.get_mut(&r.id).unwrap();
                    prop_assert_eq!(&r.body, &j.body);
                    prop_assert_eq!(r.ttr, ms(j.ttr));
                    j.reserves += 1;
                    prop_assert_eq!(r.reserves, j.reserves);
                    j.st = St::Reserved {
                        owner: m.owner,
                        deadline: m.now + j.ttr,
                    };
                }
            }
            Op::Delete(p) => {
                let id = m.pick(p);
                let ok = match m.jobs.get(&id) {
                    None => false,
                    Some(j) => !matches!(j.st, St::Reserved { owner, .. } if owner != m.owner),
                };
                check(q.delete(id), ok, id)?;
                if ok {
                    m.jobs.remove(&id);
                }
            }
            Op::Release {
                pick,
                pri,
                delay,
                reason,
            } => {
                let id = m.pick(pick);
                let ok = m.mine(id);
                let why = reason.then(|| format!("err {id}"));
                check(q.release(id, pri, ms(delay), why.as_deref()), ok, id)?;
                if ok {
                    let st = m.delayed(delay);
                    let j = m.jobs.get_mut(&id).unwrap();
                    (j.pri, j.st) = (pri, st);
                    if why.is_some() {
                        j.reason = why;
                    }
                }
            }
            Op::Bury { pick, pri } => {
                let id = m.pick(pick);
                let ok = m.mine(id);
                check(q.bury(id, pri, Some("buried")), ok, id)?;
                if ok {
                    let seq = m.next();
                    let j = m.jobs.get_mut(&id).unwrap();
                    (j.pri, j.st, j.reason) = (pri, St::Buried(seq), Some("buried".into()));
                }
            }
            Op::Touch(p) => {
                let id = m.pick(p);
                let ok = m.mine(id);
                check(q.touch(id), ok, id)?;
                if ok {
                    let j = m.jobs.get_mut(&id).unwrap();
                    j.st = St::Reserved {
                        owner: m.owner,
                        deadline: m.now + j.ttr,
                    };
                }
            }
            Op::Kick { tube, bound } => {
                let of = |f: fn(&St) -> Option<u64>| {
                    let mut v: Vec<(u64, u64)> = m
                        .jobs
                        .iter()
                        .filter(|(_, j)| j.tube == tube)
                        .filter_map(|(&id, j)| f(&j.st).map(|s| (s, id)))
                        .collect();
                    v.sort();
                    v
                };
                let buried = of(|s| if let St::Buried(x) = s { Some(*x) } else { None });
                let delayed = of(|s| if let St::Delayed(x) = s { Some(*x) } else { None });
                let from = if buried.is_empty() { delayed } else { buried };
                let kicked: Vec<u64> = from.iter().take(bound as usize).map(|x| x.1).collect();
                prop_assert_eq!(q.kick(TUBES[tube], bound).unwrap(), kicked.len() as u64);
                for id in kicked {
                    m.jobs.get_mut(&id).unwrap().st = St::Ready;
                }
            }
            Op::KickJob(p) => {
                let id = m.pick(p);
                let ok = matches!(
                    m.jobs.get(&id).map(|j| j.st),
                    Some(St::Buried(_) | St::Delayed(_))
                );
                check(q.kick_job(id), ok, id)?;
                if ok {
                    m.jobs.get_mut(&id).unwrap().st = St::Ready;
                }
            }
            Op::Reopen => {
                drop(q);
                q = open(&path, opts.clone());
                m.owner += 1; // a new handle owns none of the old reservations
            }
            Op::Compact => {
                q.compact().unwrap();
                m.timeouts = 0;
            }
            Op::Tick(by) => {
                clock.advance(ms(by));
                m.now += by;
                m.settle();
            }
        }
        compare(&q, &m)?;
    }
    Ok(())
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn check(r: Result<(), Error>, ok: bool, id: u64) -> Result<(), TestCaseError> {
    match (r, ok) {
        (Ok(()), true) => Ok(()),
        (Err(Error::NotFound { id: got }), false) if got == id => Ok(()),
        (r, ok) => Err(TestCaseError::fail(format!(
            "job {id}: got {r:?}, model says ok={ok}"
        ))),
    }
}

fn compare(q: &FileQueue, m: &Model) -> Result<(), TestCaseError> {
    for &id in &m.ever {
        match (m.jobs.get(&id), q.peek(id)) {
            (None, Err(Error::NotFound { .. })) => {}
            (Some(j), Ok(got)) => {
                let (want, left) = match j.st {
                    St::Ready => (JobState::Ready, 0),
                    St::Delayed(until) => (JobState::Delayed, until - m.now),
                    St::Reserved { deadline, .. } => (JobState::Reserved, deadline - m.now),
                    St::Buried(_) => (JobState::Buried, 0),
                };
                prop_assert_eq!(got.stats.state, want, "job {}", id);
                prop_assert_eq!(got.stats.time_left, ms(left), "job {}", id);
                prop_assert_eq!(got.stats.ttr, ms(j.ttr), "job {}", id);
                prop_assert_eq!(got.stats.reserves, j.reserves, "job {}", id);
                prop_assert_eq!(got.stats.timeouts, j.timeouts, "job {}", id);
                prop_assert_eq!(got.stats.pri, j.pri, "job {}", id);
                prop_assert_eq!(&got.stats.tube, TUBES[j.tube]);
                prop_assert_eq!(&got.body, &j.body);
                prop_assert_eq!(&got.stats.reason, &j.reason);
            }
            (want, got) => {
                return Err(TestCaseError::fail(format!(
                    "job {id}: model {want:?}, queue {got:?}"
                )));
            }
        }
    }
    let s = q.stats().unwrap();
    let count = |f: fn(&St) -> bool| m.jobs.values().filter(|j| f(&j.st)).count() as u64;
    prop_assert_eq!(s.current_jobs_ready, count(|s| *s == St::Ready));
    prop_assert_eq!(s.current_jobs_delayed, count(|s| matches!(s, St::Delayed(_))));
    prop_assert_eq!(
        s.current_jobs_reserved,
        count(|s| matches!(s, St::Reserved { .. }))
    );
    prop_assert_eq!(s.current_jobs_buried, count(|s| matches!(s, St::Buried(_))));
    prop_assert_eq!(s.total_jobs, m.ever.len() as u64);
    prop_assert_eq!(s.job_timeouts, m.timeouts);
    Ok(())
}

proptest! {
    // Hundreds of cases; a failing case is kept in model.proptest-regressions beside this file
    // (commit it) and replayed first on every later run.
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn queue_matches_model(ops in proptest::collection::vec(op(), 1..50)) {
        run(ops)?;
    }
}
