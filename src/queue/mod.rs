//! The queue interface every pulpo command and the runner work through, with
//! beanstalkd's semantics; one implementation per adapter crate sits in a
//! submodule, and [`open`] picks one from the settings.
//!
//! The trait is stateless where beanstalkd is stateful: every call names its
//! tube (or watch list), and an implementation keeps whatever connection state
//! it needs (beanstalkd's `use` and watch list) behind it.

pub mod beanstalkd;
pub mod file;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
pub use pulpo_model::{JobState, JobStats, TubeStats};

use crate::config::{QueueKind, Settings};

/// A result with a [`QueueError`].
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// A job to store: its body and how the queue should schedule it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// 0 is most urgent, `u32::MAX` least.
    pub priority: u32,
    /// How long the job waits in the delayed state before it is ready.
    pub delay: Duration,
    /// How long a worker may hold the job once reserved (at least 1 s).
    pub ttr: Duration,
    /// The job body, usually a message's JSON.
    pub body: Bytes,
}

/// A job as a queue hands it out: its id and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The queue's job id.
    pub id: u64,
    /// The body as it was put.
    pub body: Bytes,
}

/// Which job `peek-ready`, `peek-delayed` or `peek-buried` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeekState {
    /// The next job a reserve would get.
    Ready,
    /// The delayed job with the least delay left.
    Delayed,
    /// The next buried job a kick would revive.
    Buried,
}

/// A job reserved for running, with what the runner needs to run and
/// settle it: where it came from, its priority and TTR, and how many times
/// the queue has handed it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The queue's job id.
    pub id: u64,
    /// The body as it was put.
    pub body: Bytes,
    /// The tube it was reserved from.
    pub tube: String,
    /// Its priority (kept on release and bury).
    pub priority: u32,
    /// Its time-to-run: the lease the runner keeps renewing.
    pub ttr: Duration,
    /// Times the queue has reserved it, this time included: the attempt
    /// number, counted by the queue so a crashed worker's attempt counts.
    pub reserves: u32,
}

impl Reservation {
    /// A reservation from the reserved job and its `stats-job`.
    pub fn from_stats(job: Job, info: JobStats) -> Reservation {
        Reservation {
            id: job.id,
            body: job.body,
            tube: info.tube,
            priority: info.pri,
            ttr: Duration::from_secs(info.ttr.as_secs().max(1)),
            reserves: info.reserves,
        }
    }
}

/// How a reserved job is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Remove it.
    Delete,
    /// Put it back, ready at once or after `delay`.
    Release {
        /// Its priority from now on.
        priority: u32,
        /// How long it stays delayed.
        delay: Duration,
        /// Why, where the queue can store it.
        reason: Option<String>,
    },
    /// Set it aside until kicked.
    Bury {
        /// Its priority from now on.
        priority: u32,
        /// Why, where the queue can store it.
        reason: Option<String>,
    },
}

impl Settlement {
    /// The operation's name for logs: `delete`, `release` or `bury`.
    pub fn name(&self) -> &'static str {
        match self {
            Settlement::Delete => "delete",
            Settlement::Release { .. } => "release",
            Settlement::Bury { .. } => "bury",
        }
    }
}

/// Everything a queue operation can fail with, by cause.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No job with this id, or not in a state the operation allows (e.g.
    /// deleting a job another worker holds).
    #[error("job {id} not found (or not in a state that allows {operation})")]
    JobNotFound {
        /// The job id.
        id: u64,
        /// The operation that looked for it.
        operation: &'static str,
    },
    /// A tube that does not exist (stats-tube, pause).
    #[error("tube {tube:?} not found")]
    TubeNotFound {
        /// The tube name.
        tube: String,
    },
    /// The job body exceeds the queue's maximum job size.
    #[error(
        "job of {size} bytes is too big for the queue (max-job-size); make the body smaller or raise the queue's limit"
    )]
    JobTooBig {
        /// The body's size in bytes.
        size: usize,
    },
    /// A tube name or another argument the queue refuses; nothing was sent.
    #[error("{0}")]
    InvalidArgument(String),
    /// The queue is not reachable (connect failed, connection lost); retry
    /// later.
    #[error("{0}")]
    Unavailable(String),
    /// The queue refused the operation for a reason of its own (draining,
    /// out of memory, a job reserved by this worker is about to time out).
    #[error("{0}")]
    Refused(String),
    /// The queue misbehaved (a protocol violation, a bug).
    #[error("{0}")]
    Internal(String),
}

/// A queue with beanstalkd's semantics.
///
/// Methods take `&mut self`: an implementation may hold one connection whose
/// replies come in order, and reserved jobs belong to the connection that
/// reserved them, so the caller serializes its calls.
#[async_trait]
pub trait Queue: Send {
    /// A short description for messages, e.g. `beanstalkd at 127.0.0.1:11300`.
    fn describe(&self) -> String;

    /// Stores a job in `tube`; returns its id once the queue has it.
    async fn put(&mut self, tube: &str, job: NewJob) -> Result<u64>;

