//! Leadership for schedules: the optional ability of a queue to let one
//! process of many lead (fire the schedules' ticks) and to keep, on the
//! queue itself, the last tick each schedule fired. A caller asks a queue
//! for it ([`super::Queue::leadership`], [`super::Lease::leadership`]) and
//! never asks which queue it has.
//!
//! - The file queue: an exclusive `flock` on `schedules.lock` in the
//!   queue's directory (the kernel drops it when the process dies, however
//!   it dies), and the state in `schedules.json` there, replaced by tmp +
//!   fsync + rename + directory fsync.
//! - beanstalkd ([`TokenLeadership`]): one token job in the tube
//!   [`LEADER_TUBE`]; whoever holds it reserved leads, touching it while it
//!   leads. A leader killed with SIGKILL closes its connection and the server
//!   hands the token back at once (a leader that hangs loses it after
//!   [`TOKEN_TTR`]). The state is the newest job of [`STATE_TUBE`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{JobState, NewJob, PeekState, Queue, QueueError, Result};

/// The tube of the beanstalkd leader token.
pub const LEADER_TUBE: &str = "pulpo.schedules.leader";
/// The tube of the beanstalkd schedule state.
pub const STATE_TUBE: &str = "pulpo.schedules.state";
/// The token's TTR: how long a leader that stops touching it (hung, not
/// dead: a dead one's connection closes) keeps the lead.
pub const TOKEN_TTR: Duration = Duration::from_secs(5);

/// What one schedule fired last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    /// The tick (its time by the schedule) last fired or skipped.
    pub tick: DateTime<Utc>,
    /// The job it published; `None` while being published (or when the
    /// tick was skipped and no earlier job is known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<u64>,
}

/// The schedules' state a leader keeps on the queue: the last tick each
/// schedule fired, so that a new leader neither repeats nor skips a tick.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Grows with every store (beanstalkd: the newest state job wins).
    #[serde(default)]
    pub seq: u64,
    /// By schedule name.
    #[serde(default)]
    pub fired: BTreeMap<String, Fired>,
}

/// A queue's leadership for schedules: at most one holder at a time, among
/// all the processes on the queue.
#[async_trait]
pub trait Leadership: Send {
    /// Tries to take the lead without waiting; true when this handle leads
    /// (already led, or took it now).
    async fn try_lead(&mut self) -> Result<bool>;

    /// Confirms the lead is still this handle's and renews it for at least
    /// [`Leadership::hold`] from now; false when it was lost. A leader calls
    /// it right before firing, so that it never fires without the lead.
    async fn keep(&mut self) -> Result<bool>;

    /// How long a lead lasts after a [`Leadership::keep`] without another.
    fn hold(&self) -> Duration;

    /// Gives up the lead (at shutdown), for another process to take it.
    async fn resign(&mut self) -> Result<()>;

    /// The stored state (anyone may read it).
    async fn load(&mut self) -> Result<ScheduleState>;

    /// Stores the state durably (only the leader).
    async fn store(&mut self, state: &ScheduleState) -> Result<()>;

    /// Publishes a fired job into `tube`.
    async fn put(&mut self, tube: &str, job: NewJob) -> Result<u64>;

    /// The state of job `id`, `None` when it is gone.
    async fn job_state(&mut self, id: u64) -> Result<Option<JobState>>;
}

/// The file queue's leadership: a lock file and a state file in its directory.
pub(crate) struct FileLeadership {
    dir: PathBuf,
    mode: u32,
    lock: Option<File>,
    queue: Box<dyn Queue>,
}

impl FileLeadership {
    /// Leadership over the queue in `dir`; `group` as the queue's `[file] group`.
    pub(crate) fn new(dir: &Path, group: bool, queue: Box<dyn Queue>) -> FileLeadership {
        FileLeadership {
            dir: dir.to_owned(),
            mode: if group { 0o660 } else { 0o600 },
            lock: None,
            queue,
        }
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("schedules.json")
    }
}

