//! `pulpo-filequeue`: a durable, multi-process job queue in one directory, with beanstalkd's
//! semantics (tubes, priorities, delays, TTR, reserve / release / bury / kick / touch, peek,
//! stats, pause).
//!
//! ```no_run
//! use std::time::Duration;
//! use pulpo_filequeue::{FileQueue, Options};
//!
//! let q = FileQueue::open("./pulpo-data", Options::default())?;
//! let id = q.put("default", 1024, Duration::ZERO, Duration::from_secs(60), b"hello")?;
//! let job = q.reserve(&["default"], Some(Duration::from_secs(5)))?.expect("a job");
//! assert_eq!(job.id, id);
//! q.delete(job.id)?;
//! # Ok::<(), pulpo_filequeue::Error>(())
//! ```
//!
//! # On disk
//!
//! ```text
//! <dir>/            mode 0700 (2770 with Options::group); refused unless it and its parents
//!                   are safe (see trust.rs)
//!   lock            flock'ed around every transaction (catch-up + decide + append)
//!   run/sync        group commit (not data): "segment N durable up to X", the log's
//!                   published end, the leader's flock, and futex words (mapped by every
//!                   process) on which waiters and a gathering leader sleep
//!   log.<N>         the shared append-only log (highest N is current); see `src/format.rs`
//!   run/watch/<h>   the tubes handle <h> watches, held flock'ed while it lives
//!   corrupt/        files moved aside because they could not be used
//! ```
//!
//! Every process keeps, per directory, one in-memory index of all jobs (not their bodies) built
//! by replaying the log, shared by all its handles (see `shared.rs`), and catches up
//! incrementally on other processes' records under the lock before each command, so the cost of a command does not depend on the queue's depth. The log is compacted
//! (live jobs rewritten into `log.<N+1>`, `log.<N>` sealed and removed) when it is at least
//! [`Options::compact_min_bytes`] and less than half live.
//!
//! Durability: with [`Options::fsync`] (the default), `put`, `delete`, `release`, `bury`,
//! `kick`, `kick_job` and `pause_tube` return only once their record is on disk. Reservations
//! and touches are not waited for: losing one on power loss only returns a job early. Records are
//! framed with a CRC; segments are grown with zeros ahead of their data (so that an fdatasync
//! after an append need not write the file's size) and the log ends at the first zero frame
//! header; a torn tail left by a dead writer is truncated, damage in the middle is
//! skipped (and counted in [`QueueStats::corrupt_records`]), foreign segments are moved aside.
//!
//! # Where each mechanism lives
//!
//! ```text
//! queue.rs           the handle (FileQueue) and the commands
//! shared.rs          what the handles of one process share per directory (one index, one follower)
//! transaction.rs     one command = lock, catch up, decide, append, publish, unlock
//! group_commit.rs    waiting for the disk: the leader's fdatasync and the waiters
//! sync_file.rs       run/sync: its layout, the mark, the published end, the futex word
//! log.rs             the segments: open, catch up (replay), append
//! log/repair.rs      torn tails, damaged records, files moved to corrupt/
//! log/compaction.rs  rewriting the live jobs into the next segment
//! index.rs           the in-memory state of jobs and tubes, built from records
//! format.rs          the on-disk format of segments and records
//! notify.rs          waking blocked reserves (inotify)
//! watchers.rs        run/watch/: the tubes each live handle watches (so that they exist)
//! stats.rs           stats-job, stats-tube, stats, list-tubes
//! listing.rs         listing a tube's jobs in one state, by id, from the index
//! clock.rs           the time transactions decide by (a test can move it by hand)
//! dir.rs             the directory: the lock file, run/, opening and creating files
//! sync.rs            every fsync and fdatasync, named by its SyncPoint and counted
//! trust.rs           whom the queue trusts: owners, modes, parents, no links or special files
//! types.rs, error.rs what callers pass and get back
//! ```

mod clock;
mod dir;
mod error;
// Public only for the fuzz targets (`fuzz/`) and the format tests, which feed the decoder bytes
// of their own; not part of the API a queue user needs.
#[doc(hidden)]
pub mod format;
mod group_commit;
mod index;
mod listing;
mod log;
mod notify;
mod queue;
mod shared;
mod stats;
mod sync;
mod sync_file;
mod transaction;
mod trust;
mod types;
mod watchers;

#[doc(hidden)]
pub use clock::Clock;
pub use error::{Error, Result};
pub use listing::{ListQuery, Listed};
#[doc(hidden)]
pub use log::records_read;
pub use queue::{FileQueue, STOP_POLL};
#[doc(hidden)]
pub use sync::{SyncPoint, skip_for_tests, sync_count};
pub use transaction::Pending;
pub use types::{
    Job, JobState, JobStats, MAX_JOB_SIZE_LIMIT, NewJob, Options, QueueStats, Reserved, TubeStats,
    validate_tube,
};
