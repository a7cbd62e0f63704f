//! The examples end to end. examples/custom_handler.rs, with the config it
//! ships (examples/custom_handler.toml), publishes `word_count` jobs and
//! runs them on the file queue; its own kind counts, writes, publishes the
//! follow-up, buries a non-string payload and retries a failed write. The
//! README's first handler (examples/minimal_handler.rs) runs a job; the
//! producers in Rust (examples/producer.rs) and Python (examples/producer.py)
//! store messages that pulpo reads. The README shows each of them whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The example's config, as shipped.
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/custom_handler.toml");

/// The binary of the example `name`, built once per test run. `cargo test`
/// builds the examples only when no target is selected, so this asks cargo
/// for it (a no-op when it is fresh) in the target directory this test runs
/// from.
fn example(name: &'static str) -> &'static Path {
    static BINARIES: Mutex<BTreeMap<&str, &'static Path>> = Mutex::new(BTreeMap::new());
    let mut binaries = BINARIES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    binaries.entry(name).or_insert_with(|| {
        // This test is <target dir>/<profile>/deps/example-<hash>.
        let exe = std::env::current_exe().expect("the test's own path");
        let target_dir = exe
            .ancestors()
            .nth(3)
            .expect("the test runs from <target>/<profile>/deps");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "--example", name, "--message-format=json"])
            .arg("--target-dir")
            .arg(target_dir);
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let out = cargo.output().expect("run cargo build --example");
        assert!(
            out.status.success(),
            "cargo build --example {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name)
            .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the example's executable");
        Box::leak(path.into_boxed_path())
    })
}

/// The custom_handler example's binary.
fn example_binary() -> &'static Path {
    example("custom_handler")
}

/// Runs the example with `args` in `dir`, with quick idle settings (a run
/// ends a second after its last job) and no other PULPO_ variables from the
/// caller's environment.
fn example_in(dir: &Path, args: &[&str]) -> Output {
    program_in(example_binary(), dir, args)
}

/// Runs `program` as [`example_in`] runs the custom_handler example.
fn program_in(program: &Path, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("PULPO_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PULPO_SLEEP_DURATION", "0.2")
        .env("PULPO_SHUTDOWN_AFTER_NUMBER_OF_EMPTY_ITERATIONS", "5")
        .output()
        .expect("run the example binary")
}

/// Like [`example_in`], expecting exit 0; returns stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = example_in(dir, args);
    pulpo_testkit::output::stdout_of_success(&format!("custom_handler {args:?}"), out)
}

/// `run --json` within a time guard; returns the summary document.
fn run_json(dir: &Path, args: &[&str]) -> Value {
    let started = Instant::now();
    let mut all = args.to_vec();
    all.extend(["run", "--json"]);
    let summary = ok(dir, &all);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run took too long"
    );
    serde_json::from_str(&summary).unwrap_or_else(|err| panic!("not one JSON document ({err}): {summary}"))
}

