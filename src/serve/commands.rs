//! Each command's answer, as beanstalkd 1.12 gives it, from the connection's own file-queue
//! handle and the server's shared counts. The file queue's API blocks: a call that may wait
//! (for a group commit, or in a reserve) runs on the blocking pool, any other on the
//! connection's task (see [`Conn::call`]).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pulpo_beanstalkd::proto::{
    Command, RESERVE_FOREVER, Reply, ServerStats, StatsDocument, TubeName, TubeStats, tube_list_to_yaml,
};
use pulpo_filequeue::{Error, FileQueue, NewJob, Pending};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::connection::{Conn, Held, MAX_BUFFERED_WHILE_WAITING};
use super::shared::Ref;

/// beanstalkd's safety margin: in the last second of a reservation, a reserve answers
/// `DEADLINE_SOON` rather than wait.
const SAFETY_MARGIN: Duration = Duration::from_secs(1);

/// The reply for a queue error: beanstalkd's `NOT_FOUND` where it has one, else
/// `INTERNAL_ERROR` (logged: the disk, not the client, is at fault).
fn failed(err: Error) -> Reply {
    match err {
        Error::NotFound { .. } | Error::TubeNotFound { .. } => Reply::NotFound,
        other => {
            tracing::warn!(error = %other, "a command failed on the file queue");
            Reply::InternalError
        }
    }
}

fn panicked() -> Error {
    Error::InvalidOptions("a queue call panicked".to_owned())
}

/// Runs a queue call on this task; a panic in it is an error for the command (as on the
/// blocking pool), not the end of the connection's task.
fn here<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| Err(panicked()))
}

