//! `pulpo run` end to end, as a user runs it: the README's main flow with the
//! repository's pulpo.toml on the file queue, the same on a real beanstalkd,
//! SIGTERM/SIGINT shutdown (also with the exec child signalled, as systemd
//! does), JSON logs with the job span, one log line per job, JSON errors,
//! relative paths in the config file, the file queue's group mode, and a bad
//! config refused before the queue is touched.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pulpo_testkit::Beanstalkd;
use serde_json::Value;

/// The repository's sample config.
const SAMPLE_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pulpo.toml");

/// Idle settings that make a run end a second after its last job: long
/// enough for the quick retries below (0.2 s) even on a busy machine.
const QUICK_IDLE: [(&str, &str); 2] = [
    ("PULPO_SLEEP_DURATION", "0.2"),
    ("PULPO_SHUTDOWN_AFTER_NUMBER_OF_EMPTY_ITERATIONS", "5"),
];

/// The longest any single `pulpo` process may take in these tests.
const TIME_GUARD: Duration = Duration::from_secs(10);

/// A `pulpo` command in `dir` (so no stray ./pulpo.toml is read), with the
/// caller's PULPO_ variables removed and `env` set.
fn pulpo_command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulpo"));
    cmd.current_dir(dir).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("PULPO_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// Runs `pulpo` to its end within [`TIME_GUARD`].
fn pulpo(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let child = pulpo_command(dir, args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the pulpo binary");
    pulpo_testkit::output::output_within(child, TIME_GUARD, &format!("pulpo {args:?}"))
}

/// Like [`pulpo`], expecting exit 0; returns stdout.
fn ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = pulpo(dir, args, env);
    pulpo_testkit::output::stdout_of_success(&format!("pulpo {args:?}"), out)
}

/// Parses one JSON document printed on one line.
fn one_document(text: &str) -> Value {
    assert_eq!(text.lines().count(), 1, "one JSON document on one line: {text}");
    serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// `publish <request_type> <payload>`; returns the new job's id.
fn publish(dir: &Path, args: &[&str], request_type: &str, payload: &str) -> u64 {
    let mut all = args.to_vec();
    all.extend(["publish", request_type, payload]);
    let out = ok(dir, &all, &[]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("publish printed {out:?}"))
}

/// The counters of `request_type` in a run summary, in the order
/// (reserved, succeeded, released, buried).
fn counts(summary: &Value, request_type: &str) -> (u64, u64, u64, u64) {
    let c = &summary["counters"][request_type];
    let n = |key: &str| {
        c[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{request_type}.{key} in {summary}"))
    };
    (n("reserved"), n("succeeded"), n("released"), n("buried"))
}

/// A `pulpo run` in the background whose stderr is read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stderr line read so far.
    log: Vec<String>,
}

impl Running {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = pulpo_command(dir, args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pulpo run");
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Reads stderr until a line contains `needle`.
    fn wait_for_log(&mut self, needle: &str) {
        let deadline = Instant::now() + TIME_GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.log.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?}; stderr so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Sends `signal` to the runner.
    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child, by its pid; no memory is involved.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "kill({}, {signal})", self.child.id());
    }

    /// Waits for the exit, at most `limit`; returns the status, stdout and
    /// the whole stderr.
    fn exit_within(mut self, limit: Duration) -> (ExitStatus, String, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.log.extend(self.lines.try_iter());
                panic!(
                    "pulpo run did not exit within {limit:?}; stderr:\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        // The reader thread ends at EOF, now that the process is gone.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.log.push(line);
        }
        (status, stdout, self.log.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion must not leave the runner behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn the_readme_flow_runs_every_sample_handler_and_exits_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::copy(SAMPLE_CONFIG, dir.join("pulpo.toml")).unwrap();
    let echo = publish(dir, &[], "echo", "Hello World");
    let upper = publish(dir, &[], "upper", "Hello World");
    let lower = publish(dir, &[], "lower", "Hello World");
    for request_type in ["success", "fail", "transient", "fifty_fifty", "no_such_type"] {
        publish(dir, &[], request_type, "x");
    }

    let mut env = QUICK_IDLE.to_vec();
    // pulpo.toml gives transient its own retry table (3 attempts, fixed 1s),
    // which the global [retry] does not reach: shorten its delay itself.
    env.push(("PULPO_HANDLERS__TRANSIENT__RETRY__DELAY", "0.2"));
    // fifty_fifty follows the global policy: quick fixed retries.
    env.extend([("PULPO_RETRY__BACKOFF", "fixed"), ("PULPO_RETRY__DELAY", "0.1")]);
    let started = Instant::now();
    let summary = one_document(&ok(dir, &["run", "--json"], &env));
    assert!(started.elapsed() < TIME_GUARD);

    assert_eq!(summary["stop"], "idle", "{summary}");
    assert_eq!(summary["restarts"], 0, "{summary}");
    assert!(summary["elapsed"].is_string(), "{summary}");
    for request_type in ["echo", "upper", "lower", "success"] {
        assert_eq!(
            counts(&summary, request_type),
            (1, 1, 0, 0),
            "{request_type}: {summary}"
        );
    }
    assert_eq!(counts(&summary, "fail"), (1, 0, 0, 1), "{summary}");
    assert_eq!(counts(&summary, "no_such_type"), (1, 0, 0, 1), "{summary}");
    assert_eq!(
        counts(&summary, "transient"),
        (3, 0, 2, 1),
        "max_attempts = 3: two releases, then buried: {summary}"
    );
    // fifty_fifty either wins a flip within 5 attempts or is buried (1 in 32).
    let (reserved, succeeded, released, buried) = counts(&summary, "fifty_fifty");
    assert_eq!(succeeded + buried, 1, "{summary}");
    assert_eq!(reserved, released + 1, "{summary}");
    let total = &summary["total"];
    assert_eq!(total["reserved"], 8 + 2 + released, "{summary}");
    assert_eq!(total["buried"], 3 + buried, "{summary}");
    assert_eq!(total["settle_failed"], 0, "{summary}");

    let read = |kind: &str, id: u64| {
        let path = dir.join(format!("pulpo-output/{kind}/{id}-1.txt"));
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    };
    assert_eq!(read("echo", echo), "Hello World");
    assert_eq!(read("upper", upper), "HELLO WORLD");
    assert_eq!(read("lower", lower), "hello world");

    let stats = one_document(&ok(dir, &["stats", "--json"], &[]));
    for key in [
        "current_jobs_ready",
        "current_jobs_reserved",
        "current_jobs_delayed",
    ] {
        assert_eq!(stats[key], 0, "{key}: {stats}");
    }
    assert_eq!(stats["current_jobs_buried"], 3 + buried, "{stats}");
}

#[test]
fn sigterm_and_sigint_stop_the_runner_promptly_with_a_shutdown_summary() {
    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let dir = tempfile::tempdir().unwrap();
        let mut run = Running::start(
            dir.path(),
            &["run", "--json"],
            &[("PULPO_SHUTDOWN_AFTER_NUMBER_OF_EMPTY_ITERATIONS", "0")],
        );
        run.wait_for_log("runner started");
        let sent = Instant::now();
        run.signal(signal);
        let (status, stdout, stderr) = run.exit_within(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "{name}: {stderr}");
        assert!(sent.elapsed() < Duration::from_secs(5), "{name}");
        let summary = one_document(&stdout);
        assert_eq!(summary["stop"], "shutdown", "{name}: {summary}");
        assert_eq!(summary["total"]["reserved"], 0, "{name}: {summary}");
        assert!(stderr.contains("signal received"), "{name}: {stderr}");
    }
}

/// A queue directory removed under `pulpo run` stops it with exit 1 and one
/// line saying so, instead of a runner waiting on the removed directory
/// while publishers start a new queue from id 1 (issue 11, item 15).
#[test]
fn a_queue_directory_removed_under_the_runner_stops_it_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(
        dir.path(),
        &["run"],
        &[("PULPO_SHUTDOWN_AFTER_NUMBER_OF_EMPTY_ITERATIONS", "0")],
    );
    run.wait_for_log("runner started");
    std::fs::remove_dir_all(dir.path().join("pulpo-data")).unwrap();
    let (status, _, stderr) = run.exit_within(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("removed or replaced").count(), 1, "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("pulpo: error:") && last.contains("pulpo-data"),
        "{stderr}"
    );
}

/// How a runner is made to die while its exec handler runs.
#[derive(Debug, Clone, Copy)]
enum Death {
    /// SIGTERM, then a second SIGTERM: exit at once, 128 + 15.
    SecondSignal,
    /// SIGKILL: no chance to do anything.
    Kill,
}

/// A runner dies while its `exec` handler (`sleep 30`) runs: the handler
/// dies with it (the kernel's parent-death signal), and nobody released the
/// job, so it is ready again once its 1 s TTR runs out.
fn a_dead_runner_leaves_no_child_and_the_job_comes_back(death: Death) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mark = format!("PULPO_TEST_MARK={}-{death:?}", std::process::id());
    let (key, value) = mark.split_once('=').unwrap();
    std::fs::write(
        dir.join("pulpo.toml"),
        format!(
            "shutdown_timeout = \"60s\"\nshutdown_after_number_of_empty_iterations = 0\n\n\
             [handlers.nap]\nkind = \"exec\"\ncommand = [\"sleep\", \"30\"]\nttr = \"1s\"\n\
             env = {{ {key} = \"{value}\" }}\n"
        ),
    )
    .unwrap();
    let id = publish(dir, &[], "nap", "");
    let mut run = Running::start(dir, &["run", "--json"], &[]);
    run.wait_for_log("runner started");
    let reserved = Instant::now();
    loop {
        let job = one_document(&ok(dir, &["stats-job", &id.to_string(), "--json"], &[]));
        if job["state"] == "reserved" && !pulpo_testkit::procs::with_env_var(&mark).is_empty() {
            break;
        }
        assert!(reserved.elapsed() < TIME_GUARD, "job {id} never started: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }

    match death {
        Death::SecondSignal => {
            // The first signal starts the graceful shutdown; the handler would get a minute.
            run.signal(libc::SIGTERM);
            run.wait_for_log("shutting down");
            let second = Instant::now();
            run.signal(libc::SIGTERM);
            let (status, stdout, stderr) = run.exit_within(Duration::from_secs(3));
            assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{stderr}");
            assert!(second.elapsed() < Duration::from_secs(3));
            assert!(stdout.is_empty(), "no summary after a second signal: {stdout}");
        }
        Death::Kill => {
            run.signal(libc::SIGKILL);
            let (status, _, _) = run.exit_within(Duration::from_secs(3));
            assert_eq!(status.signal(), Some(libc::SIGKILL));
        }
    }
    // The handler's `sleep 30` died with its runner.
    pulpo_testkit::procs::wait_until_none_with(&mark, Duration::from_secs(3));

    // Nobody released it: it is ready again once its 1s TTR runs out.
    let exited = Instant::now();
    loop {
        let job = one_document(&ok(dir, &["stats-job", &id.to_string(), "--json"], &[]));
        if job["state"] == "ready" {
            break;
        }
        assert!(
            exited.elapsed() < Duration::from_secs(5),
            "job {id} not ready after its TTR: {job}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_second_signal_exits_at_once_and_the_job_comes_back_after_its_ttr() {
    a_dead_runner_leaves_no_child_and_the_job_comes_back(Death::SecondSignal);
}

#[test]
fn a_killed_runner_leaves_no_child_and_the_job_comes_back_after_its_ttr() {
    a_dead_runner_leaves_no_child_and_the_job_comes_back(Death::Kill);
}

#[test]
fn publish_takes_ttr_and_priority_from_the_handler_table() {
    // The runner's lease and retries go by the queue's TTR and priority, so
    // `publish` must store the handler's, as the runner's follow-ups do.
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(
        dir.join("pulpo.toml"),
        "[handlers.slow]\nkind = \"success\"\nttr = \"5m\"\npriority = 7\n",
    )
    .unwrap();
    let stats = |id: u64| one_document(&ok(dir, &["peek", &id.to_string(), "--json"], &[]));
    let job = stats(publish(dir, &[], "slow", "x"));
    assert_eq!(
        (&job["stats"]["ttr"], &job["stats"]["pri"]),
        (&Value::from(300), &Value::from(7)),
        "{job}"
    );
    let header = &job["message"]["header"];
    assert_eq!(
        (&header["ttr"], &header["priority"]),
        (&Value::from(300), &Value::from(7)),
        "{job}"
    );
    // Flags still win, and other request types keep [defaults].
    let flagged = ok(
        dir,
        &["publish", "slow", "x", "--ttr", "10s", "--priority", "3"],
        &[],
    );
    let job = stats(flagged.trim().parse().unwrap());
    assert_eq!(
        (&job["stats"]["ttr"], &job["stats"]["pri"]),
        (&Value::from(10), &Value::from(3)),
        "{job}"
    );
    let job = stats(publish(dir, &[], "other", "x"));
    assert_eq!(
        (&job["stats"]["ttr"], &job["stats"]["pri"]),
        (&Value::from(60), &Value::from(1024)),
        "{job}"
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_the_job_span() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::copy(SAMPLE_CONFIG, dir.join("pulpo.toml")).unwrap();
    let failing = publish(dir, &[], "fail", "x");
    let unknown = publish(dir, &[], "no_such_type", "x");
    let echo = publish(dir, &[], "echo", "x");

    let out = pulpo(dir, &["run", "--json", "--log-format", "json"], &QUICK_IDLE);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(value @ Value::Object(_)) => value,
            _ => panic!("a stderr line that is not a JSON object: {line}"),
        })
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "runner started"),
        "{stderr}"
    );
    let span_of = |id: u64| {
        lines
            .iter()
            .find(|l| l["span"]["id"] == id)
            .map(|l| &l["span"])
            .unwrap_or_else(|| panic!("no log line in job {id}'s span: {stderr}"))
    };
    let span = span_of(failing);
    assert_eq!(
        (
            &span["name"],
            &span["request_type"],
            &span["attempt"],
            &span["tube"]
        ),
        (
            &Value::from("job"),
            &Value::from("fail"),
            &Value::from(1),
            &Value::from("default")
        ),
        "{span}"
    );
    assert_eq!(span["outcome"], "bury", "{span}");
    assert!(span["duration_ms"].is_number(), "{span}");
    assert_eq!(span_of(unknown)["request_type"], "no_such_type");
    // A success is logged at info too, with the job's span.
    let done = format!("job {echo} (echo) succeeded in ");
    let line = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&done))
        })
        .unwrap_or_else(|| panic!("no {done:?} line: {stderr}"));
    assert_eq!(
        (&line["level"], &line["span"]["outcome"]),
        (&Value::from("INFO"), &Value::from("delete"))
    );
    // stdout still carries the summary alone.
    let summary = one_document(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(summary["total"]["reserved"], 3, "{summary}");
}

