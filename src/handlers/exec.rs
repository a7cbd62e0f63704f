//! The `exec` handler kind: runs a command for each job, without a shell.
//!
//! ```toml
//! [handlers.resize_image]
//! kind = "exec"
//! command = ["./bin/resize", "--fast"]   # argv; never through a shell; ./ is working_directory's
//! working_directory = "/srv/app"         # optional; relative: to the config file's directory
//! env = { QUALITY = "80" }               # optional, added to pulpo's environment
//! output_limit = 65536                   # optional: bytes of stdout and of stderr kept
//! result = "stdout"                      # optional: stdout is the job's result (JSON if it parses)
//! timeout = "5m"                         # the runner's: the child is killed when it passes
//! ```
//!
//! The payload goes to stdin (a string payload as is, anything else as the
//! whole message JSON); `PULPO_JOB_ID`, `PULPO_JOB_REQUEST_TYPE`,
//! `PULPO_JOB_ATTEMPT` and `PULPO_JOB_TUBE` are in the environment (under
//! `PULPO_JOB_`, which the config loader never reads, so the child can run
//! `pulpo` itself), with `PULPO_JOB_RUN`, which marks this run's processes,
//! and `PULPO_JOB_EVENTS`, the path of an empty file (mode 0600) where the
//! child may append events for the job's record, one line each (the first
//! [`crate::history::MAX_EVENTS`] lines, each cut to
//! [`crate::history::MAX_TEXT`] bytes, are kept).
//! A program that cannot be started because it is missing or not
//! executable (mid-deploy) is a transient failure. Exit 0 is
//! success, 75 (`EX_TEMPFAIL`) a transient failure, anything else a fatal
//! one, with the exit status and the end of stderr as the reason. A child
//! killed by a signal is [`Outcome::Interrupted`]: fatal too, unless the
//! runner is stopping, when the signal is part of the stop (systemd's
//! default `KillMode` signals every process of the service) and the job is
//! handed back. stdout and stderr are read to the end but only their first
//! `output_limit` bytes are kept (and logged), so a flooding child cannot
//! grow pulpo's memory or stall on a full pipe.
//!
//! The child runs in a process group of its own. When the runner cancels the
//! handler (its timeout, or shutdown), the whole group is killed, so
//! nothing it started outlives the job; when the child exits on its own,
//! whatever it left running is killed too, and the job ends then: its
//! output is read for at most [`OUTPUT_GRACE`] more. A descendant that left
//! the group (`setsid`, a double fork) is found by the `PULPO_JOB_RUN` in
//! its environment and killed as well. If the runner process dies, the
//! kernel kills the child (`PR_SET_PDEATHSIG`).
//!
//! Why the environment and not `PR_SET_CHILD_SUBREAPER`: a subreaper
//! runner inherits every orphan of every job and must reap them all, also
//! those that exit on their own long after their job (else they pile up as
//! zombies), without stealing the exit status of children that other code
//! in the same process waits for. The mark needs none of that; only a
//! descendant that both leaves the group and clears its environment
//! escapes it.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, HandlerSettings};
use crate::handlers::{BoxFuture, Context, Handler, Outcome, printable};
use crate::message::Message;

/// The exit code of a transient failure (`EX_TEMPFAIL` of sysexits.h).
pub const EXIT_TRANSIENT: i32 = 75;

/// Bytes of stdout and of stderr kept by default.
pub const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024;

/// The largest `output_limit` accepted.
pub const MAX_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// How much of stderr's end a failure's reason quotes.
const REASON_STDERR_BYTES: usize = 500;

/// How long the output of a child that has exited is still read: a process
/// it left behind may hold its stdout open, and the job ends regardless.
pub const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// The variable that marks every process of one run of an exec handler.
const RUN_VARIABLE: &str = "PULPO_JOB_RUN";

/// Numbers the runs of exec handlers in this process, for [`RUN_VARIABLE`].
static RUNS: AtomicU64 = AtomicU64::new(0);

/// A checked `[handlers.*]` table of kind `exec`.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// The program, resolved to an absolute path when the handler is built
    /// (a relative one against `working_directory` when set).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where it runs; pulpo's own working directory if unset.
    pub working_directory: Option<PathBuf>,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Bytes of stdout and of stderr kept.
    pub output_limit: usize,
    /// `result = "stdout"`: the child's stdout (kept part) is the job's
    /// result on success, as JSON when it parses, else as a string.
    pub result_stdout: bool,
}

