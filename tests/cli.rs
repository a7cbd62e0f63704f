//! The `pulpo` binary end to end against a real beanstalkd: every command,
//! human and `--json` output, exit codes and one-line errors.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pulpo_testkit::Beanstalkd;
use serde_json::Value;

/// Runs `pulpo` with the given arguments in `dir` (so no stray ./pulpo.toml
/// is read), with the environment cleared of PULPO_ variables.
fn pulpo_in(dir: &Path, args: &[&str]) -> Output {
    command_in(dir, args).output().expect("run the pulpo binary")
}

/// The `pulpo` command [`pulpo_in`] runs, for a caller that sets up its
/// standard streams itself.
fn command_in(dir: &Path, args: &[&str]) -> Command {
    pulpo_testkit::output::clean_command(env!("CARGO_BIN_EXE_pulpo"), dir, args)
}

struct Env {
    server: Beanstalkd,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            server: Beanstalkd::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `pulpo --queue beanstalkd --address ADDR <args>`, expecting success.
    fn ok(&self, args: &[&str]) -> String {
        pulpo_testkit::output::stdout_of_success(&format!("pulpo {args:?}"), self.run(args))
    }

    /// The entry of `tube` in `pulpo tubes --json`.
    fn tube(&self, tube: &str) -> Value {
        let tubes = self.json(&["tubes"]);
        let found = tubes["tubes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == tube);
        found
            .cloned()
            .unwrap_or_else(|| panic!("no tube {tube:?} in {tubes}"))
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.ok(&all);
        assert_eq!(
            text.lines().count(),
            1,
            "--json prints one document on one line: {text}"
        );
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{args:?}: not JSON ({err}): {text}"))
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run the pulpo binary")
    }

    /// The command [`Env::run`] runs, for a caller that sets up its streams.
    fn command(&self, args: &[&str]) -> Command {
        let address = self.server.address();
        let mut all = vec!["--queue", "beanstalkd", "--address", address.as_str()];
        all.extend_from_slice(args);
        command_in(self.dir.path(), &all)
    }

    /// Runs `work` with the library's client, connected to the server: for
    /// what the CLI cannot do.
    fn client(&self, work: impl AsyncFnOnce(&mut pulpo_beanstalkd::Client)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut client = pulpo_beanstalkd::Client::connect(&self.server.address())
                .await
                .unwrap();
            work(&mut client).await;
        });
    }

    /// `total_jobs` of `pulpo stats --json`: jobs ever stored.
    fn total_jobs(&self) -> u64 {
        self.json(&["stats"])["total_jobs"].as_u64().unwrap()
    }

    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "pulpo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            stderr.lines().count(),
            1,
            "one-line error expected, got: {stderr}"
        );
        stderr
    }
}

#[test]
fn publish_peek_pop_round_trip() {
    let env = Env::new();
    let id: u64 = env
        .ok(&["publish", "send_email", "hello", "--priority", "7"])
        .trim()
        .parse()
        .unwrap();

    let job = env.json(&["peek", &id.to_string()]);
    assert_eq!(job["id"], id);
    assert_eq!(job["state"], "ready");
    assert_eq!(job["stats"]["pri"], 7);
    assert_eq!(job["stats"]["tube"], "default");
    assert_eq!(job["message"]["header"]["request_type"], "send_email");
    assert_eq!(job["message"]["header"]["priority"], 7);
    assert_eq!(job["message"]["body"]["payload"], "hello");

    let human = env.ok(&["peek", "--ready"]);
    assert!(
        human.starts_with(&format!("job {id} (ready) in tube default")),
        "{human}"
    );
    assert!(human.contains("\"payload\": \"hello\""), "{human}");

    let popped = env.json(&["pop"]);
    assert_eq!(popped["id"], id);
    assert_eq!(popped["state"], "reserved");
    assert_eq!(popped["stats"]["reserves"], 1);
    // pop deleted it.
    let err = env.fails(&["peek", &id.to_string()], 1);
    assert!(err.contains(&format!("job {id} not found")), "{err}");
    let err = env.fails(&["pop"], 1);
    assert!(err.contains("no ready job in default"), "{err}");
}

