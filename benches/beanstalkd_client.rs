//! Throughput of pulpo's async beanstalkd client against a minimal blocking
//! client, both talking to the same real `beanstalkd` on loopback.
//!
//! Run with `cargo bench --bench beanstalkd_client`. It prints, for three
//! workloads, the median ops/s of each client over interleaved rounds, the
//! ratio of the medians (pulpo / minimal) and the target ratio:
//!
//! - `put (sequential)`: one `put` at a time, waiting for `INSERTED <id>`;
//! - `reserve+delete (seq)`: per job, `reserve-with-timeout 0` (reply
//!   `RESERVED <id> <bytes>` and the body), then `delete <id>` (reply
//!   `DELETED`); two round trips per job, reported as jobs/s;
//! - `put (pipelined)`: batches of puts written together and their replies
//!   read afterwards (`Client::put_batch` against the minimal client writing a
//!   whole batch, flushing once, then reading every reply).
//!
//! The minimal client (`MinimalClient` below) is the yardstick: `std::net`
//! blocking sockets, a `BufReader`/`BufWriter` pair, `TCP_NODELAY`, no framing
//! layer, no allocation per reply. The targets are that pulpo's client keeps
//! at least 0.95 of its throughput one command at a time and 0.9 pipelined.
//!
//! Method. One server, started by `pulpo_testkit`, serves both clients. Each
//! round runs every workload once per client, alternating which client goes
//! first (A B, then B A, …), so drift of a shared machine hits both alike;
//! the table gives the median over rounds, and the min .. max spread below it.
//! Every timed run starts with the bench tube empty: puts are deleted by id
//! afterwards, and the jobs a reserve run consumes are put beforehand, all by
//! a separate untimed connection. One untimed warm-up round comes first.
//! The whole series runs twice: with client and server wherever the
//! scheduler puts them (latency of waking the other CPU included), then with
//! both pinned to one CPU (only CPU time per op counts; see `SameCpu`).
//!
//! Runtime. The async client runs on a tokio *current-thread* runtime on the
//! main thread: like the blocking client, it then uses one thread and never
//! hands work to a second core, so the comparison measures the client's own
//! per-command cost (encoding, decoding, futures, the I/O driver), not
//! scheduling across threads.
//!
//! Environment:
//!
//! - `BENCH_ROUNDS` (default 10): interleaved rounds;
//! - `BENCH_OPS` (default 5000): jobs per sequential run;
//! - `BENCH_PIPELINED_OPS` (default 20000): jobs per pipelined run;
//! - `BENCH_BATCH` (default 100): puts per batch in the pipelined runs;
//! - `BENCH_BODY_BYTES` (default 100): job body size;
//! - `BENCH_PIN` (default `both`): `0` runs only the series with client and
//!   server placed by the scheduler, `1` only the one with both pinned to one
//!   CPU (see [`SameCpu`] for why both exist);
//! - `BENCH_VERBOSE=1`: also print every round's figure as it is measured;
//! - `PULPO_BENCH_QUICK=1`: 2 rounds of a few hundred jobs, a smoke run for
//!   CI whose figures mean nothing.

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use pulpo_beanstalkd::Client;
use pulpo_beanstalkd::client::PutJob;
use pulpo_testkit::Beanstalkd;
use tokio::runtime::Runtime;

/// The tube every timed run uses; it is empty whenever a timed run starts.
const TUBE: &str = "bench";
/// Priority of every job put (the usual default, 2^10).
const PRIORITY: u32 = 1024;
/// Time-to-run of every job, in seconds; long enough never to expire here.
const TTR: u32 = 60;
/// At most this many pipelined commands are written before the minimal client
/// starts reading replies: beanstalkd answers each command before it reads the
/// next, so writing an unbounded pipeline without reading could fill both
/// socket buffers and deadlock. Batches up to this size go out whole.
const PIPELINE_CHUNK: usize = 1024;

fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let server = Beanstalkd::start();
    let started = Instant::now();
    let mut bench = Bench::new(&server, config.clone())?;

    println!(
        "beanstalkd {} at {}, {} rounds x {} ops (pipelined: {} ops in batches of {}), body {} B",
        bench.server_version,
        server.address(),
        config.rounds,
        config.ops,
        config.pipelined_ops,
        config.batch,
        config.body_bytes,
    );
    println!(
        "pulpo client on a tokio current-thread runtime; load average at start: {}",
        load_average()
    );
    if config.quick {
        println!("PULPO_BENCH_QUICK=1: smoke run, the figures below are not meaningful");
    }

    if config.placements.spread {
        println!();
        println!("client and server on any CPU (as the scheduler places them):");
        print!("{}", report(&series(&mut bench, &config)?));
    }
    if config.placements.same_cpu {
        println!();
        match SameCpu::pin(server.pid()) {
            Ok(pinned) => {
                println!(
                    "client and server pinned to CPU {} (the per-op CPU cost decides):",
                    pinned.cpu
                );
                let samples = series(&mut bench, &config);
                pinned.unpin()?;
                print!("{}", report(&samples?));
            }
            Err(err) => println!("skipped the run pinned to one CPU: {err:#}"),
        }
    }
    println!();
    println!("total time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// One warm-up round, then `config.rounds` interleaved rounds of every
/// workload with both clients.
fn series(bench: &mut Bench, config: &Config) -> anyhow::Result<Samples> {
    // Warm-up: connections, allocator, caches, server-side structures.
    let warm_up = config.ops.min(500);
    for workload in Workload::ALL {
        for contender in Contender::ALL {
            bench.run(workload, contender, warm_up.min(workload.ops(config)))?;
        }
    }
    let mut samples = Samples::default();
    for round in 0..config.rounds {
        for workload in Workload::ALL {
            let order = if round % 2 == 0 {
                Contender::ALL
            } else {
                [Contender::Minimal, Contender::Pulpo]
            };
            for contender in order {
                let ops = workload.ops(config);
                let elapsed = bench.run(workload, contender, ops)?;
                let rate = ops as f64 / elapsed.as_secs_f64();
                if config.verbose {
                    println!(
                        "round {round:>2}  {:<22} {:<8} {:>10}/s",
                        workload.label(),
                        contender.label(),
                        thousands(rate)
                    );
                }
                samples.of(workload, contender).push(rate);
            }
        }
    }
    Ok(samples)
}

/// This process and the server pinned to one CPU.
///
/// On loopback a sequential round trip wakes the other side twice; with the
/// two on different CPUs, each wake-up may bring an idle CPU out of its sleep
/// state (slow on a VM: on the machine this was written on, it made sequential
/// rates 4x lower on an idle machine than on a busy one), and that latency
/// hides the clients' own CPU cost. On one CPU a round trip is two context
/// switches, and throughput is set by the CPU time per op of the client, the
/// kernel and the server, which is what the ratio is meant to compare.
/// Pinning uses `taskset` (util-linux) so the bench needs no FFI.
struct SameCpu {
    cpu: usize,
    /// The CPU lists to restore, by pid.
    restore: Vec<(u32, String)>,
}

impl SameCpu {
    fn pin(server_pid: Option<u32>) -> anyhow::Result<SameCpu> {
        let server_pid = server_pid.context("the server is not running")?;
        let own_pid = std::process::id();
        let allowed = std::fs::read_to_string("/proc/self/status")
            .context("read /proc/self/status")?
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
            .map(|list| list.trim().to_owned())
            .context("no Cpus_allowed_list in /proc/self/status")?;
        let cpu: usize = allowed
            .split([',', '-'])
            .next()
            .and_then(|first| first.parse().ok())
            .with_context(|| format!("cannot read the first CPU of {allowed:?}"))?;
        let mut pinned = SameCpu {
            cpu,
            restore: Vec::new(),
        };
        for pid in [server_pid, own_pid] {
            taskset(pid, &cpu.to_string())?;
            pinned.restore.push((pid, allowed.clone()));
        }
        Ok(pinned)
    }

    fn unpin(self) -> anyhow::Result<()> {
        for (pid, cpus) in &self.restore {
            taskset(*pid, cpus)?;
        }
        Ok(())
    }
}

/// Sets the CPU affinity of every thread of `pid` to the list `cpus`.
fn taskset(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let output = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .output()
        .context("run `taskset` (package util-linux) to set CPU affinity")?;
    ensure!(
        output.status.success(),
        "taskset -a -p -c {cpus} {pid} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// The run's size, from the environment.
#[derive(Debug, Clone)]
struct Config {
    rounds: usize,
    ops: usize,
    pipelined_ops: usize,
    batch: usize,
    body_bytes: usize,
    quick: bool,
    verbose: bool,
    placements: Placements,
}

/// Which series to run: `BENCH_PIN=0` (spread only), `1` (pinned only) or
/// `both` (the default).
#[derive(Debug, Clone, Copy)]
struct Placements {
    spread: bool,
    same_cpu: bool,
}

impl Placements {
    fn from_env() -> anyhow::Result<Placements> {
        let (spread, same_cpu) = match std::env::var("BENCH_PIN").as_deref() {
            Err(std::env::VarError::NotPresent) | Ok("both") => (true, true),
            Ok("0") => (true, false),
            Ok("1") => (false, true),
            Ok(other) => bail!("BENCH_PIN={other:?}: use 0 (spread), 1 (one CPU) or both"),
            Err(err) => bail!("BENCH_PIN: {err}"),
        };
        Ok(Placements { spread, same_cpu })
    }
}

impl Config {
    fn from_env() -> anyhow::Result<Config> {
        let quick = std::env::var("PULPO_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let (rounds, ops, pipelined_ops, batch) = if quick {
            (2, 200, 400, 50)
        } else {
            (10, 5000, 20_000, 100)
        };
        let config = Config {
            rounds: env_usize("BENCH_ROUNDS", rounds)?,
            ops: env_usize("BENCH_OPS", ops)?,
            pipelined_ops: env_usize("BENCH_PIPELINED_OPS", pipelined_ops)?,
            batch: env_usize("BENCH_BATCH", batch)?,
            body_bytes: env_usize("BENCH_BODY_BYTES", 100)?,
            quick,
            verbose: std::env::var("BENCH_VERBOSE").is_ok_and(|v| !v.is_empty() && v != "0"),
            placements: Placements::from_env()?,
        };
        ensure!(
            config.rounds > 0 && config.ops > 0 && config.pipelined_ops > 0 && config.batch > 0,
            "BENCH_ROUNDS, BENCH_OPS, BENCH_PIPELINED_OPS and BENCH_BATCH must be at least 1"
        );
        ensure!(
            config.body_bytes <= 65_535,
            "BENCH_BODY_BYTES={} exceeds beanstalkd's default max job size of 65535",
            config.body_bytes
        );
        Ok(config)
    }
}

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={value:?} is not a whole number")),
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(err) => bail!("{name}: {err}"),
    }
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    PutSequential,
    ReserveDelete,
    PutPipelined,
}

impl Workload {
    const ALL: [Workload; 3] = [
        Workload::PutSequential,
        Workload::ReserveDelete,
        Workload::PutPipelined,
    ];

    fn label(self) -> &'static str {
        match self {
            Workload::PutSequential => "put (sequential)",
            Workload::ReserveDelete => "reserve+delete (seq)",
            Workload::PutPipelined => "put (pipelined)",
        }
    }

    /// The lowest acceptable ratio pulpo / minimal.
    fn target(self) -> f64 {
        match self {
            Workload::PutSequential | Workload::ReserveDelete => 0.95,
            Workload::PutPipelined => 0.9,
        }
    }

    fn ops(self, config: &Config) -> usize {
        match self {
            Workload::PutSequential | Workload::ReserveDelete => config.ops,
            Workload::PutPipelined => config.pipelined_ops,
        }
    }
}