impl ExecSpec {
    /// Reads and checks the table: the keys named above and nothing else,
    /// a program that exists and is executable, a working directory that
    /// exists.
    pub fn from_settings(settings: &HandlerSettings) -> Result<ExecSpec, ConfigError> {
        let mut command = None;
        let mut working_directory = None;
        let mut env = Vec::new();
        let mut output_limit = DEFAULT_OUTPUT_LIMIT;
        let mut result_stdout = false;
        for (key, value) in &settings.options {
            let error = |problem: String| settings.option_error(key, problem);
            match key.as_str() {
                "command" => command = Some(argv(value).map_err(error)?),
                "working_directory" => match value {
                    Value::String(dir) if !dir.is_empty() => {
                        let dir = absolute(&settings.option_path(key, Path::new(dir)));
                        if !dir.is_dir() {
                            return Err(error(format!(
                                "{} is not an existing directory; create it or fix the path",
                                dir.display()
                            )));
                        }
                        working_directory = Some(dir);
                    }
                    other => return Err(error(format!("expected a directory path, found {other}"))),
                },
                "env" => {
                    let Value::Object(vars) = value else {
                        return Err(error(format!(
                            "expected a table of strings like {{ NAME = \"value\" }}, found {value}"
                        )));
                    };
                    for (name, value) in vars {
                        let Value::String(value) = value else {
                            return Err(error(format!(
                                "variable {name}: expected a string, found {value}"
                            )));
                        };
                        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
                            return Err(error(format!(
                                "variable {name:?}: not a valid environment variable"
                            )));
                        }
                        env.push((name.clone(), value.clone()));
                    }
                }
                "output_limit" => {
                    output_limit = value
                        .as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|n| (1..=MAX_OUTPUT_LIMIT).contains(n))
                        .ok_or_else(|| {
                            error(format!(
                                "expected a number of bytes from 1 to {MAX_OUTPUT_LIMIT}, found {value}"
                            ))
                        })?;
                }
                "result" => match value.as_str() {
                    Some("stdout") => result_stdout = true,
                    Some("none") => result_stdout = false,
                    _ => {
                        return Err(error(format!(
                            "expected \"stdout\" (stdout is the job's result) or \"none\", found {value}"
                        )));
                    }
                },
                other => {
                    return Err(error(format!(
                        "the exec handler has no option {other:?} (it takes command, working_directory, env, output_limit, result)"
                    )));
                }
            }
        }
        let Some(mut argv) = command else {
            return Err(settings.option_error(
                "command",
                "the exec handler needs command = [\"program\", \"arg\", ...]",
            ));
        };
        let name = argv.remove(0);
        let program = resolve_program(&name, working_directory.as_deref())
            .map_err(|problem| settings.option_error("command", problem))?;
        Ok(ExecSpec {
            program,
            args: argv,
            working_directory,
            env,
            output_limit,
            result_stdout,
        })
    }
}

