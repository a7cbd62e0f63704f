//! Listing the jobs of a tube in one state, by id, from the index: the walk behind pulpo's
//! `jobs` listing and bulk actions. It reads the index's job sets (it adds nothing to them) and
//! reads bodies only of the jobs it looks at, under one transaction.

use crate::error::Result;
use crate::index::Slot;
use crate::queue::FileQueue;
use crate::transaction::Durability;
use crate::types::{JobState, JobStats, validate_tube};

/// What [`FileQueue::list`] walks: the jobs of `tube` in `state`, by id.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery<'a> {
    /// The tube.
    pub tube: &'a str,
    /// The state its jobs must be in.
    pub state: JobState,
    /// Highest id first instead of lowest.
    pub newest_first: bool,
    /// Start after this id (in the walk's order): the previous page's cursor.
    pub after: Option<u64>,
    /// The most jobs to return.
    pub limit: usize,
    /// The most jobs to look at (and read the body of): bounds the time the walk holds the
    /// queue's lock when a filter matches few jobs.
    pub budget: usize,
}

/// One page of [`FileQueue::list`].
#[derive(Debug, Clone, Default)]
pub struct Listed {
    /// The matching jobs with their bodies, in the walk's order.
    pub jobs: Vec<(JobStats, Vec<u8>)>,
    /// Where the next page starts (pass as [`ListQuery::after`]); `None` when the walk reached
    /// the last job.
    pub next: Option<u64>,
    /// The first id looked at, if any.
    pub first: Option<u64>,
    /// The last id looked at, if any.
    pub last: Option<u64>,
    /// True when the walk stopped at [`ListQuery::budget`] before filling the page.
    pub bounded: bool,
}

impl FileQueue {
    /// The jobs of a tube in one state, by id, that `matches` accepts (it gets each job's stats
    /// and body), from [`ListQuery::after`] on; at most `limit` of them, after looking at no
    /// more than `budget` jobs.
    pub fn list(&self, query: &ListQuery<'_>, matches: &dyn Fn(&JobStats, &[u8]) -> bool) -> Result<Listed> {
        validate_tube(query.tube)?;
        self.txn(Durability::Lazy, |tx| {
            let index = tx.index();
            let Some(t) = index.tube_id(query.tube) else {
                return Ok(Listed::default());
            };
            let tube = &index.tubes[t as usize];
            let mut ids: Vec<u64> = match query.state {
                JobState::Ready => tube.ready.iter().map(|x| x.1).collect(),
                JobState::Delayed => tube.delayed.iter().map(|x| x.1).collect(),
                JobState::Buried => tube.buried.iter().map(|x| x.1).collect(),
                JobState::Reserved => index
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.tube == t && matches!(j.slot, Slot::Reserved { .. }))
                    .map(|(&id, _)| id)
                    .collect(),
            };
            ids.sort_unstable();
            if query.newest_first {
                ids.reverse();
            }
            let start = match query.after {
                None => 0,
                Some(after) => ids.partition_point(|&id| {
                    if query.newest_first {
                        id >= after
                    } else {
                        id <= after
                    }
                }),
            };
            let mut listed = Listed::default();
            let rest = &ids[start..];
            for (looked, &id) in rest.iter().enumerate() {
                if listed.jobs.len() >= query.limit {
                    listed.next = listed.last;
                    return Ok(listed);
                }
                if looked >= query.budget {
                    listed.next = listed.last;
                    listed.bounded = true;
                    return Ok(listed);
                }
                let stats = tx.job_stats(id)?;
                let j = tx.job(id)?;
                let body = tx.log.read_body(j.body_off, j.body_len)?;
                listed.first.get_or_insert(id);
                listed.last = Some(id);
                if matches(&stats, &body) {
                    listed.jobs.push((stats, body));
                }
            }
            Ok(listed)
        })
    }
}
