//! The [`Queue`] trait over a real beanstalkd, through `pulpo-beanstalkd`'s
//! client. Keeps the connection's `use` tube and watch list in step with what
//! each call names, sending `use`/`watch`/`ignore` only when they change.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pulpo_beanstalkd::proto::{ServerStats, StatsDocument};
use pulpo_beanstalkd::{Client, Command, ConnectOptions, Error, Reply, ServerError};
use serde_json::{Map, Value};

use super::leader::TokenLeadership;
use super::lease::{Lease, unavailable_after};
use super::{
    Capabilities, Job, JobStats, Leadership, Matcher, NewJob, PeekState, Queue, QueueError, Reservation,
    Result, Scan, Scanned, Settlement, TubeStats, whole_seconds_ceil,
};
use crate::config::Settings;

mod sweep;

/// A beanstalkd connection behind the [`Queue`] trait.
#[derive(Debug)]
pub struct BeanstalkdQueue {
    client: Client,
}

impl BeanstalkdQueue {
    /// Connects to the server of the settings' `[beanstalkd]` table, with
    /// its timeouts and body limit.
    pub async fn open(settings: &Settings) -> Result<BeanstalkdQueue> {
        let beanstalkd = &settings.beanstalkd;
        let options = ConnectOptions {
            connect_timeout: beanstalkd.connect_timeout,
            command_timeout: beanstalkd.command_timeout,
            max_body: beanstalkd.max_job_size as usize,
            ..ConnectOptions::default()
        };
        BeanstalkdQueue::connect_with(&beanstalkd.address, options).await
    }

    /// Opens the runner's first handle: as [`BeanstalkdQueue::open`], after
    /// making sure the process may open a connection for each of the
    /// `concurrency` workers ([`open_files::ensure`]).
    pub(crate) async fn open_for_runner(settings: &Settings) -> Result<BeanstalkdQueue> {
        open_files::ensure(settings.concurrency)?;
        BeanstalkdQueue::open(settings).await
    }

    /// Connects to `address` (`HOST:PORT` or `unix:/path`), failing after
    /// `connect_timeout`.
    pub async fn connect(address: &str, connect_timeout: Duration) -> Result<BeanstalkdQueue> {
        let options = ConnectOptions {
            connect_timeout,
            ..ConnectOptions::default()
        };
        BeanstalkdQueue::connect_with(address, options).await
    }

    async fn connect_with(address: &str, options: ConnectOptions) -> Result<BeanstalkdQueue> {
        let client = Client::connect_with(address, options)
            .await
            .map_err(|err| map_error(err, None, "connect"))?;
        Ok(BeanstalkdQueue { client })
    }

    /// Reserves like [`Queue::reserve`] and returns the job with its tube,
    /// priority, TTR and reserve count, from its `stats-job`. A job whose
    /// body is over the client's limit comes marked too big, without it.
    async fn reserve_for_run(&mut self, watch: &[String], timeout: Duration) -> Result<Option<Reservation>> {
        self.set_watch_list(watch).await?;
        match self
            .client
            .reserve_with_timeout(whole_seconds_ceil(timeout))
            .await
        {
            Ok(reserved) => self.reservation(reserved.id, Ok(reserved.body)).await.map(Some),
            Err(Error::JobTooBigToRead { id, len, .. }) => self.reservation(id, Err(len)).await.map(Some),
            Err(err) if err.is_timed_out() => Ok(None),
            Err(err) => Err(map_error(err, None, "reserve")),
        }
    }

    /// The reservation of job `id`, with its `stats-job`: its body, or the
    /// length of a body over the client's limit (skipped unread).
    async fn reservation(&mut self, id: u64, body: std::result::Result<Bytes, u64>) -> Result<Reservation> {
        let info = self.stats_job(id).await?;
        let limit = self.client.options().max_body;
        let (body, too_big) = match body {
            Ok(body) => (body, None),
            Err(len) => (Bytes::new(), Some(too_big_reason(len, limit))),
        };
        let mut reservation = Reservation::from_stats(Job { id, body }, info);
        reservation.too_big = too_big;
        Ok(reservation)
    }

