//! The power-cut harness that `power_cut.rs` and `power_cut_tester.rs` share: run commands on a
//! queue in a lazy filesystem (`pulpo_testkit::lazyfs`), cut the power at a random moment,
//! reboot, and check the queue against what was acknowledged before the cut.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulpo_filequeue::{Error, FileQueue, JobState, Options};
use pulpo_testkit::lazyfs::{LazyFs, Rng, Tear};

/// A TTR no cycle waits for.
const TTR: Duration = Duration::from_secs(600);
/// The environment variable that makes the test binary a producer process (in `child_entry`).
pub(crate) const CHILD_DIR: &str = "LAZYFS_CHILD_DIR";
/// The producer's number.
pub(crate) const CHILD_NO: &str = "LAZYFS_CHILD_NO";

/// What a cycle runs before the cut.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    /// Threads, each with its own handle, each using its own tube.
    pub(crate) threads: usize,
    /// Producer processes (puts only).
    pub(crate) processes: usize,
    /// Whether to compact often (a small `compact_min_bytes`, and `compact` calls).
    pub(crate) compact: bool,
    /// `Options::fsync`.
    pub(crate) fsync: bool,
    /// Longest time before the cut.
    pub(crate) max_run: Duration,
    /// The cut comes once this many commands (at most) were acknowledged in the cycle, a
    /// number drawn anew each cycle: progress, not time, so that a loaded machine still cuts
    /// after compactions and segment switches.
    pub(crate) max_acks: u64,
}

impl Scenario {
    /// `threads` threads and `processes` producer processes, with fsync, without extra
    /// compactions, cut after up to 60 acknowledged commands (or 2 s).
    pub(crate) fn new(threads: usize, processes: usize) -> Scenario {
        Scenario {
            threads,
            processes,
            compact: false,
            fsync: true,
            max_run: Duration::from_secs(2),
            max_acks: 60,
        }
    }
}

/// A state a job may be found in after the cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Ready,
    Buried,
    Gone,
}

#[derive(Debug, Clone)]
struct Known {
    body: Vec<u8>,
    /// The states it may be in: the one after its last acknowledged command, and the one after
    /// a command that failed at the cut.
    ok: Vec<St>,
}

/// What the commands acknowledged so far say the queue holds.
#[derive(Debug, Default)]
pub(crate) struct Model {
    jobs: BTreeMap<u64, Known>,
    /// Bodies of puts tried but not acknowledged: each may be there or not.
    tried: HashSet<Vec<u8>>,
    /// The highest id ever handed out.
    max_id: u64,
    /// Cycles run.
    pub(crate) cycles: u64,
    /// Next body number.
    serial: u64,
    /// Commands acknowledged.
    acks: u64,
}

/// Options of the queues in a scenario.
fn options(s: &Scenario) -> Options {
    Options {
        fsync: s.fsync,
        compact_min_bytes: if s.compact {
            32 << 10
        } else {
            Options::default().compact_min_bytes
        },
        ..Options::default()
    }
}

fn body(tag: &str, n: u64, rng: &mut Rng) -> Vec<u8> {
    let mut b = format!("{tag}-{n}:").into_bytes();
    let pad = rng.below(1500) as usize;
    b.extend((0..pad).map(|i| b'a' + ((n as usize + i) % 26) as u8));
    b
}

