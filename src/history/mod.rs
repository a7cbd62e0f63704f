//! Job records: what happened to a job from its first run to its end, kept
//! after the queue has forgotten it — every attempt with its outcome,
//! duration and error, the events its handler wrote, its result and its
//! final outcome. The runner writes them ([`Recorder`], group-committed, a
//! record before the settlement it describes); `pulpo status`, `pulpo
//! history`, the HTTP API and programs read them ([`lookup`], [`list`]).
//!
//! Where they live ([`store_path`]): on the file queue, in the queue's
//! directory (`<dir>/history/records.sqlite`); on beanstalkd, whose server
//! forgets a deleted job, in `[history] path` (default
//! `$XDG_STATE_HOME/pulpo/history`, else `~/.local/state/pulpo/history`),
//! one file per server address, so every runner and command on the machine
//! reaches the same records.

mod recorder;
mod store;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
pub use pulpo_model::JobRef;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use recorder::Recorder;
pub(crate) use store::Store;

use crate::config::Settings;

/// The most attempts a record keeps (the latest ones): a job kicked again
/// and again cannot grow its record without bound.
pub const MAX_ATTEMPTS_KEPT: usize = 20;
/// The most events a record keeps (the first ones).
pub const MAX_EVENTS: usize = 50;
/// The most bytes of one event's text, of one attempt's error, kept.
pub const MAX_TEXT: usize = 512;
/// The most bytes of a result's JSON kept; a larger result is replaced by a
/// note saying so.
pub const MAX_RESULT: usize = 8192;

/// Why the records could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// `[history] enabled` is off.
    #[error("job records are off: set [history] enabled = true in pulpo.toml to keep them")]
    Disabled,
    /// The store failed.
    #[error("job records at {}: {problem}", path.display())]
    Store {
        /// The store's file or directory.
        path: PathBuf,
        /// What failed.
        problem: String,
    },
}

/// How a job ended: the record's final outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum End {
    /// Its handler succeeded; the job was deleted.
    Succeeded,
    /// It was buried (a fatal failure, attempts used up, no handler...).
    Buried,
    /// Its expiration passed before it ran (buried or deleted by `on_expired`).
    Expired,
    /// An operator deleted it after it had started (buried or reserved).
    Deleted,
    /// An operator deleted it while it waited to run (ready or delayed).
    Cancelled,
}

impl End {
    /// The name as the CLI and the store write it.
    pub fn name(self) -> &'static str {
        match self {
            End::Succeeded => "succeeded",
            End::Buried => "buried",
            End::Expired => "expired",
            End::Deleted => "deleted",
            End::Cancelled => "cancelled",
        }
    }

    /// Whether a job that ended so has left its queue for good (succeeded,
    /// deleted, cancelled): its record alone says its state, and `pulpo
    /// status` need not ask the queue. A buried or expired job may still be
    /// kicked.
    pub fn left_the_queue(self) -> bool {
        matches!(self, End::Succeeded | End::Deleted | End::Cancelled)
    }

    /// The outcome named `name`, as `pulpo history --outcome` takes it.
    pub fn from_name(name: &str) -> Option<End> {
        [
            End::Succeeded,
            End::Buried,
            End::Expired,
            End::Deleted,
            End::Cancelled,
        ]
        .into_iter()
        .find(|end| end.name() == name)
    }
}

/// One run of a job's handler (or one look at a job that did not run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// When the runner started on it.
    pub started: DateTime<Utc>,
    /// When it finished.
    pub finished: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// What the runner did with the job: `delete`, `release` or `bury`.
    pub settlement: String,
    /// Why it failed, when it did: the handler's reason (for `exec`, the
    /// exit status and the end of stderr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A line a handler wrote against its job while it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it was written.
    pub at: DateTime<Utc>,
    /// Which attempt wrote it.
    pub attempt: u32,
    /// What it says.
    pub text: String,
}

