//! The [`Queue`] trait over the embedded file queue (`pulpo-filequeue`).
//!
//! The store's API is blocking (file locks, fsync, waiting reserves), so every
//! call runs on tokio's blocking pool; a handle is cheap to clone into it.
//! Each `FileQueueAdapter` is one handle: its reservations are its own, as a
//! beanstalkd connection's are.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pulpo_filequeue::{self as fq, FileQueue};
use serde_json::{Map, Value};

use super::leader::FileLeadership;
use super::lease::{Lease, unavailable_after};
use super::{
    Capabilities, Coverage, Job, JobStats, Leadership, Matcher, NewJob, Order, PeekState, Queue, QueueError,
    Reservation, Result, Scan, Scanned, Settlement, TubeStats,
};
use crate::config::Settings;

/// A file-queue handle behind the [`Queue`] trait.
#[derive(Debug, Clone)]
pub struct FileQueueAdapter {
    queue: FileQueue,
}

impl FileQueueAdapter {
    /// Opens (creating if needed) the queue of the settings' `[file]` table.
    /// A directory that cannot be used is [`QueueError::Unusable`]: waiting
    /// would not help.
    pub async fn open_with(settings: &Settings) -> Result<FileQueueAdapter> {
        let file = &settings.file;
        let options = fq::Options {
            fsync: file.fsync,
            max_job_size: file.max_job_size as usize,
            group: file.group,
            ..fq::Options::default()
        };
        FileQueueAdapter::open_options(&file.path, options)
            .await
            .map_err(|err| match err {
                QueueError::Unavailable(reason) => QueueError::Unusable(reason),
                other => other,
            })
    }

    /// Opens (creating if needed) the queue in `dir`.
    pub async fn open(dir: &Path, fsync: bool, max_job_size: usize) -> Result<FileQueueAdapter> {
        let options = fq::Options {
            fsync,
            max_job_size,
            ..fq::Options::default()
        };
        FileQueueAdapter::open_options(dir, options).await
    }

    /// Opens (creating if needed) the queue in `dir` with `options`.
    async fn open_options(dir: &Path, options: fq::Options) -> Result<FileQueueAdapter> {
        let dir = dir.to_owned();
        let queue = tokio::task::spawn_blocking(move || FileQueue::open(&dir, options))
            .await
            .map_err(join_error)?
            .map_err(map_error)?;
        Ok(FileQueueAdapter { queue })
    }

    /// Whether a call that waits at most `timeout` is quick enough to make
    /// right on the async thread instead of the blocking pool: with fsync
    /// off and no waiting, a call is an in-memory index update and at most
    /// one `write` to the page cache, shorter than the trip to another
    /// thread and back; now and then it also compacts the log, a few
    /// milliseconds. (A call that waits, or fsyncs, still goes to the
    /// blocking pool.)
    fn quick(&self, timeout: Duration) -> bool {
        timeout.is_zero() && !self.queue.options().fsync
    }

    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&FileQueue) -> fq::Result<T> + Send + 'static,
    ) -> Result<T> {
        let queue = self.queue.clone();
        tokio::task::spawn_blocking(move || op(&queue))
            .await
            .map_err(join_error)?
            .map_err(map_error)
    }
}

fn join_error(err: tokio::task::JoinError) -> QueueError {
    QueueError::Internal(format!("file queue task failed: {err}"))
}

fn map_error(err: fq::Error) -> QueueError {
    match err {
        fq::Error::NotFound { id } => QueueError::JobNotFound {
            id,
            operation: "this operation",
        },
        fq::Error::TubeNotFound { name } => QueueError::TubeNotFound { tube: name },
        fq::Error::JobTooBig { size, .. } => QueueError::JobTooBig { size },
        err @ (fq::Error::InvalidTube { .. } | fq::Error::InvalidOptions(_)) => {
            QueueError::InvalidArgument(err.to_string())
        }
        err @ (fq::Error::Io { .. } | fq::Error::Failed { .. }) => QueueError::Unavailable(err.to_string()),
        // Waiting will not help: the directory must be fixed, or the run started again.
        err @ (fq::Error::Permissions { .. } | fq::Error::Untrusted { .. } | fq::Error::Replaced { .. }) => {
            QueueError::Unusable(err.to_string())
        }
        err => QueueError::Internal(err.to_string()),
    }
}

