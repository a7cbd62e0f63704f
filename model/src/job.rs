//! A job's state and statistics as beanstalkd's `stats-job` reports them,
//! one model for the file queue, the beanstalkd protocol and pulpo.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::whole_seconds;

/// The four states of a job, as beanstalkd names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
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
    /// The state's name as beanstalkd writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Delayed => "delayed",
            JobState::Reserved => "reserved",
            JobState::Buried => "buried",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not one of beanstalkd's job states, e.g. in a `stats-job`
/// document from a newer server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct UnknownJobState(pub String);

impl FromStr for JobState {
    type Err = UnknownJobState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ready" => Ok(JobState::Ready),
            "delayed" => Ok(JobState::Delayed),
            "reserved" => Ok(JobState::Reserved),
            "buried" => Ok(JobState::Buried),
            other => Err(UnknownJobState(other.to_owned())),
        }
    }
}

/// A job's statistics: every field of beanstalkd's `stats-job`, plus the
/// reason of the last release or bury where the queue keeps one.
///
/// Times are durations: beanstalkd reports whole seconds, the file queue
/// keeps milliseconds. They serialize as whole seconds, as beanstalkd
/// writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStats {
    /// `id`: the job id.
    pub id: u64,
    /// `tube`: the tube holding it.
    pub tube: String,
    /// `state`: its state.
    pub state: JobState,
    /// `pri`: its priority, 0 most urgent.
    pub pri: u32,
    /// `age`: time since the put that created it.
    #[serde(serialize_with = "whole_seconds")]
    pub age: Duration,
    /// `delay`: the delay of its last put or release.
    #[serde(serialize_with = "whole_seconds")]
    pub delay: Duration,
    /// `ttr`: its time-to-run.
    #[serde(serialize_with = "whole_seconds")]
    pub ttr: Duration,
    /// `time-left`: until a reserved job's reservation ends or a delayed job
    /// is ready; else zero.
    #[serde(serialize_with = "whole_seconds")]
    pub time_left: Duration,
    /// `file`: the earliest binlog file holding it (0 without a binlog, and
    /// always 0 for the file queue). Not serialized: it says nothing about
    /// the job to a pulpo user, and pulpo's documents never showed it.
    #[serde(skip)]
    pub file: u64,
    /// `reserves`: times it has been reserved (pulpo's attempt count).
    pub reserves: u32,
    /// `timeouts`: times a reservation of it timed out.
    pub timeouts: u32,
    /// `releases`: times it has been released.
    pub releases: u32,
    /// `buries`: times it has been buried.
    pub buries: u32,
    /// `kicks`: times it has been kicked.
    pub kicks: u32,
    /// Why it was last released or buried, where the queue keeps it (the
    /// file queue does; beanstalkd has nowhere to, so it is `None` there).
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_and_write_as_beanstalkd_names_them() {
        for state in [
            JobState::Ready,
            JobState::Delayed,
            JobState::Reserved,
            JobState::Buried,
        ] {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
            assert_eq!(state.to_string(), state.as_str());
        }
        assert_eq!(
            "Ready".parse::<JobState>(),
            Err(UnknownJobState("Ready".to_owned()))
        );
    }
}