    /// A new connection to the same server, with the same options.
    fn another_connection(&self) -> impl Future<Output = Result<BeanstalkdQueue>> + Send + use<> {
        let (address, options) = (self.client.address().to_string(), self.client.options().clone());
        async move { BeanstalkdQueue::connect_again(address, options).await }
    }

    async fn connect_again(address: String, options: ConnectOptions) -> Result<BeanstalkdQueue> {
        let client = Client::connect_with(&address, options)
            .await
            .map_err(|err| map_error(err, None, "connect"))?;
        Ok(BeanstalkdQueue { client })
    }

    async fn use_tube(&mut self, tube: &str) -> Result<()> {
        if self.client.used_tube().as_str() != tube {
            self.client
                .use_tube(tube)
                .await
                .map_err(|err| map_error(err, None, "use"))?;
        }
        Ok(())
    }

    async fn set_watch_list(&mut self, watch: &[String]) -> Result<()> {
        if watch.is_empty() {
            return Err(QueueError::InvalidArgument(
                "the watch list is empty: watch at least one tube".to_owned(),
            ));
        }
        let current: Vec<String> = self
            .client
            .watched()
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        for tube in watch {
            if !current.contains(tube) {
                self.client
                    .watch(tube)
                    .await
                    .map_err(|err| map_error(err, None, "watch"))?;
            }
        }
        for tube in current {
            if !watch.contains(&tube) {
                self.client
                    .ignore(&tube)
                    .await
                    .map_err(|err| map_error(err, None, "ignore"))?;
            }
        }
        Ok(())
    }
}

/// Why a job over the client's body limit is not run: its size, the limit
/// and the key that sets it.
fn too_big_reason(len: u64, limit: usize) -> String {
    format!(
        "its body of {len} bytes is over the limit of {limit} bytes ([beanstalkd] max_job_size); \
         raise max_job_size and kick the job to run it"
    )
}

/// Maps a client error to a queue error; `id` names the job the call was about.
fn map_error(err: Error, id: Option<u64>, operation: &'static str) -> QueueError {
    match err {
        Error::JobTooBigToRead { id, len, .. } => QueueError::Refused(format!(
            "job {id} has a body of {len} bytes, over [beanstalkd] max_job_size; raise max_job_size to read it"
        )),
        Error::CommandTimeout { .. } => QueueError::Unavailable(format!(
            "{err} (raise [beanstalkd] command_timeout to wait longer)"
        )),
        Error::Connect {
            ref source,
            ref address,
        } if open_files::exhausted(source) => QueueError::Unusable(format!(
            "cannot connect to beanstalkd at {address}: {source}; {}",
            open_files::ADVICE
        )),
        Error::Server {
            error: ServerError::NotFound,
            ..
        } => match id {
            Some(id) => QueueError::JobNotFound { id, operation },
            None => QueueError::Refused(format!("beanstalkd answered NOT_FOUND to {operation}")),
        },
        Error::Server {
            error: ServerError::JobTooBig,
            ..
        } => QueueError::JobTooBig { size: 0 },
        Error::BodyTooLarge { len, .. } => QueueError::JobTooBig { size: len },
        Error::Server {
            error: ServerError::Draining,
            ..
        } => QueueError::Refused(
            "beanstalkd is draining and accepts no new jobs; try another server or later".to_owned(),
        ),
        Error::Server {
            error: ServerError::OutOfMemory,
            ..
        } => QueueError::Refused("beanstalkd is out of memory; try again later".to_owned()),
        Error::Server {
            error: ServerError::DeadlineSoon,
            ..
        } => QueueError::Refused(
            "DEADLINE_SOON: a job this worker reserved is about to reach its TTR".to_owned(),
        ),
        Error::Server {
            error: ServerError::Buried { id },
            command,
        } => QueueError::Refused(format!(
            "beanstalkd buried job {id} on {command} (server out of memory)"
        )),
        Error::Protocol(p @ pulpo_beanstalkd::ProtocolError::InvalidTubeName { .. }) => {
            QueueError::InvalidArgument(p.to_string())
        }
        err @ (Error::Connect { .. }
        | Error::ConnectTimeout { .. }
        | Error::Closed { .. }
        | Error::Io { .. }
        | Error::InvalidAddress { .. }) => QueueError::Unavailable(err.to_string()),
        err => QueueError::Internal(err.to_string()),
    }
}

