//! End-to-end throughput of the runner (`pulpo run`'s engine) with a no-op
//! handler, beside the raw reserve+delete rate of the same queue in the
//! same run.
//!
//! Run with `cargo bench --bench runner`. For each queue — the file queue
//! with fsync off and on, and a real beanstalkd started by
//! `pulpo_testkit` — and for concurrency 1 and 4, it prints jobs/s of:
//!
//! - **raw**: the queue's own API driven as fast as it goes, with as many
//!   threads (file queue: `pulpo_filequeue::FileQueue`, blocking calls) or
//!   connections (beanstalkd: `pulpo_beanstalkd::Client`, one tokio task
//!   each) as the runner has workers: reserve (not waiting), then delete;
//! - **runner**: [`pulpo::runner::Runner`] on a multi-thread tokio runtime,
//!   as `pulpo run` has it, routing every job (a pulpo message of request
//!   type `noop`) to a handler that only counts; timed from the start of the
//!   run until the handler has seen every job.
//!
//! and the ratio runner / raw. Every timed run starts with the same number
//! of jobs queued (`BENCH_JOBS`, default 20,000; a quarter of that with
//! fsync on), put beforehand and untimed, and ends with the queue empty.
//! Rounds alternate raw and runner; the table shows the median of
//! `BENCH_ROUNDS` (default 3) rounds.
//!
//! Targets (issue 4): runner ≥ 0.7 × raw at concurrency 1; ≥ 10,000 jobs/s
//! on beanstalkd at concurrency 4; ≥ 5,000 jobs/s on the file queue with
//! fsync off, with 20,000 jobs queued.
//!
//! Issue 14: on the file queue with fsync off the runner at concurrency 4
//! must do at least as many jobs/s as at concurrency 1 (its workers share
//! one index); the ratio is printed under the table.
//!
//! `BENCH_QUEUES=file,file-fsync,beanstalkd` picks queues (default: all).
//! `BENCH_TABLES=records`: only the job-records table (issue 16).
//! `PULPO_BENCH_QUICK=1`: one round of a few hundred jobs, a smoke run for
//! CI whose figures mean nothing.

#[path = "noop_runner/mod.rs"]
mod noop_runner;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulpo::config::{Settings, from_toml_str};
use pulpo::message::Message;
use pulpo::queue::{self, NewJob};
use pulpo_beanstalkd::Client;
use pulpo_filequeue::{FileQueue, Options as FileOptions};
use pulpo_testkit::Beanstalkd;

/// Which queue a row measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    FileFast,
    FileDurable,
    Beanstalkd,
}

impl Kind {
    /// The name `BENCH_QUEUES` selects it by.
    fn key(self) -> &'static str {
        match self {
            Kind::FileFast => "file",
            Kind::FileDurable => "file-fsync",
            Kind::Beanstalkd => "beanstalkd",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::FileFast => "file, fsync off",
            Kind::FileDurable => "file, fsync on",
            Kind::Beanstalkd => "beanstalkd",
        }
    }
}

struct Bench {
    jobs: usize,
    rounds: usize,
    server: Beanstalkd,
    runtime: tokio::runtime::Runtime,
    body: Bytes,
}

impl Bench {
    fn jobs_for(&self, kind: Kind) -> usize {
        match kind {
            Kind::FileDurable => (self.jobs / 4).max(100),
            _ => self.jobs,
        }
    }

    /// Settings for the runner on `kind`, with the queue at `dir`; with
    /// `records`, job records on (beanstalkd's beside the queue's directory).
    fn settings(&self, kind: Kind, dir: &Path, concurrency: usize, records: bool) -> Settings {
        let queue = match kind {
            Kind::Beanstalkd => format!(
                "queue = \"beanstalkd\"\n[beanstalkd]\naddress = \"{}\"\n",
                self.server.address()
            ),
            Kind::FileFast | Kind::FileDurable => format!(
                "queue = \"file\"\n[file]\npath = \"{}\"\nfsync = {}\n",
                dir.display(),
                kind == Kind::FileDurable
            ),
        };
        let history = if records {
            format!(
                "[history]\nenabled = true\npath = \"{}\"\n",
                dir.with_extension("records").display()
            )
        } else {
            String::new()
        };
        let text = format!(
            "concurrency = {concurrency}\nsleep_duration = \"1s\"\nshutdown_after_number_of_empty_iterations = 0\n{queue}{history}[handlers.noop]\nkind = \"noop\"\n"
        );
        from_toml_str(&text, Path::new("bench.toml")).expect("bench settings")
    }

    /// Queues `n` jobs, untimed.
    fn fill(&self, settings: &Settings, n: usize) {
        self.runtime.block_on(async {
            let mut q = queue::open(settings).await.expect("open the queue");
            let mut left = n;
            while left > 0 {
                let batch = left.min(1000);
                left -= batch;
                let jobs = (0..batch)
                    .map(|_| NewJob {
                        priority: 1024,
                        delay: Duration::ZERO,
                        ttr: Duration::from_secs(60),
                        body: self.body.clone(),
                    })
                    .collect();
                for id in q.put_many(&settings.tube, jobs).await.expect("put") {
                    id.expect("put");
                }
            }
        });
    }

