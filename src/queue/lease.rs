//! The runner's interface to a queue: what one worker does with its own
//! handle. It settles the job it held and reserves the next in one trip,
//! waits for a job until the runner stops, renews the job's lease, publishes
//! the handler's messages, and reopens the handle after an outage. Each
//! queue implements it once; the runner never asks which queue it has.

use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{Leadership, NewJob, QueueError, Reservation, Result, Settlement};

/// A worker's handle on a queue. Reservations belong to the handle that
/// made them, as they belong to a connection on beanstalkd.
#[async_trait]
pub trait Lease: Send {
    /// A short description for messages, e.g. `beanstalkd at 127.0.0.1:11300`.
    fn describe(&self) -> String;

    /// Settles the job this handle held (if any), then looks for the next
    /// ready job of `watch`, waiting at most `timeout`, in one trip where
    /// the queue allows (a pipelined round trip, one trip to the blocking
    /// pool). The first result is the settlement's (`Ok` when there was
    /// none). When the settlement finds the queue unavailable nothing is
    /// reserved, and the second result says so too ([`unavailable_after`]).
    async fn settle_and_reserve(
        &mut self,
        settle: Option<(u64, Settlement)>,
        watch: &[String],
        timeout: Duration,
    ) -> (Result<()>, Result<Option<Reservation>>);

    /// Waits up to `timeout` for a ready job of `watch`, and gives up,
    /// reserving nothing, once `stop` is cancelled.
    async fn reserve(
        &mut self,
        watch: &[String],
        timeout: Duration,
        stop: &CancellationToken,
    ) -> Result<Option<Reservation>>;

    /// Settles a job this handle reserved, on its own (the last one, when
    /// the runner stops).
    async fn settle(&mut self, id: u64, settlement: &Settlement) -> Result<()>;

    /// Restarts the TTR of a job this handle reserved: the lease.
    async fn touch(&mut self, id: u64) -> Result<()>;

    /// Moves a delayed job to ready at once (the second half of handing a
    /// job back at shutdown: released with a delay, then kicked, so that
    /// its `kicks` record that the reservation was not an attempt).
    async fn kick_job(&mut self, id: u64) -> Result<()>;

    /// Stores a job in `tube` (a handler's follow-ups and publishes).
    async fn put(&mut self, tube: &str, job: NewJob) -> Result<u64>;

    /// Makes the handle usable again after the queue was unavailable (a new
    /// connection; a fresh read of a store that failed). True when it
    /// replaced something, false when there was nothing to do.
    async fn reopen(&mut self) -> Result<bool>;

    /// Another handle on the same queue, for another worker.
    async fn another(&mut self) -> Result<Box<dyn Lease>>;

    /// Leadership for schedules on this queue, on a handle of its own
    /// (the runner's scheduler asks for it); `None` when the queue has none.
    async fn leadership(&mut self) -> Result<Option<Box<dyn Leadership>>> {
        Ok(None)
    }
}

/// The reserve half of a settle-and-reserve whose settlement found the
/// queue unavailable: nothing was reserved, and the reserve reports the same
/// outage, so the caller keeps the settlement and tries again later.
pub(crate) fn unavailable_after(settled: &Result<()>) -> Option<QueueError> {
    match settled {
        Err(QueueError::Unavailable(reason)) => Some(QueueError::Unavailable(reason.clone())),
        _ => None,
    }
}
