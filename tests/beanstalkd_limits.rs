//! pulpo against a real beanstalkd at its limits: a job over the client's
//! body limit, a server that stops answering (SIGSTOP), a pause shorter than
//! the server's whole seconds, and more workers than open files. Each runs
//! the `pulpo` binary end to end.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pulpo_beanstalkd::{Client, ConnectOptions, JobState};
use pulpo_testkit::{Beanstalkd, Options};
use serde_json::Value;

/// `pulpo` in `dir` (no stray ./pulpo.toml), without the caller's PULPO_
/// variables.
fn pulpo(dir: &Path, args: &[&str]) -> Command {
    pulpo_testkit::output::clean_command(env!("CARGO_BIN_EXE_pulpo"), dir, args)
}

/// Waits for `child` at most `limit`; kills it (and fails) past that.
fn wait_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} did not finish within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A config file for a runner on `server`, with `extra` top-level keys and
/// `beanstalkd` keys in the `[beanstalkd]` table.
fn config(dir: &Path, server: &Beanstalkd, extra: &str, beanstalkd: &str) -> String {
    let path = dir.join("pulpo.toml");
    let text = format!(
        "queue = \"beanstalkd\"\ntube = \"t\"\nwatch = [\"t\"]\n{extra}\n\
         [beanstalkd]\naddress = \"{}\"\n{beanstalkd}\n\
         [handlers.ok]\nkind = \"success\"\n\
         [handlers.slow]\nkind = \"exec\"\ncommand = [\"sleep\", \"1\"]\n\
         [handlers.long]\nkind = \"exec\"\ncommand = [\"sleep\", \"30\"]\n",
        server.address()
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A client that takes bodies up to 1 MB, watching and using tube `t`.
async fn client(server: &Beanstalkd) -> Client {
    let options = ConnectOptions {
        max_body: 1 << 20,
        ..ConnectOptions::default()
    };
    let mut c = Client::connect_with(&server.address(), options).await.unwrap();
    c.use_tube("t").await.unwrap();
    c
}

/// A pulpo message of request type `request_type` with a payload of `size` bytes.
fn message(request_type: &str, size: usize) -> Vec<u8> {
    let payload = "x".repeat(size);
    serde_json::to_vec(&serde_json::json!({
        "header": {"request_type": request_type},
        "body": {"payload": payload},
    }))
    .unwrap()
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a pid this test started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
}

/// Stops beanstalkd with SIGSTOP for its lifetime; SIGCONT when dropped.
struct Stopped(u32);

impl Stopped {
    fn new(server: &Beanstalkd) -> Stopped {
        let pid = server.pid().expect("a running beanstalkd");
        signal(pid, libc::SIGSTOP);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
    }
}

/// Runs `pulpo run` until it goes idle (five empty 100 ms iterations).
fn run_until_idle(dir: &Path, config: &str) -> Output {
    let child = spawn(pulpo(dir, &["--config", config, "run"]));
    wait_within(child, Duration::from_secs(30), "pulpo run")
}

const IDLE: &str = "sleep_duration = \"100ms\"\nshutdown_after_number_of_empty_iterations = 5\n";

/// A beanstalkd taking bodies up to 300,000 bytes (`-z`), and a directory.
fn server_taking_big_jobs() -> (Beanstalkd, tempfile::TempDir) {
    let server = Beanstalkd::start_with(Options {
        max_job_size: Some(300_000),
        ..Options::default()
    });
    (server, tempfile::tempdir().unwrap())
}

/// Item 2: a job over the client's limit is buried at once, with a reason
/// naming the key, and the job behind it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_job_is_buried_and_the_jobs_behind_it_run() {
    let (server, dir) = server_taking_big_jobs();
    let config = config(dir.path(), &server, IDLE, "");
    let mut c = client(&server).await;
    let big = c.put(7, 0, 60, message("ok", 100_000)).await.unwrap();
    let small = c.put(8, 0, 60, message("ok", 10)).await.unwrap();
    let out = run_until_idle(dir.path(), &config);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    let info = c.stats_job(big).await.unwrap();
    assert_eq!(info.state, JobState::Buried, "{log}");
    assert_eq!(info.reserves, 1, "buried at its first reserve: {log}");
    assert_eq!(info.pri, 7, "priority kept");
    assert!(c.stats_job(small).await.unwrap_err().is_not_found(), "{log}");
    assert!(
        log.contains(&format!("job {big} (not a message) buried after ")) && log.contains("max_job_size"),
        "{log}"
    );
}

/// Item 2: `[beanstalkd] max_job_size` raises the runner's limit, and is
/// validated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_job_size_lets_a_runner_take_bigger_jobs() {
    let (server, dir) = server_taking_big_jobs();
    let config = config(dir.path(), &server, IDLE, "max_job_size = 200000");
    let mut c = client(&server).await;
    let big = c.put(7, 0, 60, message("ok", 100_000)).await.unwrap();
    let out = run_until_idle(dir.path(), &config);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        c.stats_job(big).await.unwrap_err().is_not_found(),
        "{}",
        stderr(&out)
    );

    let bad = self::config(dir.path(), &server, "", "max_job_size = 0");
    let out = pulpo(dir.path(), &["--config", &bad, "config"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("max_job_size"), "{}", stderr(&out));
}

