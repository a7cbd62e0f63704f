//! Listing on beanstalkd, which has no command for it: a sweep over the id range, pipelined,
//! with `stats-job` for each id (its tube and state) and then `peek` for the ones of the tube
//! and state asked (their bodies). The sweep looks at no more ids than the scan's budget, and
//! says which ids it went through.

use bytes::Bytes;
use pulpo_beanstalkd::proto::StatsDocument;
use pulpo_beanstalkd::{Command, Reply};

use super::{BeanstalkdQueue, map_error};
use crate::queue::{Coverage, JobStats, Matcher, Order, PeekState, Queue, QueueError, Result, Scan, Scanned};

/// Ids asked about per pipelined round trip.
const BATCH: u64 = 256;

impl BeanstalkdQueue {
    /// The highest id the server may have given: its `total-jobs` (ids count up from 1), or a
    /// higher id seen in the tube (a server restarted from its binlog goes on from the ids it
    /// restored).
    async fn highest_id(&mut self, scan: &Scan) -> Result<u64> {
        let stats = self
            .client
            .stats()
            .await
            .map_err(|err| map_error(err, None, "stats"))?;
        let mut highest = stats.total_jobs;
        let peek = match scan.state {
            crate::queue::JobState::Ready => Some(PeekState::Ready),
            crate::queue::JobState::Delayed => Some(PeekState::Delayed),
            crate::queue::JobState::Buried => Some(PeekState::Buried),
            crate::queue::JobState::Reserved => None,
        };
        if let Some(state) = peek
            && let Some(job) = self.peek_state(&scan.tube, state).await?
        {
            highest = highest.max(job.id);
        }
        Ok(highest)
    }

    /// One page of `scan` by sweeping the id range.
    pub(super) async fn sweep(&mut self, scan: &Scan, matches: Matcher) -> Result<Scanned> {
        let highest = self.highest_id(scan).await?;
        // The ids still to look at, in the scan's order, as a half-open walk.
        let (mut at, end): (u64, u64) = match scan.order {
            Order::Oldest => (scan.after.map_or(1, |a| a.saturating_add(1)), highest),
            Order::Newest => (
                scan.after.map_or(highest, |a| a.saturating_sub(1).min(highest)),
                1,
            ),
        };
        let remaining = |at: u64| -> u64 {
            match scan.order {
                Order::Oldest if at <= end => end - at + 1,
                Order::Newest if at >= end && at > 0 => at - end + 1,
                _ => 0,
            }
        };
        let step = |at: u64, n: u64| -> u64 {
            match scan.order {
                Order::Oldest => at + n,
                Order::Newest => at.saturating_sub(n),
            }
        };
        let mut page = Scanned {
            looked: Coverage {
                swept: true,
                ..Coverage::default()
            },
            ..Scanned::default()
        };
        let mut looked: u64 = 0;
        loop {
            let left = remaining(at);
            if left == 0 {
                page.next = None;
                return Ok(page);
            }
            if page.jobs.len() >= scan.limit {
                page.next = page.looked.last;
                return Ok(page);
            }
            let budget_left = (scan.budget as u64).saturating_sub(looked);
            if budget_left == 0 {
                page.next = page.looked.last;
                page.looked.bounded = true;
                return Ok(page);
            }
            let n = BATCH.min(left).min(budget_left);
            let ids: Vec<u64> = (0..n)
                .map(|i| match scan.order {
                    Order::Oldest => at + i,
                    Order::Newest => at - i,
                })
                .collect();
            let found = self.look_at(&ids, scan).await?;
            for (id, stats, body) in found.into_iter().flatten() {
                if page.jobs.len() >= scan.limit {
                    // Stop at the job that filled the page: the ids after it are looked at
                    // again by the next page.
                    break;
                }
                page.looked.last = Some(id);
                if matches(&stats, &body) {
                    page.jobs.push((stats, body));
                }
            }
            if page.jobs.len() >= scan.limit {
                page.looked.first.get_or_insert(ids[0]);
                page.next = page.looked.last;
                return Ok(page);
            }
            page.looked.first.get_or_insert(ids[0]);
            page.looked.last = ids.last().copied();
            looked += n;
            at = step(at, n);
        }
    }

    /// The jobs among `ids` of the scan's tube and state, with their bodies, in order (`None`
    /// for ids that are not); one pipelined round trip for the stats and one for the bodies.
    async fn look_at(&mut self, ids: &[u64], scan: &Scan) -> Result<Vec<Option<(u64, JobStats, Bytes)>>> {
        let commands: Vec<Command> = ids.iter().map(|&id| Command::StatsJob { id }).collect();
        let replies = self
            .client
            .pipeline(&commands)
            .await
            .map_err(|err| map_error(err, None, "stats-job"))?;
        let mut wanted = Vec::new();
        for (&id, reply) in ids.iter().zip(replies) {
            let stats = match reply {
                Reply::Ok { data } => JobStats::parse(&data)
                    .map_err(|err| QueueError::Internal(format!("beanstalkd's stats-job {id}: {err}")))?,
                Reply::NotFound => continue,
                other => {
                    return Err(QueueError::Internal(format!(
                        "beanstalkd answered {other:?} to stats-job {id}"
                    )));
                }
            };
            if stats.tube == scan.tube && stats.state == scan.state {
                wanted.push(stats);
            }
        }
        let commands: Vec<Command> = wanted.iter().map(|s| Command::Peek { id: s.id }).collect();
        let replies = if commands.is_empty() {
            Vec::new()
        } else {
            self.client
                .pipeline(&commands)
                .await
                .map_err(|err| map_error(err, None, "peek"))?
        };
        let mut found: Vec<Option<(u64, JobStats, Bytes)>> = Vec::with_capacity(ids.len());
        for (stats, reply) in wanted.into_iter().zip(replies) {
            let id = stats.id;
            match reply {
                Reply::Found { body, .. } => found.push(Some((id, stats, body))),
                // Over this client's body limit: listed without its body.
                Reply::FoundTooBig { .. } => found.push(Some((id, stats, Bytes::new()))),
                // Deleted between the two round trips.
                Reply::NotFound => {}
                other => {
                    return Err(QueueError::Internal(format!(
                        "beanstalkd answered {other:?} to peek {id}"
                    )));
                }
            }
        }
        Ok(found)
    }
}
