//! `pulpo serve` against a real beanstalkd, driven by the same client (pulpo's own,
//! `pulpo_beanstalkd::Client`), interleaved round by round, in one run.
//!
//! Run with `cargo bench --bench serve`. It starts the release `pulpo` binary (`pulpo serve`,
//! built by `cargo bench` with the bench profile) and a `beanstalkd` from `pulpo_testkit`, each
//! on a free loopback port, and prints per row the median figure of each server, the ratio
//! pulpo / beanstalkd, and the row's target:
//!
//! - **fsync off** (`pulpo serve` without fsync against beanstalkd without `-b`): puts/s and
//!   reserve+delete/s (jobs/s), sequential (one command at a time per connection) and pipelined
//!   (batches of commands written together), over 1 and 8 connections. Target: ≥ 0.8×.
//! - **durable puts** (`pulpo serve` with fsync against `beanstalkd -b DIR -f 0`), sequential
//!   puts over 1, 8 and 32 connections, and how many puts one fdatasync covered (`pulpo serve`
//!   logs its group commits' fdatasyncs when it stops). Targets: ≥ 2× at 8 connections;
//!   pulpo's 32-connection figure ≥ 2× its 8-connection one.
//! - **memory**: VmRSS (`/proc/PID/status`) of each server holding 100,000 jobs of 100 bytes.
//!   Target: pulpo ≤ beanstalkd.
//!
//! Every timed run starts with the tube empty (puts are deleted afterwards, jobs to reserve are
//! put beforehand, untimed). Rounds alternate which server goes first.
//!
//! Environment: `BENCH_ROUNDS` (default 3), `BENCH_OPS` (default 20,000 jobs per fsync-off
//! run), `BENCH_TABLES` (a comma-separated choice of `fsync-off`, `durable`, `memory`; default
//! all); `PULPO_BENCH_QUICK=1`: one round of a few hundred jobs, a smoke run for CI whose
//! figures mean nothing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulpo_beanstalkd::proto::{Command as Cmd, Reply};
use pulpo_beanstalkd::{Client, PutJob};
use pulpo_testkit::Beanstalkd;
use tokio::runtime::Runtime;

const TUBE: &str = "bench";
const BODY: [u8; 100] = [b'x'; 100];
/// Commands per pipelined batch.
const BATCH: usize = 100;