/// Names the operation in a not-found error.
fn op(operation: &'static str) -> impl Fn(QueueError) -> QueueError {
    move |err| match err {
        QueueError::JobNotFound { id, .. } => QueueError::JobNotFound { id, operation },
        other => other,
    }
}

/// Settles a job on the store (runs on the blocking pool).
fn settle_now(q: &FileQueue, id: u64, settlement: &Settlement) -> Result<()> {
    let (result, operation) = match settlement {
        Settlement::Delete => (q.delete(id), "delete"),
        Settlement::Release {
            priority,
            delay,
            reason,
        } => (q.release(id, *priority, *delay, reason.as_deref()), "release"),
        Settlement::Bury { priority, reason } => (q.bury(id, *priority, reason.as_deref()), "bury"),
    };
    result.map_err(map_error).map_err(op(operation))
}

/// Reserves for the runner (runs on the blocking pool).
fn reserve_now(q: &FileQueue, watch: &[String], timeout: Duration) -> Result<Option<Reservation>> {
    let tubes: Vec<&str> = watch.iter().map(String::as_str).collect();
    let reserved = q.reserve(&tubes, Some(timeout)).map_err(map_error)?;
    Ok(reserved.map(reservation))
}

fn reservation(r: fq::Reserved) -> Reservation {
    Reservation {
        id: r.id,
        body: Bytes::from(r.body),
        tube: r.tube,
        priority: r.pri,
        ttr: r.ttr.max(Duration::from_secs(1)),
        reserves: r.reserves,
        kicks: r.kicks,
        // The file queue refuses too-big bodies at put.
        too_big: None,
        waited: Some(r.age),
    }
}

fn check_watch(watch: &[String]) -> Result<()> {
    if watch.is_empty() {
        return Err(QueueError::InvalidArgument(
            "the watch list is empty: watch at least one tube".to_owned(),
        ));
    }
    Ok(())
}

fn job(id: u64, body: Vec<u8>) -> Job {
    Job {
        id,
        body: Bytes::from(body),
    }
}

#[async_trait]
impl Queue for FileQueueAdapter {
    fn describe(&self) -> String {
        format!("file queue at {}", self.queue.dir().display())
    }

    async fn put(&mut self, tube: &str, new: NewJob) -> Result<u64> {
        let tube = tube.to_owned();
        self.blocking(move |q| q.put(&tube, new.priority, new.delay, new.ttr, &new.body))
            .await
    }

