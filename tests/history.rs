//! Job records, replies and failure follow-ups end to end, on both queues:
//! `pulpo status` through every outcome, the error list after transient
//! failures, events from an `exec` and a Rust handler, results through
//! `publish --wait` and its timeout, retention, records surviving kill -9
//! of the runner (file queue), and two runners recording at once.

#[path = "queue_under_test/mod.rs"]
mod queue_under_test;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pulpo::config::from_toml_str;
use pulpo::{Context, Message, Outcome, Registry, Runner};
use queue_under_test::QueueUnderTest;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The longest any single `pulpo` process may take here.
const TIME_GUARD: Duration = Duration::from_secs(20);

/// A queue for one test, with a config file that turns records on.
struct Env {
    on: QueueUnderTest,
}

impl Env {
    fn file() -> Env {
        Env {
            on: QueueUnderTest::file(),
        }
    }

    fn beanstalkd() -> Env {
        Env {
            on: QueueUnderTest::beanstalkd(false),
        }
    }

    fn dir(&self) -> &Path {
        self.on.path()
    }

    /// The config text: quick idle exit, records on (on beanstalkd in the
    /// test's directory, never the user's state directory), then `extra`.
    fn config_text(&self, history: &str, extra: &str) -> String {
        let records = match &self.on.server {
            Some(_) => format!("path = \"{}\"\n", self.dir().join("records").display()),
            None => String::new(),
        };
        // Top-level keys of `extra` (before its first table) go first.
        let split = extra.find("\n[").map_or(0, |at| at + 1);
        let (top, tables) = if extra.starts_with('[') {
            ("", extra)
        } else {
            extra.split_at(split)
        };
        let queue = self.on.queue_toml(
            &format!("sleep_duration = \"0.2s\"\nshutdown_after_number_of_empty_iterations = 4\n{top}"),
            "",
        );
        format!("{queue}[history]\nenabled = true\n{records}{history}\n{tables}")
    }

    /// Writes pulpo.toml into the test's directory.
    fn config(&self, history: &str, extra: &str) {
        std::fs::write(self.dir().join("pulpo.toml"), self.config_text(history, extra)).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        pulpo_testkit::output::clean_command(env!("CARGO_BIN_EXE_pulpo"), self.dir(), args)
    }

    /// Runs `pulpo args` to its end.
    fn pulpo(&self, args: &[&str]) -> Output {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pulpo");
        wait_guarded(child, args)
    }

