//! What a queue is asked when pulpo lists jobs ([`crate::jobs`]): the jobs of one tube in one
//! state, by id, that a filter accepts, one bounded page at a time. Each queue answers in its own
//! way ([`super::Queue::list_jobs`]): the file queue walks its index, beanstalkd, which cannot
//! list, sweeps the id range with pipelined `stats-job` and `peek`.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use super::{JobState, JobStats};

/// Which end of the id range a listing starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Lowest id (the oldest job) first.
    #[default]
    Oldest,
    /// Highest id (the newest job) first.
    Newest,
}

/// One page's worth of walking: the jobs of `tube` in `state`, in `order`, after the id `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The tube.
    pub tube: String,
    /// The state the jobs must be in.
    pub state: JobState,
    /// Lowest or highest id first.
    pub order: Order,
    /// Start after this id (in `order`): the previous page's cursor.
    pub after: Option<u64>,
    /// The most jobs to return.
    pub limit: usize,
    /// The most ids to look at before giving back a short page (a sweep looks at ids that are
    /// not this tube's too; the file queue counts only the tube's jobs in the state).
    pub budget: usize,
}

/// The filter a listing applies to each job it looks at: its stats and body.
pub type Matcher = Arc<dyn Fn(&JobStats, &[u8]) -> bool + Send + Sync>;

/// A page of a [`Scan`].
#[derive(Debug, Clone, Default)]
pub struct Scanned {
    /// The matching jobs, with their stats and bodies, in the scan's order.
    pub jobs: Vec<(JobStats, Bytes)>,
    /// The id the next page starts after; `None` when no job is left to look at.
    pub next: Option<u64>,
    /// How far it looked.
    pub looked: Coverage,
}

/// How far a listing looked: the ids it went through, and whether a bound stopped it early.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// True when the jobs came from a sweep over ids (a queue that cannot list, such as
    /// beanstalkd), false when they came from an index of the tube's jobs.
    pub swept: bool,
    /// The first id looked at, if any.
    pub first: Option<u64>,
    /// The last id looked at, if any.
    pub last: Option<u64>,
    /// True when the walk stopped at its budget before the page was full or the ids ran out;
    /// the page's `next` goes on from there.
    pub bounded: bool,
}

impl Coverage {
    /// This page's coverage followed by a later page's: from the first page's first id to the
    /// last page's last, bounded if the later one was.
    pub fn then(self, later: Coverage) -> Coverage {
        Coverage {
            swept: self.swept || later.swept,
            first: self.first.or(later.first),
            last: later.last.or(self.last),
            bounded: later.bounded,
        }
    }
}
