//! The values the queue takes and returns: options, new jobs, jobs and statistics.

use std::time::Duration;

use pulpo_model::TubeName;
pub use pulpo_model::{JobState, JobStats, TubeStats};

use crate::clock::Clock;
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
    /// The time delays, TTRs and pauses are measured by: the system clock, unless a test
    /// moves time by hand ([`Clock::manual`]).
    #[doc(hidden)]
    pub clock: Clock,
    /// Share the queue with the members of its directory's group (two users, one queue: a web
    /// app publishing, a runner running): directory 2770 (setgid), files 0660, and the files of
    /// other users of that group trusted. Off: the queue is its owner's alone (0700, 0600).
    pub group: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fsync: true,
            max_job_size: 65_535,
            compact_min_bytes: 64 << 20,
            clock: Clock::default(),
            group: false,
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
    /// Times it has been kicked.
    pub kicks: u32,
    /// Time since it was put (its wait in the queue, delay included).
    pub age: Duration,
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

/// Checks a tube name against beanstalkd's rules (see [`pulpo_model::validate_tube_name`]).
/// Every command checks its tubes with it; it is public so that a caller (the CLI, a server)
/// can refuse a bad name before it builds a job.
pub fn validate_tube(name: &str) -> Result<()> {
    TubeName::check(name).map_err(Error::InvalidTube)
}