fn io_error(what: &str, path: &Path, err: std::io::Error) -> QueueError {
    QueueError::Unavailable(format!("cannot {what} {}: {err}", path.display()))
}

#[async_trait]
impl Leadership for FileLeadership {
    async fn try_lead(&mut self) -> Result<bool> {
        if self.lock.is_some() {
            return Ok(true);
        }
        let path = self.dir.join("schedules.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(self.mode)
            .open(&path)
            .map_err(|err| io_error("open", &path, err))?;
        // SAFETY: flock(2) on a descriptor this File owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            self.lock = Some(file);
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(false)
        } else {
            Err(io_error("lock", &path, err))
        }
    }

    async fn keep(&mut self) -> Result<bool> {
        // A flock is held until this process closes it or dies.
        Ok(self.lock.is_some())
    }

    fn hold(&self) -> Duration {
        Duration::MAX
    }

    async fn resign(&mut self) -> Result<()> {
        self.lock = None;
        Ok(())
    }

    async fn load(&mut self) -> Result<ScheduleState> {
        let path = self.state_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| {
                QueueError::Unusable(format!(
                    "{} is not a schedule state ({err}); remove it to start the schedules afresh",
                    path.display()
                ))
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(ScheduleState::default()),
            Err(err) => Err(io_error("read", &path, err)),
        }
    }

    async fn store(&mut self, state: &ScheduleState) -> Result<()> {
        let bytes = serde_json::to_vec(state).map_err(|err| QueueError::Internal(err.to_string()))?;
        let (dir, mode) = (self.dir.clone(), self.mode);
        // fsync waits on the disk: off the async threads.
        tokio::task::spawn_blocking(move || replace_durably(&dir, "schedules.json", &bytes, mode))
            .await
            .map_err(|err| QueueError::Internal(format!("schedule state task failed: {err}")))?
    }

    async fn put(&mut self, tube: &str, job: NewJob) -> Result<u64> {
        self.queue.put(tube, job).await
    }

    async fn job_state(&mut self, id: u64) -> Result<Option<JobState>> {
        job_state(self.queue.as_mut(), id).await
    }
}

/// Replaces `dir/name` with `bytes`: tmp + fsync + rename + directory fsync.
fn replace_durably(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|err| io_error("write", &tmp, err))?;
    file.write_all(bytes)
        .map_err(|err| io_error("write", &tmp, err))?;
    file.sync_all().map_err(|err| io_error("sync", &tmp, err))?;
    std::fs::rename(&tmp, &path).map_err(|err| io_error("replace", &path, err))?;
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| io_error("sync", dir, err))
}