/// Who is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Pulpo,
    Minimal,
}

impl Contender {
    const ALL: [Contender; 2] = [Contender::Pulpo, Contender::Minimal];

    fn label(self) -> &'static str {
        match self {
            Contender::Pulpo => "pulpo",
            Contender::Minimal => "minimal",
        }
    }
}

/// The connections and prepared inputs of a run.
struct Bench {
    runtime: Runtime,
    pulpo: Client,
    minimal: MinimalClient,
    /// Untimed helper connection: puts the jobs a reserve run consumes and
    /// deletes the jobs a put run leaves.
    admin: MinimalClient,
    body: Bytes,
    /// One full batch for `Client::put_batch`; a shorter last batch is a prefix.
    pulpo_batch: Vec<PutJob>,
    server_version: String,
}

impl Bench {
    fn new(server: &Beanstalkd, config: Config) -> anyhow::Result<Bench> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("build the tokio current-thread runtime")?;
        let address = server.address();
        let pulpo = runtime.block_on(async {
            let mut client = Client::connect(&address).await?;
            client.use_tube(TUBE).await?;
            client.watch(TUBE).await?;
            client.ignore("default").await?;
            anyhow::Ok(client)
        })?;
        let mut minimal = MinimalClient::connect(server.socket_addr())?;
        minimal.use_tube(TUBE)?;
        minimal.watch(TUBE)?;
        minimal.ignore("default")?;
        let mut admin = MinimalClient::connect(server.socket_addr())?;
        admin.use_tube(TUBE)?;
        let server_version = admin.server_version()?;
        let body = json_body(config.body_bytes);
        let pulpo_batch = (0..config.batch)
            .map(|_| PutJob {
                priority: PRIORITY,
                delay: 0,
                ttr: TTR,
                body: body.clone(),
            })
            .collect();
        Ok(Bench {
            runtime,
            pulpo,
            minimal,
            admin,
            body,
            pulpo_batch,
            server_version,
        })
    }

    /// Runs `ops` jobs of `workload` with `contender`, leaving the tube empty,
    /// and returns the timed part's duration.
    fn run(&mut self, workload: Workload, contender: Contender, ops: usize) -> anyhow::Result<Duration> {
        let mut ids = Vec::with_capacity(ops);
        let elapsed = match workload {
            Workload::PutSequential => {
                let elapsed = match contender {
                    Contender::Pulpo => self.pulpo_put_sequential(ops, &mut ids)?,
                    Contender::Minimal => self.minimal_put_sequential(ops, &mut ids)?,
                };
                self.admin.delete_pipelined(&ids)?;
                elapsed
            }
            Workload::ReserveDelete => {
                let specs = vec![self.body.as_ref(); ops];
                self.admin.put_pipelined(&specs, &mut ids)?;
                match contender {
                    Contender::Pulpo => self.pulpo_reserve_delete(&ids)?,
                    Contender::Minimal => self.minimal_reserve_delete(&ids)?,
                }
            }
            Workload::PutPipelined => {
                let elapsed = match contender {
                    Contender::Pulpo => self.pulpo_put_pipelined(ops, &mut ids)?,
                    Contender::Minimal => self.minimal_put_pipelined(ops, &mut ids)?,
                };
                self.admin.delete_pipelined(&ids)?;
                elapsed
            }
        };
        ensure!(
            ids.len() == ops,
            "{} with {contender:?}: {} jobs instead of {ops}",
            workload.label(),
            ids.len()
        );
        Ok(elapsed)
    }

    fn pulpo_put_sequential(&mut self, ops: usize, ids: &mut Vec<u64>) -> anyhow::Result<Duration> {
        let (runtime, client, body) = (&self.runtime, &mut self.pulpo, &self.body);
        runtime.block_on(async {
            let start = Instant::now();
            for _ in 0..ops {
                ids.push(client.put(PRIORITY, 0, TTR, body.clone()).await?);
            }
            Ok(start.elapsed())
        })
    }

    fn minimal_put_sequential(&mut self, ops: usize, ids: &mut Vec<u64>) -> anyhow::Result<Duration> {
        let start = Instant::now();
        for _ in 0..ops {
            ids.push(self.minimal.put(PRIORITY, 0, TTR, &self.body)?);
        }
        Ok(start.elapsed())
    }

    /// Reserves and deletes the jobs `ids`, which must be the tube's only
    /// jobs, in order.
    fn pulpo_reserve_delete(&mut self, ids: &[u64]) -> anyhow::Result<Duration> {
        let (runtime, client, body_len) = (&self.runtime, &mut self.pulpo, self.body.len());
        runtime.block_on(async {
            let start = Instant::now();
            for &expected in ids {
                let job = client.reserve_with_timeout(0).await?;
                ensure!(
                    job.id == expected && job.body.len() == body_len,
                    "pulpo client reserved job {} ({} B), expected job {expected} ({body_len} B)",
                    job.id,
                    job.body.len()
                );
                black_box(&job.body);
                client.delete(job.id).await?;
            }
            Ok(start.elapsed())
        })
    }

    fn minimal_reserve_delete(&mut self, ids: &[u64]) -> anyhow::Result<Duration> {
        let body_len = self.body.len();
        let start = Instant::now();
        for &expected in ids {
            let id = self.minimal.reserve_with_timeout(0)?;
            let body = self.minimal.body();
            ensure!(
                id == expected && body.len() == body_len,
                "minimal client reserved job {id} ({} B), expected job {expected} ({body_len} B)",
                body.len()
            );
            black_box(body);
            self.minimal.delete(id)?;
        }
        Ok(start.elapsed())
    }

    fn pulpo_put_pipelined(&mut self, ops: usize, ids: &mut Vec<u64>) -> anyhow::Result<Duration> {
        let (runtime, client, batch) = (&self.runtime, &mut self.pulpo, &self.pulpo_batch);
        runtime.block_on(async {
            let start = Instant::now();
            let mut left = ops;
            while left > 0 {
                let n = left.min(batch.len());
                for result in client.put_batch(&batch[..n]).await? {
                    ids.push(result?);
                }
                left -= n;
            }
            Ok(start.elapsed())
        })
    }

    fn minimal_put_pipelined(&mut self, ops: usize, ids: &mut Vec<u64>) -> anyhow::Result<Duration> {
        let batch = vec![self.body.as_ref(); self.pulpo_batch.len()];
        let start = Instant::now();
        let mut left = ops;
        while left > 0 {
            let n = left.min(batch.len());
            self.minimal.put_pipelined(&batch[..n], ids)?;
            left -= n;
        }
        Ok(start.elapsed())
    }
}