/// The command that carries out `settlement` on job `id`.
fn settle_command(id: u64, settlement: &Settlement) -> Command {
    match settlement {
        Settlement::Delete => Command::Delete { id },
        Settlement::Release { priority, delay, .. } => Command::Release {
            id,
            priority: *priority,
            delay: whole_seconds_ceil(*delay),
        },
        Settlement::Bury { priority, .. } => Command::Bury {
            id,
            priority: *priority,
        },
    }
}

/// Reads the reply to a settling command.
fn settle_reply(id: u64, settlement: &Settlement, reply: Reply) -> Result<()> {
    match (settlement, reply) {
        (Settlement::Delete, Reply::Deleted)
        | (Settlement::Release { .. }, Reply::Released)
        | (Settlement::Bury { .. }, Reply::Buried { id: None }) => Ok(()),
        (_, Reply::NotFound) => Err(QueueError::JobNotFound {
            id,
            operation: settlement.name(),
        }),
        (Settlement::Release { .. }, Reply::Buried { id: None }) => Err(QueueError::Refused(format!(
            "beanstalkd buried job {id} on release (server out of memory)"
        ))),
        (_, other) => Err(QueueError::Internal(format!(
            "beanstalkd answered {other:?} to {} {id}",
            settlement.name()
        ))),
    }
}

fn job_too_big(err: QueueError, size: usize) -> QueueError {
    match err {
        QueueError::JobTooBig { .. } => QueueError::JobTooBig { size },
        other => other,
    }
}

fn job(job: pulpo_beanstalkd::client::Job) -> Job {
    Job {
        id: job.id,
        body: job.body,
    }
}

/// The server's stats as ordered pairs, in beanstalkd's own key names.
fn server_stats(stats: &ServerStats) -> Map<String, Value> {
    // ServerStats writes itself as beanstalkd's YAML document; reading that
    // back into pairs keeps one list of the fields (in the adapter).
    let yaml = stats.to_yaml();
    let mut map = Map::new();
    for line in String::from_utf8_lossy(&yaml).lines() {
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        let value = value.trim();
        let value = if let Some(quoted) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Value::from(quoted)
        } else if let Ok(n) = value.parse::<u64>() {
            Value::from(n)
        } else if let Ok(f) = value.parse::<f64>() {
            Value::from(f)
        } else if let Ok(b) = value.parse::<bool>() {
            Value::from(b)
        } else {
            Value::from(value)
        };
        map.insert(key.to_owned(), value);
    }
    map
}

#[async_trait]
impl Queue for BeanstalkdQueue {
    fn describe(&self) -> String {
        format!("beanstalkd at {}", self.client.address())
    }

    async fn put(&mut self, tube: &str, job: NewJob) -> Result<u64> {
        self.use_tube(tube).await?;
        let size = job.body.len();
        self.client
            .put(
                job.priority,
                whole_seconds_ceil(job.delay),
                whole_seconds_ceil(job.ttr).max(1),
                job.body,
            )
            .await
            .map_err(|err| job_too_big(map_error(err, None, "put"), size))
    }

    async fn put_many(&mut self, tube: &str, jobs: Vec<NewJob>) -> Result<Vec<Result<u64>>> {
        self.use_tube(tube).await?;
        let sizes: Vec<usize> = jobs.iter().map(|job| job.body.len()).collect();
        let batch: Vec<pulpo_beanstalkd::client::PutJob> = jobs
            .into_iter()
            .map(|job| pulpo_beanstalkd::client::PutJob {
                priority: job.priority,
                delay: whole_seconds_ceil(job.delay),
                ttr: whole_seconds_ceil(job.ttr).max(1),
                body: job.body,
            })
            .collect();
        let results = self
            .client
            .put_batch(&batch)
            .await
            .map_err(|err| map_error(err, None, "put"))?;
        Ok(results
            .into_iter()
            .zip(sizes)
            .map(|(result, size)| result.map_err(|err| job_too_big(map_error(err, None, "put"), size)))
            .collect())
    }