/// Item 6: a server that stops answering (SIGSTOP) makes `stats` and
/// `publish` fail after `command_timeout`, naming it, instead of hanging.
#[test]
fn commands_to_a_stopped_server_time_out() {
    let server = Beanstalkd::start();
    let dir = tempfile::tempdir().unwrap();
    let address = server.address();
    let stopped = Stopped::new(&server);
    for args in [&["stats"][..], &["publish", "ok", "a"]] {
        let mut cmd = pulpo(dir.path(), &["--queue", "beanstalkd", "--address", &address]);
        cmd.args(args).env("PULPO_BEANSTALKD__COMMAND_TIMEOUT", "1s");
        let started = Instant::now();
        let out = wait_within(
            spawn(cmd),
            Duration::from_secs(20),
            "pulpo against a stopped server",
        );
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("command_timeout") && err.contains("did not answer"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    drop(stopped);
    let out = pulpo(
        dir.path(),
        &["--queue", "beanstalkd", "--address", &address, "stats"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Runs a job of `request_type` with `ttr` (seconds) under `pulpo run`,
/// stops the server (SIGSTOP) once it is reserved, waits `hang`, sends
/// SIGTERM, and returns how long the runner took to stop, and its log.
async fn stop_a_runner_facing_a_stopped_server(
    request_type: &str,
    ttr: u32,
    hang: Duration,
) -> (Duration, String, u64) {
    let server = Beanstalkd::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &server,
        "sleep_duration = \"100ms\"\nshutdown_after_number_of_empty_iterations = 0\n\
         shutdown_timeout = \"1s\"\n",
        "command_timeout = \"60s\"",
    );
    let mut c = client(&server).await;
    let id = c.put(1, 0, ttr, message(request_type, 1)).await.unwrap();
    let child = spawn(pulpo(dir.path(), &["--config", &config, "run"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.stats_job(id).await.unwrap().state != JobState::Reserved {
        assert!(Instant::now() < deadline, "the runner reserves the job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = Stopped::new(&server);
    tokio::time::sleep(hang).await;
    let stop_asked = Instant::now();
    signal(child.id(), libc::SIGTERM);
    let out = tokio::task::spawn_blocking(move || {
        wait_within(child, Duration::from_secs(30), "pulpo run after SIGTERM")
    })
    .await
    .unwrap();
    let took = stop_asked.elapsed();
    drop(stopped);
    (took, stderr(&out), id)
}

/// Item 6: a runner whose settle hangs on a stopped server still stops
/// within shutdown_timeout (plus a grace) on SIGTERM, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_stopped_server() {
    // The handler (sleep 1) ends; its delete then waits on the stopped server.
    let (took, log, id) =
        stop_a_runner_facing_a_stopped_server("slow", 60, Duration::from_millis(1500)).await;
    assert!(took < Duration::from_secs(8), "stopped after {took:?}: {log}");
    assert!(log.contains("still waiting"), "{log}");
    assert!(log.contains(&format!("delete job {id}")), "{log}");
}

/// Item 6: nor does a lease renewal (touch) stuck on a stopped server keep
/// the runner from cancelling a long handler at shutdown_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_touch_on_a_stopped_server() {
    // TTR 3 s: the lease is renewed every second, so a touch is waiting.
    let (took, log, id) = stop_a_runner_facing_a_stopped_server("long", 3, Duration::from_millis(1500)).await;
    assert!(took < Duration::from_secs(8), "stopped after {took:?}: {log}");
    assert!(log.contains(&format!("touch job {id}")), "{log}");
}

/// Item 13b: beanstalkd pauses whole seconds; a half-second pause is
/// rounded up, and the output says what was applied.
#[test]
fn a_sub_second_pause_is_rounded_up_visibly() {
    let server = Beanstalkd::start();
    let dir = tempfile::tempdir().unwrap();
    let address = server.address();
    let args = ["--queue", "beanstalkd", "--address", &address];
    let run = |extra: &[&str]| {
        let out = pulpo(dir.path(), &args).args(extra).output().unwrap();
        pulpo_testkit::output::stdout_of_success("pulpo pause", out)
    };
    run(&["publish", "ok", "a", "--tube", "k"]);
    let human = run(&["pause", "k", "0.5"]);
    assert!(
        human.contains("for 1s") && human.contains("rounded up from 500ms"),
        "{human}"
    );
    let json: Value = serde_json::from_str(&run(&["pause", "k", "0.5", "--json"])).unwrap();
    assert_eq!(json["paused_for"], 1.0, "{json}");
    assert_eq!(json["requested"], 0.5, "{json}");
    let json: Value = serde_json::from_str(&run(&["pause", "k", "2", "--json"])).unwrap();
    assert_eq!(json["paused_for"], 2.0, "{json}");
    let human = run(&["pause", "k", "2"]);
    assert!(!human.contains("rounded"), "{human}");
}

/// Item 14: more workers than open files: a clear error at start when the
/// hard limit does not allow it, and a raised soft limit when it does.
#[test]
fn concurrency_over_the_open_file_limit() {
    let server = Beanstalkd::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &server, &format!("{IDLE}concurrency = 200\n"), "");
    let run_with_limit = |limit: &str| {
        let mut cmd = Command::new("prlimit");
        cmd.current_dir(dir.path())
            .arg(format!("--nofile={limit}"))
            .arg(env!("CARGO_BIN_EXE_pulpo"))
            .args(["--config", &config, "run"]);
        wait_within(spawn(cmd), Duration::from_secs(20), "pulpo run under prlimit")
    };
    let out = run_with_limit("64:64");
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("open files") && err.contains("concurrency") && err.contains("ulimit -n"),
        "{err}"
    );
    let out = run_with_limit("64:4096");
    assert!(out.status.success(), "{}", stderr(&out));
}
