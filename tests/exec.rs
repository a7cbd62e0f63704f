//! The `exec` handler kind with real child processes: exit codes to
//! outcomes, stdin, environment, working directory, bounded output, killing
//! the whole process group on cancel, and option errors naming their key.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulpo::config::{HandlerSettings, RetrySettings};
use pulpo::handlers::Registry;
use pulpo::handlers::{BoxFuture, Context, Handler, JobServices, Outcome};
use pulpo::message::Message;
use serde_json::{Value, json};

struct NoServices;

impl JobServices for NoServices {
    fn touch(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn publish(&self, _message: Message) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async { Err("no queue here".to_owned()) })
    }
}

fn settings(options: Value) -> HandlerSettings {
    let mut settings = HandlerSettings::new("job", "exec", RetrySettings::default());
    let Value::Object(options) = options else { panic!() };
    settings.options = options;
    settings
}

fn build(options: Value) -> Arc<dyn Handler> {
    Registry::with_builtins().build(&settings(options)).unwrap()
}

fn build_error(options: Value) -> String {
    match Registry::with_builtins().build(&settings(options.clone())) {
        Ok(_) => panic!("expected an error for {options}"),
        Err(err) => err.to_string(),
    }
}

fn context() -> Context {
    Context::new(42, 3, "images", "job", Arc::new(NoServices))
}

async fn run(handler: &Arc<dyn Handler>, message: Message) -> Outcome {
    tokio::time::timeout(Duration::from_secs(20), handler.handle(message, context()))
        .await
        .expect("the handler finishes")
}

fn sh(script: &str) -> Value {
    json!({"command": ["sh", "-c", script]})
}