    async fn put_many(&mut self, tube: &str, jobs: Vec<NewJob>) -> Result<Vec<Result<u64>>> {
        let tube = tube.to_owned();
        // One lock and one commit for the batch; a refused job (too big) is
        // reported on its own, the others still go in.
        self.blocking(move |q| {
            let mut results: Vec<Option<Result<u64>>> = Vec::with_capacity(jobs.len());
            let mut batch = Vec::with_capacity(jobs.len());
            for new in &jobs {
                if new.body.len() > q.options().max_job_size {
                    results.push(Some(Err(QueueError::JobTooBig { size: new.body.len() })));
                } else {
                    results.push(None);
                    batch.push(fq::NewJob {
                        pri: new.priority,
                        delay: new.delay,
                        ttr: new.ttr,
                        body: &new.body,
                    });
                }
            }
            let mut ids = q.put_many(&tube, &batch)?.into_iter();
            Ok(results
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| {
                        ids.next().ok_or_else(|| {
                            QueueError::Internal("the file queue returned fewer ids than jobs put".to_owned())
                        })
                    })
                })
                .collect())
        })
        .await
    }

    async fn reserve(&mut self, watch: &[String], timeout: Duration) -> Result<Option<Job>> {
        check_watch(watch)?;
        let watch = watch.to_vec();
        self.blocking(move |q| {
            let tubes: Vec<&str> = watch.iter().map(String::as_str).collect();
            q.reserve(&tubes, Some(timeout))
                .map(|r| r.map(|r| job(r.id, r.body)))
        })
        .await
    }

    async fn delete(&mut self, id: u64) -> Result<()> {
        self.blocking(move |q| q.delete(id)).await.map_err(op("delete"))
    }

    async fn release(&mut self, id: u64, priority: u32, delay: Duration, reason: Option<&str>) -> Result<()> {
        let reason = reason.map(str::to_owned);
        self.blocking(move |q| q.release(id, priority, delay, reason.as_deref()))
            .await
            .map_err(op("release"))
    }

    async fn bury(&mut self, id: u64, priority: u32, reason: Option<&str>) -> Result<()> {
        let reason = reason.map(str::to_owned);
        self.blocking(move |q| q.bury(id, priority, reason.as_deref()))
            .await
            .map_err(op("bury"))
    }

    async fn touch(&mut self, id: u64) -> Result<()> {
        self.blocking(move |q| q.touch(id)).await.map_err(op("touch"))
    }

    async fn kick(&mut self, tube: &str, bound: u64) -> Result<u64> {
        let tube = tube.to_owned();
        self.blocking(move |q| q.kick(&tube, bound)).await
    }

    async fn kick_job(&mut self, id: u64) -> Result<()> {
        self.blocking(move |q| q.kick_job(id))
            .await
            .map_err(op("kick-job"))
    }

    async fn peek(&mut self, id: u64) -> Result<Job> {
        self.blocking(move |q| q.peek(id).map(|j| job(j.id, j.body)))
            .await
            .map_err(op("peek"))
    }

    async fn peek_state(&mut self, tube: &str, which: PeekState) -> Result<Option<Job>> {
        let tube = tube.to_owned();
        self.blocking(move |q| {
            let found = match which {
                PeekState::Ready => q.peek_ready(&tube),
                PeekState::Delayed => q.peek_delayed(&tube),
                PeekState::Buried => q.peek_buried(&tube),
            };
            found.map(|j| j.map(|j| job(j.id, j.body)))
        })
        .await
    }

    async fn stats_job(&mut self, id: u64) -> Result<JobStats> {
        self.blocking(move |q| q.stats_job(id))
            .await
            .map_err(op("stats-job"))
    }

    async fn stats_tube(&mut self, tube: &str) -> Result<TubeStats> {
        let tube = tube.to_owned();
        self.blocking(move |q| q.stats_tube(&tube)).await
    }

    async fn stats(&mut self) -> Result<Map<String, Value>> {
        let s = self.blocking(|q| q.stats()).await?;
        let mut map = Map::new();
        for (key, value) in [
            ("current-jobs-urgent", s.current_jobs_urgent),
            ("current-jobs-ready", s.current_jobs_ready),
            ("current-jobs-reserved", s.current_jobs_reserved),
            ("current-jobs-delayed", s.current_jobs_delayed),
            ("current-jobs-buried", s.current_jobs_buried),
            ("total-jobs", s.total_jobs),
            ("current-tubes", s.current_tubes),
            ("job-timeouts", s.job_timeouts),
            ("corrupt-records", s.corrupt_records),
            ("segment", s.segment),
            ("log-bytes", s.log_bytes),
            ("next-id", s.next_id),
        ] {
            map.insert(key.to_owned(), Value::from(value));
        }
        map.insert(
            "path".to_owned(),
            Value::from(self.queue.dir().display().to_string()),
        );
        Ok(map)
    }

    async fn list_tubes(&mut self) -> Result<Vec<String>> {
        self.blocking(|q| q.list_tubes()).await
    }

    async fn pause_tube(&mut self, tube: &str, duration: Duration) -> Result<()> {
        let tube = tube.to_owned();
        self.blocking(move |q| q.pause_tube(&tube, duration)).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { keeps_reasons: true }
    }

    async fn leadership(&mut self) -> Result<Option<Box<dyn Leadership>>> {
        Ok(Some(Box::new(FileLeadership::new(
            self.queue.dir(),
            self.queue.options().group,
            Box::new(self.clone()),
        ))))
    }

    async fn list_jobs(&mut self, scan: &Scan, matches: Matcher) -> Result<Scanned> {
        let scan = scan.clone();
        self.blocking(move |q| {
            let query = fq::ListQuery {
                tube: &scan.tube,
                state: scan.state,
                newest_first: scan.order == Order::Newest,
                after: scan.after,
                limit: scan.limit,
                budget: scan.budget,
            };
            let listed = q.list(&query, &*matches)?;
            Ok(Scanned {
                jobs: listed
                    .jobs
                    .into_iter()
                    .map(|(stats, body)| (stats, Bytes::from(body)))
                    .collect(),
                next: listed.next,
                looked: Coverage {
                    swept: false,
                    first: listed.first,
                    last: listed.last,
                    bounded: listed.bounded,
                },
            })
        })
        .await
    }
}