/// A minimal blocking beanstalkd client: the least work a client can do per
/// command, as the yardstick for pulpo's.
struct MinimalClient {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    /// The last reply line, CRLF stripped.
    line: Vec<u8>,
    /// The last reserved job's body (CRLF stripped), reused between jobs.
    body: Vec<u8>,
}

impl MinimalClient {
    fn connect(addr: SocketAddr) -> io::Result<MinimalClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(MinimalClient {
            reader: BufReader::with_capacity(64 * 1024, stream.try_clone()?),
            writer: BufWriter::with_capacity(64 * 1024, stream),
            line: Vec::with_capacity(256),
            body: Vec::new(),
        })
    }

    /// `use <tube>` → `USING <tube>`.
    fn use_tube(&mut self, tube: &str) -> io::Result<()> {
        write!(self.writer, "use {tube}\r\n")?;
        self.writer.flush()?;
        self.expect_prefix("use", b"USING ")
    }

    /// `watch <tube>` → `WATCHING <count>`.
    fn watch(&mut self, tube: &str) -> io::Result<()> {
        write!(self.writer, "watch {tube}\r\n")?;
        self.writer.flush()?;
        self.expect_prefix("watch", b"WATCHING ")
    }

    /// `ignore <tube>` → `WATCHING <count>`.
    fn ignore(&mut self, tube: &str) -> io::Result<()> {
        write!(self.writer, "ignore {tube}\r\n")?;
        self.writer.flush()?;
        self.expect_prefix("ignore", b"WATCHING ")
    }

    /// `put <pri> <delay> <ttr> <bytes>\r\n<body>\r\n` → `INSERTED <id>`.
    fn put(&mut self, priority: u32, delay: u32, ttr: u32, body: &[u8]) -> io::Result<u64> {
        self.write_put(priority, delay, ttr, body)?;
        self.writer.flush()?;
        self.read_inserted()
    }

    fn write_put(&mut self, priority: u32, delay: u32, ttr: u32, body: &[u8]) -> io::Result<()> {
        write!(self.writer, "put {priority} {delay} {ttr} {}\r\n", body.len())?;
        self.writer.write_all(body)?;
        self.writer.write_all(b"\r\n")
    }

    fn read_inserted(&mut self) -> io::Result<u64> {
        self.read_line()?;
        match self.line.strip_prefix(b"INSERTED ").and_then(parse_u64) {
            Some(id) => Ok(id),
            None => Err(self.unexpected("put")),
        }
    }

    /// `reserve-with-timeout <secs>` → `RESERVED <id> <bytes>\r\n<body>\r\n`;
    /// the body is kept in [`MinimalClient::body`].
    fn reserve_with_timeout(&mut self, secs: u32) -> io::Result<u64> {
        write!(self.writer, "reserve-with-timeout {secs}\r\n")?;
        self.writer.flush()?;
        self.read_line()?;
        let Some((id, len)) = self.line.strip_prefix(b"RESERVED ").and_then(|rest| {
            let mut fields = rest.split(|&b| b == b' ');
            let id = parse_u64(fields.next()?)?;
            let len = usize::try_from(parse_u64(fields.next()?)?).ok()?;
            fields.next().is_none().then_some((id, len))
        }) else {
            return Err(self.unexpected("reserve-with-timeout"));
        };
        self.body.resize(len + 2, 0);
        self.reader.read_exact(&mut self.body)?;
        if !self.body.ends_with(b"\r\n") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("reserve-with-timeout: job {id}'s {len}-byte body is not followed by CRLF"),
            ));
        }
        self.body.truncate(len);
        Ok(id)
    }

    /// The body of the job reserved last.
    fn body(&self) -> &[u8] {
        &self.body
    }

    /// `delete <id>` → `DELETED`.
    fn delete(&mut self, id: u64) -> io::Result<()> {
        write!(self.writer, "delete {id}\r\n")?;
        self.writer.flush()?;
        self.read_line()?;
        self.expect_line("delete", b"DELETED")
    }

    /// Puts one job per body (priority, delay and TTR as the bench's), writing
    /// the commands ahead of reading the replies, and appends the new ids.
    fn put_pipelined(&mut self, bodies: &[&[u8]], ids: &mut Vec<u64>) -> io::Result<()> {
        self.pipeline(
            bodies,
            |client, body| client.write_put(PRIORITY, 0, TTR, body),
            |client| client.read_inserted().map(|id| ids.push(id)),
        )
    }

    /// Deletes the jobs `ids`, pipelined.
    fn delete_pipelined(&mut self, ids: &[u64]) -> io::Result<()> {
        self.pipeline(
            ids,
            |client, id| write!(client.writer, "delete {id}\r\n"),
            |client| {
                client.read_line()?;
                client.expect_line("delete", b"DELETED")
            },
        )
    }

    /// Writes one command per item and reads one reply per item, keeping at
    /// most two chunks of [`PIPELINE_CHUNK`] commands unanswered: one chunk
    /// is written and flushed, then the replies to the one before are read.
    fn pipeline<T>(
        &mut self,
        items: &[T],
        mut write: impl FnMut(&mut MinimalClient, &T) -> io::Result<()>,
        mut read: impl FnMut(&mut MinimalClient) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut unanswered = 0;
        for chunk in items.chunks(PIPELINE_CHUNK) {
            for item in chunk {
                write(self, item)?;
            }
            self.writer.flush()?;
            while unanswered > 0 {
                read(self)?;
                unanswered -= 1;
            }
            unanswered = chunk.len();
        }
        for _ in 0..unanswered {
            read(self)?;
        }
        Ok(())
    }

    /// `stats` → `OK <bytes>` and a YAML document; returns its `version`.
    fn server_version(&mut self) -> io::Result<String> {
        self.writer.write_all(b"stats\r\n")?;
        self.writer.flush()?;
        self.read_line()?;
        let Some(len) = self.line.strip_prefix(b"OK ").and_then(parse_u64) else {
            return Err(self.unexpected("stats"));
        };
        let mut document = vec![0; len as usize + 2];
        self.reader.read_exact(&mut document)?;
        let document = String::from_utf8_lossy(&document);
        let version = document
            .lines()
            .find_map(|line| line.strip_prefix("version:"))
            .map(|v| v.trim().trim_matches('"').to_owned());
        Ok(version.unwrap_or_else(|| "(unknown version)".to_owned()))
    }

    /// Reads one reply line into `self.line`, without its CRLF.
    fn read_line(&mut self) -> io::Result<()> {
        self.line.clear();
        self.reader.read_until(b'\n', &mut self.line)?;
        if self.line.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "beanstalkd closed the connection",
            ));
        }
        if !self.line.ends_with(b"\r\n") {
            return Err(self.unexpected("(any command)"));
        }
        self.line.truncate(self.line.len() - 2);
        Ok(())
    }

    fn expect_prefix(&mut self, command: &str, prefix: &[u8]) -> io::Result<()> {
        self.read_line()?;
        if self.line.starts_with(prefix) {
            Ok(())
        } else {
            Err(self.unexpected(command))
        }
    }

    fn expect_line(&self, command: &str, expected: &[u8]) -> io::Result<()> {
        if self.line == expected {
            Ok(())
        } else {
            Err(self.unexpected(command))
        }
    }

    fn unexpected(&self, command: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "minimal client: unexpected reply to {command}: {:?}",
                String::from_utf8_lossy(&self.line)
            ),
        )
    }
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A JSON-looking body of exactly `len` bytes, like a small job message.
fn json_body(len: usize) -> Bytes {
    let head = r#"{"request_type":"email.welcome","user_id":4242,"locale":"en-GB","pad":""#;
    let tail = r#""}"#;
    let mut body = String::with_capacity(len);
    if len >= head.len() + tail.len() {
        body.push_str(head);
        body.extend(std::iter::repeat_n('x', len - head.len() - tail.len()));
        body.push_str(tail);
    } else {
        body.extend(std::iter::repeat_n('x', len));
    }
    debug_assert_eq!(body.len(), len);
    Bytes::from(body)
}