/// `command`: a non-empty array of strings.
fn argv(value: &Value) -> Result<Vec<String>, String> {
    let expected =
        || format!("expected a non-empty array of strings like [\"program\", \"arg\"], found {value}");
    let Value::Array(items) = value else {
        return Err(expected());
    };
    let argv: Vec<String> = items
        .iter()
        .map(|item| item.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or_else(expected)?;
    if argv.is_empty() || argv[0].is_empty() {
        return Err(expected());
    }
    if argv.iter().any(|arg| arg.contains('\0')) {
        return Err("arguments cannot contain NUL bytes".to_owned());
    }
    Ok(argv)
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|dir| dir.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A program with a `/` is a path, relative to where it runs: its
/// `working_directory` when set, else pulpo's working directory; a bare name
/// is looked up in `PATH`, as a shell would.
fn resolve_program(name: &str, working_directory: Option<&Path>) -> Result<PathBuf, String> {
    if name.contains('/') {
        let path = match working_directory {
            // `./bin/x` in `/srv/app` is `/srv/app/bin/x`.
            Some(dir) => dir.join(
                Path::new(name)
                    .components()
                    .filter(|part| *part != std::path::Component::CurDir)
                    .collect::<PathBuf>(),
            ),
            None => absolute(Path::new(name)),
        };
        return if is_executable(&path) {
            Ok(path)
        } else if path.exists() {
            Err(format!(
                "{} is not an executable file; chmod +x it",
                path.display()
            ))
        } else {
            Err(format!("{} does not exist; fix the path", path.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("program {name:?} is not in PATH; install it or give its full path"))
}

/// The `exec` kind's factory, for [`crate::handlers::registry::Registry`].
pub fn factory(settings: &HandlerSettings) -> Result<Arc<dyn Handler>, ConfigError> {
    Ok(Arc::new(Exec {
        spec: Arc::new(ExecSpec::from_settings(settings)?),
    }))
}

/// The `exec` handler.
#[derive(Debug, Clone)]
pub struct Exec {
    spec: Arc<ExecSpec>,
}

impl Exec {
    /// A handler running `spec`.
    pub fn new(spec: ExecSpec) -> Exec {
        Exec { spec: Arc::new(spec) }
    }
}

impl Handler for Exec {
    fn handle(&self, message: Message, context: Context) -> BoxFuture<'static, Outcome> {
        Box::pin(run(self.spec.clone(), message, context))
    }
}

/// Kills a run's processes when dropped (a cancelled job) or asked to:
/// its process group, then every process marked with the run's
/// `PULPO_JOB_RUN` (what left the group).
struct GroupKill {
    pgid: Option<i32>,
    /// `PULPO_JOB_RUN=<run>`, as it appears in /proc/<pid>/environ.
    mark: Vec<u8>,
}

impl GroupKill {
    fn kill_group(&mut self) -> bool {
        match self.pgid.take() {
            Some(pgid) => {
                // SAFETY: kill(2) with a negative pid signals the group; no memory is involved.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
                true
            }
            None => false,
        }
    }

    /// Kills the group and what left it, waiting for the search to end.
    async fn kill_now(&mut self) {
        if self.kill_group() {
            let mark = self.mark.clone();
            let _ = tokio::task::spawn_blocking(move || kill_marked(&mark)).await;
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        if self.kill_group() {
            let mark = std::mem::take(&mut self.mark);
            // Dropped inside a cancelled job: search on a thread of its own.
            let _ = std::thread::Builder::new()
                .name("pulpo-exec-kill".to_owned())
                .spawn(move || kill_marked(&mark));
        }
    }
}

/// Kills (SIGKILL) every process whose environment holds `mark`, in rounds
/// until none is left (one may fork while it is being found). Returns how
/// many it killed.
fn kill_marked(mark: &[u8]) -> usize {
    let own = std::process::id();
    let mut killed = 0;
    for _ in 0..20 {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return killed;
        };
        let mut found = 0;
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if pid == own {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ.split(|&byte| byte == 0).any(|var| var == mark) {
                // SAFETY: kill(2) on a pid; no memory is involved.
                if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } == 0 {
                    found += 1;
                }
            }
        }
        if found == 0 {
            break;
        }
        killed += found;
        std::thread::sleep(Duration::from_millis(10));
    }
    killed
}

/// What a stream gave: its first `limit` bytes, how many more there were,
/// and its last [`REASON_STDERR_BYTES`] bytes (the end of stderr is what a
/// failure's reason quotes, even when the stream outgrew `limit`).
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
    tail: Vec<u8>,
}

impl Captured {
    fn empty() -> Captured {
        Captured {
            kept: Vec::new(),
            dropped: 0,
            tail: Vec::new(),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.kept).trim().to_owned()
    }

    fn note(&self) -> String {
        match self.dropped {
            0 => String::new(),
            n => format!(" ({n} more bytes not kept)"),
        }
    }

    /// The stream's end as text: lossy UTF-8, trimmed, control characters
    /// escaped ([`printable`]), at most [`REASON_STDERR_BYTES`] long, not
    /// starting inside a character, marked with `...` when earlier bytes
    /// were left out.
    fn tail_text(&self) -> String {
        let cut = self.kept.len() as u64 + self.dropped > self.tail.len() as u64;
        // A cut window may open on a character's continuation bytes (at most 3).
        let skip = match cut {
            true => self
                .tail
                .iter()
                .take(3)
                .take_while(|&&byte| byte & 0b1100_0000 == 0b1000_0000)
                .count(),
            false => 0,
        };
        let text = String::from_utf8_lossy(&self.tail[skip..]);
        // Escaped control characters take more room: keep the end within bounds.
        let text = printable(text.trim());
        let (text, cut) = match text.len().checked_sub(REASON_STDERR_BYTES) {
            Some(excess) if excess > 0 => {
                let start = (excess..text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                (&text[start..], true)
            }
            _ => (&text[..], cut),
        };
        match text {
            "" => String::new(),
            text if cut => format!("...{text}"),
            text => text.to_owned(),
        }
    }
}

/// Reads `stream` to its end, or until `stop`, keeping the first `limit`
/// bytes and the last [`REASON_STDERR_BYTES`]; the rest is read and thrown
/// away, so the child never stalls on a full pipe.
async fn read_bounded(mut stream: impl AsyncRead + Unpin, limit: usize, stop: CancellationToken) -> Captured {
    let mut captured = Captured::empty();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = stream.read(&mut buf) => read,
            _ = stop.cancelled() => break,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = limit.saturating_sub(captured.kept.len()).min(n);
                captured.kept.extend_from_slice(&buf[..room]);
                captured.dropped += (n - room) as u64;
                let chunk = &buf[n.saturating_sub(REASON_STDERR_BYTES)..n];
                captured.tail.extend_from_slice(chunk);
                if captured.tail.len() > 2 * REASON_STDERR_BYTES {
                    let excess = captured.tail.len() - REASON_STDERR_BYTES;
                    captured.tail.drain(..excess);
                }
            }
        }
    }
    let excess = captured.tail.len().saturating_sub(REASON_STDERR_BYTES);
    captured.tail.drain(..excess);
    captured
}

