//! Whole-process benchmark of the file queue, printed as one table with the targets.
//!
//! `cargo bench --bench filequeue`; `PULPO_BENCH_QUICK=1` for a tiny run;
//!
//! Besides rates it prints two figures of issue 14: four producers in one process against one
//! (fsync off, in interleaved rounds; the handles of one process share one index, so four must
//! not do less than one), and the memory (VmRSS) of a process that opens a queue of 100,000 jobs
//! of 100 bytes, beside a real beanstalkd's holding the same jobs.
//! `PULPO_BENCH_DIR` picks the filesystem (default: the workspace's `target/`, i.e. the disk the
//! project lives on, not a tmpfs).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pulpo_filequeue::{FileQueue, NewJob, Options};

const BODY: usize = 100;
const Z: Duration = Duration::ZERO;
const TTR: Duration = Duration::from_secs(600);

struct Cfg {
    quick: bool,
    root: PathBuf,
}

impl Cfg {
    fn n(&self, full: usize) -> usize {
        if self.quick { (full / 20).max(20) } else { full }
    }
    fn dir(&self) -> tempfile::TempDir {
        tempfile::tempdir_in(&self.root).unwrap()
    }
}

fn rate(n: usize, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64()
}

/// The raw loop: append one record of the same size as a put's, fdatasync, repeat.
fn raw_append_fdatasync(cfg: &Cfg, n: usize) -> f64 {
    let d = cfg.dir();
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.path().join("raw"))
        .unwrap();
    let rec = vec![7u8; BODY + 60];
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(&rec).unwrap();
        f.sync_data().unwrap();
    }
    rate(n, t.elapsed())
}

/// For information: the same loop writing into a file already full of synced zeros, so that an
/// fdatasync need not write the file's size (what the queue's preallocated segments do).
fn raw_overwrite_fdatasync(cfg: &Cfg, n: usize) -> f64 {
    use std::os::unix::fs::FileExt;
    let d = cfg.dir();
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(d.path().join("raw"))
        .unwrap();
    let rec = vec![7u8; BODY + 60];
    f.write_all_at(&vec![0u8; n * rec.len() + 4096], 0).unwrap();
    f.sync_all().unwrap();
    let t = Instant::now();
    for i in 0..n {
        f.write_all_at(&rec, (i * rec.len()) as u64).unwrap();
        f.sync_data().unwrap();
    }
    rate(n, t.elapsed())
}

/// The median of some figures.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The fsync-on figures, in interleaved rounds: every round measures the raw loop and each put
/// mode one after the other, so that each ratio compares runs a second apart on a disk whose
/// speed drifts by 2x over minutes. Returns, per measure, the rates of all rounds.
struct Durable {
    raw: Vec<f64>,
    overwrite: Vec<f64>,
    one: Vec<f64>,
    threads4: Vec<f64>,
    procs4: Vec<f64>,
}

fn durable_rounds(cfg: &Cfg) -> Durable {
    let rounds = if cfg.quick { 1 } else { 9 };
    let n = cfg.n(1000);
    let mut d = Durable {
        raw: vec![],
        overwrite: vec![],
        one: vec![],
        threads4: vec![],
        procs4: vec![],
    };
    for _ in 0..rounds {
        d.raw.push(raw_append_fdatasync(cfg, n));
        d.one.push(puts(cfg, true, 1, n));
        d.threads4.push(puts(cfg, true, 4, n / 2));
        d.procs4.push(puts_processes(cfg, 4, n / 2));
        d.overwrite.push(raw_overwrite_fdatasync(cfg, n));
    }
    d
}

fn open(path: &Path, fsync: bool) -> FileQueue {
    FileQueue::open(
        path,
        Options {
            fsync,
            compact_min_bytes: 1 << 40,
            ..Options::default()
        },
    )
    .unwrap()
}

fn puts(cfg: &Cfg, fsync: bool, producers: usize, per: usize) -> f64 {
    let d = cfg.dir();
    let path = d.path().join("q");
    let handles: Vec<FileQueue> = (0..producers).map(|_| open(&path, fsync)).collect();
    let body = vec![1u8; BODY];
    let t = Instant::now();
    std::thread::scope(|s| {
        for q in &handles {
            let body = &body;
            s.spawn(move || {
                for _ in 0..per {
                    q.put("bench", 100, Z, TTR, body).unwrap();
                }
            });
        }
    });
    rate(producers * per, t.elapsed())
}