/// A `pulpo serve` child process over a fresh queue directory.
struct Serve {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(fsync: bool) -> Serve {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = pulpo_testkit::free_port();
        let address = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_pulpo"))
            .args(["serve", "--listen", &address, "--path"])
            .arg(dir.path().join("queue"))
            .env("PULPO_FILE__FSYNC", fsync.to_string())
            .env("PULPO_SERVE__MAX_CONNECTIONS", "1000")
            .env_remove("PULPO_LOG")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pulpo serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "pulpo serve did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Serve {
            child,
            address,
            _dir: dir,
        }
    }

    /// Stops the server (SIGTERM) and returns the fdatasyncs it logged.
    fn stop(mut self) -> u64 {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .expect("pulpo serve stops");
        let log = String::from_utf8_lossy(&out.stderr);
        log.split("fdatasyncs=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq)]
enum Work {
    Put,
    /// Sequential puts left in the queue, so that the fdatasyncs counted are the puts'.
    DurablePut,
    ReserveDelete,
}

async fn connect(address: &str) -> Client {
    let mut c = Client::connect(address).await.expect("connect");
    c.use_tube(TUBE).await.expect("use");
    c.watch(TUBE).await.expect("watch");
    c.ignore("default").await.expect("ignore");
    c
}

fn put_cmd() -> Cmd {
    Cmd::Put {
        priority: 1024,
        delay: 0,
        ttr: 600,
        body: Bytes::from_static(&BODY),
    }
}

/// Puts `n` jobs (untimed helper, pipelined) and returns their ids.
async fn fill(c: &mut Client, n: usize) -> Vec<u64> {
    let mut ids = Vec::with_capacity(n);
    let jobs: Vec<PutJob> = (0..BATCH)
        .map(|_| PutJob {
            priority: 1024,
            delay: 0,
            ttr: 600,
            body: Bytes::from_static(&BODY),
        })
        .collect();
    let mut left = n;
    while left > 0 {
        let k = left.min(BATCH);
        for id in c.put_batch(&jobs[..k]).await.expect("put batch") {
            ids.push(id.expect("inserted"));
        }
        left -= k;
    }
    ids
}

async fn delete_all(c: &mut Client, ids: &[u64]) {
    for chunk in ids.chunks(1000) {
        let cmds: Vec<Cmd> = chunk.iter().map(|&id| Cmd::Delete { id }).collect();
        c.pipeline(&cmds).await.expect("delete");
    }
}

/// One timed run of `n` jobs over `conns` connections; returns jobs/s.
async fn run(address: String, work: Work, pipelined: bool, conns: usize, n: usize) -> f64 {
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(connect(&address).await);
    }
    if work == Work::ReserveDelete {
        fill(&mut clients[0], n).await;
    }
    let per = n / conns;
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut ids = Vec::new();
                match (work, pipelined) {
                    (Work::Put | Work::DurablePut, false) => {
                        for _ in 0..per {
                            ids.push(c.put(1024, 0, 600, Bytes::from_static(&BODY)).await.expect("put"));
                        }
                    }
                    (Work::Put | Work::DurablePut, true) => {
                        let cmds: Vec<Cmd> = (0..BATCH).map(|_| put_cmd()).collect();
                        let mut left = per;
                        while left > 0 {
                            let k = left.min(BATCH);
                            for reply in c.pipeline(&cmds[..k]).await.expect("put") {
                                let Reply::Inserted { id } = reply else {
                                    panic!("put: {reply:?}")
                                };
                                ids.push(id);
                            }
                            left -= k;
                        }
                    }
                    (Work::ReserveDelete, false) => {
                        while let Ok(job) = c.reserve_with_timeout(0).await {
                            c.delete(job.id).await.expect("delete");
                        }
                    }
                    (Work::ReserveDelete, true) => loop {
                        let cmds = vec![Cmd::ReserveWithTimeout { timeout: 0 }; BATCH];
                        let got: Vec<Cmd> = c
                            .pipeline(&cmds)
                            .await
                            .expect("reserve")
                            .into_iter()
                            .filter_map(|r| match r {
                                Reply::Reserved { id, .. } => Some(Cmd::Delete { id }),
                                _ => None,
                            })
                            .collect();
                        if got.is_empty() {
                            break;
                        }
                        c.pipeline(&got).await.expect("delete");
                    },
                }
                (c, ids)
            })
        })
        .collect();
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.expect("bench task"));
    }
    let took = started.elapsed();
    if work == Work::Put {
        for (mut c, ids) in done {
            delete_all(&mut c, &ids).await;
        }
    }
    let jobs = if work == Work::ReserveDelete {
        n
    } else {
        per * conns
    };
    jobs as f64 / took.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `rounds` interleaved rounds on both servers; (pulpo median, beanstalkd median).
fn compare<F: std::future::Future<Output = f64>>(
    rt: &Runtime,
    rounds: usize,
    pulpo: &str,
    reference: &str,
    f: impl Fn(String) -> F,
) -> (f64, f64) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            a.push(rt.block_on(f(pulpo.to_owned())));
            b.push(rt.block_on(f(reference.to_owned())));
        } else {
            b.push(rt.block_on(f(reference.to_owned())));
            a.push(rt.block_on(f(pulpo.to_owned())));
        }
    }
    (median(a), median(b))
}

fn row(what: &str, pulpo: f64, reference: f64, target: &str, met: bool) {
    println!(
        "{what:<34} {pulpo:>10.0} {reference:>12.0} {:>7.2}x   {target} {}",
        pulpo / reference,
        if met { "met" } else { "MISSED" }
    );
}