/// Everything kept about one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The job.
    pub job: JobRef,
    /// Its message's request type (empty when not known).
    pub request_type: String,
    /// The tube it was reserved from.
    #[serde(default)]
    pub tube: String,
    /// How it ended; `None` while it may still run again.
    pub outcome: Option<End>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<DateTime<Utc>>,
    /// Its attempts, oldest first (the latest [`MAX_ATTEMPTS_KEPT`]).
    pub attempts: Vec<Attempt>,
    /// The events its handler wrote (the first [`MAX_EVENTS`]).
    pub events: Vec<Event>,
    /// What its handler returned with its success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// When the record last changed.
    pub updated: DateTime<Utc>,
}

/// A change to a record, as the runner and the CLI write them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// The runner finished an attempt.
    Attempt {
        job: JobRef,
        request_type: String,
        tube: String,
        attempt: Box<Attempt>,
        events: Vec<Event>,
        result: Option<Value>,
        end: Option<End>,
    },
    /// The job ended outside the runner (`pulpo delete`).
    Ended {
        job: JobRef,
        request_type: String,
        end: End,
    },
}

impl Change {
    fn job(&self) -> JobRef {
        match self {
            Change::Attempt { job, .. } | Change::Ended { job, .. } => *job,
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl Record {
    /// An empty record for `job`.
    fn new(job: JobRef) -> Record {
        Record {
            job,
            request_type: String::new(),
            tube: String::new(),
            outcome: None,
            ended: None,
            attempts: Vec::new(),
            events: Vec::new(),
            result: None,
            updated: Utc::now(),
        }
    }

    /// The last attempt's error, if it failed.
    pub fn error(&self) -> Option<&str> {
        self.attempts.last().and_then(|a| a.error.as_deref())
    }

    fn apply(&mut self, change: &Change, now: DateTime<Utc>) {
        self.updated = now;
        match change {
            Change::Attempt {
                request_type,
                tube,
                attempt,
                events,
                result,
                end,
                ..
            } => {
                if attempt.attempt == 1 && self.outcome.is_some() {
                    // A new job under a reused id (beanstalkd restarted
                    // without its binlog): start afresh.
                    *self = Record::new(self.job);
                    self.updated = now;
                }
                self.request_type.clone_from(request_type);
                self.tube.clone_from(tube);
                let mut attempt = Attempt::clone(attempt);
                attempt.error = attempt.error.map(|e| cut(e, MAX_TEXT));
                self.attempts.push(attempt);
                if self.attempts.len() > MAX_ATTEMPTS_KEPT {
                    self.attempts.remove(0);
                }
                for event in events {
                    if self.events.len() >= MAX_EVENTS {
                        break;
                    }
                    let mut event = event.clone();
                    event.text = cut(event.text, MAX_TEXT);
                    self.events.push(event);
                }
                if let Some(result) = result {
                    let size = result.to_string().len();
                    self.result = Some(if size > MAX_RESULT {
                        Value::String(format!(
                            "(a result of {size} bytes, over the {MAX_RESULT} a record keeps)"
                        ))
                    } else {
                        result.clone()
                    });
                }
                self.outcome = *end;
                self.ended = end.map(|_| now);
            }
            Change::Ended {
                request_type, end, ..
            } => {
                if self.request_type.is_empty() {
                    self.request_type.clone_from(request_type);
                }
                self.outcome = Some(*end);
                self.ended = Some(now);
            }
        }
    }
}

/// Which records [`list`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Only this request type.
    pub request_type: Option<String>,
    /// Only jobs that ended so.
    pub outcome: Option<End>,
    /// Only records updated since then.
    pub since: Option<DateTime<Utc>>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// The records' file for `settings`: in `[history] path` when set, else
/// where the queue keeps them ([`crate::queue::records_home`]).
pub fn store_path(settings: &Settings) -> PathBuf {
    let home = crate::queue::records_home(settings);
    let dir = match (&settings.history.path, home.dir) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => dir,
        (None, None) => state_dir().join("history"),
    };
    dir.join(home.file)
}

/// `$XDG_STATE_HOME/pulpo`, else `~/.local/state/pulpo`, else
/// `/var/lib/pulpo` (no home: a system service).
fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("pulpo");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/pulpo"),
        None => PathBuf::from("/var/lib/pulpo"),
    }
}

/// Opens the store of `settings` for reading and occasional writes.
fn open(settings: &Settings) -> Result<Store, HistoryError> {
    if !settings.history.enabled {
        return Err(HistoryError::Disabled);
    }
    Store::open(&store_path(settings))
}