#[test]
fn a_bad_config_exits_2_naming_the_key_before_touching_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("pulpo.toml"), "[handlers.resize]\nkind = \"resizer\"\n").unwrap();
    let refused = |env: &[(&str, &str)]| {
        let out = pulpo(dir, &["run", "--json"], env);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "a one-line error: {stderr}");
        assert!(out.stdout.is_empty(), "no summary");
        stderr
    };
    let err = refused(&[]);
    assert!(
        err.contains("pulpo.toml") && err.contains("handlers.resize.kind") && err.contains("resizer"),
        "{err}"
    );
    std::fs::write(dir.join("pulpo.toml"), "").unwrap();
    let err = refused(&[("PULPO_CONCURRENCY", "0")]);
    assert!(err.contains("PULPO_CONCURRENCY"), "{err}");
    assert!(!dir.join("pulpo-data").exists(), "the queue was not opened");
}

#[test]
fn run_on_beanstalkd_processes_every_job() {
    let server = Beanstalkd::start();
    let address = server.address();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::copy(SAMPLE_CONFIG, dir.join("pulpo.toml")).unwrap();
    let queue = ["--queue", "beanstalkd", "--address", address.as_str()];
    let ids: Vec<u64> = (0..3)
        .map(|i| publish(dir, &queue, "echo", &format!("job {i}")))
        .collect();
    publish(dir, &queue, "fail", "x");

    let mut args = queue.to_vec();
    args.push("run");
    let started = Instant::now();
    let human = ok(dir, &args, &QUICK_IDLE);
    assert!(started.elapsed() < TIME_GUARD);
    assert!(human.starts_with("runner stopped (idle) after "), "{human}");
    let row = |name: &str| {
        human
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row: {human}"))
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse::<u64>().unwrap())
            .collect::<Vec<_>>()
    };
    // reserved, succeeded, released, buried, timed out, expired, settle failed
    assert_eq!(row("echo"), [3, 3, 0, 0, 0, 0, 0], "{human}");
    assert_eq!(row("fail"), [1, 0, 0, 1, 0, 0, 0], "{human}");
    assert_eq!(row("total"), [4, 3, 0, 1, 0, 0, 0], "{human}");
    for (i, id) in ids.iter().enumerate() {
        let path = dir.join(format!("pulpo-output/echo/{id}-1.txt"));
        assert_eq!(std::fs::read_to_string(path).unwrap(), format!("job {i}"));
    }
    let mut stats_args = queue.to_vec();
    stats_args.extend(["stats", "--json"]);
    let stats = one_document(&ok(dir, &stats_args, &[]));
    for key in [
        "current_jobs_ready",
        "current_jobs_reserved",
        "current_jobs_delayed",
    ] {
        assert_eq!(stats[key], 0, "{key}: {stats}");
    }
    assert_eq!(stats["current_jobs_buried"], 1, "{stats}");
}