fn main() {
    let quick = std::env::var("PULPO_BENCH_QUICK").is_ok_and(|v| v == "1");
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let rounds = if quick { 1 } else { env("BENCH_ROUNDS", 3) };
    let ops = if quick { 400 } else { env("BENCH_OPS", 20_000) };
    let tables = std::env::var("BENCH_TABLES").unwrap_or_default();
    let table = |name: &str| tables.is_empty() || tables.split(',').any(|t| t.trim() == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if quick {
        println!("PULPO_BENCH_QUICK=1: smoke run, the figures below are not meaningful");
    }
    println!(
        "{rounds} interleaved round(s), medians; 100-byte bodies; load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    if table("fsync-off") {
        fsync_off(&rt, rounds, ops);
    }
    if table("durable") {
        durable(&rt, rounds, quick);
    }
    if table("memory") {
        memory(&rt, quick);
    }
}

/// The fsync-off table.
fn fsync_off(rt: &Runtime, rounds: usize, ops: usize) {
    println!("\nfsync off: pulpo serve (no fsync) vs beanstalkd (no -b), jobs/s");
    println!(
        "{:<34} {:>10} {:>12} {:>8}   target",
        "row", "pulpo", "beanstalkd", "ratio"
    );
    let serve = Serve::start(false);
    let beanstalkd = Beanstalkd::start();
    let reference = beanstalkd.address();
    for (work, name) in [(Work::Put, "put"), (Work::ReserveDelete, "reserve+delete")] {
        for pipelined in [false, true] {
            for conns in [1, 8] {
                let (p, b) = compare(rt, rounds, &serve.address, &reference, |addr| {
                    run(addr, work, pipelined, conns, ops)
                });
                let mode = if pipelined { "pipelined" } else { "sequential" };
                row(
                    &format!("{name}, {mode}, {conns} conn"),
                    p,
                    b,
                    ">= 0.8x",
                    p >= 0.8 * b,
                );
            }
        }
    }
    drop(serve);
    drop(beanstalkd);
}

/// The durable-puts table.
fn durable(rt: &Runtime, rounds: usize, quick: bool) {
    println!(
        "\ndurable puts: pulpo serve (fsync) vs beanstalkd -b DIR -f 0, puts/s (sequential per connection)"
    );
    println!(
        "{:<34} {:>10} {:>12} {:>8}   target; puts per fdatasync",
        "row", "pulpo", "beanstalkd", "ratio"
    );
    let binlog = tempfile::tempdir().expect("temp dir");
    let beanstalkd = Beanstalkd::start_with(pulpo_testkit::Options {
        binlog_dir: Some(binlog.path().to_owned()),
        fsync_ms: Some(0),
        ..Default::default()
    });
    let reference = beanstalkd.address();
    let mut at8 = 0.0;
    for conns in [1usize, 8, 32] {
        let n = if quick { 64 } else { (500 * conns).min(8_000) };
        let serve = Serve::start(true);
        let (p, b) = compare(rt, rounds, &serve.address, &reference, |addr| {
            run(addr, Work::DurablePut, false, conns, n)
        });
        let fdatasyncs = serve.stop();
        let per_sync = (rounds * (n / conns) * conns) as f64 / fdatasyncs.max(1) as f64;
        let (target, met) = match conns {
            8 => {
                at8 = p;
                (">= 2x".to_owned(), p >= 2.0 * b)
            }
            32 => (format!(">= 2x pulpo's 8-conn {at8:.0}"), p >= 2.0 * at8),
            _ => ("(none)".to_owned(), true),
        };
        row(&format!("durable put, {conns} conn"), p, b, &target, met);
        println!(
            "{:<34} {per_sync:.1} puts per fdatasync ({fdatasyncs} fdatasyncs)",
            ""
        );
    }
    drop(beanstalkd);
}

/// The memory table.
fn memory(rt: &Runtime, quick: bool) {
    let jobs = if quick { 2_000 } else { 100_000 };
    println!("\nmemory: VmRSS holding {jobs} jobs of 100 bytes, KiB");
    let serve = Serve::start(false);
    let beanstalkd = Beanstalkd::start();
    // The filling connections stay open: a pulpo connection's queue handle holds its index.
    let fill_to = |addr: String| {
        rt.block_on(async move {
            let mut c = connect(&addr).await;
            fill(&mut c, jobs).await;
            c
        })
    };
    let _open = (fill_to(serve.address.clone()), fill_to(beanstalkd.address()));
    std::thread::sleep(Duration::from_millis(200));
    let p = rss_kib(serve.child.id()) as f64;
    let b = beanstalkd.pid().map(rss_kib).unwrap_or(0) as f64;
    row("RSS (KiB)", p, b, "<= 1x", p <= b);
}
