//! The HTTP side's costs, in one run:
//!
//! - the time of one `/metrics` scrape of `pulpo serve` over a file queue with 100 tubes (each
//!   with jobs), median of many scrapes;
//! - the runner's jobs/s with metrics recorded beside metrics off (no-op handler, file queue,
//!   fsync off, concurrency 4), rounds alternating which goes first, the median of each, the
//!   ratio of the medians, and the median of each round's ratio (the verdict against the target
//!   of 0.95×: a round's two runs are next to each other, so a shared machine's load swings
//!   touch both alike).
//!
//! Run with `cargo bench --bench http`. `BENCH_JOBS` (default 20,000) and `BENCH_ROUNDS`
//! (default 5) size the runner rows; `PULPO_BENCH_QUICK=1` is a smoke run whose figures mean
//! nothing.

#[path = "noop_runner/mod.rs"]
mod noop_runner;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulpo::config::{Settings, from_toml_str};
use pulpo::message::Message;
use pulpo::queue::{self, NewJob};
use pulpo::runner::metered;
use tokio_util::sync::CancellationToken;

fn settings(dir: &Path, extra: &str) -> Settings {
    let text = format!(
        "concurrency = 4\nsleep_duration = \"1s\"\nshutdown_after_number_of_empty_iterations = 0\n\
         queue = \"file\"\n[file]\npath = \"{}\"\nfsync = false\n[handlers.noop]\nkind = \"noop\"\n{extra}",
        dir.display()
    );
    from_toml_str(&text, Path::new("bench.toml")).expect("bench settings")
}

fn job(body: &Bytes) -> NewJob {
    NewJob {
        priority: 1024,
        delay: Duration::ZERO,
        ttr: Duration::from_secs(60),
        body: body.clone(),
    }
}

fn fill(runtime: &tokio::runtime::Runtime, settings: &Settings, tube: &str, n: usize, body: &Bytes) {
    runtime.block_on(async {
        let mut q = queue::open(settings).await.expect("open the queue");
        let mut left = n;
        while left > 0 {
            let batch = left.min(1000);
            left -= batch;
            for id in q
                .put_many(tube, (0..batch).map(|_| job(body)).collect())
                .await
                .expect("put")
            {
                id.expect("put");
            }
        }
    });
}

/// One scrape: the whole reply read, timed.
fn scrape(address: &str) -> (Duration, usize) {
    let started = Instant::now();
    let mut s = TcpStream::connect(address).expect("connect");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    (started.elapsed(), reply.len())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() {
    let quick = std::env::var("PULPO_BENCH_QUICK").is_ok_and(|v| v == "1");
    let env = |name: &str, full: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(full)
    };
    let jobs = if quick { 300 } else { env("BENCH_JOBS", 20_000) };
    let rounds = if quick { 1 } else { env("BENCH_ROUNDS", 5) };
    let scrapes = if quick { 5 } else { 200 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let body = Bytes::from(Message::new("noop").with_payload("x".repeat(40)).to_json());
    pulpo::serve::http::metrics::recorder().expect("the Prometheus recorder");

    // /metrics with 100 tubes.
    let dir = tempfile::tempdir().expect("tempdir");
    let address = format!("127.0.0.1:{}", pulpo_testkit::free_port());
    let serve = settings(
        &dir.path().join("queue"),
        &format!("[serve]\nlisten = []\nhttp = \"{address}\"\n"),
    );
    for t in 0..100 {
        fill(&runtime, &serve, &format!("tube-{t:03}"), 5, &body);
    }
    let stop = CancellationToken::new();
    let (bound, server) = runtime
        .block_on(pulpo::serve::http::bind(&serve, stop.clone()))
        .expect("bind the HTTP side");
    runtime.spawn(server);
    let address = bound.to_string();
    scrape(&address);
    let (mut times, mut size) = (Vec::new(), 0);
    for _ in 0..scrapes {
        let (took, bytes) = scrape(&address);
        times.push(took.as_secs_f64() * 1000.0);
        size = bytes;
    }
    println!(
        "/metrics scrape, file queue with 100 tubes: median {:.2} ms over {scrapes} scrapes ({size} bytes)",
        median(times)
    );

    // The runner with metrics off and on, rounds alternating.
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Which goes first alternates, so that neither always runs after the other.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for recording in order {
            let dir = tempfile::tempdir().expect("tempdir");
            let settings = settings(&dir.path().join("queue"), "");
            fill(&runtime, &settings, &settings.tube, jobs, &body);
            metered::enable(recording);
            let rate = noop_runner::jobs_per_second(&runtime, &settings, jobs);
            if recording { on.push(rate) } else { off.push(rate) }
        }
    }
    metered::enable(false);
    // The HTTP side ran meanwhile, as beside a runner with `[metrics] listen`: its upkeep
    // drains the histograms' samples every few seconds.
    stop.cancel();
    // Each round's two runs are next to each other in time, so their ratio is spared the
    // machine's slower swings (another process's load) that the two medians are not.
    let paired = median(on.iter().zip(&off).map(|(on, off)| on / off).collect());
    let (off, on) = (median(off), median(on));
    println!(
        "runner, file queue fsync off, concurrency 4, {jobs} jobs, median of {rounds}: metrics off {off:.0} jobs/s, \
         on {on:.0} jobs/s, ratio of medians {:.3}, median of the rounds' ratios {paired:.3} \
         (target >= 0.95: {})",
        on / off,
        if paired >= 0.95 { "met" } else { "MISSED" }
    );
}
