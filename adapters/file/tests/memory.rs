//! The memory a process needs to hold a queue: issue 14 asks for no more than beanstalkd, which
//! holds about 300 bytes per 100-byte job (about 32 MB at 100,000 jobs). Measured in a process of
//! its own (this test binary run again), which opens a queue of 100,000 jobs with several handles,
//! as `pulpo serve` does (one per connection) or a program that publishes and runs, and reports
//! its VmRSS; `cargo bench --bench filequeue` prints the one-handle figure beside a real
//! beanstalkd's.

mod common;

use std::process::Command;

use common::{TTR, Z, open, opts, queue_dir};
use pulpo_filequeue::NewJob;

const JOBS: usize = 100_000;
/// Names the queue the child opens (not `PULPO_*`: that prefix is pulpo's configuration).
const CHILD: &str = "FILEQUEUE_MEMORY_TEST_DIR";
/// beanstalkd 1.12's resident memory with 100,000 jobs of 100 bytes, as the issue measured it.
const BEANSTALKD_RSS: u64 = 32 << 20;
/// What the queue may add per job: a `pulpo` process (tokio, the CLI, the handlers) takes about
/// 12 MB before it opens a queue, so that it stays within beanstalkd's 32 MB at 100,000 jobs, the
/// queue may take 20 MB of them.
const PER_JOB: u64 = 200;

fn vm_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// A process with four handles on a queue of 100,000 jobs of 100 bytes holds no more memory than
/// beanstalkd holding them: the handles share one index (an index each took 90 MB), and the
/// index keeps little per job.
#[test]
fn four_handles_on_100k_jobs_need_no_more_memory_than_beanstalkd() {
    if let Ok(dir) = std::env::var(CHILD) {
        let base = vm_rss();
        let handles: Vec<_> = (0..4).map(|_| open(std::path::Path::new(&dir), opts())).collect();
        for q in &handles {
            assert_eq!(q.stats().unwrap().current_jobs_ready, JOBS as u64);
        }
        println!("\nrss={} base={base}", vm_rss());
        return;
    }
    let (_d, path) = queue_dir();
    let job = NewJob {
        pri: 0,
        delay: Z,
        ttr: TTR,
        body: &[b'x'; 100],
    };
    let q = open(&path, opts());
    for _ in 0..JOBS / 1000 {
        q.put_many("t", &[job; 1000]).unwrap();
    }
    drop(q);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "four_handles_on_100k_jobs_need_no_more_memory_than_beanstalkd",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the measuring process failed: {stdout}");
    let figure = |name: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.split(&format!("{name}=")).nth(1))
            .expect("the measuring process printed its memory")
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (rss, base) = (figure("rss"), figure("base"));
    let per_job = rss.saturating_sub(base) / JOBS as u64;
    println!(
        "VmRSS with {JOBS} jobs: {:.1} MB, {per_job} bytes per job",
        rss as f64 / (1 << 20) as f64
    );
    assert!(
        per_job <= PER_JOB,
        "the queue takes {per_job} bytes per job, more than the {PER_JOB} it may"
    );
    assert!(
        rss <= BEANSTALKD_RSS,
        "a process holding {JOBS} jobs takes {:.1} MB, beanstalkd {:.1} MB",
        rss as f64 / (1 << 20) as f64,
        BEANSTALKD_RSS as f64 / (1 << 20) as f64
    );
}