/// What goes to stdin: a string payload as is, else the message JSON.
fn stdin_bytes(message: &Message) -> Vec<u8> {
    match message.payload_str() {
        Some(text) => text.as_bytes().to_vec(),
        None => message.to_json(),
    }
}

async fn run(spec: Arc<ExecSpec>, message: Message, context: Context) -> Outcome {
    let program = spec.program.display().to_string();
    let run = format!("{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed));
    let events = EventsFile::create(&run);
    let mut command = tokio::process::Command::new(&spec.program);
    if let Some(events) = &events {
        command.env(EVENTS_VARIABLE, &events.path);
    }
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env("PULPO_JOB_ID", context.job_id.to_string())
        .env("PULPO_JOB_REQUEST_TYPE", &context.request_type)
        .env("PULPO_JOB_ATTEMPT", context.attempt.to_string())
        .env("PULPO_JOB_TUBE", &context.tube)
        .env(RUN_VARIABLE, &run)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &spec.working_directory {
        command.current_dir(dir);
    }
    // If the runner itself dies (kill -9), the child gets SIGKILL too instead
    // of running on unsupervised while its job goes to another worker. A
    // runner that died between the fork and the prctl sends no signal: the
    // child then finds itself adopted and does not run the program (the
    // chaos test saw such orphans run their jobs a second time).
    let runner = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory of
    // the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if u32::try_from(libc::getppid()).ok() != Some(runner) {
                // The runner is gone; nobody reads this (no allocation after a fork).
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        // Missing or not executable: mid-deploy, most likely; try again later.
        Err(err) if matches!(err.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied) => {
            return Outcome::transient(format!("cannot start {program}: {err}"));
        }
        Err(err) => return Outcome::fatal(format!("cannot start {program}: {err}")),
    };
    // Dropped with this future: a cancelled job leaves nothing running.
    let mut group = GroupKill {
        pgid: child.id().and_then(|pid| i32::try_from(pid).ok()),
        mark: format!("{RUN_VARIABLE}={run}").into_bytes(),
    };
    let input = stdin_bytes(&message);
    let stdin = child.stdin.take();
    let writer = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            // A child that does not read its input is not a failure.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        }
    });
    let limit = spec.output_limit;
    let stop = CancellationToken::new();
    let read = |stream| tokio::spawn(read_bounded(stream, limit, stop.clone()));
    let stdout = child
        .stdout
        .take()
        .map(|s| read(Box::new(s) as Box<dyn AsyncRead + Send + Unpin>));
    let stderr = child
        .stderr
        .take()
        .map(|s| read(Box::new(s) as Box<dyn AsyncRead + Send + Unpin>));
    let status = child.wait().await;
    // The child is done, and so is the job: whatever it left behind goes
    // too, so the pipes close; what still holds them open is read no longer
    // than OUTPUT_GRACE.
    group.kill_now().await;
    writer.abort();
    let grace = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(OUTPUT_GRACE).await;
            stop.cancel();
        })
    };
    let collect = |reader: Option<tokio::task::JoinHandle<Captured>>| async move {
        match reader {
            Some(reader) => reader.await.unwrap_or_else(|_| Captured::empty()),
            None => Captured::empty(),
        }
    };
    let (out, err) = (collect(stdout).await, collect(stderr).await);
    grace.abort();
    // Multi-line output is one field of one log line (escaped in human
    // logs, a string in JSON ones).
    if !out.kept.is_empty() {
        tracing::debug!(
            id = context.job_id,
            stdout = &*printable(&out.text()),
            "{program} wrote to stdout{}",
            out.note()
        );
    }
    if !err.kept.is_empty() {
        tracing::info!(
            id = context.job_id,
            stderr = &*printable(&err.text()),
            "{program} wrote to stderr{}",
            err.note()
        );
    }
    if let Some(events) = events {
        for line in events.read() {
            context.event(line);
        }
    }
    let status = match status {
        Ok(status) => status,
        Err(e) => return Outcome::fatal(format!("waiting for {program} failed: {e}")),
    };
    match outcome(&program, status, &err) {
        Outcome::Success { follow_ups, .. } if spec.result_stdout => {
            let text = out.text();
            let result = serde_json::from_str(&text).unwrap_or(Value::String(text));
            Outcome::Success {
                follow_ups,
                result: Some(result),
            }
        }
        other => other,
    }
}