    async fn reserve(&mut self, watch: &[String], timeout: Duration) -> Result<Option<Job>> {
        self.set_watch_list(watch).await?;
        match self
            .client
            .reserve_with_timeout(whole_seconds_ceil(timeout))
            .await
        {
            Ok(reserved) => Ok(Some(job(reserved))),
            Err(err) if err.is_timed_out() => Ok(None),
            Err(err) => Err(map_error(err, None, "reserve")),
        }
    }

    async fn delete(&mut self, id: u64) -> Result<()> {
        self.client
            .delete(id)
            .await
            .map_err(|err| map_error(err, Some(id), "delete"))
    }

    async fn release(
        &mut self,
        id: u64,
        priority: u32,
        delay: Duration,
        _reason: Option<&str>,
    ) -> Result<()> {
        // beanstalkd has nowhere to keep a reason; the runner logs it.
        self.client
            .release(id, priority, whole_seconds_ceil(delay))
            .await
            .map_err(|err| map_error(err, Some(id), "release"))
    }

    async fn bury(&mut self, id: u64, priority: u32, _reason: Option<&str>) -> Result<()> {
        self.client
            .bury(id, priority)
            .await
            .map_err(|err| map_error(err, Some(id), "bury"))
    }

    async fn touch(&mut self, id: u64) -> Result<()> {
        self.client
            .touch(id)
            .await
            .map_err(|err| map_error(err, Some(id), "touch"))
    }

    async fn kick(&mut self, tube: &str, bound: u64) -> Result<u64> {
        self.use_tube(tube).await?;
        self.client
            .kick(bound)
            .await
            .map_err(|err| map_error(err, None, "kick"))
    }

    async fn kick_job(&mut self, id: u64) -> Result<()> {
        self.client
            .kick_job(id)
            .await
            .map_err(|err| map_error(err, Some(id), "kick-job"))
    }

    async fn peek(&mut self, id: u64) -> Result<Job> {
        self.client
            .peek(id)
            .await
            .map(job)
            .map_err(|err| map_error(err, Some(id), "peek"))
    }

    async fn peek_state(&mut self, tube: &str, state: PeekState) -> Result<Option<Job>> {
        self.use_tube(tube).await?;
        let found = match state {
            PeekState::Ready => self.client.peek_ready().await,
            PeekState::Delayed => self.client.peek_delayed().await,
            PeekState::Buried => self.client.peek_buried().await,
        };
        match found {
            Ok(found) => Ok(Some(job(found))),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(map_error(err, None, "peek")),
        }
    }

    async fn stats_job(&mut self, id: u64) -> Result<JobStats> {
        self.client
            .stats_job(id)
            .await
            .map_err(|err| map_error(err, Some(id), "stats-job"))
    }

    async fn stats_tube(&mut self, tube: &str) -> Result<TubeStats> {
        match self.client.stats_tube(tube).await {
            Ok(stats) => Ok(stats),
            Err(err) if err.is_not_found() => Err(QueueError::TubeNotFound {
                tube: tube.to_owned(),
            }),
            Err(err) => Err(map_error(err, None, "stats-tube")),
        }
    }

    async fn stats(&mut self) -> Result<Map<String, Value>> {
        let stats = self
            .client
            .stats()
            .await
            .map_err(|err| map_error(err, None, "stats"))?;
        Ok(server_stats(&stats))
    }

    async fn list_tubes(&mut self) -> Result<Vec<String>> {
        let tubes = self
            .client
            .list_tubes()
            .await
            .map_err(|err| map_error(err, None, "list-tubes"))?;
        Ok(tubes.into_iter().map(|t| t.as_str().to_owned()).collect())
    }