/// ops/s of every round, by workload and contender.
#[derive(Debug, Default)]
struct Samples {
    rates: [[Vec<f64>; 2]; 3],
}

impl Samples {
    fn of(&mut self, workload: Workload, contender: Contender) -> &mut Vec<f64> {
        &mut self.rates[workload as usize][contender as usize]
    }

    fn summary(&self, workload: Workload, contender: Contender) -> Summary {
        Summary::of(&self.rates[workload as usize][contender as usize])
    }
}

/// Median, min and max of a non-empty list of rates.
#[derive(Debug, Clone, Copy)]
struct Summary {
    median: f64,
    min: f64,
    max: f64,
}

impl Summary {
    fn of(rates: &[f64]) -> Summary {
        let mut sorted = rates.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len().is_multiple_of(2) {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        } else {
            sorted[mid]
        };
        Summary {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }
}

fn report(samples: &Samples) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>14} {:>16} {:>7}   target",
        "", "pulpo client", "minimal client", "ratio"
    );
    for workload in Workload::ALL {
        let pulpo = samples.summary(workload, Contender::Pulpo);
        let minimal = samples.summary(workload, Contender::Minimal);
        let ratio = pulpo.median / minimal.median;
        let verdict = if ratio >= workload.target() { "ok" } else { "BELOW" };
        let _ = writeln!(
            out,
            "{:<22} {:>14} {:>16} {:>7.2}   >= {:<5.2} {verdict}",
            workload.label(),
            format!("{}/s", thousands(pulpo.median)),
            format!("{}/s", thousands(minimal.median)),
            ratio,
            workload.target(),
        );
    }
    let _ = writeln!(
        out,
        "spread over rounds, min .. max ops/s (reserve+delete: jobs/s, 2 round trips each):"
    );
    for workload in Workload::ALL {
        let pulpo = samples.summary(workload, Contender::Pulpo);
        let minimal = samples.summary(workload, Contender::Minimal);
        let _ = writeln!(
            out,
            "{:<22} {:>20} {:>20}",
            workload.label(),
            format!("{} .. {}", thousands(pulpo.min), thousands(pulpo.max)),
            format!("{} .. {}", thousands(minimal.min), thousands(minimal.max)),
        );
    }
    out
}

/// `rate` rounded, with commas between thousands: 38120.4 → "38,120".
fn thousands(rate: f64) -> String {
    let digits = format!("{:.0}", rate);
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The 1, 5 and 15 minute load averages, to judge how busy the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}
