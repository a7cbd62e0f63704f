//! Model test: random operations against the queue and a `BTreeMap` model, with "reopen" and
//! "compact" among them; the whole observable state is compared after every step.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use pulpo_filequeue::{Error, FileQueue, JobState};

mod common;

use common::{open, opts, queue_dir};

const TUBES: [&str; 3] = ["a", "b", "c"];
const LONG: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
enum Op {
    Put {
        tube: usize,
        pri: u32,
        delayed: bool,
        len: usize,
    },
    Reserve {
        mask: u8,
    },
    Delete(usize),
    Release {
        pick: usize,
        pri: u32,
        delayed: bool,
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
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..4u32, any::<bool>(), 0..64usize)
            .prop_map(|(tube, pri, delayed, len)| Op::Put { tube, pri, delayed, len }),
        3 => (1..8u8).prop_map(|mask| Op::Reserve { mask }),
        2 => any::<usize>().prop_map(Op::Delete),
        2 => (any::<usize>(), 0..4u32, any::<bool>(), any::<bool>())
            .prop_map(|(pick, pri, delayed, reason)| Op::Release { pick, pri, delayed, reason }),
        2 => (any::<usize>(), 0..4u32).prop_map(|(pick, pri)| Op::Bury { pick, pri }),
        1 => any::<usize>().prop_map(Op::Touch),
        1 => (0..3usize, 1..4u64).prop_map(|(tube, bound)| Op::Kick { tube, bound }),
        1 => any::<usize>().prop_map(Op::KickJob),
        1 => Just(Op::Reopen),
        1 => Just(Op::Compact),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum St {
    Ready,
    Delayed(u64),
    Reserved(u64),
    Buried(u64),
}

#[derive(Debug, Clone)]
struct M {
    tube: usize,
    pri: u32,
    st: St,
    body: Vec<u8>,
    reason: Option<String>,
}

struct Model {
    jobs: BTreeMap<u64, M>,
    ever: Vec<u64>,
    seq: u64,
    owner: u64,
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
        matches!(self.jobs.get(&id), Some(M { st: St::Reserved(o), .. }) if *o == self.owner)
    }
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (_dir, path) = queue_dir();
    let mut q = open(&path, opts());
    let mut m = Model {
        jobs: BTreeMap::new(),
        ever: Vec::new(),
        seq: 0,
        owner: 0,
    };
    for op in ops {
        match op {
            Op::Put {
                tube,
                pri,
                delayed,
                len,
            } => {
                let body: Vec<u8> = (0..len)
                    .map(|i| (i as u8).wrapping_mul(31).wrapping_add(pri as u8))
                    .collect();
                let delay = if delayed { LONG } else { Duration::ZERO };
                let id = q.put(TUBES[tube], pri, delay, LONG, &body).unwrap();
                prop_assert!(m.ever.iter().all(|&e| e < id), "ids grow and are never reused");
                let st = if delayed { St::Delayed(m.next()) } else { St::Ready };
                m.jobs.insert(
                    id,
                    M {
                        tube,
                        pri,
                        st,
                        body,
                        reason: None,
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
                    j.st = St::Reserved(m.owner);
                }
            }
            Op::Delete(p) => {
                let id = m.pick(p);
                let ok = match m.jobs.get(&id) {
                    None => false,
                    Some(j) => !matches!(j.st, St::Reserved(o) if o != m.owner),
                };
                check(q.delete(id), ok, id)?;
                if ok {
                    m.jobs.remove(&id);
                }
            }
            Op::Release {
                pick,
                pri,
                delayed,
                reason,
            } => {
                let id = m.pick(pick);
                let ok = m.mine(id);
                let why = reason.then(|| format!("err {id}"));
                let delay = if delayed { LONG } else { Duration::ZERO };
                check(q.release(id, pri, delay, why.as_deref()), ok, id)?;
                if ok {
                    let st = if delayed { St::Delayed(m.next()) } else { St::Ready };
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
                check(q.touch(id), m.mine(id), id)?;
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
                q = open(&path, opts());
                m.owner += 1; // a new handle owns none of the old reservations
            }
            Op::Compact => q.compact().unwrap(),
        }
        // Delayed jobs are ordered by when they were delayed: keep those moments distinct.
        std::thread::sleep(Duration::from_millis(1));
        compare(&q, &m)?;
    }
    Ok(())
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
                let want = match j.st {
                    St::Ready => JobState::Ready,
                    St::Delayed(_) => JobState::Delayed,
                    St::Reserved(_) => JobState::Reserved,
                    St::Buried(_) => JobState::Buried,
                };
                prop_assert_eq!(got.stats.state, want, "job {}", id);
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
    prop_assert_eq!(s.current_jobs_reserved, count(|s| matches!(s, St::Reserved(_))));
    prop_assert_eq!(s.current_jobs_buried, count(|s| matches!(s, St::Buried(_))));
    prop_assert_eq!(s.total_jobs, m.ever.len() as u64);
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
