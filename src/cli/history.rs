//! `pulpo status` and `pulpo history`: a job's live state and its record
//! (`[history]`), and lists of records; plus what `delete` and `publish
//! --wait` add to records and replies.

use std::time::Duration;

use chrono::Utc;
use clap::Args;
use serde_json::{Value, json};

use super::{Failure, parse_duration_arg, show};
use crate::config::Settings;
use crate::history::{self, End, Filter, HistoryError, JobRef, Record};
use crate::producer::Reply;
use crate::queue::{JobState, QueueError};

impl From<HistoryError> for Failure {
    fn from(err: HistoryError) -> Failure {
        Failure {
            code: 1,
            message: err.to_string(),
        }
    }
}

/// `pulpo history`'s filters.
#[derive(Debug, Args)]
pub(super) struct HistoryArgs {
    /// Only jobs of this request type.
    #[arg(long = "type", value_name = "T")]
    request_type: Option<String>,
    /// Only jobs that ended so: succeeded, buried, expired, deleted or cancelled.
    #[arg(long, value_parser = parse_end, value_name = "OUTCOME")]
    outcome: Option<End>,
    /// Only records changed within this long, e.g. 1h.
    #[arg(long, value_parser = parse_duration_arg, value_name = "D")]
    since: Option<Duration>,
    /// The most records shown, newest first.
    #[arg(long, default_value_t = 100, value_name = "N")]
    limit: u32,
}

fn parse_end(text: &str) -> Result<End, String> {
    End::from_name(text).ok_or_else(|| {
        format!("unknown outcome {text:?}: expected succeeded, buried, expired, deleted or cancelled")
    })
}

/// `pulpo status <id>`: the live state while the queue has the job, and its
/// record (the whole story once it has ended). A record that says the job
/// left the queue for good answers alone: the queue is not opened (no
/// connection, no replay of a large file queue's log), so the common lookup
/// of a finished job costs one read of the records.
pub(super) async fn status(settings: &Settings, job: JobRef, json: bool) -> Result<(), Failure> {
    let first = match history::lookup(settings, job) {
        Ok(record) => Some(record),
        Err(HistoryError::Disabled) => None,
        Err(err) => return Err(err.into()),
    };
    if let Some(Some(record)) = &first
        && let Some(end) = record.outcome.filter(|end| end.left_the_queue())
    {
        return show_status(job, end.name(), first.flatten(), json);
    }
    let mut queue = crate::queue::open(settings).await?;
    let live = match queue.stats_job(job.id).await {
        Ok(info) => Some(info.state),
        Err(QueueError::JobNotFound { .. }) => None,
        Err(err) => return Err(err.into()),
    };
    let record = match first {
        // The job may have ended since the first look: its record is
        // committed before its settlement, so a second look finds it.
        Some(_) if live.is_none() => history::lookup(settings, job)?,
        Some(record) => record,
        None if live.is_some() => None,
        None => {
            return Err(Failure {
                code: 1,
                message: format!(
                    "job {job} not found, and job records are off: set [history] enabled = true in \
                     pulpo.toml to keep them after a job ends"
                ),
            });
        }
    };
    let state = match (live, &record) {
        (Some(JobState::Reserved), _) => "running",
        (Some(JobState::Ready | JobState::Delayed), _) => "queued",
        // Buried: its record says why (expired, or buried).
        (
            Some(JobState::Buried),
            Some(Record {
                outcome: Some(end), ..
            }),
        ) => end.name(),
        (Some(JobState::Buried), _) => "buried",
        (
            None,
            Some(Record {
                outcome: Some(end), ..
            }),
        ) => end.name(),
        // Its record has attempts but no end, and the queue lost it.
        (None, Some(_)) => "unknown",
        (None, None) => {
            return Err(Failure {
                code: 1,
                message: format!("job {job} not found: not in the queue and no record kept"),
            });
        }
    };
    show_status(job, state, record, json)
}