#[tokio::test]
async fn exit_codes_map_to_outcomes() {
    let ok = build(sh("exit 0"));
    assert_eq!(run(&ok, Message::new("job")).await, Outcome::success());

    let again = build(sh("echo 'db busy' >&2; exit 75"));
    match run(&again, Message::new("job")).await {
        Outcome::Transient { reason, delay: None } => {
            assert!(
                reason.contains("code 75") && reason.contains("db busy"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }

    let broken = build(sh("echo 'bad input' >&2; exit 3"));
    match run(&broken, Message::new("job")).await {
        Outcome::Fatal { reason } => assert!(reason.contains("code 3: bad input"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // Interrupted: buried while the runner runs, handed back once it stops.
    let killed = build(sh("kill -9 $$"));
    match run(&killed, Message::new("job")).await {
        Outcome::Interrupted { reason } => assert!(reason.contains("signal 9 (SIGKILL)"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn stdin_environment_and_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let handler = build(json!({
        "command": ["sh", "-c", "cat > stdin.txt; env | grep -E '^(PULPO_|EXTRA)' | grep -v -E '^PULPO_JOB_(RUN|EVENTS)=' | sort > env.txt; pwd > pwd.txt"],
        "working_directory": out.display().to_string(),
        "env": {"EXTRA": "yes please"},
    }));
    assert_eq!(
        run(&handler, Message::new("job").with_payload("raw text\nline 2")).await,
        Outcome::success()
    );
    assert_eq!(
        std::fs::read_to_string(out.join("stdin.txt")).unwrap(),
        "raw text\nline 2"
    );
    let env = std::fs::read_to_string(out.join("env.txt")).unwrap();
    assert_eq!(
        env,
        "EXTRA=yes please\nPULPO_JOB_ATTEMPT=3\nPULPO_JOB_ID=42\nPULPO_JOB_REQUEST_TYPE=job\nPULPO_JOB_TUBE=images\n"
    );
    let pwd = std::fs::read_to_string(out.join("pwd.txt")).unwrap();
    assert_eq!(
        Path::new(pwd.trim()).canonicalize().unwrap(),
        out.canonicalize().unwrap()
    );

    // A payload that is not a string: the whole message as JSON.
    let message = Message::new("job").with_payload(json!({"width": 640}));
    assert_eq!(run(&handler, message.clone()).await, Outcome::success());
    let stdin = std::fs::read(out.join("stdin.txt")).unwrap();
    assert_eq!(Message::from_json(&stdin).unwrap(), message);
}

#[tokio::test]
async fn flooding_output_is_bounded_and_unread_stdin_is_fine() {
    // 50 MB on stdout and stderr; a big payload the child never reads.
    let handler = build(json!({
        "command": ["sh", "-c", "head -c 50000000 /dev/zero; head -c 50000000 /dev/zero >&2; exit 4"],
        "output_limit": 1000,
    }));
    let started = Instant::now();
    let outcome = run(&handler, Message::new("job").with_payload("x".repeat(1 << 20))).await;
    assert!(started.elapsed() < Duration::from_secs(15));
    match outcome {
        // The reason quotes at most the kept stderr's end.
        Outcome::Fatal { reason } => assert!(
            reason.contains("code 4") && reason.len() < 700,
            "{}",
            reason.len()
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_child_that_does_not_read_its_input_still_succeeds() {
    // 8 MiB: far more than a pipe holds, to a child that never reads it,
    // closes stdin at once, or reads a little and exits.
    let payload = "p".repeat(8 << 20);
    for options in [
        json!({"command": ["true"]}),
        sh("exec 0<&-; sleep 0.2; exit 0"),
        sh("head -c 10 > /dev/null; exit 0"),
    ] {
        let handler = build(options.clone());
        let started = Instant::now();
        let outcome = run(&handler, Message::new("job").with_payload(payload.clone())).await;
        assert_eq!(outcome, Outcome::success(), "{options}");
        assert!(started.elapsed() < Duration::from_secs(10), "{options}");
    }
}

#[tokio::test]
async fn the_reason_quotes_the_end_of_stderr_past_the_output_limit() {
    let handler = build(json!({
        "command": ["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' w >&2; echo 'final: disk full' >&2; exit 2"],
        "output_limit": 100,
    }));
    match run(&handler, Message::new("job")).await {
        Outcome::Fatal { reason } => {
            assert!(
                reason.contains("exited with code 2: ...www") && reason.ends_with("wwwfinal: disk full"),
                "{reason}"
            );
            assert!(reason.len() < 700, "{}", reason.len());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn what_a_finished_child_left_running_is_killed() {
    // The background sleep keeps stdout and stderr open; the job still ends
    // when the child exits, and the sleep does not outlive it.
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let handler = build(sh(&format!(
        "sleep 30 & echo $! > {}; exit 0",
        pid_file.display()
    )));
    succeeds_and_leaves_nothing(&handler, &pid_file).await;
}

/// Runs `handler` to success within 10 s, then waits until the process
/// whose pid its script wrote to `pid_file` is gone.
async fn succeeds_and_leaves_nothing(handler: &Arc<dyn Handler>, pid_file: &Path) {
    let started = Instant::now();
    assert_eq!(run(handler, Message::new("job")).await, Outcome::success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let pid: u32 = std::fs::read_to_string(pid_file).unwrap().trim().parse().unwrap();
    pulpo_testkit::procs::wait_until_gone(&[pid], Duration::from_secs(5));
}

#[tokio::test]
async fn a_cancelled_job_kills_the_child_and_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = format!(
        "sleep 30 & echo $! > {0}.tmp; echo $$ >> {0}.tmp; mv {0}.tmp {0}; wait",
        pids.display()
    );
    let handler = build(sh(&script));
    let cancelled = tokio::time::timeout(
        Duration::from_millis(500),
        handler.handle(Message::new("job"), context()),
    )
    .await;
    assert!(cancelled.is_err(), "still running when cancelled");
    let text = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<u32> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(pids.len(), 2);
    pulpo_testkit::procs::wait_until_gone(&pids, Duration::from_secs(5));
}

#[tokio::test]
async fn a_program_missing_or_not_executable_at_run_time_is_transient() {
    // Mid-deploy the program may be gone, or there but not executable yet:
    // the job is tried again later instead of being buried.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("gone.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let handler = build(json!({"command": [script.display().to_string()]}));
    assert_eq!(run(&handler, Message::new("job")).await, Outcome::success());
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let not_executable = run(&handler, Message::new("job")).await;
    std::fs::remove_file(&script).unwrap();
    let missing = run(&handler, Message::new("job")).await;
    for (outcome, os_error) in [(not_executable, "Permission denied"), (missing, "No such file")] {
        match outcome {
            // The reason names the program and the OS error.
            Outcome::Transient { reason, delay: None } => assert!(
                reason.contains("cannot start")
                    && reason.contains(&script.display().to_string())
                    && reason.contains(os_error),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn control_characters_of_stderr_are_escaped_in_the_reason() {
    let handler = build(sh("printf 'bad \\033[31mred\\000nul\\a\\n' >&2; exit 3"));
    match run(&handler, Message::new("job")).await {
        Outcome::Fatal { reason } => {
            assert!(
                !reason.contains(['\x1b', '\0', '\x07']),
                "raw control characters in {reason:?}"
            );
            assert!(reason.contains(r"bad \x1b[31mred\0nul\x07"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_grandchild_that_calls_setsid_does_not_outlive_the_job() {
    // The double fork leaves a process in a session of its own, holding
    // stdout open, after the handler exits 0: the job still ends when the
    // handler does, and the escaped process is killed.
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let handler = build(sh(&format!(
        "( setsid sh -c 'echo $$ > {0}.tmp; mv {0}.tmp {0}; exec sleep 30' & ); \
         while [ ! -e {0} ]; do sleep 0.05; done; exit 0",
        pid_file.display()
    )));
    succeeds_and_leaves_nothing(&handler, &pid_file).await;
}

#[test]
fn bad_options_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("data.txt");
    std::fs::write(&not_executable, "just data").unwrap();
    std::fs::set_permissions(
        &not_executable,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let not_executable = not_executable.display().to_string();
    let cases = [
        (json!({}), "handlers.job.command", "needs command"),
        (json!({"command": []}), "handlers.job.command", "non-empty array"),
        (
            json!({"command": ["ls", 3]}),
            "handlers.job.command",
            "array of strings",
        ),
        (
            json!({"command": "ls -l"}),
            "handlers.job.command",
            "array of strings",
        ),
        (
            json!({"command": ["no-such-program-pulpo"]}),
            "handlers.job.command",
            "not in PATH",
        ),
        (
            json!({"command": ["./no/such/file"]}),
            "handlers.job.command",
            "does not exist",
        ),
        (
            json!({"command": [not_executable]}),
            "handlers.job.command",
            "not an executable",
        ),
        (
            json!({"command": ["ls"], "working_directory": "/no/such/dir"}),
            "handlers.job.working_directory",
            "not an existing directory",
        ),
        (
            json!({"command": ["ls"], "output_limit": 0}),
            "handlers.job.output_limit",
            "from 1",
        ),
        (
            json!({"command": ["ls"], "env": {"A": 1}}),
            "handlers.job.env",
            "expected a string",
        ),
        (
            json!({"command": ["ls"], "shell": true}),
            "handlers.job.shell",
            "no option",
        ),
    ];
    for (options, key, problem) in cases {
        let error = build_error(options.clone());
        assert!(
            error.contains(key) && error.contains(problem),
            "{options}: {error}"
        );
    }
}

/// A relative program is resolved against the handler's
/// `working_directory`, where it runs, not against pulpo's (issue 13, item 3).
#[tokio::test]
async fn a_relative_program_is_found_in_the_working_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let tool = dir.path().join("bin/tool");
    std::fs::write(&tool, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let handler = build(json!({
        "command": ["./bin/tool"],
        "working_directory": dir.path().to_str().unwrap(),
    }));
    assert_eq!(run(&handler, Message::new("job")).await, Outcome::success());
    let err = build_error(json!({
        "command": ["./bin/missing"],
        "working_directory": dir.path().to_str().unwrap(),
    }));
    assert!(
        err.contains(&dir.path().join("bin/missing").display().to_string()),
        "{err}"
    );
}