fn secs(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

impl Conn {
    /// Runs `f` on this connection's queue handle. A call that may wait for the disk (a
    /// change that must be durable, on a queue that fsyncs: it waits for its group commit)
    /// runs on the blocking pool, so that its wait never holds an async worker; any other
    /// call holds the queue's lock for microseconds and runs here, sparing two thread
    /// hand-offs per command (most of a command's cost on loopback).
    async fn call<T: Send + 'static>(
        &self,
        durable: bool,
        f: impl FnOnce(&FileQueue) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        if !(durable && self.queue.options().fsync) {
            return here(|| f(&self.queue));
        }
        let queue = self.queue.clone();
        match tokio::task::spawn_blocking(move || f(&queue)).await {
            Ok(result) => result,
            Err(_) => Err(panicked()),
        }
    }

    /// Makes a change that must be durable: `f` appends it here, and the server's committer
    /// waits for its group commit (with fsync) while this task awaits, holding no thread.
    async fn durably<T>(
        &self,
        f: impl FnOnce(&FileQueue) -> Result<(T, Option<Pending>), Error>,
    ) -> Result<T, Error> {
        let (value, pending) = here(|| f(&self.queue))?;
        if let Some(pending) = pending {
            self.committer.wait(pending).await?;
        }
        Ok(value)
    }

    /// [`Conn::call`] for a change that must be durable.
    async fn durable<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FileQueue) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.call(true, f).await
    }

    /// [`Conn::call`] for a look or a change that need not wait for the disk.
    async fn quick<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FileQueue) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.call(false, f).await
    }

    /// Forgets reservations whose TTR has run out (the queue gave them back).
    fn expire(&mut self) {
        let now = Instant::now();
        self.held.retain(|_, h| h.deadline > now);
    }

    /// The end of this connection's soonest reservation.
    fn soonest_deadline(&mut self) -> Option<Instant> {
        self.expire();
        self.held.values().map(|h| h.deadline).min()
    }

    /// Answers consecutive puts (a client's pipelined ones, buffered together) with one
    /// transaction and so one fdatasync: their replies, in order, are those of one put at a time.
    pub(crate) async fn put_batch(&mut self, puts: Vec<Command>) -> Vec<Reply> {
        self.set_producer();
        let n = puts.len() as u64;
        self.shared.with(|c| *c.cmds.entry("put").or_default() += n);
        if self.shared.draining() {
            return vec![Reply::Draining; puts.len()];
        }
        let tube = self.used.clone();
        let result = self
            .durably(move |q| {
                let jobs: Vec<NewJob<'_>> = puts
                    .iter()
                    .filter_map(|cmd| match cmd {
                        Command::Put {
                            priority,
                            delay,
                            ttr,
                            body,
                        } => Some(NewJob {
                            pri: *priority,
                            delay: secs(*delay),
                            ttr: secs((*ttr).max(1)),
                            body,
                        }),
                        _ => None,
                    })
                    .collect();
                q.put_many_deferred(&tube, &jobs)
            })
            .await;
        match result {
            Ok(ids) => ids.into_iter().map(|id| Reply::Inserted { id }).collect(),
            Err(err) => vec![failed(err); n as usize],
        }
    }

    /// Answers consecutive deletes with one transaction (one fdatasync), in order.
    pub(crate) async fn delete_batch(&mut self, deletes: Vec<Command>) -> Vec<Reply> {
        let n = deletes.len() as u64;
        self.shared.with(|c| *c.cmds.entry("delete").or_default() += n);
        let ids: Vec<u64> = deletes
            .iter()
            .filter_map(|cmd| match cmd {
                Command::Delete { id } => Some(*id),
                _ => None,
            })
            .collect();
        let asked = ids.clone();
        match self.durably(move |q| q.delete_many_deferred(&asked)).await {
            Ok(done) => ids
                .into_iter()
                .zip(done)
                .map(|(id, done)| match done {
                    Ok(()) => {
                        self.held.remove(&id);
                        Reply::Deleted
                    }
                    Err(err) => failed(err),
                })
                .collect(),
            Err(err) => {
                let reply = failed(err);
                vec![reply; ids.len()]
            }
        }
    }

    /// Answers as many of consecutive reserves as there are jobs ready, with one transaction;
    /// returns their replies (fewer than `reserves` when fewer jobs were ready: the next
    /// reserve must then wait, through [`Conn::reserve`]).
    pub(crate) async fn reserve_ready(&mut self, reserves: &[Command]) -> Vec<Reply> {
        self.set_worker();
        let watch = self.watch.clone();
        let max = reserves.len();
        let jobs = match self.quick(move |q| q.reserve_ready(&refs(&watch), max)).await {
            Ok(jobs) => jobs,
            Err(err) => {
                // Each reserve gets the error, as one at a time would.
                for cmd in reserves {
                    self.shared.count(cmd.name());
                }
                let reply = failed(err);
                return vec![reply; reserves.len()];
            }
        };
        for cmd in &reserves[..jobs.len()] {
            self.shared.count(cmd.name());
        }
        jobs.into_iter().map(|job| self.reserved(job)).collect()
    }

    /// Answers every command but quit and the reserves.
    pub(crate) async fn run(&mut self, cmd: Command) -> Reply {
        if !matches!(cmd, Command::Put { .. } | Command::Delete { .. }) {
            // put_batch and delete_batch count theirs.
            self.shared.count(cmd.name());
        }
        match cmd {
            put @ Command::Put { .. } => {
                let mut replies = self.put_batch(vec![put]).await;
                replies.pop().unwrap_or(Reply::InternalError)
            }
            Command::Use { tube } => {
                let tube = tube.as_str().to_owned();
                self.shared.tube_ref(std::slice::from_ref(&tube), Ref::Using, 1);
                self.shared
                    .tube_ref(&[std::mem::replace(&mut self.used, tube)], Ref::Using, -1);
                Reply::Using {
                    tube: self.used_name(),
                }
            }
            Command::ListTubeUsed => Reply::Using {
                tube: self.used_name(),
            },
            Command::Watch { tube } => {
                let tube = tube.as_str().to_owned();
                if !self.watch.contains(&tube) {
                    self.shared
                        .tube_ref(std::slice::from_ref(&tube), Ref::Watching, 1);
                    self.watch.push(tube);
                }
                Reply::Watching {
                    count: self.watch.len() as u64,
                }
            }
            Command::Ignore { tube } => {
                if let Some(at) = self.watch.iter().position(|t| t == tube.as_str()) {
                    if self.watch.len() < 2 {
                        return Reply::NotIgnored;
                    }
                    let gone = self.watch.remove(at);
                    self.shared.tube_ref(&[gone], Ref::Watching, -1);
                }
                Reply::Watching {
                    count: self.watch.len() as u64,
                }
            }
            Command::ListTubesWatched => Reply::Ok {
                data: yaml_list(&self.watch),
            },
            delete @ Command::Delete { .. } => {
                let mut replies = self.delete_batch(vec![delete]).await;
                replies.pop().unwrap_or(Reply::InternalError)
            }
            Command::Release { id, priority, delay } => {
                if !self.holds(id) {
                    return Reply::NotFound;
                }
                match self
                    .durable(move |q| q.release(id, priority, secs(delay), None))
                    .await
                {
                    Ok(()) => {
                        self.held.remove(&id);
                        Reply::Released
                    }
                    Err(err) => failed(err),
                }
            }
            Command::Bury { id, priority } => {
                if !self.holds(id) {
                    return Reply::NotFound;
                }
                match self.durable(move |q| q.bury(id, priority, None)).await {
                    Ok(()) => {
                        self.held.remove(&id);
                        Reply::Buried { id: None }
                    }
                    Err(err) => failed(err),
                }
            }
            Command::Touch { id } => {
                if !self.holds(id) {
                    return Reply::NotFound;
                }
                match self.quick(move |q| q.touch(id)).await {
                    Ok(()) => {
                        if let Some(h) = self.held.get_mut(&id) {
                            h.deadline = Instant::now() + h.ttr;
                        }
                        Reply::Touched
                    }
                    Err(err) => failed(err),
                }
            }
            Command::Peek { id } => found(self.quick(move |q| q.peek(id).map(Some)).await),
            Command::PeekReady => {
                let tube = self.used.clone();
                found(self.quick(move |q| q.peek_ready(&tube)).await)
            }
            Command::PeekDelayed => {
                let tube = self.used.clone();
                found(self.quick(move |q| q.peek_delayed(&tube)).await)
            }
            Command::PeekBuried => {
                let tube = self.used.clone();
                found(self.quick(move |q| q.peek_buried(&tube)).await)
            }
            Command::Kick { bound } => {
                let tube = self.used.clone();
                match self.durable(move |q| q.kick(&tube, bound)).await {
                    Ok(count) => Reply::Kicked { count: Some(count) },
                    Err(err) => failed(err),
                }
            }
            Command::KickJob { id } => match self.durable(move |q| q.kick_job(id)).await {
                Ok(()) => Reply::Kicked { count: None },
                Err(err) => failed(err),
            },
            Command::StatsJob { id } => match self.quick(move |q| q.stats_job(id)).await {
                Ok(stats) => Reply::Ok {
                    data: Bytes::from(stats.to_yaml()),
                },
                Err(err) => failed(err),
            },
            Command::StatsTube { tube } => self.stats_tube(tube).await,
            Command::Stats => self.stats().await,
            Command::ListTubes => match self.quick(|q| q.list_tubes()).await {
                Ok(mut tubes) => {
                    self.shared.with(|c| {
                        for name in c.tubes.keys() {
                            if !tubes.contains(name) {
                                tubes.push(name.clone());
                            }
                        }
                    });
                    Reply::Ok {
                        data: yaml_list(&tubes),
                    }
                }
                Err(err) => failed(err),
            },
            Command::PauseTube { tube, delay } => {
                let name = tube.as_str().to_owned();
                let known = self.shared.refs(&name).is_some();
                let delay = secs(delay.max(1));
                match self
                    .durable(move |q| {
                        if !known && !q.list_tubes()?.contains(&name) {
                            return Err(Error::TubeNotFound { name });
                        }
                        q.pause_tube(&name, delay)
                    })
                    .await
                {
                    Ok(()) => Reply::Paused,
                    Err(err) => failed(err),
                }
            }
            Command::ReserveJob { id } => {
                // Like beanstalkd, no DEADLINE_SOON here: reserve-job never waits.
                match self.quick(move |q| q.reserve_job(id)).await {
                    Ok(job) => {
                        self.set_worker();
                        self.reserved(job)
                    }
                    Err(err) => failed(err),
                }
            }
            Command::Quit | Command::Reserve | Command::ReserveWithTimeout { .. } => {
                unreachable!("answered by the connection")
            }
        }
    }

    /// Whether this connection holds `id` reserved (its TTR not yet over).
    fn holds(&mut self, id: u64) -> bool {
        self.expire();
        self.held.contains_key(&id)
    }

    fn used_name(&self) -> TubeName {
        TubeName::new(self.used.clone()).expect("the used tube was checked when it was named")
    }

    async fn stats_tube(&mut self, tube: TubeName) -> Reply {
        let name = tube.as_str().to_owned();
        let refs = self.shared.refs(&name);
        let asked = name.clone();
        let stats = match self.quick(move |q| q.stats_tube(&asked)).await {
            Ok(stats) => stats,
            Err(Error::TubeNotFound { .. }) if refs.is_some() => TubeStats {
                name: name.clone(),
                current_jobs_urgent: 0,
                current_jobs_ready: 0,
                current_jobs_reserved: 0,
                current_jobs_delayed: 0,
                current_jobs_buried: 0,
                total_jobs: 0,
                current_using: 0,
                current_watching: 0,
                current_waiting: 0,
                cmd_delete: 0,
                cmd_pause_tube: 0,
                pause: Duration::ZERO,
                pause_time_left: Duration::ZERO,
            },
            Err(err) => return failed(err),
        };
        let refs = refs.unwrap_or_default();
        let stats = TubeStats {
            current_using: refs.using,
            current_watching: refs.watching,
            current_waiting: refs.waiting,
            ..stats
        };
        Reply::Ok {
            data: Bytes::from(stats.to_yaml()),
        }
    }

    async fn stats(&mut self) -> Reply {
        let queue = match self.quick(|q| q.stats()).await {
            Ok(stats) => stats,
            Err(err) => return failed(err),
        };
        let shared = &self.shared;
        let (utime, stime) = rusage();
        let (hostname, os, platform) = uname();
        let stats = shared.with(|c| {
            let n = |name: &str| c.cmds.get(name).copied().unwrap_or(0);
            ServerStats {
                current_jobs_urgent: queue.current_jobs_urgent,
                current_jobs_ready: queue.current_jobs_ready,
                current_jobs_reserved: queue.current_jobs_reserved,
                current_jobs_delayed: queue.current_jobs_delayed,
                current_jobs_buried: queue.current_jobs_buried,
                cmd_put: n("put"),
                cmd_peek: n("peek"),
                cmd_peek_ready: n("peek-ready"),
                cmd_peek_delayed: n("peek-delayed"),
                cmd_peek_buried: n("peek-buried"),
                cmd_reserve: n("reserve"),
                cmd_reserve_with_timeout: n("reserve-with-timeout"),
                cmd_delete: n("delete"),
                cmd_release: n("release"),
                cmd_use: n("use"),
                cmd_watch: n("watch"),
                cmd_ignore: n("ignore"),
                cmd_bury: n("bury"),
                cmd_kick: n("kick"),
                cmd_touch: n("touch"),
                cmd_stats: n("stats"),
                cmd_stats_job: n("stats-job"),
                cmd_stats_tube: n("stats-tube"),
                cmd_list_tubes: n("list-tubes"),
                cmd_list_tube_used: n("list-tube-used"),
                cmd_list_tubes_watched: n("list-tubes-watched"),
                cmd_pause_tube: n("pause-tube"),
                job_timeouts: queue.job_timeouts,
                total_jobs: queue.total_jobs,
                max_job_size: shared.max_job_size(),
                current_tubes: (queue.current_tubes).max(c.tubes.len() as u64),
                current_connections: c.connections,
                current_producers: c.producers,
                current_workers: c.workers,
                current_waiting: c.waiting,
                total_connections: c.total_connections,
                pid: u64::from(std::process::id()),
                version: concat!("pulpo-", env!("CARGO_PKG_VERSION")).to_owned(),
                rusage_utime: utime,
                rusage_stime: stime,
                uptime: shared.uptime_secs(),
                binlog_oldest_index: 0,
                binlog_current_index: 0,
                binlog_records_migrated: 0,
                binlog_records_written: 0,
                binlog_max_size: 0,
                draining: shared.draining(),
                id: shared.id().to_owned(),
                hostname,
                os,
                platform,
            }
        });
        Reply::Ok {
            data: Bytes::from(stats.to_yaml()),
        }
    }

    /// `reserve` and `reserve-with-timeout`: takes a ready job at once, else waits on the
    /// blocking pool, reading (and keeping)
    /// what the client sends meanwhile so that a hang-up ends the wait. A client that
    /// half-closes while it waits gets `TIMED_OUT` (beanstalkd's `STATE_WAIT` on a hang-up);
    /// the commands it sent before are still answered, then the connection closes.
    pub(crate) async fn reserve<S: AsyncRead + Unpin>(
        &mut self,
        cmd: &Command,
        stream: &mut S,
        input: &mut BytesMut,
    ) -> Reply {
        self.shared.count(cmd.name());
        self.set_worker();
        let timeout = match cmd {
            Command::ReserveWithTimeout { timeout } if *timeout != RESERVE_FOREVER => Some(secs(*timeout)),
            _ => None,
        };
        let watch = self.watch.clone();
        let now = Instant::now();
        let margin = self
            .soonest_deadline()
            .map(|d| d.saturating_duration_since(now + SAFETY_MARGIN));
        // Most reserves find a job ready: taken here, with no trip to the blocking pool.
        let w = watch.clone();
        match self
            .quick(move |q| q.reserve(&refs(&w), Some(Duration::ZERO)))
            .await
        {
            Ok(Some(job)) => return self.reserved(job),
            Ok(None) => {}
            Err(err) => return failed(err),
        }
        if margin == Some(Duration::ZERO) {
            // In the safety margin, and no job ready.
            return Reply::DeadlineSoon;
        }
        let wait = match (timeout, margin) {
            (Some(t), Some(m)) => Some(t.min(m)),
            (t, m) => t.or(m),
        };
        if wait == Some(Duration::ZERO) {
            return Reply::TimedOut;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let queue = self.queue.clone();
        let w = watch.clone();
        self.shared.tube_ref(&watch, Ref::Waiting, 1);
        self.shared.with(|c| c.waiting += 1);
        let mut task = tokio::task::spawn_blocking(move || {
            queue.reserve_unless(&refs(&w), wait, &|| {
                stop2.load(std::sync::atomic::Ordering::Relaxed)
            })
        });
        let mut hung_up = false;
        let result = loop {
            let reading = !hung_up && input.len() < MAX_BUFFERED_WHILE_WAITING;
            tokio::select! {
                result = &mut task => break result,
                _ = self.shutdown.cancelled(), if !stop.load(std::sync::atomic::Ordering::Relaxed) => {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                read = stream.read_buf(input), if reading => {
                    if matches!(read, Ok(0) | Err(_)) {
                        hung_up = true;
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        };
        self.shared.tube_ref(&watch, Ref::Waiting, -1);
        self.shared.with(|c| c.waiting -= 1);
        match result {
            Ok(Ok(Some(job))) => self.reserved(job),
            Ok(Ok(None)) if hung_up || self.shutdown.is_cancelled() => Reply::TimedOut,
            Ok(Ok(None)) => {
                let soon = self
                    .soonest_deadline()
                    .is_some_and(|d| d <= Instant::now() + SAFETY_MARGIN);
                if soon {
                    Reply::DeadlineSoon
                } else {
                    Reply::TimedOut
                }
            }
            Ok(Err(err)) => failed(err),
            Err(_) => Reply::InternalError,
        }
    }

    fn reserved(&mut self, job: pulpo_filequeue::Reserved) -> Reply {
        self.held.insert(
            job.id,
            Held {
                deadline: Instant::now() + job.ttr,
                ttr: job.ttr,
                pri: job.pri,
            },
        );
        Reply::Reserved {
            id: job.id,
            body: Bytes::from(job.body),
        }
    }
}

fn refs(tubes: &[String]) -> Vec<&str> {
    tubes.iter().map(String::as_str).collect()
}

fn found(result: Result<Option<pulpo_filequeue::Job>, Error>) -> Reply {
    match result {
        Ok(Some(job)) => Reply::Found {
            id: job.id,
            body: Bytes::from(job.body),
        },
        Ok(None) => Reply::NotFound,
        Err(err) => failed(err),
    }
}

fn yaml_list(tubes: &[String]) -> Bytes {
    let names: Vec<TubeName> = tubes
        .iter()
        .filter_map(|t| TubeName::new(t.clone()).ok())
        .collect();
    Bytes::from(tube_list_to_yaml(&names))
}

/// User and system CPU seconds of this process.
fn rusage() -> (f64, f64) {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(ru.ru_utime), s(ru.ru_stime))
}

/// The node name, OS version and machine, as beanstalkd reports them from uname.
fn uname() -> (String, String, String) {
    // SAFETY: uname only writes into the struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return Default::default();
    }
    let s = |field: &[libc::c_char]| {
        let bytes: Vec<u8> = field.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (s(&u.nodename), s(&u.version), s(&u.machine))
}
