//! How the CLI prints: human text by default, one JSON document with `--json`.
//! Every byte the CLI writes goes through [`write`] (stdout) or [`error`]
//! (stderr) here, so a closed or full stdout is one [`StdoutError`], never a
//! panic.

use std::fmt;
use std::io::{self, Write};

use serde_json::{Map, Value};

use super::{Failure, job_document};
use crate::config::Settings;
use crate::queue::{Job, JobStats, TubeStats};

/// The exit code when stdout's reader went away (EPIPE, as after `| head -1`):
/// 128 + SIGPIPE, what a shell reports for `seq` or `cat` in the same spot,
/// so `set -o pipefail` scripts see one code for every tool.
pub(super) const CLOSED_STDOUT_EXIT: u8 = 141;

/// A write to stdout that failed: its reader went away, or the file behind it
/// is full or broken.
#[derive(Debug)]
pub(super) struct StdoutError(io::Error);

impl StdoutError {
    /// The reader went away (EPIPE): nobody will read anything more.
    fn is_closed(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }

    /// [`CLOSED_STDOUT_EXIT`] when the reader went away, else 1.
    pub(super) fn exit_code(&self) -> u8 {
        if self.is_closed() { CLOSED_STDOUT_EXIT } else { 1 }
    }
}

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_closed() {
            f.write_str("stdout was closed")
        } else {
            write!(f, "cannot write to stdout: {}", self.0)
        }
    }
}

/// A closed stdout ends the command quietly with [`CLOSED_STDOUT_EXIT`], as
/// other Unix tools do; any other write error is a one-line error, exit 1.
impl From<StdoutError> for Failure {
    fn from(err: StdoutError) -> Failure {
        Failure {
            code: err.exit_code(),
            message: if err.is_closed() {
                String::new()
            } else {
                err.to_string()
            },
        }
    }
}

/// Writes `bytes` to stdout and flushes them, so a failure shows now, at the
/// write that caused it.
pub(super) fn write(bytes: &[u8]) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Writes `text` and a newline to stdout.
pub(super) fn line(text: &str) -> Result<(), StdoutError> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(b'\n');
    write(&bytes)
}

/// Fails as a write would when stdout's reader is already gone (a pipe with
/// no reader left, a hung-up socket, a closed descriptor), asked without
/// writing: `publish` stores no more jobs once nobody can learn their ids.
pub(super) fn check_reader() -> Result<(), StdoutError> {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: poll(2) on one pollfd that lives on this stack frame, with a
    // zero timeout; it only writes `revents`.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    if ready > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
        return Err(StdoutError(io::ErrorKind::BrokenPipe.into()));
    }
    Ok(())
}

/// Writes `pulpo: error: <message>` to stderr. A failure to write there is
/// ignored: there is nowhere left to report it.
pub(super) fn error(message: &str) {
    let _ = writeln!(io::stderr().lock(), "pulpo: error: {message}");
}

/// How a command failed, on stderr: `pulpo: error: <message>`, or with
/// `--json` one JSON document, `{"error": "<message>", "code": <exit code>}`,
/// so a script reading JSON gets its errors as JSON too.
pub(super) fn failure(json: bool, message: &str, code: u8) {
    if json {
        let document = serde_json::json!({"error": message, "code": code});
        let _ = writeln!(io::stderr().lock(), "{document}");
    } else {
        error(message);
    }
}

/// Prints `value` as JSON when `json`, else the human text `human` makes.
pub(super) fn emit(json: bool, value: Value, human: impl FnOnce() -> String) -> Result<(), StdoutError> {
    if json { print_json(&value) } else { line(&human()) }
}

/// Prints one JSON document on one line.
pub(super) fn print_json(value: &Value) -> Result<(), StdoutError> {
    line(&value.to_string())
}

/// `pulpo stats`: the queue's statistics, named in snake_case in both modes
/// (`current_jobs_ready`), as `tubes`, `stats-job` and `peek` name theirs;
/// beanstalkd's own spelling (`current-jobs-ready`) stays on the wire.
pub(super) fn stats(json: bool, stats: Map<String, Value>) -> Result<(), StdoutError> {
    let stats: Map<String, Value> = stats
        .into_iter()
        .map(|(key, value)| (key.replace('-', "_"), value))
        .collect();
    emit(json, Value::Object(stats.clone()), || pairs(&stats))
}

