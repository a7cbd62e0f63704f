//! One filtered page out of many buried jobs, the way `pulpo jobs --buried --type email
//! --limit 50` asks for it: on the file queue (from its index; target under 50 ms for 100,000
//! jobs) and on a real beanstalkd (a pipelined sweep over the ids; printed, no target).
//!
//! `cargo bench --bench listing`; `PULPO_BENCH_QUICK=1` for a smoke run of 2,000 jobs.
//! One job in ten is an `email`; the page of 50 such jobs looks at about 500.

use std::time::{Duration, Instant};

use bytes::Bytes;
use pulpo::Message;
use pulpo::jobs::{self, JobQuery, JobState};
use pulpo::queue::Queue;
use pulpo::queue::beanstalkd::BeanstalkdQueue;
use pulpo::queue::file::FileQueueAdapter;
use pulpo_beanstalkd::{Client, Command, PutJob, Reply};
use pulpo_filequeue::{FileQueue, NewJob, Options};

const TUBE: &str = "bench";
const PAGE: usize = 50;
const TARGET_MS: f64 = 50.0;

fn body(i: usize) -> Vec<u8> {
    let kind = if i.is_multiple_of(10) { "email" } else { "sms" };
    Message::new(kind)
        .with_payload(format!("customer-{i:06}"))
        .to_json()
}

fn query() -> JobQuery {
    let mut query = JobQuery::new(TUBE, JobState::Buried);
    query.request_type = Some("email".into());
    query.limit = PAGE;
    query
}

/// The median time of `rounds` pages, each checked to be full.
async fn time_pages(queue: &mut dyn Queue, rounds: usize) -> Duration {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let page = jobs::list(queue, &query()).await.expect("a page");
        times.push(started.elapsed());
        assert_eq!(page.jobs.len(), PAGE, "a full page");
    }
    times.sort();
    times[times.len() / 2]
}

/// `n` jobs put and buried on the file queue in `dir` (fsync off: only the listing is timed).
fn fill_file(dir: &std::path::Path, n: usize) {
    let options = Options {
        fsync: false,
        ..Options::default()
    };
    let q = FileQueue::open(dir, options).unwrap();
    let bodies: Vec<Vec<u8>> = (0..n).map(body).collect();
    for chunk in bodies.chunks(1000) {
        let batch: Vec<NewJob> = chunk
            .iter()
            .map(|b| NewJob {
                pri: 100,
                delay: Duration::ZERO,
                ttr: Duration::from_secs(600),
                body: b,
            })
            .collect();
        q.put_many(TUBE, &batch).unwrap();
    }
    while let Some(job) = q.reserve(&[TUBE], Some(Duration::ZERO)).unwrap() {
        q.bury(job.id, 100, Some("bench")).unwrap();
    }
}

/// `n` jobs put and buried on beanstalkd, pipelined.
async fn fill_beanstalkd(address: &str, n: usize) {
    let mut client = Client::connect(address).await.unwrap();
    client.use_tube(TUBE).await.unwrap();
    client.watch(TUBE).await.unwrap();
    client.ignore("default").await.unwrap();
    for start in (0..n).step_by(256) {
        let jobs: Vec<PutJob> = (start..(start + 256).min(n))
            .map(|i| PutJob {
                priority: 100,
                delay: 0,
                ttr: 600,
                body: Bytes::from(body(i)),
            })
            .collect();
        client.put_batch(&jobs).await.unwrap();
        let reserves: Vec<Command> = jobs
            .iter()
            .map(|_| Command::ReserveWithTimeout { timeout: 0 })
            .collect();
        let buries: Vec<Command> = client
            .pipeline(&reserves)
            .await
            .unwrap()
            .into_iter()
            .map(|reply| match reply {
                Reply::Reserved { id, .. } => Command::Bury { id, priority: 100 },
                other => panic!("reserve answered {other:?}"),
            })
            .collect();
        client.pipeline(&buries).await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::var("PULPO_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let (n, rounds) = if quick { (2_000, 3) } else { (100_000, 15) };
    if quick {
        println!("PULPO_BENCH_QUICK=1: smoke run, the figures below are not meaningful");
    }
    println!("one page of {PAGE} buried `email` jobs (1 in 10) out of {n} buried jobs, median of {rounds}");

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&root).unwrap();
    let dir = tempfile::tempdir_in(&root).unwrap();
    let path = dir.path().join("q");
    let started = Instant::now();
    fill_file(&path, n);
    let filled = started.elapsed();
    let mut file = FileQueueAdapter::open(&path, false, 65536).await.unwrap();
    let took = time_pages(&mut file, rounds).await;
    let ms = took.as_secs_f64() * 1000.0;
    let verdict = if ms < TARGET_MS { "ok" } else { "ABOVE" };
    println!(
        "file queue (index)      {ms:>8.2} ms   target < {TARGET_MS} ms  {verdict}   (filled in {:.1} s)",
        filled.as_secs_f64()
    );

    let server = pulpo_testkit::Beanstalkd::start();
    let started = Instant::now();
    fill_beanstalkd(&server.address(), n).await;
    let filled = started.elapsed();
    let mut beanstalkd = BeanstalkdQueue::connect(&server.address(), Duration::from_secs(5))
        .await
        .unwrap();
    let took = time_pages(&mut beanstalkd, rounds).await;
    println!(
        "beanstalkd (id sweep)   {:>8.2} ms   no target              (filled in {:.1} s)",
        took.as_secs_f64() * 1000.0,
        filled.as_secs_f64()
    );
}
