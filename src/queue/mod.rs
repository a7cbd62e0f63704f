//! The queue interfaces, split by their users, with beanstalkd's semantics:
//! [`Queue`], the beanstalkd verbs, for the CLI, the servers and the
//! conformance suite; [`Lease`], the runner's small interface; and
//! [`Capabilities`], the optional abilities a caller asks a queue for. One
//! implementation per adapter crate sits in a submodule, and [`open`] and
//! [`open_lease`] pick one from the settings.
//!
//! The trait is stateless where beanstalkd is stateful: every call names its
//! tube (or watch list), and an implementation keeps whatever connection state
//! it needs (beanstalkd's `use` and watch list) behind it.

pub mod beanstalkd;
pub mod file;
pub mod leader;
mod lease;
pub mod listing;
pub mod retry;

pub use leader::{Fired, Leadership, ScheduleState};
pub use lease::Lease;
pub use listing::{Coverage, Matcher, Order, Scan, Scanned};

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
    /// Times the queue has reserved it, this time included, counted by the
    /// queue so a crashed worker's attempt counts.
    pub reserves: u32,
    /// Times it has been kicked: by an operator, or by a runner handing it
    /// back at shutdown. Each gives back one attempt ([`Reservation::attempt`]).
    pub kicks: u32,
    /// Set when the body is over the limit this handle reads (so `body` is
    /// empty): why, naming the limit. The runner buries such a job unrun.
    pub too_big: Option<String>,
    /// How long it waited since it was put (delay included), where the queue
    /// says: the runner's queue-wait metric.
    pub waited: Option<Duration>,
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
            kicks: info.kicks,
            too_big: None,
            waited: Some(info.age),
        }
    }

    /// The attempt number: reservations (this one included) less kicks, at
    /// least 1. A runner hands a job back at shutdown by releasing and
    /// kicking it, so a graceful shutdown does not use up an attempt, and
    /// an operator's kick gives a buried job one more try.
    pub fn attempt(&self) -> u32 {
        self.reserves.saturating_sub(self.kicks).max(1)
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
        "job of {size} bytes is too big for the queue; make the body smaller or raise the limit \
         (max_job_size in the queue's [file] or [beanstalkd] table, and beanstalkd's -z)"
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
    /// The queue cannot be opened as configured (an unsafe, unreadable or
    /// damaged directory): waiting will not help; the cause must be fixed.
    #[error("{0}")]
    Unusable(String),
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

    /// Stores many jobs in `tube`, pipelined or in one commit where the
    /// queue allows; one result per job, in order. An outer error means the
    /// queue was lost partway (jobs before it may be stored).
    async fn put_many(&mut self, tube: &str, jobs: Vec<NewJob>) -> Result<Vec<Result<u64>>>;

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

    /// The optional abilities of this queue.
    fn capabilities(&self) -> Capabilities;

    /// Leadership for schedules on this queue, on a handle of its own:
    /// `None` when the queue has no way to let one process of many lead.
    async fn leadership(&mut self) -> Result<Option<Box<dyn Leadership>>> {
        Ok(None)
    }

    /// One page of the jobs of a tube in one state, by id, that `matches` accepts: from an
    /// index where the queue keeps one, else by a bounded sweep over the ids. Callers use
    /// [`crate::jobs::list`], which builds the filter.
    async fn list_jobs(&mut self, scan: &Scan, matches: Matcher) -> Result<Scanned>;

    /// The pause [`Queue::pause_tube`] applies when asked for `duration`:
    /// the same, or rounded up where the queue counts coarser units, so
    /// that callers can say what was applied.
    fn applied_pause(&self, duration: Duration) -> Duration {
        duration
    }
}

/// The optional abilities a queue has or lacks. Callers ask for one; they
/// never branch on which queue they hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// It keeps the reason of a job's last release or bury, and shows it in
    /// [`JobStats::reason`] (the file queue does; beanstalkd has nowhere to
    /// keep one).
    pub keeps_reasons: bool,
}

/// Opens the queue the settings name, for the beanstalkd verbs.
pub async fn open(settings: &Settings) -> Result<Box<dyn Queue>> {
    Ok(match settings.queue {
        QueueKind::Beanstalkd => Box::new(beanstalkd::BeanstalkdQueue::open(settings).await?),
        QueueKind::File => Box::new(file::FileQueueAdapter::open_with(settings).await?),
    })
}

/// Opens the queue the settings name, as the runner's first worker handle.
pub async fn open_lease(settings: &Settings) -> Result<Box<dyn Lease>> {
    Ok(match settings.queue {
        QueueKind::Beanstalkd => Box::new(beanstalkd::BeanstalkdQueue::open_for_runner(settings).await?),
        QueueKind::File => Box::new(file::FileQueueAdapter::open_with(settings).await?),
    })
}

/// Where a queue's job records live (`[history]`), as the queue decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsHome {
    /// The records' directory when the queue has one of its own; `None`
    /// means the machine's state directory.
    pub dir: Option<std::path::PathBuf>,
    /// The store's file name in that directory.
    pub file: String,
    /// Whether records are kept as the jobs are, so that the runner commits
    /// a job's record before it settles the job (a deleted job then always
    /// has its record).
    pub kept_with_the_jobs: bool,
}

/// Where job records live for the queue the settings name.
pub fn records_home(settings: &Settings) -> RecordsHome {
    match settings.queue {
        QueueKind::Beanstalkd => beanstalkd::records_home(settings),
        QueueKind::File => file::records_home(settings),
    }
}

/// Whole seconds for a protocol field, rounding up (a delay or TTR is never
/// shorter than asked) and saturating at `u32::MAX`.
pub fn whole_seconds_ceil(duration: Duration) -> u32 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}