#[test]
fn word_count_counts_writes_and_follows_up() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let queue = queue.to_str().unwrap();
    // Relative paths in a config file are relative to its directory: a copy
    // keeps the outputs in the test's directory, out of the repository's.
    let config = dir.path().join("conf/custom_handler.toml");
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::copy(CONFIG, &config).unwrap();
    let config = config.to_str().unwrap();
    let with = |args: &[&'static str]| {
        let mut all = vec!["--config", config, "--path", queue];
        all.extend_from_slice(args);
        all
    };
    let first: u64 = ok(dir.path(), &with(&["publish", "word_count", "a b c"]))
        .trim()
        .parse()
        .unwrap();
    let second: u64 = ok(dir.path(), &with(&["publish", "word_count", "  one\ttwo\n "]))
        .trim()
        .parse()
        .unwrap();
    let number = ok(
        dir.path(),
        &with(&["publish", "word_count", "--body-json", r#"{"payload": 42}"#]),
    );
    let number: u64 = number.trim().parse().unwrap();

    let summary = run_json(dir.path(), &with(&[]));
    assert_eq!(summary["stop"], "idle", "{summary}");
    let counted = &summary["counters"]["word_count"];
    assert_eq!(counted["reserved"], 3, "{summary}");
    assert_eq!(counted["succeeded"], 2, "{summary}");
    assert_eq!(counted["buried"], 1, "the number payload is fatal: {summary}");
    let followed = &summary["counters"]["word_counted"];
    assert_eq!(followed["succeeded"], 2, "both follow-ups ran: {summary}");
    assert_eq!(summary["total"]["reserved"], 5, "{summary}");

    // Relative paths in the config resolve against the config file's directory.
    let output = dir.path().join("conf/word-count-output");
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    };
    assert_eq!(read(output.join(format!("{first}.txt"))), "3\n");
    assert_eq!(read(output.join(format!("{second}.txt"))), "2\n");
    assert!(!output.join(format!("{number}.txt")).exists());
    let mut notes: Vec<String> = std::fs::read_dir(output.join("counted"))
        .unwrap()
        .map(|entry| read(entry.unwrap().path()))
        .collect();
    notes.sort();
    assert_eq!(
        notes,
        [format!("job {first}: 3 words"), format!("job {second}: 2 words")]
    );

    // Only the buried job is left, with the handler's reason.
    let stats: Value = serde_json::from_str(&ok(dir.path(), &with(&["stats", "--json"]))).unwrap();
    assert_eq!(
        (
            &stats["current_jobs_ready"],
            &stats["current_jobs_delayed"],
            &stats["current_jobs_buried"]
        ),
        (&Value::from(0), &Value::from(0), &Value::from(1)),
        "{stats}"
    );
    let buried: Value =
        serde_json::from_str(&ok(dir.path(), &with(&["peek", "--buried", "--json"]))).unwrap();
    assert_eq!(buried["id"], number);
    let reason = buried["stats"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("string payload"), "{buried}");
}

#[test]
fn a_failed_write_is_retried_after_io_retry_delay_then_buried() {
    let dir = tempfile::tempdir().unwrap();
    // The output directory's place is taken by a file: every write fails.
    std::fs::write(dir.path().join("blocked"), "not a directory").unwrap();
    std::fs::write(
        dir.path().join("pulpo.toml"),
        "[handlers.word_count]\nkind = \"word_count\"\noutput_directory = \"blocked/counts\"\n\
         io_retry_delay = \"300ms\"\nretry = { max_attempts = 2, backoff = \"fixed\", delay = \"1h\" }\n",
    )
    .unwrap();
    let id: u64 = ok(dir.path(), &["publish", "word_count", "x y"])
        .trim()
        .parse()
        .unwrap();

    let summary = run_json(dir.path(), &[]);
    let counted = &summary["counters"]["word_count"];
    // The handler's own delay (300ms), not the policy's hour, brought it back.
    assert_eq!(
        (&counted["reserved"], &counted["released"], &counted["buried"]),
        (&Value::from(2), &Value::from(1), &Value::from(1)),
        "{summary}"
    );
    let job: Value =
        serde_json::from_str(&ok(dir.path(), &["stats-job", &id.to_string(), "--json"])).unwrap();
    assert_eq!(job["state"], "buried", "{job}");
}

#[test]
fn bad_word_count_options_are_refused_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |table: &str, key: &str| {
        std::fs::write(
            dir.path().join("pulpo.toml"),
            format!("[handlers.count]\nkind = \"word_count\"\n{table}"),
        )
        .unwrap();
        let out = example_in(dir.path(), &["run"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{table}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(&format!("handlers.count.{key}")),
            "{table}: {stderr}"
        );
    };
    refused("", "output_directory");
    refused("output_directory = 5\n", "output_directory");
    refused("output_directory = \"out\"\nnotify = []\n", "notify");
    refused(
        "output_directory = \"out\"\nio_retry_delay = \"soon\"\n",
        "io_retry_delay",
    );
    refused("output_directory = \"out\"\ncolour = \"red\"\n", "colour");
    assert!(
        !dir.path().join("pulpo-data").exists(),
        "the queue is not touched"
    );
}

/// The text of a file of this repository.
fn repository_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|err| panic!("read {path}: {err}"))
}

/// Asserts that the README shows the file at `path` whole, in a fenced
/// block of `language`, so what a reader copies is what the tests run.
fn shown_whole_in_the_readme(path: &str, language: &str) {
    let readme = repository_file("README.md");
    let block = format!("```{language}\n{}```\n", repository_file(path));
    assert!(
        readme.contains(&block),
        "README.md must show {path} whole, as a ```{language} block"
    );
}