    /// The raw rate: `workers` threads or connections reserving and
    /// deleting until the queue is empty.
    fn raw(&self, kind: Kind, settings: &Settings, workers: usize, n: usize) -> f64 {
        let started = Instant::now();
        match kind {
            Kind::FileFast | Kind::FileDurable => {
                let options = FileOptions {
                    fsync: kind == Kind::FileDurable,
                    ..FileOptions::default()
                };
                let q = FileQueue::open(&settings.file.path, options).expect("open");
                std::thread::scope(|scope| {
                    for _ in 0..workers {
                        let q = q.clone();
                        scope.spawn(move || {
                            while let Some(job) =
                                q.reserve(&["default"], Some(Duration::ZERO)).expect("reserve")
                            {
                                q.delete(job.id).expect("delete");
                            }
                        });
                    }
                });
            }
            Kind::Beanstalkd => self.runtime.block_on(async {
                let mut tasks = Vec::new();
                for _ in 0..workers {
                    let address = self.server.address();
                    tasks.push(tokio::spawn(async move {
                        let mut client = Client::connect(&address).await.expect("connect");
                        loop {
                            match client.reserve_with_timeout(0).await {
                                Ok(job) => client.delete(job.id).await.expect("delete"),
                                Err(err) if err.is_timed_out() => break,
                                Err(err) => panic!("reserve: {err}"),
                            }
                        }
                    }));
                }
                for task in tasks {
                    task.await.expect("raw worker");
                }
            }),
        }
        n as f64 / started.elapsed().as_secs_f64()
    }