#[test]
fn publish_sets_header_body_and_schedule() {
    let env = Env::new();
    let out = env.json(&[
        "publish",
        "resize",
        "img.png",
        "--tube",
        "images",
        "--delay",
        "1h",
        "--ttr",
        "90s",
        "--expires-in",
        "2h",
        "--header",
        "source=checkout",
        "--header",
        "retries_hint=3",
        "--body-json",
        r#"{"width": 640, "nested": {"a": [1, 2]}}"#,
    ]);
    assert_eq!(out["tube"], "images");
    let id = out["ids"][0].as_u64().unwrap();

    let job = env.json(&["stats-job", &id.to_string()]);
    assert_eq!(job["state"], "delayed");
    assert_eq!(job["tube"], "images");
    assert_eq!(job["ttr"], 90);
    assert_eq!(job["delay"], 3600);
    assert_eq!(job["pri"], 1024, "defaults.priority applies");

    let peeked = env.json(&["peek", "--delayed", "--tube", "images"]);
    let message = &peeked["message"];
    assert_eq!(message["header"]["source"], "checkout");
    assert_eq!(message["header"]["retries_hint"], 3);
    assert_eq!(message["header"]["ttr"], 90);
    assert_eq!(message["body"]["payload"], "img.png");
    assert_eq!(message["body"]["width"], 640);
    assert_eq!(message["body"]["nested"]["a"][1], 2);
    let delay = chrono::DateTime::parse_from_rfc3339(message["header"]["delay"].as_str().unwrap()).unwrap();
    let expiration =
        chrono::DateTime::parse_from_rfc3339(message["header"]["expiration"].as_str().unwrap()).unwrap();
    assert_eq!((expiration - delay).num_seconds(), 3600);
}

#[test]
fn publish_count_prints_every_id() {
    let env = Env::new();
    let text = env.ok(&["publish", "echo", "x", "--count", "2500"]);
    let ids: Vec<u64> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ids.len(), 2500);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "ids in order");
    let default = env.tube("default");
    assert_eq!(default["current_jobs_ready"], 2500);
}

#[test]
fn bury_kick_delete_and_stats() {
    let env = Env::new();
    let id = env.json(&["publish", "task", "p"])["ids"][0].as_u64().unwrap();
    // Bury it through the library client (the CLI has no bury: the runner buries).
    env.client(async |client| {
        let job = client.reserve_with_timeout(0).await.unwrap();
        assert_eq!(job.id, id);
        client.bury(id, 5).await.unwrap();
    });
    let buried = env.json(&["peek", "--buried"]);
    assert_eq!(buried["id"], id);
    assert_eq!(buried["state"], "buried");

    let kicked = env.json(&["kick", "10"]);
    assert_eq!(kicked["kicked"], 1);
    assert_eq!(env.json(&["stats-job", &id.to_string()])["state"], "ready");
    assert_eq!(env.json(&["stats-job", &id.to_string()])["kicks"], 1);

    let text = env.ok(&["kick"]);
    assert_eq!(text.trim(), "kicked 0 jobs in tube default");

    let stats = env.json(&["stats"]);
    assert_eq!(stats["current_jobs_ready"], 1);
    assert!(stats["version"].is_string());

    let out = env.json(&["delete", &id.to_string()]);
    assert_eq!(out["deleted"][0], id);
    let err = env.fails(&["delete", &id.to_string()], 1);
    assert!(err.contains(&format!("job {id} not found")), "{err}");
    let err = env.fails(&["kick-job", "999999"], 1);
    assert!(err.contains("job 999999 not found"), "{err}");
}

