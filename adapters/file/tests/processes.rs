//! Several processes on one directory, and processes killed with SIGKILL.
//!
//! The test binary runs itself as the child: `worker_entry` and `crash_entry` are the child's
//! work, ignored in a normal run (so they neither pass for nothing nor pad the count) and run
//! by `child` with `--ignored`; they also refuse to run without their environment variable.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use pulpo_filequeue::{Error, FileQueue, Options};

mod common;

use common::{open, synced};

const TOTAL: u64 = 10_000;
const WORKERS: u64 = 3;
const TTR: Duration = Duration::from_secs(120);

fn child(test: &str, env: &[(&str, String)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([test, "--exact", "--ignored", "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        c.env(k, v);
    }
    // The child's own test-harness summary would read like this binary's.
    c.stdout(std::process::Stdio::null());
    c.spawn().unwrap()
}

/// In a child, the directory and number its parent gave it in the environment variables
/// `dir_var` and `n_var`; `None` in a normal run of the tests.
fn child_env(dir_var: &str, n_var: &str) -> Option<(PathBuf, u64)> {
    let dir = std::env::var(dir_var).ok()?;
    let n: u64 = std::env::var(n_var).unwrap().parse().unwrap();
    Some((PathBuf::from(dir), n))
}

/// Child: puts its share of the jobs and reserves+deletes until all are gone, writing the ids
/// it put and reserved to files.
#[test]
#[ignore = "a child process's work, run by three_processes_share_10000_jobs_each_reserved_exactly_once"]
fn worker_entry() {
    let (dir, k) = child_env("PULPO_FQ_WORKER_DIR", "PULPO_FQ_WORKER")
        .expect("run as a child: PULPO_FQ_WORKER_DIR and PULPO_FQ_WORKER name its work");
    let q = open(&dir.join("q"), synced());
    let share = TOTAL / WORKERS + u64::from(k < TOTAL % WORKERS);
    let (mut put, mut got) = (Vec::new(), Vec::new());
    let mut take = |q: &FileQueue, timeout| match q.reserve(&["mp"], Some(timeout)).unwrap() {
        Some(r) => {
            assert!(r.body.starts_with(b"w"), "body of job {}", r.id);
            q.delete(r.id).unwrap();
            got.push(r.id);
            true
        }
        None => false,
    };
    for i in 0..share {
        put.push(
            q.put(
                "mp",
                (i % 7) as u32,
                Duration::ZERO,
                TTR,
                format!("w{k} {i}").as_bytes(),
            )
            .unwrap(),
        );
        if i % 2 == 0 {
            take(&q, Duration::ZERO);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if take(&q, Duration::from_millis(100)) {
            continue;
        }
        let s = q.stats().unwrap();
        if s.total_jobs == TOTAL && s.current_jobs_ready + s.current_jobs_reserved == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "worker {k} stuck: {s:?}");
    }
    let line = |v: &[u64]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n");
    std::fs::write(dir.join(format!("put.{k}")), line(&put)).unwrap();
    std::fs::write(dir.join(format!("reserved.{k}")), line(&got)).unwrap();
}

#[test]
fn three_processes_share_10000_jobs_each_reserved_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let kids: Vec<Child> = (0..WORKERS)
        .map(|k| {
            child(
                "worker_entry",
                &[
                    ("PULPO_FQ_WORKER_DIR", dir.display().to_string()),
                    ("PULPO_FQ_WORKER", k.to_string()),
                ],
            )
        })
        .collect();
    for mut c in kids {
        assert!(c.wait().unwrap().success());
    }
    let read = |name: &str| -> Vec<u64> {
        let s = std::fs::read_to_string(dir.join(name)).unwrap();
        s.lines().map(|l| l.parse().unwrap()).collect()
    };
    let mut put = HashSet::new();
    let mut reserved = HashMap::<u64, u32>::new();
    let mut per_worker = Vec::new();
    for k in 0..WORKERS {
        for id in read(&format!("put.{k}")) {
            assert!(put.insert(id), "id {id} given twice");
        }
        let got = read(&format!("reserved.{k}"));
        per_worker.push(got.len());
        for id in got {
            *reserved.entry(id).or_default() += 1;
        }
    }
    assert_eq!(put.len() as u64, TOTAL);
    assert_eq!(reserved.len() as u64, TOTAL, "every job reserved");
    assert!(reserved.values().all(|&n| n == 1), "a job reserved twice");
    assert!(reserved.keys().all(|id| put.contains(id)));
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "every process reserved some: {per_worker:?}"
    );
    let q = open(&dir.join("q"), Options::default());
    assert_eq!(q.stats().unwrap().total_jobs, TOTAL);
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// A body that carries its own hash: 8 bytes of FNV-1a, then the payload.
fn body(seed: u64) -> Vec<u8> {
    let len = (seed % 3000) as usize;
    let mut x = seed | 1;
    let payload: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut b = fnv(&payload).to_le_bytes().to_vec();
    b.extend_from_slice(&payload);
    b
}

fn intact(b: &[u8]) -> bool {
    b.len() >= 8 && fnv(&b[8..]).to_le_bytes() == b[..8]
}

/// Child: puts, reserves and deletes until killed (with fsync unless `PULPO_FQ_CRASH_FSYNC` is
/// `0`), logging every acknowledged operation (fsync'd) to a side file: `P id` after a put, `d
/// id` before and `D id` after a delete.
#[test]
#[ignore = "a child process's work, run by killed_writers_lose_nothing_acknowledged_and_leave_nothing_torn"]
fn crash_entry() {
    let (dir, round) = child_env("PULPO_FQ_CRASH_DIR", "PULPO_FQ_CRASH_ROUND")
        .expect("run as a child: PULPO_FQ_CRASH_DIR and PULPO_FQ_CRASH_ROUND name its work");
    let fsync = std::env::var("PULPO_FQ_CRASH_FSYNC").map_or(true, |v| v != "0");
    let q = open(
        &dir.join("q"),
        Options {
            fsync,
            ..Options::default()
        },
    );
    let mut side = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("acks"))
        .unwrap();
    let mut note = |s: String| {
        side.write_all(s.as_bytes()).unwrap();
        side.sync_data().unwrap();
    };
    for i in 0u64.. {
        let id = q
            .put(
                "crash",
                0,
                Duration::ZERO,
                Duration::from_secs(1),
                &body(round * 1_000_000 + i),
            )
            .unwrap();
        note(format!("P {id}\n"));
        if i % 3 != 0
            && let Some(r) = q.reserve(&["crash"], Some(Duration::ZERO)).unwrap()
        {
            assert!(intact(&r.body), "torn body for job {}", r.id);
            note(format!("d {}\n", r.id));
            q.delete(r.id).unwrap();
            note(format!("D {}\n", r.id));
        }
    }
}