    /// The runner's rate: from its start until the handler saw `n` jobs.
    fn runner(&self, settings: &Settings, n: usize) -> f64 {
        noop_runner::jobs_per_second(&self.runtime, settings, n)
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() {
    let quick = std::env::var("PULPO_BENCH_QUICK").is_ok_and(|v| v == "1");
    let env = |name: &str, full: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(full)
    };
    let bench = Bench {
        jobs: if quick { 300 } else { env("BENCH_JOBS", 20_000) },
        rounds: if quick { 1 } else { env("BENCH_ROUNDS", 3) },
        server: Beanstalkd::start(),
        runtime: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime"),
        body: Bytes::from(Message::new("noop").with_payload("x".repeat(40)).to_json()),
    };
    println!(
        "runner end to end, no-op handler, {}-byte message bodies, median of {} round(s)",
        bench.body.len(),
        bench.rounds
    );
    println!(
        "{:<18} {:>4} {:>7} {:>12} {:>12} {:>7}  target",
        "queue", "conc", "jobs", "raw/s", "runner/s", "ratio"
    );
    let only = std::env::var("BENCH_QUEUES").unwrap_or_default();
    match std::env::var("BENCH_TABLES").as_deref() {
        Ok("records") => {
            records_beside_none(&bench, &only);
            return;
        }
        Ok("status") => {
            status_with_many_records(&bench);
            return;
        }
        _ => {}
    }
    // Runner rates by (queue, concurrency), for the ratios under the table.
    let mut runner_rates = Vec::new();
    for kind in [Kind::FileFast, Kind::FileDurable, Kind::Beanstalkd] {
        if !only.is_empty() && !only.split(',').any(|k| k == kind.key()) {
            continue;
        }
        for concurrency in [1, 4] {
            let n = bench.jobs_for(kind);
            let (mut raws, mut runs) = (Vec::new(), Vec::new());
            for _ in 0..bench.rounds {
                let dir = tempfile::tempdir().expect("tempdir");
                let settings = bench.settings(kind, &dir.path().join("queue"), concurrency, false);
                bench.fill(&settings, n);
                raws.push(bench.raw(kind, &settings, concurrency, n));
                bench.fill(&settings, n);
                runs.push(bench.runner(&settings, n));
            }
            let (raw, run) = (median(raws), median(runs));
            runner_rates.push((kind, concurrency, run));
            let target = match (kind, concurrency) {
                (_, 1) if kind == Kind::FileFast => "≥ 0.7× raw; ≥ 5,000/s",
                (_, 1) => "≥ 0.7× raw",
                (Kind::Beanstalkd, _) => "≥ 10,000/s",
                (Kind::FileFast, _) => "≥ 5,000/s",
                _ => "",
            };
            println!(
                "{:<18} {:>4} {:>7} {:>12.0} {:>12.0} {:>7.2}  {target}",
                kind.name(),
                concurrency,
                n,
                raw,
                run,
                run / raw
            );
        }
    }
    let rate = |kind: Kind, concurrency: usize| {
        runner_rates
            .iter()
            .find(|r| r.0 == kind && r.1 == concurrency)
            .map(|r| r.2)
    };
    for kind in [Kind::FileFast, Kind::FileDurable, Kind::Beanstalkd] {
        if let (Some(one), Some(four)) = (rate(kind, 1), rate(kind, 4)) {
            let ratio = four / one;
            let verdict = match kind {
                Kind::FileFast if ratio >= 1.0 => "≥ 1.0× (issue 14): ok",
                Kind::FileFast => "≥ 1.0× (issue 14): MISSED",
                _ => "info",
            };
            println!(
                "{:<18} runner concurrency 4 / 1: {ratio:.2}×  {verdict}",
                kind.name()
            );
        }
    }
    records_beside_none(&bench, &only);
    status_with_many_records(&bench);
}

/// `pulpo status <id>` with 1,000,000 records kept (issue 16; target
/// < 10 ms): the store is filled in one transaction
/// ([`pulpo::history::import`]), then the median of the library lookup
/// ([`pulpo::history::lookup`], opening the store each time as the command
/// does) and of the whole command (a `pulpo` process) are printed.
fn status_with_many_records(bench: &Bench) {
    use chrono::Utc;
    use pulpo::history::{self, Attempt, End, JobRef, Record};
    let kept: u64 = if bench.rounds == 1 && bench.jobs < 1000 {
        10_000
    } else {
        1_000_000
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = dir.path().join("queue");
    let text = format!(
        "queue = \"file\"\n[file]\npath = \"{}\"\n[history]\nenabled = true\nmax_jobs = {kept}\n",
        queue.display()
    );
    std::fs::write(dir.path().join("pulpo.toml"), &text).expect("config");
    let settings = from_toml_str(&text, &dir.path().join("pulpo.toml")).expect("settings");
    let now = Utc::now();
    let record = |id: u64| Record {
        job: JobRef::new(id),
        request_type: "noop".to_owned(),
        tube: "default".to_owned(),
        outcome: Some(End::Succeeded),
        ended: Some(now),
        attempts: vec![Attempt {
            attempt: 1,
            started: now,
            finished: now,
            duration_ms: 0.1,
            settlement: "delete".to_owned(),
            error: None,
        }],
        events: Vec::new(),
        result: None,
        updated: now,
    };
    let started = Instant::now();
    let written = history::import(&settings, (1..=kept).map(record)).expect("import");
    let built = started.elapsed();
    assert_eq!(written, kept);
    let ids: Vec<u64> = (0..25u64).map(|i| 1 + (i * 7_919_993) % kept).collect();
    let lookups = ids
        .iter()
        .map(|&id| {
            let started = Instant::now();
            let found = history::lookup(&settings, JobRef::new(id)).expect("lookup");
            assert!(found.is_some(), "record {id}");
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let commands = ids
        .iter()
        .map(|&id| {
            let started = Instant::now();
            let out = pulpo_testkit::output::clean_command(
                env!("CARGO_BIN_EXE_pulpo"),
                dir.path(),
                &["status", &id.to_string()],
            )
            .output()
            .expect("pulpo status");
            let took = started.elapsed().as_secs_f64() * 1e3;
            assert!(out.status.success(), "{out:?}");
            took
        })
        .collect();
    println!(
        "\n`pulpo status` with {kept} records kept (store built in {:.1} s), median of {}",
        built.as_secs_f64(),
        ids.len()
    );
    println!("{:<24} {:>9}  target", "what", "ms");
    println!("{:<24} {:>9.2}  < 10 ms", "history::lookup", median(lookups));
    println!(
        "{:<24} {:>9.2}  < 10 ms",
        "pulpo status (process)",
        median(commands)
    );
}

/// The runner's rate with job records on beside off (issue 16), at
/// concurrency 4, rounds alternating; targets: ≥ 0.8× with the file queue's
/// fsync on, ≥ 0.9× on beanstalkd.
fn records_beside_none(bench: &Bench, only: &str) {
    println!("\njob records ([history] enabled) beside none, concurrency 4");
    println!(
        "{:<18} {:>7} {:>12} {:>12} {:>7}  target",
        "queue", "jobs", "off/s", "on/s", "ratio"
    );
    for kind in [Kind::FileFast, Kind::FileDurable, Kind::Beanstalkd] {
        if !only.is_empty() && !only.split(',').any(|k| k == kind.key()) {
            continue;
        }
        let n = bench.jobs_for(kind);
        let (mut offs, mut ons) = (Vec::new(), Vec::new());
        for _ in 0..bench.rounds {
            for records in [false, true] {
                let dir = tempfile::tempdir().expect("tempdir");
                let settings = bench.settings(kind, &dir.path().join("queue"), 4, records);
                bench.fill(&settings, n);
                let rate = bench.runner(&settings, n);
                if records { ons.push(rate) } else { offs.push(rate) }
            }
        }
        let (off, on) = (median(offs), median(ons));
        let target = match kind {
            Kind::FileDurable => "≥ 0.8×",
            Kind::Beanstalkd => "≥ 0.9×",
            Kind::FileFast => "",
        };
        println!(
            "{:<18} {:>7} {:>12.0} {:>12.0} {:>7.2}  {target}",
            kind.name(),
            n,
            off,
            on,
            on / off
        );
    }
}
