//! Chaos: three `pulpo run` processes on one queue work through 5,000 jobs
//! whose `exec` handler appends the job id to a file, while the test kills
//! a random runner with SIGKILL every few hundred milliseconds and starts it
//! again (on beanstalkd it also kills and restarts the server, which keeps
//! its jobs in a binlog). At the end every job was handled at least once,
//! nothing is left ready, reserved, delayed or buried, and every duplicate
//! is explained by a death: each handler run records its job id, its
//! runner's pid and its start time, and a job may run again only if the
//! runner of its previous run was killed (or the server restarted) after
//! that run started and before the next one did.
//!
//! Prints `jobs`, `kills`, `duplicates` and `lost` (which must be 0). The
//! random seed is printed too; `PULPO_CHAOS_SEED` replays a run.

use pulpo_testkit::rng::Rng;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pulpo_testkit::{Beanstalkd, Options};
use serde_json::Value;

const JOBS: u64 = 5_000;
const RUNNERS: usize = 3;
/// Handlers per runner: a kill can interrupt at most this many jobs.
const CONCURRENCY: u64 = 2;
/// The jobs' TTR in seconds: a lease the runner renews every third of it.
/// Not 1: on a loaded machine a runner can take a second between a reserve
/// and its handler's start, before it first renews the lease, and another
/// runner then takes the job with no death involved.
const TTR_SECS: u64 = 3;