/// One thread's commands, until the first failure (the cut) or `stop`.
fn worker(q: &FileQueue, k: usize, model: &Mutex<Model>, stop: &AtomicBool, seed: u64, compact: bool) {
    let mut rng = Rng::new(seed);
    let tube = format!("t{k}");
    let mut buried: Vec<u64> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let roll = rng.below(100);
        let r: Result<(), Error> = (|| {
            if roll < 45 {
                let b = {
                    let mut m = model.lock().unwrap();
                    m.serial += 1;
                    let b = body(&format!("w{k}"), m.serial, &mut rng);
                    m.tried.insert(b.clone());
                    b
                };
                let id = q.put(&tube, 100, Duration::ZERO, TTR, &b)?;
                let mut m = model.lock().unwrap();
                m.tried.remove(&b);
                m.max_id = m.max_id.max(id);
                m.jobs.insert(
                    id,
                    Known {
                        body: b,
                        ok: vec![St::Ready],
                    },
                );
            } else if roll < 80 {
                let Some(r) = q.reserve(&[&tube], Some(Duration::ZERO))? else {
                    return Ok(());
                };
                let to = match rng.below(3) {
                    0 => St::Gone,
                    1 => St::Ready,
                    _ => St::Buried,
                };
                {
                    let mut m = model.lock().unwrap();
                    let j = m
                        .jobs
                        .get_mut(&r.id)
                        .unwrap_or_else(|| panic!("reserved job {} was never put", r.id));
                    assert_eq!(
                        j.body, r.body,
                        "job {}: the body reserved is not the one put",
                        r.id
                    );
                    j.ok = vec![St::Ready, to];
                }
                match to {
                    St::Gone => q.delete(r.id)?,
                    St::Ready => q.release(r.id, 100, Duration::ZERO, None)?,
                    St::Buried => {
                        q.bury(r.id, 100, None)?;
                        buried.push(r.id);
                    }
                }
                let mut m = model.lock().unwrap();
                m.jobs.get_mut(&r.id).unwrap().ok = vec![to];
                m.acks += 1;
            } else if roll < 90 && !buried.is_empty() {
                if rng.below(2) == 0 {
                    let id = buried.swap_remove(rng.below(buried.len() as u64) as usize);
                    model.lock().unwrap().jobs.get_mut(&id).unwrap().ok = vec![St::Buried, St::Ready];
                    q.kick_job(id)?;
                    let mut m = model.lock().unwrap();
                    m.jobs.get_mut(&id).unwrap().ok = vec![St::Ready];
                    m.acks += 1;
                } else {
                    // Every buried job of the tube: this cycle's, and those left by earlier ones.
                    buried.clear();
                    let prefix = format!("w{k}-");
                    let all: Vec<u64> = {
                        let mut m = model.lock().unwrap();
                        let all: Vec<u64> = m
                            .jobs
                            .iter()
                            .filter(|(_, j)| j.ok == [St::Buried] && j.body.starts_with(prefix.as_bytes()))
                            .map(|(id, _)| *id)
                            .collect();
                        for id in &all {
                            m.jobs.get_mut(id).unwrap().ok = vec![St::Buried, St::Ready];
                        }
                        all
                    };
                    let n = q.kick(&tube, all.len() as u64 + 10)?;
                    assert!(
                        n >= all.len() as u64,
                        "kick moved {n} of {} buried jobs",
                        all.len()
                    );
                    let mut m = model.lock().unwrap();
                    for id in &all {
                        m.jobs.get_mut(id).unwrap().ok = vec![St::Ready];
                    }
                    m.acks += 1;
                }
            } else if compact && roll >= 90 {
                q.compact()?;
                model.lock().unwrap().acks += 1;
            }
            Ok(())
        })();
        if r.is_err() {
            return;
        }
    }
}

/// A producer process's lines: `try <body>` before a put, `ok <id> <body>` after it returns.
fn producer(dir: &Path, k: u64, fsync: bool) {
    let q = FileQueue::open(
        dir,
        Options {
            fsync,
            ..Options::default()
        },
    )
    .unwrap();
    let mut out = std::io::stdout().lock();
    let mut rng = Rng::new(k);
    for n in 0.. {
        let b = body(&format!("p{k}"), n, &mut rng);
        let line = String::from_utf8(b.clone()).unwrap();
        writeln!(out, "try {line}").unwrap();
        out.flush().unwrap();
        let Ok(id) = q.put("procs", 100, Duration::ZERO, TTR, &b) else {
            return;
        };
        writeln!(out, "ok {id} {line}").unwrap();
        out.flush().unwrap();
    }
}

/// The child's side of a producer process: puts until its queue fails. Runs only when the
/// environment names its directory.
pub(crate) fn child_entry() {
    let dir = std::env::var(CHILD_DIR).expect("run as a child: LAZYFS_CHILD_DIR names its queue");
    let k: u64 = std::env::var(CHILD_NO).unwrap().parse().unwrap();
    producer(
        Path::new(&dir),
        k,
        std::env::var("LAZYFS_CHILD_FSYNC").is_ok_and(|v| v == "1"),
    );
}