/// Whether the runner commits a job's record before it settles the job:
/// where the queue keeps records as it keeps its jobs.
fn must_wait(settings: &Settings) -> bool {
    crate::queue::records_home(settings).kept_with_the_jobs
}

/// The record of `job`, if one is kept: the hook `pulpo status` and the
/// HTTP API's job page call. Looks it up by id (no scan).
pub fn lookup(settings: &Settings, job: JobRef) -> Result<Option<Record>, HistoryError> {
    if !settings.history.enabled {
        return Err(HistoryError::Disabled);
    }
    match Store::open_to_read(&store_path(settings))? {
        Some(store) => store.get(job),
        None => Ok(None),
    }
}

/// The records matching `filter`, newest first (`pulpo history`).
pub fn list(settings: &Settings, filter: &Filter) -> Result<Vec<Record>, HistoryError> {
    open(settings)?.list(filter)
}

/// Records that `job` ended outside the runner (`pulpo delete`): `end` is
/// [`End::Cancelled`] for a job that was waiting, [`End::Deleted`] otherwise.
pub fn record_end(
    settings: &Settings,
    job: JobRef,
    request_type: &str,
    end: End,
) -> Result<(), HistoryError> {
    open(settings)?.apply(
        &[Change::Ended {
            job,
            request_type: request_type.to_owned(),
            end,
        }],
        Utc::now(),
    )
}

/// Writes `records` into the store of `settings` as they are, in one
/// transaction, replacing any kept under the same job ids; returns how
/// many. For restoring records (from `pulpo history --json`, say) and for
/// filling a store quickly (the `runner` bench keeps a million).
pub fn import(settings: &Settings, records: impl IntoIterator<Item = Record>) -> Result<u64, HistoryError> {
    open(settings)?.import(records)
}

/// Prunes the records of `settings` by `[history] keep` and `max_jobs`
/// now (the runner also does it by itself); returns how many went.
pub fn prune(settings: &Settings) -> Result<u64, HistoryError> {
    open(settings)?.prune(settings.history.keep, settings.history.max_jobs, Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(n: u32, settlement: &str, error: Option<&str>) -> Attempt {
        Attempt {
            attempt: n,
            started: Utc::now(),
            finished: Utc::now(),
            duration_ms: 1.0,
            settlement: settlement.to_owned(),
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn a_store_keeps_attempts_events_and_the_end_and_prunes_by_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let job = JobRef::new(7);
        let change = |n: u32, end: Option<End>, error: Option<&str>| Change::Attempt {
            job,
            request_type: "work".into(),
            tube: "default".into(),
            attempt: Box::new(attempt(
                n,
                if end.is_some() { "delete" } else { "release" },
                error,
            )),
            events: vec![Event {
                at: Utc::now(),
                attempt: n,
                text: format!("try {n}"),
            }],
            result: end.map(|_| serde_json::json!({"ok": true})),
            end,
        };
        store
            .apply(
                &[
                    change(1, None, Some("busy")),
                    change(2, Some(End::Succeeded), None),
                ],
                Utc::now(),
            )
            .unwrap();
        let record = store.get(job).unwrap().unwrap();
        assert_eq!(record.outcome, Some(End::Succeeded));
        assert_eq!(record.attempts.len(), 2);
        assert_eq!(record.attempts[0].error.as_deref(), Some("busy"));
        assert_eq!(record.events.len(), 2);
        assert_eq!(record.result, Some(serde_json::json!({"ok": true})));
        assert!(store.get(JobRef::new(8)).unwrap().is_none());

        for id in 10..20 {
            store
                .apply(
                    &[Change::Ended {
                        job: JobRef::new(id),
                        request_type: "x".into(),
                        end: End::Cancelled,
                    }],
                    Utc::now(),
                )
                .unwrap();
        }
        assert_eq!(store.prune(Duration::from_secs(3600), 5, Utc::now()).unwrap(), 6);
        assert!(store.get(JobRef::new(19)).unwrap().is_some());
        assert!(store.get(job).unwrap().is_none(), "the oldest went first");
    }

    use std::time::Duration;
}