fn show_status(job: JobRef, state: &str, record: Option<Record>, json: bool) -> Result<(), Failure> {
    let value = json!({"job": job, "state": state, "record": record});
    show::emit(json, value, || human_status(job, state, record.as_ref()))?;
    Ok(())
}

fn human_status(job: JobRef, state: &str, record: Option<&Record>) -> String {
    let mut out = format!("job {job}: {state}");
    let Some(record) = record else {
        return out;
    };
    if !record.request_type.is_empty() {
        out += &format!(" ({})", record.request_type);
    }
    for attempt in &record.attempts {
        out += &format!(
            "\n  attempt {} at {}: {} in {} ms",
            attempt.attempt,
            crate::message::format_time(attempt.started),
            attempt.settlement,
            attempt.duration_ms
        );
        if let Some(error) = &attempt.error {
            out += &format!(": {error}");
        }
    }
    for event in &record.events {
        out += &format!(
            "\n  event at {} (attempt {}): {}",
            crate::message::format_time(event.at),
            event.attempt,
            event.text
        );
    }
    if let Some(result) = &record.result {
        out += &format!("\n  result: {result}");
    }
    out
}

/// `pulpo history`: records by type, outcome and age, newest first.
pub(super) fn list(settings: &Settings, args: HistoryArgs, json: bool) -> Result<(), Failure> {
    let since = match args.since {
        Some(d) => Some(
            Utc::now()
                - chrono::Duration::from_std(d)
                    .map_err(|_| Failure::usage(format!("--since {d:?} is too long")))?,
        ),
        None => None,
    };
    let filter = Filter {
        request_type: args.request_type,
        outcome: args.outcome,
        since,
        limit: args.limit,
    };
    let records = history::list(settings, &filter)?;
    show::emit(json, json!({"records": records}), || {
        if records.is_empty() {
            return "no records".to_owned();
        }
        records
            .iter()
            .map(|r| {
                format!(
                    "{}\t{}\t{}\t{} attempt{}\t{}{}",
                    r.job,
                    if r.request_type.is_empty() {
                        "-"
                    } else {
                        &r.request_type
                    },
                    r.outcome.map_or("unfinished", End::name),
                    r.attempts.len(),
                    if r.attempts.len() == 1 { "" } else { "s" },
                    crate::message::format_time(r.updated),
                    r.error()
                        .map(|e| format!("\t{}", e.lines().next().unwrap_or("")))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok(())
}

/// Prints a reply `publish --wait` received, and gives its exit: 0 when the
/// job succeeded, 1 when it was buried or expired (or deleted).
pub(super) fn reply(json: bool, tube: &str, id: u64, reply: &Reply) -> Result<(), Failure> {
    let value = json!({"tube": tube, "id": id, "reply": reply});
    show::emit(json, value, || {
        let mut out = format!(
            "job {id} {} after {} attempt{} ({} ms)",
            reply.outcome.name(),
            reply.attempts,
            if reply.attempts == 1 { "" } else { "s" },
            reply.duration_ms
        );
        if let Some(error) = &reply.error {
            out += &format!("\nerror: {error}");
        }
        if !reply.result.is_null() {
            out += &format!("\nresult: {}", reply.result);
        }
        out
    })?;
    match reply.outcome {
        End::Succeeded => Ok(()),
        _ => Err(Failure {
            code: 1,
            message: String::new(),
        }),
    }
}

/// The exit of `publish --wait` when no result came in time: 124, as
/// timeout(1) exits.
pub(super) fn timed_out(json: bool, tube: &str, id: u64, timeout: Duration) -> Failure {
    let message = format!(
        "no result for job {id} within {}; it may still run (pulpo status {id})",
        humantime::format_duration(timeout)
    );
    if json {
        let _ = show::print_json(&json!({"tube": tube, "id": id, "reply": Value::Null}));
    }
    Failure { code: 124, message }
}