fn spawn_producer(test: &str, dir: &Path, k: usize, fsync: bool) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_NO, k.to_string())
        .env("LAZYFS_CHILD_FSYNC", if fsync { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Reads a producer's lines into the model until it ends.
fn read_producer(child: &mut Child, model: &Arc<Mutex<Model>>) -> std::thread::JoinHandle<()> {
    let out = child.stdout.take().unwrap();
    let model = model.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            let mut m = model.lock().unwrap();
            if let Some(b) = line.strip_prefix("try ") {
                m.tried.insert(b.as_bytes().to_vec());
            } else if let Some(rest) = line.strip_prefix("ok ") {
                let (id, b) = rest.split_once(' ').unwrap();
                let id: u64 = id.parse().unwrap();
                m.tried.remove(b.as_bytes());
                m.max_id = m.max_id.max(id);
                m.jobs.insert(
                    id,
                    Known {
                        body: b.as_bytes().to_vec(),
                        ok: vec![St::Ready],
                    },
                );
            }
        }
    })
}

/// One cycle: mount `backing`, run the scenario, cut the power at a random moment (with a
/// random tear), reboot, and check. `Err` says what the check found.
pub(crate) fn cycle(
    test: &str,
    child_test: &str,
    backing: &Path,
    s: &Scenario,
    model: &Arc<Mutex<Model>>,
    seed: u64,
) -> Option<Result<(), String>> {
    let mut rng = Rng::new(seed);
    let mut fs = LazyFs::mount(backing, test)?;
    let dir = fs.path().join("q");
    let opts = options(s);
    let stop = AtomicBool::new(false);
    let run = s.max_run;
    let target = model.lock().unwrap().acks + rng.below(s.max_acks + 1);
    let tear = [Tear::None, Tear::Sector, Tear::Page][rng.below(3) as usize];
    let cut_seed = rng.next_u64();
    // The first open creates the directory; a failure here is a failure of the queue.
    let first = match FileQueue::open(&dir, opts.clone()) {
        Ok(q) => q,
        Err(e) => {
            return Some(Err(format!(
                "the queue does not open in the lazy filesystem: {e}"
            )));
        }
    };
    let mut queues = vec![first];
    for _ in 1..s.threads {
        queues.push(FileQueue::open(&dir, opts.clone()).unwrap());
    }
    let mut children: Vec<Child> = (0..s.processes)
        .map(|k| {
            spawn_producer(
                child_test,
                &dir,
                k + 100 * model.lock().unwrap().cycles as usize,
                s.fsync,
            )
        })
        .collect();
    let readers: Vec<_> = children.iter_mut().map(|c| read_producer(c, model)).collect();
    std::thread::scope(|sc| {
        for (k, q) in queues.iter().enumerate() {
            let (stop, model) = (&stop, &**model);
            let seed = rng.next_u64();
            sc.spawn(move || worker(q, k, model, stop, seed, s.compact));
        }
        let t0 = Instant::now();
        while t0.elapsed() < run && model.lock().unwrap().acks < target {
            std::thread::sleep(Duration::from_micros(200));
        }
        fs.cut(tear, cut_seed);
        stop.store(true, Ordering::Relaxed);
    });
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    for r in readers {
        r.join().unwrap();
    }
    drop(queues);
    let backing = fs.reboot();
    let mut m = model.lock().unwrap();
    m.cycles += 1;
    Some(check(&backing.join("q"), &opts, &mut m).map_err(|e| {
        format!(
            "cycle {} (seed {seed}, cut at {target} acknowledged commands or {run:?}, tear {tear:?}): {e}",
            m.cycles
        )
    }))
}