    async fn pause_tube(&mut self, tube: &str, duration: Duration) -> Result<()> {
        match self.client.pause_tube(tube, whole_seconds_ceil(duration)).await {
            Ok(()) => Ok(()),
            Err(err) if err.is_not_found() => Err(QueueError::TubeNotFound {
                tube: tube.to_owned(),
            }),
            Err(err) => Err(map_error(err, None, "pause-tube")),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { keeps_reasons: false }
    }

    /// A token held reserved on a connection of its own.
    async fn leadership(&mut self) -> Result<Option<Box<dyn Leadership>>> {
        let own = self.another_connection().await?;
        Ok(Some(Box::new(TokenLeadership::new(Box::new(own)))))
    }

    /// beanstalkd cannot list: a bounded sweep over the ids ([`sweep`]).
    async fn list_jobs(&mut self, scan: &Scan, matches: Matcher) -> Result<Scanned> {
        self.sweep(scan, matches).await
    }

    /// beanstalkd pauses whole seconds: a pause is rounded up.
    fn applied_pause(&self, duration: Duration) -> Duration {
        Duration::from_secs(u64::from(whole_seconds_ceil(duration)))
    }
}

#[async_trait]
impl Lease for BeanstalkdQueue {
    fn describe(&self) -> String {
        Queue::describe(self)
    }

    async fn settle_and_reserve(
        &mut self,
        settle: Option<(u64, Settlement)>,
        watch: &[String],
        timeout: Duration,
    ) -> (Result<()>, Result<Option<Reservation>>) {
        let Some((id, settlement)) = settle else {
            return (Ok(()), self.reserve_for_run(watch, timeout).await);
        };
        if let Err(err) = self.set_watch_list(watch).await {
            let settled = Lease::settle(self, id, &settlement).await;
            let again = unavailable_after(&settled).unwrap_or(err);
            return (settled, Err(again));
        }
        // The settling command and the next reserve in one round trip.
        let commands = [
            settle_command(id, &settlement),
            Command::ReserveWithTimeout {
                timeout: whole_seconds_ceil(timeout),
            },
        ];
        let replies = match self.client.pipeline(&commands).await {
            Ok(replies) => replies,
            Err(err) => {
                let again = map_error(err, None, "reserve-with-timeout");
                let settled = QueueError::Unavailable(format!("{} (job {id} not settled)", again));
                return (Err(settled), Err(again));
            }
        };
        let mut replies = replies.into_iter();
        let settled = match replies.next() {
            Some(reply) => settle_reply(id, &settlement, reply),
            None => Err(QueueError::Internal("beanstalkd sent too few replies".to_owned())),
        };
        let reserved = match replies.next() {
            Some(Reply::Reserved { id, body }) => self.reservation(id, Ok(body)).await.map(Some),
            Some(Reply::ReservedTooBig { id, len }) => self.reservation(id, Err(len)).await.map(Some),
            Some(Reply::TimedOut | Reply::DeadlineSoon) => Ok(None),
            Some(other) => Err(QueueError::Internal(format!(
                "beanstalkd answered {other:?} to reserve-with-timeout"
            ))),
            None => Err(QueueError::Internal("beanstalkd sent too few replies".to_owned())),
        };
        (settled, reserved)
    }

    /// Drops the waiting call when `stop` comes, which leaves the connection
    /// unusable (a reply is owed): after a stop the runner drops the handle,
    /// and beanstalkd hands back anything it reserved in that instant.
    async fn reserve(
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

    async fn touch(&mut self, id: u64) -> Result<()> {
        Queue::touch(self, id).await
    }

    async fn kick_job(&mut self, id: u64) -> Result<()> {
        Queue::kick_job(self, id).await
    }

    async fn put(&mut self, tube: &str, job: NewJob) -> Result<u64> {
        Queue::put(self, tube, job).await
    }

    async fn reopen(&mut self) -> Result<bool> {
        self.client
            .reconnect()
            .await
            .map_err(|err| map_error(err, None, "connect"))?;
        Ok(true)
    }

    async fn another(&mut self) -> Result<Box<dyn Lease>> {
        Ok(Box::new(self.another_connection().await?))
    }

    async fn leadership(&mut self) -> Result<Option<Box<dyn Leadership>>> {
        Queue::leadership(self).await
    }
}

/// The open-file limit against the runner's connections: one per worker,
/// plus what a running `exec` handler holds (its pipes) and the process's
/// own files.
mod open_files {
    /// What a worker may hold at once: its connection and, while an `exec`
    /// handler runs, the parent's ends of the child's pipes.
    const PER_WORKER: u64 = 4;
    /// The process's own files: stdio, the runtime, config, logs.
    const HEADROOM: u64 = 64;