fn check_store(dir: &Path) -> usize {
    let acks = std::fs::read_to_string(dir.join("acks")).unwrap_or_default();
    let (mut put, mut deleting, mut deleted) = (HashSet::new(), HashSet::new(), HashSet::new());
    for l in acks.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let (k, id) = l.trim_end().split_once(' ').unwrap();
        let id: u64 = id.parse().unwrap();
        match k {
            "P" => put.insert(id),
            "d" => deleting.insert(id),
            _ => deleted.insert(id),
        };
    }
    let q = open(&dir.join("q"), Options::default());
    for &id in &put {
        match q.peek(id) {
            Ok(j) => {
                assert!(!deleted.contains(&id), "deleted job {id} came back");
                assert!(intact(&j.body), "job {id} torn");
            }
            Err(Error::NotFound { .. }) => {
                assert!(deleting.contains(&id), "acknowledged put {id} lost");
            }
            Err(e) => panic!("{e}"),
        }
    }
    let next = q.stats().unwrap().next_id;
    for id in 1..next {
        if let Ok(j) = q.peek(id) {
            assert!(intact(&j.body), "job {id} torn");
        }
    }
    // The store keeps working.
    let id = q
        .put("after", 0, Duration::ZERO, Duration::from_secs(5), &body(7))
        .unwrap();
    assert!(id >= next);
    let r = q.reserve(&["after"], Some(Duration::ZERO)).unwrap().unwrap();
    assert_eq!(r.id, id);
    q.delete(id).unwrap();
    put.len()
}

#[test]
fn killed_writers_lose_nothing_acknowledged_and_leave_nothing_torn() {
    killed_writers(true);
}

/// Without fsync the same holds after kill -9: the kernel still holds the writes (only a power
/// loss or a kernel crash could lose them).
#[test]
fn killed_writers_without_fsync_lose_nothing_acknowledged_and_leave_nothing_torn() {
    killed_writers(false);
}

/// Rounds of writers (with or without `fsync`) killed with SIGKILL mid-work; after each, the
/// store holds every acknowledged job whole.
fn killed_writers(fsync: bool) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut total = 0;
    // Rounds of one, two and three writers at once: with several, group commits are under way
    // (leaders, waiters, groups gathering) when the kills land.
    for round in 0..6u64 {
        let writers = 1 + round % 3;
        let mut children: Vec<Child> = (0..writers)
            .map(|w| {
                child(
                    "crash_entry",
                    &[
                        ("PULPO_FQ_CRASH_DIR", dir.display().to_string()),
                        ("PULPO_FQ_CRASH_ROUND", (round * 10 + w).to_string()),
                        ("PULPO_FQ_CRASH_FSYNC", u8::from(fsync).to_string()),
                    ],
                )
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + next() % 300));
        for c in &mut children {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
            std::thread::sleep(Duration::from_millis(next() % 40));
        }
        total = check_store(&dir);
    }
    assert!(total > 0, "the children acknowledged nothing");
}