/// `pulpo` with `args` in `dir` (the binary, not an example).
fn pulpo_json(dir: &Path, args: &[&str]) -> Value {
    let out = program_in(Path::new(env!("CARGO_BIN_EXE_pulpo")), dir, args);
    let text = pulpo_testkit::output::stdout_of_success(&format!("pulpo {args:?}"), out);
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

#[test]
fn the_minimal_handler_runs_a_job() {
    shown_whole_in_the_readme("examples/minimal_handler.rs", "rust");
    let dir = tempfile::tempdir().unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/minimal_handler.toml");
    let queue = dir.path().join("queue");
    let with = |args: &[&'static str]| {
        let mut all = vec!["--config", config, "--path", queue.to_str().unwrap()];
        all.extend_from_slice(args);
        all
    };
    let greet = example("minimal_handler");
    let published = program_in(greet, dir.path(), &with(&["publish", "hello", "world"]));
    let id = pulpo_testkit::output::stdout_of_success("publish", published);
    let out = program_in(greet, dir.path(), &with(&["run"]));
    let stdout = pulpo_testkit::output::stdout_of_success("run", out);
    assert!(
        stdout.contains(&format!("Hello world! (job {})", id.trim())),
        "{stdout}"
    );
    // A typo in its options is refused by key before anything runs.
    std::fs::write(
        dir.path().join("pulpo.toml"),
        "[handlers.hello]\nkind = \"greet\"\ngreting = \"Hello\"\n",
    )
    .unwrap();
    let refused = program_in(greet, dir.path(), &["run"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown key \"handlers.hello.greting\"; did you mean \"handlers.hello.greeting\"?"),
        "{stderr}"
    );
}

#[test]
fn the_rust_producer_publishes_what_pulpo_reads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pulpo.toml"), "[defaults]\npriority = 12\n").unwrap();
    let out = program_in(example("producer"), dir.path(), &["send_email", "hi there"]);
    let id = pulpo_testkit::output::stdout_of_success("producer", out);
    let job = pulpo_json(dir.path(), &["peek", id.trim(), "--json"]);
    assert_eq!(job["state"], "ready", "{job}");
    assert_eq!(job["stats"]["pri"], 12, "[defaults] apply: {job}");
    let message = &job["message"];
    assert_eq!(message["header"]["request_type"], "send_email", "{job}");
    assert_eq!(message["header"]["source"], "examples/producer.rs", "{job}");
    assert_eq!(message["body"]["payload"], "hi there", "{job}");
}

#[test]
fn the_python_producer_puts_a_message_pulpo_reads() {
    shown_whole_in_the_readme("examples/producer.py", "python");
    if Command::new("python3").arg("--version").output().is_err() {
        pulpo_testkit::skip::skip("the_python_producer_puts_a_message_pulpo_reads", "no python3");
        return;
    }
    let server = pulpo_testkit::Beanstalkd::start();
    let port = server.address().rsplit(':').next().unwrap().to_owned();
    let script = repository_file("examples/producer.py").replace("11300", &port);
    assert!(
        script.contains(&format!("(\"127.0.0.1\", {port})")),
        "the script names 11300"
    );
    let out = Command::new("python3").arg("-c").arg(&script).output().unwrap();
    let printed = pulpo_testkit::output::stdout_of_success("python3 examples/producer.py", out);
    let id = printed
        .trim()
        .strip_prefix("INSERTED ")
        .unwrap_or_else(|| panic!("the script printed {printed:?}"));
    let dir = tempfile::tempdir().unwrap();
    let address = server.address();
    let job = pulpo_json(
        dir.path(),
        &[
            "--queue",
            "beanstalkd",
            "--address",
            &address,
            "peek",
            id,
            "--json",
        ],
    );
    assert_eq!(job["stats"]["pri"], 100, "{job}");
    assert_eq!(job["stats"]["ttr"], 60, "{job}");
    assert_eq!(job["message"]["header"]["request_type"], "send_email", "{job}");
    assert_eq!(job["message"]["body"]["payload"], "hello from Python", "{job}");
}
