//! A tube's statistics as beanstalkd's `stats-tube` reports them, one model
//! for the file queue, the beanstalkd protocol and pulpo.

use std::time::Duration;

use serde::Serialize;

use crate::whole_seconds;

/// Every field of beanstalkd's `stats-tube`.
///
/// The file queue has no connections: there `current_using` is 0 and
/// `current_waiting` and `current_watching` count the threads of one handle
/// blocked in a reserve on the tube. Times serialize as whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TubeStats {
    /// `name`: the tube's name.
    pub name: String,
    /// `current-jobs-urgent`: ready jobs with priority < 1024.
    pub current_jobs_urgent: u64,
    /// `current-jobs-ready`: ready jobs.
    pub current_jobs_ready: u64,
    /// `current-jobs-reserved`: reserved jobs.
    pub current_jobs_reserved: u64,
    /// `current-jobs-delayed`: delayed jobs.
    pub current_jobs_delayed: u64,
    /// `current-jobs-buried`: buried jobs.
    pub current_jobs_buried: u64,
    /// `total-jobs`: jobs ever created in this tube (since the server
    /// started; the file queue keeps the count across compaction).
    pub total_jobs: u64,
    /// `current-using`: connections using this tube.
    pub current_using: u64,
    /// `current-waiting`: connections waiting in a reserve that watches it.
    pub current_waiting: u64,
    /// `current-watching`: connections watching it.
    pub current_watching: u64,
    /// `pause`: how long the tube was last paused for, while the pause
    /// lasts.
    #[serde(serialize_with = "whole_seconds")]
    pub pause: Duration,
    /// `cmd-delete`: delete commands for jobs of this tube.
    pub cmd_delete: u64,
    /// `cmd-pause-tube`: pause commands for this tube.
    pub cmd_pause_tube: u64,
    /// `pause-time-left`: until the pause ends.
    #[serde(serialize_with = "whole_seconds")]
    pub pause_time_left: Duration,
}