#[test]
fn kick_job_and_pause() {
    let env = Env::new();
    let id = env.json(&["publish", "task", "--delay", "100s"])["ids"][0]
        .as_u64()
        .unwrap();
    assert_eq!(
        env.ok(&["kick-job", &id.to_string()]).trim(),
        format!("kicked job {id}")
    );
    assert_eq!(env.json(&["stats-job", &id.to_string()])["state"], "ready");

    env.ok(&["pause", "default", "60s"]);
    let default = env.tube("default");
    assert_eq!(default["pause"], 60);
    assert!(default["pause_time_left"].as_u64().unwrap() > 50);
    // A paused tube hands out nothing.
    let err = env.fails(&["pop"], 1);
    assert!(err.contains("no ready job"), "{err}");
    let err = env.fails(&["pause", "nosuchtube", "5s"], 1);
    assert!(err.contains("tube \"nosuchtube\" not found"), "{err}");
}

#[test]
fn bad_input_is_a_one_line_error() {
    let env = Env::new();
    let err = env.fails(&["publish", "x", "--body-json", "[1,2]"], 2);
    assert!(err.contains("--body-json must be a JSON object"), "{err}");
    let err = env.fails(&["publish", "x", "--header", "novalue"], 2);
    assert!(err.contains("expected KEY=VALUE"), "{err}");
    let err = env.fails(&["publish", "x", "--tube", "bad tube"], 2);
    assert!(err.contains("bad tube"), "{err}");
    let err = env.fails(&["publish", "x", "--delay", "soon"], 2);
    assert!(err.contains("soon"), "{err}");
    let out = env.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unreachable_server_fails_fast_with_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let port = pulpo_testkit::free_port();
    let address = format!("127.0.0.1:{port}");
    // A producer (publish, in both output modes) and an inspector (stats).
    for args in [
        &["publish", "send_email", "hello"][..],
        &["publish", "send_email", "hello", "--json"],
        &["stats"],
    ] {
        let started = Instant::now();
        let mut all = vec!["--queue", "beanstalkd", "--address", &address];
        all.extend_from_slice(args);
        let out = pulpo_in(dir.path(), &all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(&address), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(5), "{args:?}");
    }
}