    /// Stores many jobs in `tube`, pipelined where the queue allows; one
    /// result per job, in order. An outer error means the queue was lost
    /// partway (jobs before it may be stored).
    async fn put_many(&mut self, tube: &str, jobs: Vec<NewJob>) -> Result<Vec<Result<u64>>> {
        let mut ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            ids.push(self.put(tube, job).await);
        }
        Ok(ids)
    }

    /// Reserves the most urgent ready job of the `watch` tubes, waiting up to
    /// `timeout` for one (zero: do not wait); `None` when none came.
    async fn reserve(&mut self, watch: &[String], timeout: Duration) -> Result<Option<Job>>;

    /// Deletes a job (reserved by this caller, or ready, delayed or buried).
    async fn delete(&mut self, id: u64) -> Result<()>;

    /// Puts a reserved job back, ready or after `delay`, with `reason` kept
    /// where the queue can store it.
    async fn release(&mut self, id: u64, priority: u32, delay: Duration, reason: Option<&str>) -> Result<()>;

    /// Buries a reserved job, with `reason` kept where the queue can store it.
    async fn bury(&mut self, id: u64, priority: u32, reason: Option<&str>) -> Result<()>;

    /// Restarts the TTR of a job this caller has reserved.
    async fn touch(&mut self, id: u64) -> Result<()>;

    /// Kicks up to `bound` jobs of `tube` (buried ones if any, else delayed
    /// ones); returns how many.
    async fn kick(&mut self, tube: &str, bound: u64) -> Result<u64>;

    /// Kicks one buried or delayed job.
    async fn kick_job(&mut self, id: u64) -> Result<()>;

    /// The job with this id, in any state.
    async fn peek(&mut self, id: u64) -> Result<Job>;

    /// The next job of `tube` in `state`, if any.
    async fn peek_state(&mut self, tube: &str, state: PeekState) -> Result<Option<Job>>;

    /// A job's statistics.
    async fn stats_job(&mut self, id: u64) -> Result<JobStats>;

    /// A tube's statistics.
    async fn stats_tube(&mut self, tube: &str) -> Result<TubeStats>;

    /// The whole queue's statistics as ordered `name: value` pairs (the
    /// fields differ between queues).
    async fn stats(&mut self) -> Result<serde_json::Map<String, serde_json::Value>>;

    /// The names of all existing tubes.
    async fn list_tubes(&mut self) -> Result<Vec<String>>;

    /// Holds back reservations from `tube` for `duration`.
    async fn pause_tube(&mut self, tube: &str, duration: Duration) -> Result<()>;

    /// Settles a job this caller reserved.
    async fn settle(&mut self, id: u64, settlement: &Settlement) -> Result<()> {
        match settlement {
            Settlement::Delete => self.delete(id).await,
            Settlement::Release {
                priority,
                delay,
                reason,
            } => self.release(id, *priority, *delay, reason.as_deref()).await,
            Settlement::Bury { priority, reason } => self.bury(id, *priority, reason.as_deref()).await,
        }
    }

    /// Reserves like [`Queue::reserve`] and returns the job with its tube,
    /// priority, TTR and reserve count.
    async fn reserve_for_run(&mut self, watch: &[String], timeout: Duration) -> Result<Option<Reservation>> {
        let Some(job) = self.reserve(watch, timeout).await? else {
            return Ok(None);
        };
        let info = self.stats_job(job.id).await?;
        Ok(Some(Reservation::from_stats(job, info)))
    }

    /// [`Queue::reserve_for_run`] that gives up, reserving nothing, once
    /// `stop` is cancelled. The default drops the waiting call, which leaves
    /// a beanstalkd connection unusable (a reply is owed): after a stop the
    /// caller drops the handle, and beanstalkd hands back anything it
    /// reserved in that instant. Queues that cannot drop a waiting call
    /// safely (the file queue's blocked thread) override it.
    async fn reserve_until_stopped(
        &mut self,
        watch: &[String],
        timeout: Duration,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Option<Reservation>> {
        if stop.is_cancelled() {
            return Ok(None);
        }
        tokio::select! {
            reserved = self.reserve_for_run(watch, timeout) => reserved,
            _ = stop.cancelled() => Ok(None),
        }
    }

    /// Settles `settle` (if any), then reserves the next job as
    /// [`Queue::reserve_for_run`] does; queues that can send both at once
    /// (a pipelined round trip, one trip to the blocking pool) do. The first
    /// result is the settlement's (`Ok` when there was none).
    async fn settle_and_reserve(
        &mut self,
        settle: Option<(u64, Settlement)>,
        watch: &[String],
        timeout: Duration,
    ) -> (Result<()>, Result<Option<Reservation>>) {
        let settled = match &settle {
            Some((id, settlement)) => self.settle(*id, settlement).await,
            None => Ok(()),
        };
        if let Err(err @ QueueError::Unavailable(_)) = &settled {
            let again = QueueError::Unavailable(err.to_string());
            return (settled, Err(again));
        }
        (settled, self.reserve_for_run(watch, timeout).await)
    }

    /// Replaces a lost connection with a new one (restoring tubes); a queue
    /// without connections has nothing to do.
    async fn reconnect(&mut self) -> Result<()> {
        Ok(())
    }

    /// Another handle on the same queue for a concurrent worker: a new
    /// connection (beanstalkd), or a clone sharing the store (file queue).
    /// Reservations belong to the handle that made them.
    async fn another(&mut self) -> Result<Box<dyn Queue>>;
}

/// Opens the queue the settings name.
pub async fn open(settings: &Settings) -> Result<Box<dyn Queue>> {
    match settings.queue {
        QueueKind::Beanstalkd => {
            let queue = beanstalkd::BeanstalkdQueue::connect(
                &settings.beanstalkd.address,
                settings.beanstalkd.connect_timeout,
            )
            .await?;
            Ok(Box::new(queue))
        }
        QueueKind::File => {
            let queue = file::FileQueueAdapter::open(
                &settings.file.path,
                settings.file.fsync,
                settings.file.max_job_size as usize,
            )
            .await?;
            Ok(Box::new(queue))
        }
    }
}

/// Whole seconds for a protocol field, rounding up (a delay or TTR is never
/// shorter than asked) and saturating at `u32::MAX`.
pub fn whole_seconds_ceil(duration: Duration) -> u32 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}