async fn job_state(queue: &mut dyn Queue, id: u64) -> Result<Option<JobState>> {
    match queue.stats_job(id).await {
        Ok(stats) => Ok(Some(stats.state)),
        Err(QueueError::JobNotFound { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Leadership by a token job held reserved on a queue whose reservations
/// end with the holder's connection (beanstalkd), over the queue's own
/// verbs; its own connection, since the token belongs to it.
pub(crate) struct TokenLeadership {
    queue: Box<dyn Queue>,
    token: Option<u64>,
    /// The state jobs this handle knows of (deleted once a newer is stored).
    state_jobs: Vec<u64>,
}

impl TokenLeadership {
    /// Leadership on `queue`, a connection of its own.
    pub(crate) fn new(queue: Box<dyn Queue>) -> TokenLeadership {
        TokenLeadership {
            queue,
            token: None,
            state_jobs: Vec::new(),
        }
    }

    /// Jobs in `tube` in any state.
    async fn jobs_in(&mut self, tube: &str) -> Result<u64> {
        match self.queue.stats_tube(tube).await {
            Ok(stats) => Ok(stats.current_jobs_ready
                + stats.current_jobs_reserved
                + stats.current_jobs_delayed
                + stats.current_jobs_buried),
            Err(QueueError::TubeNotFound { .. }) => Ok(0),
            Err(err) => Err(err),
        }
    }

    /// Gives up the token when another exists: two runners that both found
    /// none and both put one. Each deletes its own; one puts a new one later.
    async fn alone(&mut self) -> Result<bool> {
        if self.jobs_in(LEADER_TUBE).await? <= 1 {
            return Ok(true);
        }
        if let Some(token) = self.token.take() {
            let _ = self.queue.delete(token).await;
        }
        Ok(false)
    }
}

#[async_trait]
impl Leadership for TokenLeadership {
    async fn try_lead(&mut self) -> Result<bool> {
        if self.token.is_some() {
            return self.keep().await;
        }
        let watch = [LEADER_TUBE.to_owned()];
        if let Some(job) = self.queue.reserve(&watch, Duration::ZERO).await? {
            self.token = Some(job.id);
            return self.alone().await;
        }
        if self.jobs_in(LEADER_TUBE).await? == 0 {
            // Nobody holds or offers a token: make one, after a random pause
            // so that runners started together seldom both do.
            let pause = Duration::from_millis((crate::runner::outcome::random_fraction() * 300.0) as u64);
            tokio::time::sleep(pause).await;
            if self.jobs_in(LEADER_TUBE).await? == 0 {
                let token = NewJob {
                    priority: 0,
                    delay: Duration::ZERO,
                    ttr: TOKEN_TTR,
                    body: Bytes::from_static(b"pulpo schedules leader token"),
                };
                self.queue.put(LEADER_TUBE, token).await?;
            }
        }
        Ok(false)
    }

    async fn keep(&mut self) -> Result<bool> {
        let Some(token) = self.token else {
            return Ok(false);
        };
        match self.queue.touch(token).await {
            Ok(()) => self.alone().await,
            Err(QueueError::JobNotFound { .. }) => {
                self.token = None;
                Ok(false)
            }
            Err(err) => {
                self.token = None;
                Err(err)
            }
        }
    }

    fn hold(&self) -> Duration {
        TOKEN_TTR
    }

    async fn resign(&mut self) -> Result<()> {
        if let Some(token) = self.token.take() {
            // Released, not deleted: the next runner takes it at once.
            self.queue.release(token, 0, Duration::ZERO, None).await?;
        }
        Ok(())
    }

    async fn load(&mut self) -> Result<ScheduleState> {
        let Some(job) = self.queue.peek_state(STATE_TUBE, PeekState::Ready).await? else {
            return Ok(ScheduleState::default());
        };
        self.state_jobs = vec![job.id];
        serde_json::from_slice(&job.body).map_err(|err| {
            QueueError::Unusable(format!(
                "job {} in tube {STATE_TUBE} is not a schedule state ({err}); delete it to start the \
                 schedules afresh",
                job.id
            ))
        })
    }

    async fn store(&mut self, state: &ScheduleState) -> Result<()> {
        let body = serde_json::to_vec(state).map_err(|err| QueueError::Internal(err.to_string()))?;
        // The newest state is the most urgent: peek-ready finds it first
        // even when an older one is left by a leader that died in between.
        let priority = u32::MAX - u32::try_from(state.seq % u64::from(u32::MAX)).unwrap_or(0);
        let job = NewJob {
            priority,
            delay: Duration::ZERO,
            ttr: Duration::from_secs(1),
            body: Bytes::from(body),
        };
        let id = self.queue.put(STATE_TUBE, job).await?;
        for old in std::mem::take(&mut self.state_jobs) {
            match self.queue.delete(old).await {
                Ok(()) | Err(QueueError::JobNotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        self.state_jobs.push(id);
        Ok(())
    }

    async fn put(&mut self, tube: &str, job: NewJob) -> Result<u64> {
        self.queue.put(tube, job).await
    }

    async fn job_state(&mut self, id: u64) -> Result<Option<JobState>> {
        job_state(self.queue.as_mut(), id).await
    }
}