/// The variable naming the file a child writes its job's events to (under
/// `PULPO_JOB_`, which the config loader never reads).
const EVENTS_VARIABLE: &str = "PULPO_JOB_EVENTS";

/// The most bytes of a child's events file read.
const MAX_EVENTS_BYTES: u64 = (crate::history::MAX_EVENTS * crate::history::MAX_TEXT) as u64;

/// A child's events file: created empty (0600) before it starts, read and
/// removed after it ends.
struct EventsFile {
    path: PathBuf,
}

impl EventsFile {
    /// A new file in the temporary directory; `None` (and no events) when it
    /// cannot be made.
    fn create(run: &str) -> Option<EventsFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = std::env::temp_dir().join(format!("pulpo-events-{run}"));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| tracing::debug!("no events file {}: {err}", path.display()))
            .ok()?;
        Some(EventsFile { path })
    }

    /// Its lines (bounded), removing it.
    fn read(self) -> Vec<String> {
        use std::io::Read;
        let mut bytes = Vec::new();
        if let Ok(file) = std::fs::File::open(&self.path) {
            let _ = file.take(MAX_EVENTS_BYTES).read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .take(crate::history::MAX_EVENTS)
            .map(|line| printable(line).into_owned())
            .collect()
    }
}

impl Drop for EventsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn outcome(program: &str, status: ExitStatus, stderr: &Captured) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let tail = match stderr.tail_text() {
        tail if tail.is_empty() => tail,
        tail => format!(": {tail}"),
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => Outcome::success(),
        (Some(EXIT_TRANSIENT), _) => Outcome::transient(format!(
            "{program} exited with code {EXIT_TRANSIENT} (try again){tail}"
        )),
        (Some(code), _) => Outcome::fatal(format!("{program} exited with code {code}{tail}")),
        (None, Some(signal)) => Outcome::interrupted(format!(
            "{program} was killed by signal {signal}{}{tail}",
            signal_name(signal)
                .map(|name| format!(" ({name})"))
                .unwrap_or_default()
        )),
        (None, None) => Outcome::fatal(format!("{program} ended with {status}{tail}")),
    }
}

/// The usual name of a signal that ends a process, for a reason a person reads.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn capture(input: &[u8], limit: usize) -> Captured {
        read_bounded(input, limit, CancellationToken::new()).await
    }

    #[tokio::test]
    async fn read_bounded_keeps_the_head_counts_the_rest_and_quotes_the_end() {
        let input: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let captured = capture(&input, 1000).await;
        assert_eq!(captured.kept, input[..1000]);
        assert_eq!(captured.dropped, 99_000);
        assert_eq!(captured.tail, input[input.len() - REASON_STDERR_BYTES..]);
        let tail = captured.tail_text();
        assert!(tail.starts_with("...") && tail.ends_with(std::str::from_utf8(&input[99_990..]).unwrap()));

        let short = capture(b"  only this\n", 1000).await;
        assert_eq!((short.kept.len(), short.dropped), (12, 0));
        assert_eq!(short.tail_text(), "only this");
        assert_eq!(capture(b"", 10).await.tail_text(), "");
    }

    #[tokio::test]
    async fn the_quoted_end_does_not_start_inside_a_character() {
        // 'é' is two bytes: the 500-byte window starts on its second byte.
        let mut input = "é".repeat(400).into_bytes();
        input.extend_from_slice(b"!");
        let tail = capture(&input, 10).await.tail_text();
        assert!(!tail.contains('\u{FFFD}'), "{tail}");
        assert_eq!(tail, format!("...{}!", "é".repeat(249)));
    }

    #[test]
    fn signals_are_named() {
        assert_eq!(signal_name(libc::SIGKILL), Some("SIGKILL"));
        assert_eq!(signal_name(libc::SIGSEGV), Some("SIGSEGV"));
        assert_eq!(signal_name(1000), None);
    }
}