#[test]
fn a_summary_that_cannot_be_printed_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    for json in [false, true] {
        let mut args = vec!["run"];
        if json {
            args.push("--json");
        }
        let out = pulpo_command(dir.path(), &args, &QUICK_IDLE)
            .env("PULPO_LOG", "error")
            .stdout(full.try_clone().unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "json {json}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains("stdout") && stderr.contains("No space left on device"),
            "{stderr}"
        );
    }
}

#[test]
fn an_exec_handler_can_run_pulpo_to_publish_to_the_configured_tube() {
    // The job's variables in the handler's environment (id, attempt, tube,
    // request type) must not be read as config keys by the pulpo it runs.
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let config = dir.join("pulpo.toml");
    std::fs::write(
        &config,
        format!(
            "tube = \"out\"\nwatch = [\"in\"]\n\n\
             [handlers.relay]\nkind = \"exec\"\ncommand = [{:?}, \"--config\", {:?}, \"publish\", \"relayed\", \"hi\"]\n",
            env!("CARGO_BIN_EXE_pulpo"),
            config.display().to_string()
        ),
    )
    .unwrap();
    publish(dir, &["--tube", "in"], "relay", "x");
    let summary = one_document(&ok(dir, &["run", "--json"], &QUICK_IDLE));
    assert_eq!(counts(&summary, "relay"), (1, 1, 0, 0), "{summary}");
    let relayed = one_document(&ok(dir, &["--tube", "out", "peek", "--ready", "--json"], &[]));
    assert_eq!(
        relayed["message"]["header"]["request_type"], "relayed",
        "{relayed}"
    );
}