    /// What to do when the files run out.
    pub(super) const ADVICE: &str = "the process is out of open files: lower concurrency, or raise the open-file limit (ulimit -n, \
         or LimitNOFILE= in a systemd unit)";

    /// Whether connecting failed because the process (or the system) has no
    /// file descriptors left: waiting will not help.
    pub(super) fn exhausted(err: &std::io::Error) -> bool {
        matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }

    /// Makes sure `concurrency` workers fit under the open-file limit:
    /// raises the soft limit (up to the hard one) when it is too low, and
    /// fails with what to do when even the hard limit is too low.
    pub(super) fn ensure(concurrency: usize) -> crate::queue::Result<()> {
        let need = (concurrency as u64)
            .saturating_mul(PER_WORKER)
            .saturating_add(HEADROOM);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit(2) writes into the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return Ok(()); // Cannot tell: connecting will say if it fails.
        }
        if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= need {
            return Ok(());
        }
        if limit.rlim_max == libc::RLIM_INFINITY || limit.rlim_max >= need {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: setrlimit(2) reads the struct it is given.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                tracing::info!(
                    from = limit.rlim_cur,
                    to = limit.rlim_max,
                    "raised the open-file limit to its hard limit for concurrency = {concurrency}"
                );
                return Ok(());
            }
        }
        Err(crate::queue::QueueError::Unusable(format!(
            "concurrency = {concurrency} needs about {need} open files (a connection per worker and an \
             exec handler's pipes), but the open-file limit is {} (hard limit {}): lower concurrency, or \
             raise the limit (ulimit -n {need}, or LimitNOFILE= in a systemd unit)",
            limit.rlim_cur,
            if limit.rlim_max == libc::RLIM_INFINITY {
                "unlimited".to_owned()
            } else {
                limit.rlim_max.to_string()
            }
        )))
    }
}

/// beanstalkd has nowhere to keep records: they go in the machine's state
/// directory, one file per server address. The server forgets a deleted job
/// anyway, so records promise nothing past a crash of the runner and the
/// runner does not wait for them.
pub(crate) fn records_home(settings: &Settings) -> super::RecordsHome {
    let address: String = settings
        .beanstalkd
        .address
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    super::RecordsHome {
        dir: None,
        file: format!("beanstalkd-{address}.sqlite"),
        kept_with_the_jobs: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Out of file descriptors is not an outage: waiting does not help, so
    /// the runner must not retry it as "is the server running?".
    #[test]
    fn running_out_of_open_files_is_not_retried() {
        for errno in [libc::EMFILE, libc::ENFILE] {
            let err = Error::Connect {
                address: "127.0.0.1:11300".to_owned(),
                source: std::io::Error::from_raw_os_error(errno),
            };
            match map_error(err, None, "connect") {
                QueueError::Unusable(text) => {
                    assert!(
                        text.contains("lower concurrency") && text.contains("ulimit -n"),
                        "{text}"
                    )
                }
                other => panic!("{other:?}"),
            }
        }
        let refused = Error::Connect {
            address: "127.0.0.1:11300".to_owned(),
            source: std::io::Error::from_raw_os_error(libc::ECONNREFUSED),
        };
        assert!(matches!(
            map_error(refused, None, "connect"),
            QueueError::Unavailable(_)
        ));
    }
}
