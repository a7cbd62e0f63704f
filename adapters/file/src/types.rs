//! The values the queue takes and returns: options, new jobs, jobs and statistics.

use std::time::Duration;

use crate::error::{Error, Result};

/// Settings for [`crate::FileQueue::open`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Wait for the disk before `put`, `delete`, `release` and `bury` return (fdatasync, with
    /// group commit across handles and processes). With `false`, a crash of the process loses
    /// nothing but a power loss may lose the last changes.
    pub fsync: bool,
    /// Largest job body accepted, in bytes (beanstalkd's `-z`, default 65,535).
    pub max_job_size: usize,
    /// Compact the log once it is at least this big and less than half of it is live data.
    pub compact_min_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fsync: true,
            max_job_size: 65_535,
            compact_min_bytes: 64 << 20,
        }
    }
}

/// The largest `max_job_size` accepted (a record must fit the format's 256 MiB frame).
pub const MAX_JOB_SIZE_LIMIT: usize = 1 << 27;

/// One job for [`crate::FileQueue::put_many`].
#[derive(Debug, Clone, Copy)]
pub struct NewJob<'a> {
    /// Priority, 0 most urgent.
    pub pri: u32,
    /// Time before the job becomes ready.
    pub delay: Duration,
    /// Time to run: how long a reservation lasts (below one second counts as one second).
    pub ttr: Duration,
    /// The body.
    pub body: &'a [u8],
}

/// A job handed out by [`crate::FileQueue::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// Its id.
    pub id: u64,
    /// Its body.
    pub body: Vec<u8>,
    /// The tube it was reserved from.
    pub tube: String,
    /// Its priority.
    pub pri: u32,
    /// Its time-to-run.
    pub ttr: Duration,
    /// Times it has been reserved, this reservation included.
    pub reserves: u32,
}

/// The state of a job, as beanstalkd names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting to be reserved.
    Ready,
    /// Waiting for its delay to pass.
    Delayed,
    /// Held by a worker until it is deleted, released, buried or its TTR passes.
    Reserved,
    /// Set aside until kicked.
    Buried,
}

impl JobState {
    /// beanstalkd's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Delayed => "delayed",
            JobState::Reserved => "reserved",
            JobState::Buried => "buried",
        }
    }
}

/// beanstalkd's `stats-job`, plus the last reason given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStats {
    /// `id`.
    pub id: u64,
    /// `tube`.
    pub tube: String,
    /// `state`.
    pub state: JobState,
    /// `pri`.
    pub pri: u32,
    /// `age`: time since the put.
    pub age: Duration,
    /// `delay`: the delay last set (by put or release).
    pub delay: Duration,
    /// `ttr`.
    pub ttr: Duration,
    /// `time-left`: until the reservation ends (reserved) or the job is ready (delayed); else 0.
    pub time_left: Duration,
    /// `file`: always 0 (beanstalkd's binlog file number has no equivalent).
    pub file: u64,
    /// `reserves`.
    pub reserves: u32,
    /// `timeouts`.
    pub timeouts: u32,
    /// `releases`.
    pub releases: u32,
    /// `buries`.
    pub buries: u32,
    /// `kicks`.
    pub kicks: u32,
    /// The reason given by the last release or bury that gave one (the last error).
    pub reason: Option<String>,
}

/// A job as shown by `peek`: its body and its stats (which carry the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: u64,
    /// Its body.
    pub body: Vec<u8>,
    /// Its stats, as `stats_job` would give.
    pub stats: JobStats,
}

/// beanstalkd's `stats-tube`.
///
/// `current_using`, `current_watching` and `current_waiting` are approximations: this queue
/// has no connections, so they count the threads of *this handle* blocked in `reserve` on the
/// tube (`current_using` is 0: `put` names its tube on each call). The other fields are exact
/// and shared by all processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TubeStats {
    /// `name`.
    pub name: String,
    /// `current-jobs-urgent`: ready jobs with priority < 1024.
    pub current_jobs_urgent: u64,
    /// `current-jobs-ready`.
    pub current_jobs_ready: u64,
    /// `current-jobs-reserved`.
    pub current_jobs_reserved: u64,
    /// `current-jobs-delayed`.
    pub current_jobs_delayed: u64,
    /// `current-jobs-buried`.
    pub current_jobs_buried: u64,
    /// `total-jobs`: jobs ever put in this tube (kept across compaction).
    pub total_jobs: u64,
    /// `current-using` (approximation, see the type's doc).
    pub current_using: u64,
    /// `current-waiting` (approximation).
    pub current_waiting: u64,
    /// `current-watching` (approximation).
    pub current_watching: u64,
    /// `pause`: the pause asked, while it lasts; else 0.
    pub pause: Duration,
    /// `cmd-delete`.
    pub cmd_delete: u64,
    /// `cmd-pause-tube`.
    pub cmd_pause_tube: u64,
    /// `pause-time-left`.
    pub pause_time_left: Duration,
}

/// Queue-wide counts (the job part of beanstalkd's `stats`, plus the store's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// `current-jobs-urgent`.
    pub current_jobs_urgent: u64,
    /// `current-jobs-ready`.
    pub current_jobs_ready: u64,
    /// `current-jobs-reserved`.
    pub current_jobs_reserved: u64,
    /// `current-jobs-delayed`.
    pub current_jobs_delayed: u64,
    /// `current-jobs-buried`.
    pub current_jobs_buried: u64,
    /// `total-jobs`: jobs ever put (kept across compaction).
    pub total_jobs: u64,
    /// `current-tubes`: as listed by `list_tubes`.
    pub current_tubes: u64,
    /// `job-timeouts`: reservations that timed out since this handle built its index
    /// (approximation: reset by compaction and reopen).
    pub job_timeouts: u64,
    /// Damaged records skipped while reading the log (see the logs for details).
    pub corrupt_records: u64,
    /// The current log segment number.
    pub segment: u64,
    /// The current log segment's size in bytes.
    pub log_bytes: u64,
    /// The next job id.
    pub next_id: u64,
}

/// Checks a tube name against beanstalkd's rules: 1 to 200 bytes of `A-Za-z0-9-+/;.$_()`,
/// not starting with `-`. Every command checks its tubes with it; it is public so that a caller
/// (the CLI, a server) can refuse a bad name before it builds a job.
pub fn validate_tube(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidTube {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 200 {
        return bad("longer than 200 bytes");
    }
    if name.starts_with('-') {
        return bad("starts with '-'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-+/;.$_()".contains(&b))
    {
        return bad("only A-Z a-z 0-9 and -+/;.$_() are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tube_names_follow_beanstalkd() {
        for ok in ["default", "a", "A-Z+/;.$_()0", &"x".repeat(200)] {
            assert!(validate_tube(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a b", "é", &"x".repeat(201), "a\n", "a*"] {
            assert!(
                matches!(validate_tube(bad), Err(Error::InvalidTube { .. })),
                "{bad}"
            );
        }
    }
}