#[async_trait]
impl Lease for FileQueueAdapter {
    fn describe(&self) -> String {
        Queue::describe(self)
    }

    async fn settle(&mut self, id: u64, settlement: &Settlement) -> Result<()> {
        if self.quick(Duration::ZERO) {
            return settle_now(&self.queue, id, settlement);
        }
        let settlement = settlement.clone();
        let queue = self.queue.clone();
        tokio::task::spawn_blocking(move || settle_now(&queue, id, &settlement))
            .await
            .map_err(join_error)?
    }

    async fn reserve(
        &mut self,
        watch: &[String],
        timeout: Duration,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Option<Reservation>> {
        check_watch(watch)?;
        let watch = watch.to_vec();
        let queue = self.queue.clone();
        let stop = stop.clone();
        // Not dropped on stop: the blocked thread itself gives up, so no job
        // is reserved after the caller stopped waiting.
        tokio::task::spawn_blocking(move || {
            let tubes: Vec<&str> = watch.iter().map(String::as_str).collect();
            let reserved = queue
                .reserve_unless(&tubes, Some(timeout), &|| stop.is_cancelled())
                .map_err(map_error)?;
            Ok(reserved.map(reservation))
        })
        .await
        .map_err(join_error)?
    }

    async fn settle_and_reserve(
        &mut self,
        settle: Option<(u64, Settlement)>,
        watch: &[String],
        timeout: Duration,
    ) -> (Result<()>, Result<Option<Reservation>>) {
        if let Err(err) = check_watch(watch) {
            let settled = match settle {
                Some((id, settlement)) => self.settle(id, &settlement).await,
                None => Ok(()),
            };
            return (settled, Err(err));
        }
        let both = move |queue: &FileQueue, watch: &[String]| {
            let settled = match &settle {
                Some((id, settlement)) => settle_now(queue, *id, settlement),
                None => Ok(()),
            };
            if let Some(again) = unavailable_after(&settled) {
                return (settled, Err(again));
            }
            (settled, reserve_now(queue, watch, timeout))
        };
        if self.quick(timeout) {
            return both(&self.queue, watch);
        }
        let watch = watch.to_vec();
        let queue = self.queue.clone();
        // One trip to the blocking pool for both.
        let joined = tokio::task::spawn_blocking(move || both(&queue, &watch)).await;
        match joined {
            Ok(both) => both,
            Err(err) => (
                Err(join_error(err)),
                Err(QueueError::Internal("file queue task failed".to_owned())),
            ),
        }
    }

    async fn touch(&mut self, id: u64) -> Result<()> {
        Queue::touch(self, id).await
    }

    async fn kick_job(&mut self, id: u64) -> Result<()> {
        Queue::kick_job(self, id).await
    }

    async fn put(&mut self, tube: &str, job: NewJob) -> Result<u64> {
        Queue::put(self, tube, job).await
    }

    /// A handle whose store failed (an fsync error: the kernel may have
    /// dropped writes, so the store refuses to go on from memory) is
    /// replaced by a fresh one that reads the log again; others need
    /// nothing.
    async fn reopen(&mut self) -> Result<bool> {
        let probe = self.queue.clone();
        let failed = tokio::task::spawn_blocking(move || probe.list_tubes())
            .await
            .map_err(join_error)?;
        if let Err(fq::Error::Failed { .. }) = failed {
            let (dir, options) = (self.queue.dir().to_owned(), self.queue.options().clone());
            let queue = tokio::task::spawn_blocking(move || FileQueue::open(&dir, options))
                .await
                .map_err(join_error)?
                .map_err(map_error)?;
            tracing::warn!(dir = %queue.dir().display(), "reopened the file queue after a failure");
            self.queue = queue;
            return Ok(true);
        }
        Ok(false)
    }

    async fn another(&mut self) -> Result<Box<dyn Lease>> {
        Ok(Box::new(self.clone()))
    }

    async fn leadership(&mut self) -> Result<Option<Box<dyn Leadership>>> {
        Queue::leadership(self).await
    }
}

/// The file queue keeps job records in its own directory, durable as its
/// jobs are.
pub(crate) fn records_home(settings: &Settings) -> super::RecordsHome {
    super::RecordsHome {
        dir: Some(settings.file.path.join("history")),
        file: "records.sqlite".to_owned(),
        kept_with_the_jobs: true,
    }
}