/// `name: value` lines, in order.
pub(super) fn pairs(map: &Map<String, Value>) -> String {
    let width = map.keys().map(String::len).max().unwrap_or(0);
    map.iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{key:<width$}  {value}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A job's statistics as `name: value` lines.
pub(super) fn job_stats(info: &JobStats) -> String {
    match serde_json::to_value(info) {
        Ok(Value::Object(map)) => {
            let map: Map<String, Value> = map.into_iter().filter(|(_, v)| !v.is_null()).collect();
            pairs(&map)
        }
        _ => format!("{info:?}"),
    }
}

/// Prints a job: a summary line, its statistics, and its message. A body
/// that is not a message is written as its bytes, unchanged, in human text,
/// and in `--json` as `body` when it is UTF-8, else as `body_base64`.
pub(super) fn job(json: bool, job: &Job, info: Option<&JobStats>) -> Result<(), StdoutError> {
    let doc = job_document(job, info);
    if json {
        return print_json(&doc);
    }
    let mut text = String::new();
    match info {
        Some(info) => {
            text.push_str(&format!(
                "job {} ({}) in tube {}\n",
                job.id, info.state, info.tube
            ));
            text.push_str(&format!(
                "  pri {}  age {}s  delay {}s  ttr {}s  time-left {}s\n",
                info.pri,
                info.age.as_secs(),
                info.delay.as_secs(),
                info.ttr.as_secs(),
                info.time_left.as_secs()
            ));
            text.push_str(&format!(
                "  reserves {}  timeouts {}  releases {}  buries {}  kicks {}\n",
                info.reserves, info.timeouts, info.releases, info.buries, info.kicks
            ));
            if let Some(reason) = &info.reason {
                text.push_str(&format!("  reason: {reason}\n"));
            }
        }
        None => text.push_str(&format!("job {}\n", job.id)),
    }
    let mut bytes = text.into_bytes();
    if let Some(message) = doc.get("message") {
        let pretty = serde_json::to_string_pretty(message).unwrap_or_else(|_| message.to_string());
        bytes.extend_from_slice(pretty.as_bytes());
    } else {
        if let Some(Value::String(err)) = doc.get("body_error") {
            bytes.extend_from_slice(format!("  (body is not a pulpo message: {err})\n").as_bytes());
        }
        bytes.extend_from_slice(&job.body);
    }
    bytes.push(b'\n');
    write(&bytes)
}

/// A table of tubes and their job counts.
pub(super) fn tube_table(infos: &[TubeStats]) -> String {
    let width = infos.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:<width$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>6}",
        "tube", "ready", "urgent", "reserved", "delayed", "buried", "paused"
    );
    for t in infos {
        let paused = if t.pause_time_left.as_secs() > 0 {
            format!("{}s", t.pause_time_left.as_secs())
        } else {
            "-".to_owned()
        };
        out.push_str(&format!(
            "\n{:<width$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>6}",
            t.name,
            t.current_jobs_ready,
            t.current_jobs_urgent,
            t.current_jobs_reserved,
            t.current_jobs_delayed,
            t.current_jobs_buried,
            paused
        ));
    }
    out
}

/// `pulpo config`: the resolved settings.
pub(super) fn config(settings: &Settings, json: bool) -> Result<(), Failure> {
    if json {
        print_json(&settings.to_json_value())?;
    } else {
        write(settings.to_toml_string().as_bytes())?;
    }
    Ok(())
}

/// The runner's exit summary: why it stopped and its counters.
pub(super) fn run_report(json: bool, report: &crate::runner::RunReport) -> Result<(), StdoutError> {
    let total = crate::runner::total(&report.counters);
    let mut value = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert(
            "total".to_owned(),
            serde_json::to_value(total).unwrap_or(Value::Null),
        );
    }
    emit(json, value, || {
        let stop = match report.stop {
            crate::runner::StopReason::Idle => "idle",
            crate::runner::StopReason::Shutdown => "shutdown",
        };
        let restarts = match report.restarts {
            0 => String::new(),
            n => format!(", {n} restarts"),
        };
        format!(
            "runner stopped ({stop}) after {:.1}s{restarts}\n{}",
            report.elapsed.as_secs_f64(),
            crate::runner::render(&report.counters).trim_end()
        )
    })
}