/// Opens the queue after a reboot and compares it with the model; then settles the model on
/// what was found (it is what the disk holds now).
///
/// Without fsync nothing acknowledged need survive: only what was found must be whole (no torn
/// job, no damaged record: a torn tail is cut off), and the queue must open and work.
fn check(dir: &Path, opts: &Options, m: &mut Model) -> Result<(), String> {
    let lost_allowed = !opts.fsync;
    if !dir.exists() {
        // The cut came before the queue directory was durable: nothing may have been acknowledged.
        if let Some((id, _)) = m
            .jobs
            .iter()
            .find(|(_, j)| !j.ok.contains(&St::Gone) && opts.fsync)
        {
            return Err(format!(
                "the queue directory is gone, but job {id} was acknowledged"
            ));
        }
        m.jobs.clear();
        m.tried.clear();
        return Ok(());
    }
    let q = FileQueue::open(dir, opts.clone()).map_err(|e| format!("the queue does not open: {e}"))?;
    let stats = q.stats().map_err(|e| format!("stats: {e}"))?;
    if stats.corrupt_records != 0 {
        return Err(format!(
            "{} damaged records after a power cut",
            stats.corrupt_records
        ));
    }
    let mut found = BTreeMap::new();
    for id in 1..stats.next_id.max(m.max_id + 1) {
        match q.peek(id) {
            Ok(job) => {
                let st = match job.stats.state {
                    JobState::Buried => St::Buried,
                    _ => St::Ready,
                };
                found.insert(id, (job.body, st));
            }
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(format!("peek {id}: {e}")),
        }
    }
    for (id, j) in &m.jobs {
        let (st, body) = match found.get(id) {
            Some((b, st)) => (*st, Some(b)),
            None => (St::Gone, None),
        };
        if !j.ok.contains(&st) && !lost_allowed {
            return Err(format!(
                "job {id} is {st:?}, but the commands acknowledged say {:?}",
                j.ok
            ));
        }
        if let Some(b) = body
            && *b != j.body
        {
            return Err(format!(
                "job {id}: its body is not the one put ({} bytes, {} put)",
                b.len(),
                j.body.len()
            ));
        }
    }
    for (id, (b, _)) in &found {
        if !m.jobs.contains_key(id) && !m.tried.contains(b) {
            return Err(format!(
                "job {id} was never put (or its body is torn: {} bytes)",
                b.len()
            ));
        }
    }
    if lost_allowed {
        m.max_id = found.keys().next_back().copied().unwrap_or(0);
    }
    if stats.next_id <= m.max_id {
        return Err(format!(
            "the next id is {}, but id {} was handed out: ids would be reused",
            stats.next_id, m.max_id
        ));
    }
    // It works: a put, reserve and delete on a tube of its own.
    let id = q
        .put("probe", 1, Duration::ZERO, TTR, b"probe")
        .map_err(|e| format!("put after the cut: {e}"))?;
    if id <= m.max_id {
        return Err(format!(
            "a put after the cut got id {id}, already handed out (up to {})",
            m.max_id
        ));
    }
    let r = q
        .reserve(&["probe"], Some(Duration::ZERO))
        .map_err(|e| format!("reserve: {e}"))?;
    if r.as_ref().map(|r| r.id) != Some(id) {
        return Err(format!(
            "reserve after the cut got {:?}, not the job just put ({id})",
            r.map(|r| r.id)
        ));
    }
    q.delete(id).map_err(|e| format!("delete: {e}"))?;
    // Settle: what was found is what the disk holds.
    m.max_id = id;
    m.jobs = found
        .into_iter()
        .map(|(id, (body, st))| (id, Known { body, ok: vec![st] }))
        .collect();
    m.tried.clear();
    Ok(())
}

/// Runs cycles of `s` on one queue until `budget` is spent or `max` cycles ran; returns the
/// cycles run, or the first failure. `None`: skipped (no FUSE).
pub(crate) fn run(
    test: &str,
    child_test: &str,
    s: &Scenario,
    seed: u64,
    max: u64,
    budget: Duration,
) -> Option<Result<u64, String>> {
    let root = tempfile::tempdir().unwrap();
    let backing: PathBuf = root.path().join("disk");
    std::fs::create_dir(&backing).unwrap();
    let model = Arc::new(Mutex::new(Model::default()));
    let t0 = Instant::now();
    let mut rng = Rng::new(seed);
    for n in 0..max {
        if t0.elapsed() >= budget {
            return Some(Ok(n));
        }
        match cycle(test, child_test, &backing, s, &model, rng.next_u64())? {
            Ok(()) => {}
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(max))
}
