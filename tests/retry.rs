//! `pulpo retry` end to end, on the file queue and on a real beanstalkd: a
//! job the runner buried after its last attempt gets a fresh set of
//! attempts as a copy (same tube, priority, TTR and body) that replaces it,
//! where `kick` gives back one attempt only.

use std::process::{Command, Output};

use pulpo_testkit::Beanstalkd;
use serde_json::Value;

/// A config whose `flaky` jobs always fail transiently, two attempts each,
/// and whose runner ends soon after its last job.
const CONFIG: &str = r#"
sleep_duration = "0.2s"
shutdown_after_number_of_empty_iterations = 5

[handlers.flaky]
kind = "transient"
retry = { max_attempts = 2, backoff = "fixed", delay = "0.1s" }
"#;

/// One queue to run the scenario on: its flags, and the server behind it.
struct Queue {
    dir: tempfile::TempDir,
    flags: Vec<String>,
    _server: Option<Beanstalkd>,
}

impl Queue {
    fn file() -> Queue {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pulpo.toml"), CONFIG).unwrap();
        Queue {
            dir,
            flags: vec![],
            _server: None,
        }
    }

    fn beanstalkd() -> Queue {
        let server = Beanstalkd::start();
        let mut queue = Queue::file();
        queue.flags = vec![
            "--queue".into(),
            "beanstalkd".into(),
            "--address".into(),
            server.address(),
        ];
        queue._server = Some(server);
        queue
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulpo"));
        cmd.current_dir(self.dir.path()).args(&self.flags).args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("PULPO_") {
                cmd.env_remove(key);
            }
        }
        cmd.output().expect("run the pulpo binary")
    }

    fn ok(&self, args: &[&str]) -> String {
        pulpo_testkit::output::stdout_of_success(&format!("pulpo {args:?}"), self.run(args))
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{args:?}: not JSON ({err}): {text}"))
    }

    /// Runs the runner until it is idle; returns how many `flaky` jobs it
    /// reserved and buried.
    fn run_until_idle(&self) -> (u64, u64) {
        let summary = self.json(&["run"]);
        let flaky = &summary["counters"]["flaky"];
        (
            flaky["reserved"].as_u64().unwrap(),
            flaky["buried"].as_u64().unwrap(),
        )
    }

    fn stats_job(&self, id: u64) -> Value {
        self.json(&["stats-job", &id.to_string()])
    }
}

fn publish(queue: &Queue, payload: &str) -> u64 {
    queue.json(&["publish", "flaky", payload, "--priority", "7", "--ttr", "9s"])["ids"][0]
        .as_u64()
        .unwrap()
}

fn a_retried_job_gets_a_fresh_set_of_attempts(queue: Queue) {
    let first = publish(&queue, "one");
    let second = publish(&queue, "two");
    assert_eq!(queue.run_until_idle(), (4, 2), "two attempts each, then buried");
    let body = queue.json(&["peek", &first.to_string()])["message"].clone();
    assert_eq!(queue.stats_job(first)["reserves"], 2);

    // One job by id: a copy takes its place, with its tube, priority, TTR
    // and body, and no attempts used.
    let text = queue.ok(&["retry", &first.to_string()]);
    let copy: u64 = text
        .trim()
        .strip_prefix(&format!("retried job {first} as job "))
        .unwrap_or_else(|| panic!("retry printed {text:?}"))
        .parse()
        .unwrap();
    assert_ne!(copy, first);
    let stats = queue.stats_job(copy);
    assert_eq!(
        (
            &stats["state"],
            &stats["reserves"],
            &stats["pri"],
            &stats["ttr"],
            &stats["tube"]
        ),
        (
            &"ready".into(),
            &0.into(),
            &7.into(),
            &9.into(),
            &"default".into()
        ),
        "{stats}"
    );
    assert_eq!(queue.json(&["peek", &copy.to_string()])["message"], body);
    let gone = queue.run(&["stats-job", &first.to_string()]);
    assert_eq!(gone.status.code(), Some(1), "the original is deleted");

    // Every buried job of the tube.
    let all = queue.json(&["retry", "--all"]);
    let retried = all["retried"].as_array().unwrap();
    assert_eq!(retried.len(), 1, "{all}");
    assert_eq!(retried[0]["id"], second);
    let second_copy = retried[0]["new_id"].as_u64().unwrap();
    assert_eq!(queue.stats_job(second_copy)["reserves"], 0);

    // Both copies run their two attempts again.
    assert_eq!(queue.run_until_idle(), (4, 2));

    // Only buried jobs are retried: a job a worker may hold is refused,
    // before anything is stored.
    let ready = publish(&queue, "three");
    let out = queue.run(&["retry", &ready.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("job {ready} is ready, not buried")),
        "{err}"
    );
    assert_eq!(
        queue.json(&["retry", "--all"])["retried"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let usage = queue.run(&["retry"]);
    assert_eq!(usage.status.code(), Some(2), "retry needs ids or --all");
}

#[test]
fn retry_on_the_file_queue() {
    a_retried_job_gets_a_fresh_set_of_attempts(Queue::file());
}

#[test]
fn retry_on_beanstalkd() {
    a_retried_job_gets_a_fresh_set_of_attempts(Queue::beanstalkd());
}

/// The human and JSON output of `retry` when some ids are not buried jobs.
#[test]
fn retry_reports_each_job_it_could_not_retry() {
    let queue = Queue::file();
    let id = publish(&queue, "one");
    assert_eq!(queue.run_until_idle(), (2, 1));
    let out = queue.run(&["retry", &id.to_string(), "999", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["retried"][0]["id"], id, "{doc}");
    assert_eq!(doc["failed"][0]["id"], 999, "{doc}");
    assert!(
        doc["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("job 999 not found"),
        "{doc}"
    );
    // With --json the error is JSON on stderr too.
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"], "1 of 2 jobs not retried", "{err}");
    assert_eq!(err["code"], 1, "{err}");
}