    /// Runs `pulpo args`, expecting exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        pulpo_testkit::output::stdout_of_success(&format!("pulpo {args:?}"), self.pulpo(args))
    }

    fn publish(&self, args: &[&str]) -> u64 {
        let mut all = vec!["publish"];
        all.extend(args);
        let out = self.ok(&all);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("publish printed {out:?}"))
    }

    /// `pulpo status <id> --json`.
    fn status(&self, id: u64) -> Value {
        serde_json::from_str(&self.ok(&["status", &id.to_string(), "--json"])).unwrap()
    }

    fn state(&self, id: u64) -> String {
        self.status(id)["state"].as_str().unwrap().to_owned()
    }

    /// `pulpo history --json` with `args`: the records.
    fn history(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["history", "--json", "--limit", "100000"];
        all.extend(args);
        let doc: Value = serde_json::from_str(&self.ok(&all)).unwrap();
        doc["records"].as_array().unwrap().clone()
    }

    /// A runner in the background, its output discarded.
    fn spawn_runner(&self) -> Child {
        self.command(&["run"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// A runner to its idle exit.
    fn run(&self) {
        self.ok(&["run"]);
    }

    /// Settings of the config file, for in-process runners.
    fn settings(&self) -> pulpo::Settings {
        let text = std::fs::read_to_string(self.dir().join("pulpo.toml")).unwrap();
        from_toml_str(&text, &self.dir().join("pulpo.toml")).unwrap()
    }
}

fn wait_guarded(child: Child, args: &[&str]) -> Output {
    pulpo_testkit::output::output_within(child, TIME_GUARD, &format!("pulpo {args:?}"))
}

fn errors(status: &Value) -> Vec<String> {
    status["record"]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["error"].as_str().map(str::to_owned))
        .collect()
}

/// A job's state through every row of the outcome table: success, a
/// transient failure with attempts left (queued again), attempts used up,
/// fatal, timed out, no handler, expired; and cancelled and deleted by
/// `pulpo delete`; running while its handler runs.
fn status_through_every_outcome(env: Env) {
    env.config(
        "",
        "[retry]\nmax_attempts = 2\ndelay = \"0s\"\n\
         [handlers.good]\nkind = \"success\"\n\
         [handlers.bad]\nkind = \"fail\"\n\
         [handlers.flaky]\nkind = \"transient\"\n\
         [handlers.later]\nkind = \"transient\"\nretry = { max_attempts = 5, delay = \"1h\" }\n\
         [handlers.slow]\nkind = \"exec\"\ncommand = [\"/bin/sleep\", \"30\"]\ntimeout = \"0.3s\"\n\
         retry = { max_attempts = 1 }\n\
         [handlers.nap]\nkind = \"exec\"\ncommand = [\"/bin/sleep\", \"1\"]\n",
    );
    let good = env.publish(&["good", "x"]);
    let bad = env.publish(&["bad", "x"]);
    let flaky = env.publish(&["flaky", "x"]);
    let later = env.publish(&["later", "x"]);
    let slow = env.publish(&["slow", "x"]);
    let unknown = env.publish(&["nobody", "x"]);
    let expired = env.publish(&["good", "x", "--expires-in", "1s"]);
    let waiting = env.publish(&["good", "x", "--delay", "1h"]);
    assert_eq!(env.state(waiting), "queued");
    env.ok(&["delete", &waiting.to_string()]);
    std::thread::sleep(Duration::from_millis(1100));
    env.run();

    assert_eq!(env.state(good), "succeeded");
    assert_eq!(env.state(bad), "buried");
    assert_eq!(env.state(flaky), "buried");
    assert_eq!(env.state(later), "queued", "released, with attempts left");
    assert_eq!(errors(&env.status(later)).len(), 1);
    assert_eq!(env.state(slow), "buried");
    assert!(
        errors(&env.status(slow))[0].contains("timed out"),
        "{}",
        env.status(slow)
    );
    assert_eq!(env.state(unknown), "buried");
    assert!(errors(&env.status(unknown))[0].contains("nobody"));
    assert_eq!(env.state(expired), "expired");
    assert_eq!(env.state(waiting), "cancelled");
    // A buried job deleted by an operator: "deleted", its attempts kept.
    env.ok(&["delete", &bad.to_string()]);
    let deleted = env.status(bad);
    assert_eq!(deleted["state"], "deleted");
    assert_eq!(deleted["record"]["attempts"].as_array().unwrap().len(), 1);

    // Running while its handler runs; succeeded after.
    let nap = env.publish(&["nap", "x"]);
    let mut runner = env.spawn_runner();
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.state(nap) != "running" {
        assert!(Instant::now() < deadline, "job {nap} never seen running");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(runner.wait().unwrap().success());
    assert_eq!(env.state(nap), "succeeded");

    let buried = env.history(&["--outcome", "buried"]);
    let ids: Vec<&str> = buried.iter().map(|r| r["job"].as_str().unwrap()).collect();
    for id in [flaky, slow, unknown] {
        assert!(ids.contains(&id.to_string().as_str()), "{id} in {ids:?}");
    }
    assert_eq!(env.history(&["--type", "later"]).len(), 1);
}

/// Three transient failures: three errors, each with its attempt, in order.
fn three_transient_failures_are_all_kept(env: Env) {
    env.config(
        "",
        "[handlers.flaky]\nkind = \"transient\"\nretry = { max_attempts = 3, delay = \"0s\" }\n",
    );
    let id = env.publish(&["flaky", "x"]);
    env.run();
    let status = env.status(id);
    assert_eq!(status["state"], "buried");
    let attempts = status["record"]["attempts"].as_array().unwrap();
    let numbers: Vec<u64> = attempts.iter().map(|a| a["attempt"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3]);
    let errors = errors(&status);
    assert_eq!(errors.len(), 3, "{status}");
    assert!(errors[0].contains("attempt 1 of 3"), "{errors:?}");
    assert!(errors[2].contains("no attempts left"), "{errors:?}");
    assert!(
        attempts
            .iter()
            .all(|a| a["started"].is_string() && a["finished"].is_string())
    );
}

/// An exec handler writes events to `$PULPO_JOB_EVENTS` and its result
/// to stdout (`result = "stdout"`); `publish --wait` prints that result.
fn exec_events_and_a_result_through_publish_wait(env: Env) {
    env.config(
        "",
        "[handlers.sum]\nkind = \"exec\"\n\
         command = [\"/bin/sh\", \"-c\", \"echo reading >> \\\"$PULPO_JOB_EVENTS\\\"; \
         echo done >> \\\"$PULPO_JOB_EVENTS\\\"; echo '{\\\"sum\\\": 3}'\"]\nresult = \"stdout\"\n\
         [handlers.bad]\nkind = \"fail\"\n",
    );
    let mut runner = env
        .command(&["run"])
        .env("PULPO_SHUTDOWN_AFTER_NUMBER_OF_EMPTY_ITERATIONS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = env.pulpo(&["publish", "sum", "1 2", "--wait", "--timeout", "10s", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(out.status.code(), Some(0), "{doc}");
    assert_eq!(doc["reply"]["outcome"], "succeeded");
    assert_eq!(doc["reply"]["result"], serde_json::json!({"sum": 3}));
    let id = doc["id"].as_u64().unwrap();

    let human = env.pulpo(&["publish", "bad", "x", "--wait", "--timeout", "10s"]);
    assert_eq!(human.status.code(), Some(1), "a buried job exits 1");
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("buried"), "{text}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(runner.id() as libc::pid_t, libc::SIGTERM) };
    runner.wait().unwrap();

    let record = &env.status(id)["record"];
    let events: Vec<&str> = record["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["reading", "done"]);
    assert_eq!(record["result"], serde_json::json!({"sum": 3}));
    // The reply tubes were read and left nothing behind.
    let tubes = env.ok(&["tubes", "--json"]);
    assert!(!tubes.contains("reply."), "{tubes}");
}

/// With no runner, `publish --wait --timeout` exits 124, as timeout(1).
fn publish_wait_times_out(env: Env) {
    env.config("", "[handlers.good]\nkind = \"success\"\n");
    let started = Instant::now();
    let out = env.pulpo(&["publish", "good", "x", "--wait", "--timeout", "0.5s"]);
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no result for job"));
}

/// Records past `max_jobs` go, oldest first; past `keep`, all.
fn retention_prunes(env: Env) {
    env.config(
        "max_jobs = 3\nkeep = \"2s\"",
        "[handlers.good]\nkind = \"success\"\n",
    );
    let ids: Vec<u64> = (0..6).map(|_| env.publish(&["good", "x"])).collect();
    env.run();
    let kept = env.history(&[]);
    assert_eq!(kept.len(), 3, "{kept:?}");
    let kept: Vec<&str> = kept.iter().map(|r| r["job"].as_str().unwrap()).collect();
    assert!(
        kept.contains(&ids[5].to_string().as_str()),
        "the newest stays: {kept:?}"
    );
    std::thread::sleep(Duration::from_millis(2100));
    env.run();
    assert!(env.history(&[]).is_empty(), "every record is older than keep");
}

/// Two runners at once on one store: every job recorded, once.
fn two_runners_record_at_once(env: Env) {
    env.config("", "concurrency = 4\n[handlers.good]\nkind = \"success\"\n");
    let out = env.ok(&["publish", "good", "x", "--count", "200"]);
    assert_eq!(out.lines().count(), 200);
    let runners: Vec<Child> = (0..2).map(|_| env.spawn_runner()).collect();
    for runner in runners {
        let out = wait_guarded(runner, &["run"]);
        assert!(out.status.success(), "{out:?}");
    }
    let records = env.history(&["--outcome", "succeeded"]);
    assert_eq!(records.len(), 200);
    assert!(
        records
            .iter()
            .all(|r| r["attempts"].as_array().unwrap().len() == 1)
    );
}

/// A Rust handler's events and result (in process, on the library API).
fn rust_handler_events_and_result(env: Env) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(rust_handler_events_and_result_in(env));
}

async fn rust_handler_events_and_result_in(env: Env) {
    env.config("", "[handlers.greet]\nkind = \"greeter\"\n");
    let mut registry = Registry::with_builtins();
    registry.register("greeter", |_settings| {
        Ok(std::sync::Arc::new(|message: Message, ctx: Context| async move {
            ctx.event("looking up the name");
            ctx.event(format!("attempt {}", ctx.attempt));
            Outcome::success_with_result(serde_json::json!({
                "greeting": format!("hello {}", message.payload_str().unwrap_or("?"))
            }))
        }) as std::sync::Arc<dyn pulpo::Handler>)
    });
    let settings = env.settings();
    let mut producer = pulpo::Producer::from_settings(&settings).await.unwrap();
    let token = CancellationToken::new();
    let runner = Runner::new(settings.clone(), &registry).unwrap();
    let running = tokio::spawn(runner.run(token.clone()));
    let (id, reply) = producer
        .publish_and_wait(
            Message::new("greet").with_payload("ada"),
            Some(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    let reply = reply.expect("a reply in time");
    assert_eq!(reply.outcome, pulpo::history::End::Succeeded);
    assert_eq!(reply.result["greeting"], "hello ada");
    token.cancel();
    running.await.unwrap().unwrap();
    let record = pulpo::history::lookup(&settings, pulpo::history::JobRef::new(id))
        .unwrap()
        .unwrap();
    let events: Vec<&str> = record.events.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(events, ["looking up the name", "attempt 1"]);
    assert_eq!(record.result.unwrap()["greeting"], "hello ada");
}

/// `on_buried` publishes its message, with the error and the job's message.
fn on_buried_publishes_a_follow_up(env: Env) {
    env.config(
        "",
        "[handlers.bad]\nkind = \"fail\"\non_buried = { request_type = \"alert\" }\n\
         [handlers.alert]\nkind = \"success\"\n",
    );
    let id = env.publish(&["bad", "payload-1"]);
    env.run();
    let alerts = env.history(&["--type", "alert"]);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert_id: u64 = alerts[0]["job"].as_str().unwrap().parse().unwrap();
    assert_ne!(alert_id, id);
    assert_eq!(env.state(alert_id), "succeeded");
    assert_eq!(env.state(id), "buried");
}

macro_rules! on_both_queues {
    ($($name:ident),* $(,)?) => {
        mod file {
            $(#[test] fn $name() { super::$name(super::Env::file()) })*
        }
        mod beanstalkd {
            $(#[test] fn $name() { super::$name(super::Env::beanstalkd()) })*
        }
    };
}

on_both_queues!(
    status_through_every_outcome,
    three_transient_failures_are_all_kept,
    exec_events_and_a_result_through_publish_wait,
    publish_wait_times_out,
    retention_prunes,
    two_runners_record_at_once,
    on_buried_publishes_a_follow_up,
    rust_handler_events_and_result,
);

/// Records survive kill -9 of the runner: every job the queue no longer
/// has (deleted on success) has its record, since a record is written
/// before the settlement it describes.
#[test]
fn records_survive_kill_9_of_the_runner() {
    let env = Env::file();
    env.config("", "concurrency = 4\n[handlers.good]\nkind = \"success\"\n");
    let out = env.ok(&["publish", "good", "x", "--count", "2000"]);
    let ids: Vec<u64> = out.lines().map(|l| l.parse().unwrap()).collect();
    let mut runner = env.spawn_runner();
    // Kill it mid-flow: once some jobs are done, long before all are.
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.history(&[]).len() < 50 {
        assert!(Instant::now() < deadline, "no job recorded");
        std::thread::sleep(Duration::from_millis(10));
    }
    runner.kill().unwrap();
    runner.wait().unwrap();
    let recorded: std::collections::HashSet<String> = env
        .history(&["--outcome", "succeeded"])
        .iter()
        .map(|r| r["job"].as_str().unwrap().to_owned())
        .collect();
    let settings = env.settings();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let gone = runtime.block_on(async {
        let mut queue = pulpo::queue::open(&settings).await.unwrap();
        let mut gone = 0;
        for id in &ids {
            match queue.stats_job(*id).await {
                Ok(_) => {}
                Err(pulpo::QueueError::JobNotFound { .. }) => {
                    gone += 1;
                    assert!(
                        recorded.contains(&id.to_string()),
                        "job {id} was deleted without a record"
                    );
                }
                Err(err) => panic!("stats-job {id}: {err}"),
            }
        }
        gone
    });
    assert!(gone >= 50, "{gone}");
    assert!(gone < ids.len(), "killed before the end");
}

/// The file queue keeps its records in its own directory.
#[test]
fn the_file_queue_keeps_records_in_its_directory() {
    let env = Env::file();
    env.config("", "[handlers.good]\nkind = \"success\"\n");
    env.publish(&["good", "x"]);
    env.run();
    let path: PathBuf = env.dir().join("queue/history/records.sqlite");
    assert!(path.is_file(), "{}", path.display());
}

/// On beanstalkd, whose records carry no durability promise, a worker does
/// not wait for its job's record: with the store's write lock held by
/// another process, jobs still run and leave the queue; their records
/// follow once the lock is free, none lost.
#[test]
fn beanstalkd_jobs_settle_while_the_record_store_is_locked() {
    let env = Env::beanstalkd();
    env.config("", "concurrency = 4\n[handlers.good]\nkind = \"success\"\n");
    assert!(env.history(&[]).is_empty(), "the store is created empty");
    let out = env.ok(&["publish", "good", "x", "--count", "100"]);
    let ids: Vec<u64> = out.lines().map(|l| l.parse().unwrap()).collect();
    let settings = env.settings();
    let lock = rusqlite::Connection::open(pulpo::history::store_path(&settings)).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let runner = env.spawn_runner();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A record write waits up to 10 s for the lock: before that, every job
    // must be gone from the queue.
    let deadline = Instant::now() + Duration::from_secs(6);
    runtime.block_on(async {
        let mut queue = pulpo::queue::open(&settings).await.unwrap();
        for id in &ids {
            loop {
                match queue.stats_job(*id).await {
                    Err(pulpo::QueueError::JobNotFound { .. }) => break,
                    Ok(_) => {
                        assert!(Instant::now() < deadline, "job {id} waited for its record");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(err) => panic!("stats-job {id}: {err}"),
                }
            }
        }
    });
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let out = wait_guarded(runner, &["run"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(env.history(&["--outcome", "succeeded"]).len(), ids.len());
}

/// `pulpo status` of a job whose record says it left the queue for good
/// answers from the record alone: with beanstalkd stopped, a succeeded job
/// still reads "succeeded" (the queue is not opened: no connection, no
/// replay of a file queue's log), while a job the record does not settle
/// still needs the queue and says so.
#[test]
fn status_of_a_finished_job_needs_no_queue() {
    let mut env = Env::beanstalkd();
    env.config("", "[handlers.good]\nkind = \"success\"\n");
    let done = env.publish(&["good", "x"]);
    env.run();
    let waiting = env.publish(&["good", "x", "--delay", "1h"]);
    env.on.server.as_mut().unwrap().kill();
    let status = env.status(done);
    assert_eq!(status["state"], "succeeded", "{status}");
    assert_eq!(status["record"]["attempts"].as_array().unwrap().len(), 1);
    let out = env.pulpo(&["status", &waiting.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// Looking a job up creates nothing: `pulpo status` on a queue whose runner
/// never recorded anything finds no record and leaves no store behind.
#[test]
fn status_creates_no_record_store() {
    let env = Env::file();
    env.config("", "");
    let id = env.publish(&["good", "x"]);
    assert_eq!(env.state(id), "queued");
    let out = env.pulpo(&["status", "999"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{out:?}"
    );
    let store = env.dir().join("queue/history/records.sqlite");
    assert!(!store.exists(), "{} was created", store.display());
}