/// Like [`puts`] with fsync on, but each producer is a process of its own (this binary,
/// re-run with `PULPO_BENCH_PRODUCER=<dir>:<count>`); timed from a common start signal.
fn puts_processes(cfg: &Cfg, producers: usize, per: usize) -> f64 {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let d = cfg.dir();
    let path = d.path().join("q");
    drop(open(&path, true));
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = (0..producers)
        .map(|_| {
            Command::new(&exe)
                .env("PULPO_BENCH_PRODUCER", format!("{}:{per}", path.display()))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in &mut children {
        let mut line = String::new();
        BufReader::new(c.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    let t = Instant::now();
    for c in &mut children {
        c.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a producer process failed");
    }
    rate(producers * per, t.elapsed())
}

/// The producer process of [`puts_processes`].
fn producer(spec: &str) {
    let (dir, n) = spec.rsplit_once(':').unwrap();
    let q = open(Path::new(dir), true);
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    let body = vec![1u8; BODY];
    for _ in 0..n.parse::<usize>().unwrap() {
        q.put("bench", 100, Z, TTR, &body).unwrap();
    }
}

fn fill(q: &FileQueue, depth: usize) {
    let body = vec![2u8; BODY];
    let batch: Vec<NewJob> = (0..1000)
        .map(|i| NewJob {
            pri: i % 10,
            delay: Z,
            ttr: TTR,
            body: &body,
        })
        .collect();
    let mut left = depth;
    while left > 0 {
        let n = left.min(batch.len());
        q.put_many("bench", &batch[..n]).unwrap();
        left -= n;
    }
}

/// (puts/s, reserve+delete/s) with `depth` jobs already queued, fsync off.
fn at_depth(cfg: &Cfg, depth: usize) -> (f64, f64) {
    let d = cfg.dir();
    let q = open(&d.path().join("q"), false);
    fill(&q, depth);
    let n = cfg.n(5000).min(depth.max(1));
    let body = vec![3u8; BODY];
    let t = Instant::now();
    for _ in 0..n {
        q.put("bench", 5, Z, TTR, &body).unwrap();
    }
    let put = rate(n, t.elapsed());
    let t = Instant::now();
    for _ in 0..n {
        let r = q.reserve(&["bench"], Some(Z)).unwrap().unwrap();
        q.delete(r.id).unwrap();
    }
    (put, rate(n, t.elapsed()))
}

/// Jobs in the queue whose memory is measured, as in issue 14.
const RSS_JOBS: usize = 100_000;

/// Fsync-off puts of one producer and of four (own handles, one process), in interleaved
/// rounds; returns (one, four) rates per round.
fn producers_rounds(cfg: &Cfg) -> (Vec<f64>, Vec<f64>) {
    let rounds = if cfg.quick { 1 } else { 5 };
    let (mut one, mut four) = (vec![], vec![]);
    for _ in 0..rounds {
        one.push(puts(cfg, false, 1, cfg.n(40_000)));
        four.push(puts(cfg, false, 4, cfg.n(10_000)));
    }
    (one, four)
}

/// A process's resident memory, in bytes (VmRSS in `/proc/<pid>/status`).
fn rss_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The memory of a fresh process (this binary, re-run with `FILEQUEUE_BENCH_RSS=<dir>`) that
/// opens a queue of [`RSS_JOBS`] 100-byte jobs and looks at it once.
fn filequeue_rss(cfg: &Cfg) -> u64 {
    use std::process::Command;
    let d = cfg.dir();
    let path = d.path().join("q");
    fill(&open(&path, false), RSS_JOBS);
    let out = Command::new(std::env::current_exe().unwrap())
        .env("FILEQUEUE_BENCH_RSS", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "the measured process failed");
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

/// The process of [`filequeue_rss`]: opens the queue, checks it, prints its own VmRSS.
fn rss_child(dir: &str) {
    let q = open(Path::new(dir), false);
    assert_eq!(q.stats().unwrap().current_jobs_ready, RSS_JOBS as u64);
    println!("{}", rss_of("self").unwrap());
}

/// A real beanstalkd's memory holding [`RSS_JOBS`] 100-byte jobs (put pipelined, no binlog), or
/// `None` without one.
fn beanstalkd_rss() -> Option<u64> {
    use std::io::{BufRead, BufReader};
    if !pulpo_testkit::beanstalkd_path().exists() {
        return None;
    }
    let server = pulpo_testkit::Beanstalkd::start();
    let conn = std::net::TcpStream::connect(server.socket_addr()).ok()?;
    let mut writer = conn.try_clone().ok()?;
    let feeding = std::thread::spawn(move || {
        let mut put = format!("put 100 0 600 {BODY}\r\n").into_bytes();
        put.extend_from_slice(&[b'x'; BODY]);
        put.extend_from_slice(b"\r\n");
        let mut batch = Vec::new();
        for _ in 0..1000 {
            batch.extend_from_slice(&put);
        }
        for _ in 0..RSS_JOBS / 1000 {
            writer.write_all(&batch).unwrap();
        }
    });
    let mut replies = BufReader::new(conn);
    let mut line = String::new();
    for _ in 0..RSS_JOBS {
        line.clear();
        replies.read_line(&mut line).ok()?;
        assert!(line.starts_with("INSERTED"), "beanstalkd answered {line:?}");
    }
    feeding.join().unwrap();
    rss_of(&server.pid()?.to_string())
}

fn main() {
    if let Ok(spec) = std::env::var("PULPO_BENCH_PRODUCER") {
        return producer(&spec);
    }
    if let Ok(dir) = std::env::var("FILEQUEUE_BENCH_RSS") {
        return rss_child(&dir);
    }
    let quick = std::env::var("PULPO_BENCH_QUICK").is_ok_and(|v| v == "1");
    let root = std::env::var_os("PULPO_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&root).unwrap();
    let cfg = Cfg { quick, root };
    // Lets criterion-style `cargo bench -- <filter>` invocations through: this harness runs all.
    println!(
        "pulpo-filequeue benchmark{} in {}",
        if quick { " (quick)" } else { "" },
        cfg.root.display()
    );

    let dur = durable_rounds(&cfg);
    let (ones, fours) = producers_rounds(&cfg);
    let ratios: Vec<f64> = fours.iter().zip(&ones).map(|(f, o)| f / o).collect();
    let (nosync1, nosync4) = (median(ones), median(fours));
    let rss = filequeue_rss(&cfg);
    let bean_rss = beanstalkd_rss();
    let depths = [1_000, 10_000, if quick { 20_000 } else { 100_000 }];
    let by_depth: Vec<(f64, f64)> = depths.iter().map(|&d| at_depth(&cfg, d)).collect();

    let row = |what: &str, v: f64, target: String, ok: bool| {
        println!(
            "{what:<52} {v:>12.0}/s   {target:<36} {}",
            if ok { "ok" } else { "MISSED" }
        );
    };
    println!(
        "fsync on: {} interleaved round(s); rates are medians, ratios are the median of each \
         round's ratio to that round's raw loop (min..max over rounds)",
        dur.raw.len()
    );
    println!("{:<52} {:>14}   {:<36}", "measure", "rate", "target");
    let raw = median(dur.raw.clone());
    row(
        "raw append + fdatasync (160 B records)",
        raw,
        format!(
            "reference ({:.0}..{:.0})",
            dur.raw.iter().copied().fold(f64::INFINITY, f64::min),
            dur.raw.iter().copied().fold(0.0, f64::max)
        ),
        true,
    );
    let ratio_row = |what: &str, rates: &[f64], want: f64| {
        let ratios: Vec<f64> = rates.iter().zip(&dur.raw).map(|(r, raw)| r / raw).collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        let m = median(ratios);
        let target = if want > 0.0 {
            format!("{m:.2} x raw ({lo:.2}..{hi:.2}); >= {want} x")
        } else {
            format!("{m:.2} x raw ({lo:.2}..{hi:.2}); info")
        };
        row(what, median(rates.to_vec()), target, m >= want);
    };
    ratio_row(
        "raw overwrite in place + fdatasync (no size change)",
        &dur.overwrite,
        0.0,
    );
    ratio_row("put, fsync on, 1 producer", &dur.one, 0.5);
    ratio_row(
        "put, fsync on, 4 producers (threads, own handles)",
        &dur.threads4,
        2.0,
    );
    ratio_row("put, fsync on, 4 producer processes", &dur.procs4, 2.0);
    row(
        "put, fsync off, 1 producer",
        nosync1,
        ">= 20000".into(),
        nosync1 >= 20_000.0,
    );
    row(
        "put, fsync off, 4 producers (own handles, one process)",
        nosync4,
        "(info)".into(),
        true,
    );
    let four_to_one = median(ratios.clone());
    row(
        "ratio put, 4 producers / 1, fsync off (x1000)",
        four_to_one * 1000.0,
        format!(
            ">= 1000 (1.0x); {} rounds {:.2}..{:.2}",
            ratios.len(),
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max)
        ),
        four_to_one >= 1.0,
    );
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    let (target, verdict) = match bean_rss {
        Some(bean) => (
            format!("<= beanstalkd's {:.1} MB", mb(bean)),
            if rss <= bean { "ok" } else { "MISSED" },
        ),
        None => ("beanstalkd not found: not compared".to_string(), "info"),
    };
    println!(
        "{:<52} {:>10.1} MB   {target:<36} {verdict}",
        format!("RSS, process holding {RSS_JOBS} jobs of {BODY} B"),
        mb(rss),
    );
    for (d, (p, r)) in depths.iter().zip(&by_depth) {
        row(
            &format!("put, fsync off, depth {d}"),
            *p,
            ">= 20000".into(),
            *p >= 20_000.0,
        );
        row(
            &format!("reserve+delete, fsync off, depth {d}"),
            *r,
            ">= 10000".into(),
            *r >= 10_000.0,
        );
    }
    let (p1, r1) = by_depth[0];
    let (pn, rn) = by_depth[2];
    let last = depths[2];
    row(
        &format!("ratio put depth {last}/1000 (x1000)"),
        pn / p1 * 1000.0,
        ">= 800 (0.8x)".into(),
        pn / p1 >= 0.8,
    );
    row(
        &format!("ratio reserve+delete {last}/1000 (x1000)"),
        rn / r1 * 1000.0,
        ">= 800 (0.8x)".into(),
        rn / r1 >= 0.8,
    );
}