#[test]
fn global_flags_work_after_the_subcommand_and_from_env() {
    let env = Env::new();
    let address = env.server.address();
    let out = pulpo_in(
        env.dir.path(),
        &["publish", "x", "--queue", "beanstalkd", "--address", &address],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = Command::new(env!("CARGO_BIN_EXE_pulpo"))
        .current_dir(env.dir.path())
        .env("PULPO_QUEUE", "beanstalkd")
        .env("PULPO_BEANSTALKD__ADDRESS", &address)
        .args(["stats-job", "1", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["id"], 1);
}

#[test]
fn config_prints_the_resolved_settings() {
    let env = Env::new();
    std::fs::write(
        env.dir.path().join("pulpo.toml"),
        "concurrency = 9\n[retry]\nmax_attempts = 3\n",
    )
    .unwrap();
    let config = env.json(&["config"]);
    assert_eq!(config["concurrency"], 9);
    assert_eq!(config["retry"]["max_attempts"], 3);
    assert_eq!(config["queue"], "beanstalkd", "the flag wins over the default");

    std::fs::write(
        env.dir.path().join("pulpo.toml"),
        "[handlers.resize]\nkind = \"resizer\"\n",
    )
    .unwrap();
    let err = env.fails(&["config"], 2);
    assert!(
        err.contains("handlers.resize.kind") && err.contains("resizer"),
        "{err}"
    );
    std::fs::write(
        env.dir.path().join("pulpo.toml"),
        "[handlers.e]\nkind = \"echo\"\n",
    )
    .unwrap();
    let err = env.fails(&["config"], 2);
    assert!(err.contains("destination_directory"), "{err}");

    std::fs::write(env.dir.path().join("pulpo.toml"), "concurency = 9\n").unwrap();
    let err = env.fails(&["config"], 2);
    assert!(err.contains("concurency") && err.contains("pulpo.toml"), "{err}");
}

#[test]
fn the_file_queue_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = pulpo_in(dir.path(), args);
        assert!(
            out.status.success(),
            "pulpo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let ids: Vec<u64> = run(&["publish", "report", "monthly", "--count", "3"])
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert!(
        dir.path().join("pulpo-data").is_dir(),
        "default [file] path is ./pulpo-data"
    );
    let job: Value = serde_json::from_str(&run(&["peek", "2", "--json"])).unwrap();
    assert_eq!(job["message"]["body"]["payload"], "monthly");
    assert_eq!(job["state"], "ready");
    let popped: Value = serde_json::from_str(&run(&["pop", "--json"])).unwrap();
    assert_eq!(popped["id"], 1);
    assert_eq!(
        pulpo_in(dir.path(), &["kick-job", "3"]).status.code(),
        Some(1),
        "a ready job is not kickable"
    );
    let stats: Value = serde_json::from_str(&run(&["stats", "--json"])).unwrap();
    assert_eq!(stats["current_jobs_ready"], 2);
    // Another directory is another queue.
    let other = dir.path().join("elsewhere");
    let out = pulpo_in(dir.path(), &["--path", other.to_str().unwrap(), "publish", "x"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}

/// `/dev/full` opened for writing: every write fails with ENOSPC.
fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full")
}

/// The N of "storing N of M jobs" in publish's one-line report on stderr.
fn stored_count(stderr: &str) -> u64 {
    let after = stderr
        .split_once("storing ")
        .unwrap_or_else(|| panic!("no \"storing N of M\" in: {stderr}"))
        .1;
    after.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_full_stdout_is_a_one_line_error_not_a_panic() {
    let env = Env::new();
    let id = env.json(&["publish", "task", "p"])["ids"][0]
        .as_u64()
        .unwrap()
        .to_string();
    let commands: [&[&str]; 9] = [
        &["stats"],
        &["stats", "--json"],
        &["peek", &id],
        &["peek", &id, "--json"],
        &["stats-job", &id],
        &["tubes"],
        &["kick"],
        &["config"],
        &["publish", "task", "q", "--json"],
    ];
    for args in commands {
        let out = env.command(args).stdout(dev_full()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "pulpo {args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "pulpo {args:?}: one line: {stderr}");
        assert!(
            stderr.contains("stdout") && stderr.contains("No space left on device"),
            "pulpo {args:?} names stdout and the cause: {stderr}"
        );
    }

    // publish stops at the first batch whose ids it cannot print, and says
    // how many it stored.
    let before = env.total_jobs();
    let out = env
        .command(&["publish", "task", "q", "--count", "2500"])
        .stdout(dev_full())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("1000 of 2500"), "{stderr}");
    assert_eq!(env.total_jobs() - before, 1000, "no batch after the failed write");
}

#[test]
fn publish_to_a_closed_pipe_stores_nothing_and_exits_141() {
    let env = Env::new();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = env
        .command(&["publish", "task", "q", "--count", "5000"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(stored_count(&stderr), 0, "{stderr}");
    assert_eq!(env.total_jobs(), 0);

    // The other commands stop quietly.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = env.command(&["stats"]).stdout(writer).output().unwrap();
    assert_eq!(out.status.code(), Some(141));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn publish_stops_soon_after_its_reader_goes_away_in_both_modes() {
    use std::io::{BufRead, BufReader, Read};
    let env = Env::new();
    for json in [false, true] {
        let count = 200_000u64;
        let count_arg = count.to_string();
        let mut args = vec!["publish", "task", "q", "--count", &count_arg];
        if json {
            args.push("--json");
        }
        let before = env.total_jobs();
        let mut child = env
            .command(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Like `| head -1`: read the first line (human) or the first chunk
        // (--json streams its array), then go away.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let first = if json {
            let mut chunk = vec![0; 64];
            let n = stdout.read(&mut chunk).unwrap();
            String::from_utf8_lossy(&chunk[..n]).into_owned()
        } else {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line
        };
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if json {
            assert!(first.starts_with("{\"tube\":\"default\",\"ids\":["), "{first}");
        } else {
            assert_eq!(first.trim().parse::<u64>().unwrap(), before + 1, "{first}");
        }
        assert_eq!(out.status.code(), Some(141), "json {json}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let stored = stored_count(&stderr);
        assert!(stderr.contains(&format!("{stored} of {count}")), "{stderr}");
        assert_eq!(env.total_jobs() - before, stored, "the report is exact");
        assert!(
            stored < count / 2,
            "json {json}: publish went on storing {stored} jobs nobody reads"
        );
    }
}

#[test]
fn pop_prints_a_body_that_is_not_utf8_faithfully() {
    let env = Env::new();
    let body: &[u8] = b"\xff\xfe body\x00\x1b[31m\xc3";
    env.client(async |client| {
        client.put(1, 0, 60, body.to_vec()).await.unwrap();
        client.put(2, 0, 60, body.to_vec()).await.unwrap();
    });

    let popped = env.json(&["pop"]);
    assert_eq!(popped["body_base64"], "//4gYm9keQAbWzMxbcM=", "{popped}");
    assert!(popped.get("body").is_none(), "no lossy copy: {popped}");
    assert!(popped["body_error"].is_string(), "{popped}");

    let out = env.run(&["pop"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.stdout.windows(body.len()).any(|w| w == body),
        "the raw bytes are on stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn pop_keeps_the_job_when_it_cannot_print_it() {
    let env = Env::new();
    let id = env.json(&["publish", "task", "keep me"])["ids"][0]
        .as_u64()
        .unwrap();
    let out = env.command(&["pop"]).stdout(dev_full()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stdout"), "{stderr}");
    assert_eq!(env.json(&["stats-job", &id.to_string()])["state"], "ready");
}

#[test]
fn stats_and_tubes_spell_their_keys_alike() {
    let env = Env::new();
    env.ok(&["publish", "task", "--count", "2"]);
    let stats = env.json(&["stats"]);
    let tube = env.tube("default");
    for key in ["current_jobs_ready", "current_jobs_buried", "total_jobs"] {
        assert_eq!(
            stats[key],
            2 * u64::from(key != "current_jobs_buried"),
            "{key}: {stats}"
        );
        assert_eq!(stats[key], tube[key], "{key}: {stats} vs {tube}");
    }
    let map = stats.as_object().unwrap();
    assert!(map.keys().all(|k| !k.contains('-')), "snake_case keys: {stats}");
    // Human output uses the same names.
    assert!(env.ok(&["stats"]).contains("current_jobs_ready"));
}

#[test]
fn publish_refuses_what_pulpo_would_not_run() {
    let env = Env::new();
    for request_type in ["", " ", "send email", "tab\there", "esc\u{1b}[31m", "nl\n"] {
        let err = env.fails(&["publish", request_type, "p"], 2);
        assert!(err.contains("request type"), "{request_type:?}: {err}");
    }
    let err = env.fails(&["publish", "x", "--header", "attempts=3"], 2);
    assert!(
        err.contains("attempts") && !err.contains("own flag"),
        "no flag for attempts exists: {err}"
    );
    let err = env.fails(&["publish", "x", "--header", "request_type=y"], 2);
    assert!(err.contains("argument"), "{err}");
    let err = env.fails(&["publish", "x", "--expiration", "2001-02-03T04:05:06Z"], 2);
    assert!(
        err.contains("--expiration") && err.contains("not in the future"),
        "{err}"
    );
    let err = env.fails(&["publish", "x", "--expires-in", "0"], 2);
    assert!(err.contains("--expires-in"), "{err}");
    let err = env.fails(&["publish", "x", "--delay", "1h", "--expires-in", "10m"], 2);
    assert!(err.contains("--delay"), "expires before it is ready: {err}");
    assert_eq!(env.total_jobs(), 0, "nothing was stored");
}