#[test]
fn on_idle_restart_keeps_the_config_file_it_started_with() {
    // A deploy removes the config file between two in-process restarts: the
    // runner goes on with the config it has (same queue, same handlers),
    // for an implicit ./pulpo.toml and for --config alike, and still prints
    // its summary when it stops.
    for args in [
        &["run", "--json"][..],
        &["--config", "pulpo.toml", "run", "--json"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::write(
            dir.join("pulpo.toml"),
            "sleep_duration = \"0.2\"\nshutdown_after_number_of_empty_iterations = 2\non_idle = \"restart\"\n\n\
             [file]\npath = \"jobs\"\nfsync = false\n\n[handlers.hello]\nkind = \"success\"\n",
        )
        .unwrap();
        let mut run = Running::start(dir, args, &[]);
        run.wait_for_log("re-reading the config");
        std::fs::remove_file(dir.join("pulpo.toml")).unwrap();
        run.wait_for_log("re-reading the config");
        let id = publish(dir, &["--path", "jobs"], "hello", "x");
        let published = Instant::now();
        loop {
            let out = pulpo(dir, &["--path", "jobs", "stats-job", &id.to_string()], &[]);
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(stderr.contains("not found"), "{stderr}");
                break;
            }
            assert!(
                published.elapsed() < TIME_GUARD,
                "{args:?}: job {id} was not run; stderr:\n{}",
                run.log.join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        run.signal(libc::SIGTERM);
        let (status, stdout, stderr) = run.exit_within(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
        let summary = one_document(&stdout);
        assert_eq!(counts(&summary, "hello"), (1, 1, 0, 0), "{args:?}: {summary}");
        assert!(
            stderr.contains("keeping the running config"),
            "{args:?}: {stderr}"
        );
        assert!(
            !dir.join("pulpo-data").exists(),
            "{args:?}: another queue was opened"
        );
    }
}

/// CPU time (user + system) the process `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // utime and stime, fields 14 and 15 of proc(5), in clock ticks.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

#[test]
fn a_zero_sleep_duration_does_not_make_an_idle_runner_spin() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(
        dir.path(),
        &["run", "--json"],
        &[
            ("PULPO_SLEEP_DURATION", "0s"),
            ("PULPO_SHUTDOWN_AFTER_NUMBER_OF_EMPTY_ITERATIONS", "0"),
        ],
    );
    run.wait_for_log("runner started");
    let pid = run.child.id();
    let before = cpu_time(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_time(pid) - before;
    run.signal(libc::SIGTERM);
    let (status, _, stderr) = run.exit_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        used < Duration::from_millis(200),
        "an idle runner used {used:?} of CPU in 2 s"
    );
}

/// A systemd stop without `KillMode=mixed` sends SIGTERM to the runner and
/// to its exec child at once: the child's death is part of the stop, so the
/// job is handed back (ready again, no attempt used), not buried as fatal
/// (issue 13, item 1).
#[test]
fn sigterm_to_the_runner_and_its_child_at_once_hands_the_job_back() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(
        dir.join("pulpo.toml"),
        "shutdown_timeout = \"60s\"\nshutdown_after_number_of_empty_iterations = 0\n\n\
         [handlers.nap]\nkind = \"exec\"\n\
         command = [\"sh\", \"-c\", \"echo $$ > child.pid.tmp && mv child.pid.tmp child.pid && exec sleep 30\"]\n",
    )
    .unwrap();
    let id = publish(dir, &[], "nap", "");
    let mut run = Running::start(dir, &["run", "--json"], &[]);
    run.wait_for_log("runner started");
    let started = Instant::now();
    let child = loop {
        if let Ok(pid) = std::fs::read_to_string(dir.join("child.pid")) {
            break pid.trim().parse::<libc::pid_t>().unwrap();
        }
        assert!(started.elapsed() < TIME_GUARD, "job {id} never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    // As systemd's default KillMode does: every process of the service at once.
    run.signal(libc::SIGTERM);
    // SAFETY: kill(2) on the exec child's process group (its pid); no memory is involved.
    assert_eq!(unsafe { libc::kill(-child, libc::SIGTERM) }, 0);
    let (status, stdout, stderr) = run.exit_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let summary = one_document(&stdout);
    assert_eq!(counts(&summary, "nap"), (1, 0, 1, 0), "{summary}\n{stderr}");
    let job = one_document(&ok(dir, &["stats-job", &id.to_string(), "--json"], &[]));
    assert_eq!(job["state"], "ready", "{job}\n{stderr}");
    assert_eq!(
        (&job["reserves"], &job["kicks"]),
        (&Value::from(1), &Value::from(1)),
        "handed back: the reservation is not an attempt: {job}"
    );
}

/// Whether `text` is a duration as people write it: `980ms`, `1.2s`,
/// `4.5ms`, `2m5s` (at most one decimal, no `us`/`ns` parts, no spaces).
fn written_like_a_person(text: &str) -> bool {
    let number = |n: &str| {
        let (whole, decimals) = n.split_once('.').unwrap_or((n, "0"));
        !whole.is_empty()
            && whole.chars().all(|c| c.is_ascii_digit())
            && decimals.len() == 1
            && decimals.chars().all(|c| c.is_ascii_digit())
    };
    match text.strip_suffix("ms") {
        Some(n) => number(n),
        None => text
            .strip_suffix('s')
            .is_some_and(|rest| rest.split(['h', 'm']).all(number)),
    }
}

/// A finished job is one line at the default level (id, type, outcome,
/// duration written as people write it), and an exec child's multi-line
/// stderr is one field of one line (issue 13, item 10).
#[test]
fn each_finished_job_logs_one_line_and_exec_stderr_is_one_field() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(
        dir.join("pulpo.toml"),
        "[handlers.hello]\nkind = \"success\"\n\n\
         [handlers.noisy]\nkind = \"exec\"\n\
         command = [\"sh\", \"-c\", \"echo first >&2; echo second >&2\"]\n",
    )
    .unwrap();
    let hello = publish(dir, &[], "hello", "x");
    let noisy = publish(dir, &[], "noisy", "x");
    let out = pulpo(dir, &["run"], &QUICK_IDLE);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    for (id, request_type) in [(hello, "hello"), (noisy, "noisy")] {
        let done = format!("job {id} ({request_type}) succeeded in ");
        let took = stderr
            .lines()
            .find_map(|line| line.split_once(&done).map(|(_, took)| took))
            .unwrap_or_else(|| panic!("no {done:?} line: {stderr}"));
        assert!(
            stderr.lines().any(|l| l.contains(&done) && l.contains(" INFO ")),
            "{stderr}"
        );
        assert!(written_like_a_person(took), "{took:?} in: {stderr}");
    }
    let field = stderr
        .lines()
        .find(|line| line.contains("stderr="))
        .unwrap_or_else(|| panic!("no stderr field: {stderr}"));
    assert!(field.contains(r#"stderr="first\nsecond""#), "{field}");
    assert!(
        !stderr.lines().any(|line| line.trim() == "second"),
        "one line: {stderr}"
    );
}

#[test]
fn durations_are_checked_as_people_write_them() {
    for good in ["980ms", "0.4ms", "1.2s", "5s", "2m5s", "1h30m0s"] {
        assert!(written_like_a_person(good), "{good}");
    }
    for bad in ["980ms 916us", "916us", "1.25s", "1s 200ms", "s", ""] {
        assert!(!written_like_a_person(bad), "{bad}");
    }
}

/// With `--json`, a failure is one JSON document on stderr, with the exit
/// code, for usage, config and queue errors alike (issue 13, item 10).
#[test]
fn with_json_errors_are_json_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    /// Arguments, environment, exit code, a word the error must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a str);
    let cases: [Case; 4] = [
        (&["stats-job", "999", "--json"], &[], 1, "999"),
        (&["--json", "no-such-command"], &[], 2, "no-such-command"),
        (
            &["config", "--json"],
            &[("PULPO_CONCURRENCY", "0")],
            2,
            "PULPO_CONCURRENCY",
        ),
        (
            &["run", "--json"],
            &[("PULPO_CONCURRENCY", "0")],
            2,
            "PULPO_CONCURRENCY",
        ),
    ];
    for (args, env, code, needle) in cases {
        let out = pulpo(dir, args, env);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        let error = one_document(stderr.trim_end());
        assert_eq!(error["code"], code, "{args:?}: {error}");
        let message = error["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{args:?}: {error}"));
        assert!(message.contains(needle), "{args:?}: {error}");
    }
    // Without --json, the one-line text error stays.
    let out = pulpo(dir, &["stats-job", "999"], &[]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("pulpo: error: ") && stderr.contains("999"),
        "{stderr}"
    );
}

/// Relative paths in a config file are the file's: `[file] path`,
/// `destination_directory` and a relative `working_directory` against the
/// file's directory, an exec program against its `working_directory`;
/// `--path` and `PULPO_FILE__PATH` stay relative to where pulpo runs
/// (issue 13, item 3).
#[test]
fn relative_paths_in_the_config_file_are_the_files_own() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let app = root.join("app");
    std::fs::create_dir_all(app.join("work/bin")).unwrap();
    let tool = app.join("work/bin/tool");
    std::fs::write(&tool, "#!/bin/sh\ntouch ran-here\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        app.join("pulpo.toml"),
        "[file]\npath = \"jobs\"\n\n\
         [handlers.echo]\nkind = \"echo\"\ndestination_directory = \"out\"\n\n\
         [handlers.tool]\nkind = \"exec\"\ncommand = [\"./bin/tool\"]\nworking_directory = \"work\"\n",
    )
    .unwrap();
    // Started from elsewhere, as a supervisor would.
    let config = ["--config", "app/pulpo.toml"];
    let echo = publish(root, &config, "echo", "hi");
    publish(root, &config, "tool", "x");
    assert!(app.join("jobs").is_dir(), "the queue is next to the config file");
    let mut args = config.to_vec();
    args.extend(["run", "--json"]);
    let summary = one_document(&ok(root, &args, &QUICK_IDLE));
    assert_eq!(counts(&summary, "echo"), (1, 1, 0, 0), "{summary}");
    assert_eq!(counts(&summary, "tool"), (1, 1, 0, 0), "{summary}");
    assert_eq!(
        std::fs::read_to_string(app.join(format!("out/{echo}-1.txt"))).unwrap(),
        "hi"
    );
    assert!(
        app.join("work/ran-here").exists(),
        "the program ran in its working_directory"
    );

    // Flags and variables are relative to the working directory.
    let mut flagged = config.to_vec();
    flagged.extend(["--path", "by-flag"]);
    publish(root, &flagged, "echo", "x");
    assert!(root.join("by-flag").is_dir());
    let mut all = config.to_vec();
    all.extend(["publish", "echo", "x"]);
    ok(root, &all, &[("PULPO_FILE__PATH", "by-env")]);
    assert!(root.join("by-env").is_dir());
}

/// `[file] group = true`: a producer and a runner under two Unix accounts
/// share one file queue through a group (directory 2770, files 0660, never
/// writable by others); without it, or for a user outside the group, the
/// queue is refused (issue 13, item 4). Run as root, to play the users: a
/// child `pulpo` runs under another uid and groups (setgroups, setgid,
/// setuid before exec).
mod group_mode {
    use super::*;

    /// The producer: `nobody`'s uid, in the group `users`.
    const PRODUCER: u32 = 65534;
    /// The runner: an unnamed uid, also in `users`.
    const RUNNER: u32 = 65533;
    /// An outsider: an unnamed uid in `nogroup` only.
    const OUTSIDER: u32 = 65532;
    /// The shared group (`users` on Debian and most others).
    const USERS: u32 = 100;
    /// `nogroup`.
    const NOGROUP: u32 = 65534;

    /// `pulpo <args>` in `dir` as `uid` with the groups `groups` (the first one
    /// primary), with `env` set and the caller's PULPO_ variables removed.
    fn pulpo_as(uid: u32, groups: &[u32], dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        use std::os::unix::process::CommandExt;
        let mut cmd = pulpo_command(dir, args, env);
        let groups: Vec<libc::gid_t> = groups.to_vec();
        // SAFETY: setgroups, setgid and setuid are async-signal-safe; `groups`
        // was allocated before the fork and is only read.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(groups[0]) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.output().expect("run pulpo as another user")
    }

    fn stderr_of(out: &Output) -> String {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn two_users_of_one_group_share_a_queue_in_group_mode() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            pulpo_testkit::skip::skip(
                "two_users_of_one_group_share_a_queue_in_group_mode",
                "needs root to run pulpo as other users",
            );
            return;
        }
        let top = tempfile::tempdir().unwrap();
        // The producer's directory, which the runner may enter: its owner is the
        // queue's owner, whom group mode trusts with the parents too.
        let dir = top.path().join("app");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("pulpo.toml"), "[file]\npath = \"q\"\ngroup = true\n").unwrap();
        std::os::unix::fs::chown(&dir, Some(PRODUCER), Some(USERS)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let queue = dir.join("q");

        let out = pulpo_as(PRODUCER, &[USERS], &dir, &["publish", "echo", "hi"], &[]);
        assert!(
            out.status.success(),
            "the producer publishes: {}",
            stderr_of(&out)
        );
        let meta = std::fs::metadata(&queue).unwrap();
        assert_eq!((mode(&queue), meta.gid()), (0o2770, USERS), "setgid, group rwx");
        assert_eq!(mode(&queue.join("lock")), 0o660, "files: group read-write");

        // Not the queue's owner: refused without group mode, served with it.
        let owner_only = pulpo_as(
            RUNNER,
            &[USERS],
            &dir,
            &["stats"],
            &[("PULPO_FILE__GROUP", "false")],
        );
        assert_eq!(owner_only.status.code(), Some(1), "{}", stderr_of(&owner_only));
        assert!(stderr_of(&owner_only).contains("q"), "{}", stderr_of(&owner_only));
        let out = pulpo_as(RUNNER, &[USERS], &dir, &["pop", "--json"], &[]);
        assert!(out.status.success(), "the runner pops: {}", stderr_of(&out));
        let popped: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(popped["message"]["body"]["payload"], "hi", "{popped}");
        // The runner's files are the group's too: the producer goes on.
        let out = pulpo_as(PRODUCER, &[USERS], &dir, &["publish", "echo", "again"], &[]);
        assert!(out.status.success(), "{}", stderr_of(&out));

        // A user outside the group is refused, group mode or not.
        let out = pulpo_as(OUTSIDER, &[NOGROUP], &dir, &["stats"], &[]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        assert!(stderr_of(&out).contains("group"), "{}", stderr_of(&out));

        // Writable by others: refused always.
        std::fs::set_permissions(&queue, std::fs::Permissions::from_mode(0o2772)).unwrap();
        let out = pulpo_as(PRODUCER, &[USERS], &dir, &["stats"], &[]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    }
}