fn seed() -> u64 {
    std::env::var("PULPO_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1)
}

/// A moment something died, bracketed by the test's clock: `pid` (a
/// runner; `None` for the server, whose death touches every runner) died
/// after `before` and before `after`, in nanoseconds since the epoch.
struct Death {
    pid: Option<u32>,
    before: u128,
    after: u128,
}

/// One handler run, as the handler recorded it.
struct Run {
    job: u64,
    runner: u32,
    started: u128,
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// The runs of jobs that ran again with no death to explain it: a job's
/// run `next` is explained when the runner of its previous run `prev` died
/// (or the server did) while it held the job, and before `next` started:
/// only then could `prev` have been left unsettled. The runner reserved the
/// job before the handler recorded its start (a fork and exec later, slow
/// on a loaded machine), so a death up to a TTR before that start counts
/// (the job's lease cannot have been older than that). A run that starts a
/// whole TTR after the previous one may also follow a lease that ran out
/// while its runner was starved of CPU (a loaded machine: the 10 ms handler
/// cannot take that long); a rerun sooner than that has no excuse.
fn unexplained_reruns(runs: &[Run], deaths: &[Death]) -> Vec<String> {
    let mut by_job: HashMap<u64, Vec<&Run>> = HashMap::new();
    for run in runs {
        by_job.entry(run.job).or_default().push(run);
    }
    let mut unexplained = Vec::new();
    for (job, mut runs) in by_job {
        runs.sort_by_key(|run| run.started);
        for pair in runs.windows(2) {
            let (prev, next) = (pair[0], pair[1]);
            let ttr = u128::from(TTR_SECS) * 1_000_000_000;
            let lease_ran_out = next.started >= prev.started + ttr;
            let explained = lease_ran_out
                || deaths.iter().any(|death| {
                    death.pid.is_none_or(|pid| pid == prev.runner)
                        && death.after + ttr > prev.started
                        && death.before < next.started
                });
            if !explained {
                let died: Vec<String> = deaths
                    .iter()
                    .filter(|death| death.pid.is_none_or(|pid| pid == prev.runner))
                    .map(|death| {
                        format!(
                            "{:?} at {:+}ms",
                            death.pid,
                            (death.before as i128 - prev.started as i128) / 1_000_000
                        )
                    })
                    .collect();
                unexplained.push(format!(
                    "job {job}: run by {} then by {} {}ms later; deaths of the first: {died:?}",
                    prev.runner,
                    next.runner,
                    (next.started - prev.started) / 1_000_000
                ));
            }
        }
    }
    unexplained.sort_unstable();
    unexplained
}

struct Chaos {
    dir: PathBuf,
    handled: PathBuf,
    runners: Vec<Child>,
    started: usize,
}

impl Chaos {
    fn new(dir: &Path, queue_config: &str) -> Chaos {
        let handled = dir.join("handled");
        let config = format!(
            "{queue_config}
concurrency = {CONCURRENCY}
sleep_duration = \"200ms\"
shutdown_after_number_of_empty_iterations = 0
shutdown_timeout = \"5s\"

[retry]
max_attempts = 100
backoff = \"fixed\"
delay = \"100ms\"

[handlers.record]
kind = \"exec\"
command = [\"sh\", \"-c\", \"echo \\\"start $PULPO_JOB_ID $PPID $(date +%s%N)\\\" >> {handled}; sleep 0.01; echo \\\"end $PULPO_JOB_ID $PPID 0\\\" >> {handled}\"]
",
            handled = handled.display()
        );
        std::fs::write(dir.join("pulpo.toml"), config).unwrap();
        Chaos {
            dir: dir.to_path_buf(),
            handled,
            runners: Vec::new(),
            started: 0,
        }
    }

    fn pulpo(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_pulpo"))
            .args(args)
            .current_dir(&self.dir)
            .env("PULPO_LOG", "error")
            .output()
            .unwrap()
    }

    fn stats(&self) -> Value {
        let out = self.pulpo(&["stats", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn spawn_runner(&mut self) -> Child {
        self.started += 1;
        let log = std::fs::File::create(self.dir.join(format!("runner-{}.log", self.started))).unwrap();
        Command::new(env!("CARGO_BIN_EXE_pulpo"))
            .arg("run")
            .current_dir(&self.dir)
            .env("PULPO_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Handler runs finished so far (duplicates too: this only decides
    /// when the chaos stops).
    fn handled_count(&self) -> usize {
        std::fs::read_to_string(&self.handled)
            .map(|text| text.lines().filter(|line| line.starts_with("end ")).count())
            .unwrap_or(0)
    }

    /// Runs the whole scenario; `server` is beanstalkd, when it is the queue.
    fn run(mut self, name: &str, mut server: Option<&mut Beanstalkd>) {
        let seed = seed();
        let mut rng = Rng(seed);
        let (count, ttr) = (JOBS.to_string(), TTR_SECS.to_string());
        let out = self.pulpo(&["publish", "record", "--count", &count, "--ttr", &ttr]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        for _ in 0..RUNNERS {
            let runner = self.spawn_runner();
            self.runners.push(runner);
        }
        let (mut kills, mut server_restarts) = (0u64, 0u64);
        let mut deaths = Vec::new();
        let chaos_until = Instant::now() + Duration::from_secs(60);
        // Kill while most of the work is still ahead, then let it finish.
        while self.handled_count() < (JOBS as usize) * 9 / 10 && Instant::now() < chaos_until {
            std::thread::sleep(Duration::from_millis(100 + rng.below(250)));
            if let Some(server) = server.as_deref_mut()
                && kills % 10 == 9
            {
                let before = now_nanos();
                server.kill();
                deaths.push(Death {
                    pid: None,
                    before,
                    after: now_nanos(),
                });
                server.restart();
                server_restarts += 1;
            }
            let victim = rng.below(RUNNERS as u64) as usize;
            let before = now_nanos();
            let _ = self.runners[victim].kill();
            let _ = self.runners[victim].wait();
            deaths.push(Death {
                pid: Some(self.runners[victim].id()),
                before,
                after: now_nanos(),
            });
            kills += 1;
            self.runners[victim] = self.spawn_runner();
        }

        // Let the survivors finish: nothing ready, reserved or delayed. A
        // loaded machine runs the exec handlers slowly, so the test waits as
        // long as jobs keep getting done and fails on a stall: a minute in
        // which the count left did not fall.
        let stall = Duration::from_secs(60);
        let mut deadline = Instant::now() + stall;
        let mut fewest = u64::MAX;
        loop {
            let stats = self.stats();
            let left: u64 = [
                "current_jobs_ready",
                "current_jobs_reserved",
                "current_jobs_delayed",
            ]
            .iter()
            .map(|key| stats[*key].as_u64().unwrap())
            .sum();
            if left == 0 {
                break;
            }
            if left < fewest {
                fewest = left;
                deadline = Instant::now() + stall;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {left} jobs still not done, none done in the last {stall:?} (seed {seed}): {stats}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        for runner in &mut self.runners {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(runner.id() as i32, libc::SIGTERM) };
        }
        for runner in &mut self.runners {
            let status = runner.wait().unwrap();
            assert!(
                status.success(),
                "{name}: a runner did not stop cleanly: {status}"
            );
        }

        let stats = self.stats();
        let buried = stats["current_jobs_buried"].as_u64().unwrap();
        let text = std::fs::read_to_string(&self.handled).unwrap();
        // Runs started (`start JOB RUNNER NANOS`) and finished (`end JOB RUNNER 0`).
        let mut runs = Vec::new();
        let mut seen: HashMap<u64, u64> = HashMap::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [what, job, runner, started] = fields[..] else {
                panic!("{name}: a torn or foreign line in the handler's record: {line:?}")
            };
            let job: u64 = job.parse().unwrap();
            match what {
                "start" => runs.push(Run {
                    job,
                    runner: runner.parse().unwrap(),
                    started: started.parse().unwrap(),
                }),
                "end" => *seen.entry(job).or_default() += 1,
                _ => panic!("{name}: a foreign line in the handler's record: {line:?}"),
            }
        }
        let lost_ids: Vec<u64> = (1..=JOBS).filter(|id| !seen.contains_key(id)).collect();
        let lost = lost_ids.len();
        let duplicates: u64 = seen.values().map(|n| n - 1).sum();
        let strangers = seen.keys().filter(|id| **id == 0 || **id > JOBS).count();
        println!(
            "chaos ({name}): jobs {JOBS}, kills {kills}, server restarts {server_restarts}, \
             duplicates {duplicates}, lost {lost}, buried {buried} (seed {seed})"
        );
        // A job that some handler started and none finished was lost by
        // pulpo. beanstalkd 1.12 itself was seen (about one run in four) to
        // lose a job no runner had ever reserved across a kill -9 and restart
        // with -b (the runners' debug logs never mention it): such a loss is
        // the server's, allowed only where the server was killed, one per
        // restart at most, and printed. The README says so.
        let started: std::collections::HashSet<u64> = runs.iter().map(|run| run.job).collect();
        let (never_started, lost_by_pulpo): (Vec<u64>, Vec<u64>) =
            lost_ids.iter().partition(|id| !started.contains(id));
        assert!(
            lost_by_pulpo.is_empty(),
            "{name}: lost jobs {lost_by_pulpo:?}, started by a handler and never finished (seed {seed})"
        );
        if !never_started.is_empty() {
            println!("chaos ({name}): the server lost jobs no runner had started: {never_started:?}");
        }
        assert!(
            never_started.is_empty() || server_restarts >= never_started.len() as u64,
            "{name}: lost jobs {never_started:?}, never started, with no server restart to lose them (seed {seed})"
        );
        assert_eq!(buried, 0, "{name}: buried jobs (seed {seed})");
        assert_eq!(strangers, 0, "{name}: ids that were never published");
        assert!(
            kills >= 10,
            "{name}: only {kills} kills; the chaos ended too soon"
        );
        // Each dead runner had at most CONCURRENCY handlers in flight; a dead
        // server interrupts every runner's.
        let bound = (kills + server_restarts * RUNNERS as u64) * CONCURRENCY;
        assert!(
            duplicates <= bound,
            "{name}: {duplicates} duplicates, more than the {bound} in-flight handlers that were killed (seed {seed})"
        );
        let unexplained = unexplained_reruns(&runs, &deaths);
        assert!(
            unexplained.is_empty(),
            "{name}: {} jobs ran again with no death to explain it (seed {seed}): {:?}",
            unexplained.len(),
            &unexplained[..unexplained.len().min(5)]
        );
    }
}

impl Drop for Chaos {
    fn drop(&mut self) {
        for runner in &mut self.runners {
            let _ = runner.kill();
            let _ = runner.wait();
        }
    }
}

#[test]
fn chaos_on_the_file_queue() {
    let dir = tempfile::tempdir().unwrap();
    let queue = format!(
        "queue = \"file\"\n[file]\npath = \"{}\"\nfsync = true\n",
        dir.path().join("queue").display()
    );
    // Top-level keys must come before the [file] table.
    let (top, table) = queue.split_once("[file]").unwrap();
    let chaos = Chaos::new(dir.path(), top);
    let config = std::fs::read_to_string(dir.path().join("pulpo.toml")).unwrap();
    std::fs::write(dir.path().join("pulpo.toml"), format!("{config}\n[file]{table}")).unwrap();
    chaos.run("file queue", None);
}

#[test]
fn chaos_on_beanstalkd() {
    let dir = tempfile::tempdir().unwrap();
    let binlog = dir.path().join("binlog");
    std::fs::create_dir(&binlog).unwrap();
    let mut server = Beanstalkd::start_with(Options {
        binlog_dir: Some(binlog),
        ..Options::default()
    });
    let chaos = Chaos::new(dir.path(), "queue = \"beanstalkd\"\n");
    let config = std::fs::read_to_string(dir.path().join("pulpo.toml")).unwrap();
    std::fs::write(
        dir.path().join("pulpo.toml"),
        format!("{config}\n[beanstalkd]\naddress = \"{}\"\n", server.address()),
    )
    .unwrap();
    chaos.run("beanstalkd", Some(&mut server));
}
