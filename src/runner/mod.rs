//! `pulpo run`: the config-driven runner. It reserves jobs from the watched
//! tubes with `concurrency` workers (each with its own queue handle, since a
//! reservation belongs to the connection that made it), routes each job to
//! the handler of its `request_type`, keeps the job's TTR lease alive while
//! the handler runs, and settles the job by the outcome table
//! ([`outcome`]).
//!
//! It stops in one of two ways, and loses no job either way:
//!
//! - **idle**: after `shutdown_after_number_of_empty_iterations` iterations
//!   of `sleep_duration` in a row with no job reserved or running
//!   ([`StopReason::Idle`]; `on_idle` decides whether the caller exits or
//!   [`run_until_stopped`] restarts);
//! - **shutdown**: when the token given to [`Runner::run`] is cancelled,
//!   workers stop reserving; handlers still running get `shutdown_timeout`,
//!   then are cancelled and their jobs handed back (ready at once, no
//!   attempt used up).
//!
//! A queue that goes away (beanstalkd restarting, a full disk) is retried
//! with back-off by each worker; jobs it held come back by themselves, and
//! the idle rule counts no iteration while it is away. A queue that cannot
//! be used any more ([`QueueError::Unusable`]: its directory removed or
//! replaced) ends the run with [`RunError::QueueLost`].

mod counters;
mod idle;
pub mod metered;
pub mod outcome;
mod phase;
mod schedules;
mod took;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use counters::{Counters, NOT_A_MESSAGE, Tally, render, total};
use idle::IdleRule;
use phase::{Phase, Phases};
use took::took;

use crate::config::{ConfigError, OnIdle, Settings};
use crate::handlers::Handler;
use crate::handlers::Registry;
use crate::history::{HistoryError, Recorder};
use crate::queue::{self, Lease, QueueError};

/// How often the counters are logged while the runner works.
pub const COUNTERS_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The longest a worker waits in one reserve call: stop requests and the
/// idle rule are looked at between calls, and beanstalkd 1.12 can miss
/// waking a waiting reserve when another worker's reservation times out.
pub const RESERVE_SLICE: Duration = Duration::from_secs(1);

/// The shortest iteration: a `sleep_duration` below it (`"0s"`) counts as
/// this, so an idle runner waits between looks instead of spinning.
pub const MIN_ITERATION: Duration = Duration::from_millis(100);

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// The idle rule: too many empty iterations in a row.
    Idle,
    /// The shutdown token was cancelled (SIGINT/SIGTERM).
    Shutdown,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// Why it ended.
    pub stop: StopReason,
    /// Counters by request type.
    pub counters: BTreeMap<String, Counters>,
    /// How long it ran.
    #[serde(with = "crate::duration::human")]
    pub elapsed: Duration,
    /// In-process restarts (`on_idle = "restart"`) before the end.
    pub restarts: u32,
}

/// Why the runner could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config or a handler table is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The queue could not be opened (and waiting would not help).
    #[error("cannot open the queue: {0}")]
    Queue(#[from] QueueError),
    /// The queue became unusable while the runner worked (its directory was removed, say):
    /// going on, or reopening it, could hand out ids a second time.
    #[error("the queue cannot be used any more: {0}")]
    QueueLost(QueueError),
    /// The job records cannot be opened.
    #[error("cannot open the job records: {0}")]
    History(#[from] HistoryError),
    /// Every worker failed (a bug; the log says how).
    #[error("every worker of the runner failed; see the log")]
    WorkersFailed,
}

/// What the workers share.
struct Shared {
    settings: Arc<Settings>,
    handlers: BTreeMap<String, Arc<dyn Handler>>,
    tally: Tally,
    /// Set when a worker reserves a job; the idle check clears it.
    active: AtomicBool,
    /// Workers holding a job right now.
    busy: AtomicUsize,
    /// Workers failing to reach the queue right now: an outage is not
    /// idleness, so the idle rule counts no iteration while one is.
    failing: AtomicUsize,
    phase: watch::Receiver<Phase>,
    /// Cancelled with the move to [`Phase::Stopping`]: waiting reserves give up.
    stopping: CancellationToken,
    /// Writes job records, when `[history]` is on.
    recorder: Option<Recorder>,
}

/// A runner built from settings and a handler registry.
pub struct Runner {
    settings: Arc<Settings>,
    handlers: BTreeMap<String, Arc<dyn Handler>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("queue", &self.settings.queue)
            .field("watch", &self.settings.watch)
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Runner {
    /// Builds every handler of `settings` from `registry`; a bad handler
    /// table is an error before anything runs.
    pub fn new(settings: Settings, registry: &Registry) -> Result<Runner, ConfigError> {
        let handlers = registry.build_all(&settings)?;
        Ok(Runner {
            settings: Arc::new(settings),
            handlers,
        })
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs until the idle rule or `shutdown` stops it.
    pub async fn run(self, shutdown: CancellationToken) -> Result<RunReport, RunError> {
        let started = Instant::now();
        let settings = self.settings.clone();
        let Some(mut queues) = open_queues(&settings, &shutdown).await? else {
            return Ok(RunReport {
                stop: StopReason::Shutdown,
                counters: BTreeMap::new(),
                elapsed: started.elapsed(),
                restarts: 0,
            });
        };
        let recorder = Recorder::start(&settings)?;
        let (phases, phase) = Phases::new();
        let shared = Arc::new(Shared {
            recorder,
            settings: settings.clone(),
            handlers: self.handlers,
            tally: Tally::default(),
            active: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            failing: AtomicUsize::new(0),
            phase,
            stopping: phases.stopping(),
        });
        info!(
            queue = %queues[0].describe(),
            watch = ?settings.watch,
            concurrency = settings.concurrency,
            handlers = ?shared.handlers.keys().collect::<Vec<_>>(),
            "runner started"
        );
        let scheduler = schedules::start(&settings, queues[0].as_mut(), phases.stopping()).await;
        let mut workers = JoinSet::new();
        for (n, queue) in queues.into_iter().enumerate() {
            workers.spawn(worker::run(shared.clone(), queue, n));
        }
        let stop = supervise(&shared, &phases, workers, &shutdown).await;
        phases.stop();
        if let Some(scheduler) = scheduler {
            let _ = scheduler.await;
        }
        if let Some(recorder) = &shared.recorder
            && let Err(err) = recorder.prune().await
        {
            warn!("could not prune job records: {err}");
        }
        let stop = stop?;
        let report = RunReport {
            stop,
            counters: shared.tally.snapshot(),
            elapsed: millis(started.elapsed()),
            restarts: 0,
        };
        let sum = total(&report.counters);
        info!(
            stop = ?report.stop,
            reserved = sum.reserved,
            succeeded = sum.succeeded,
            released = sum.released,
            buried = sum.buried,
            timed_out = sum.timed_out,
            elapsed = %took(report.elapsed),
            "runner stopped"
        );
        Ok(report)
    }
}

/// Watches the workers until they have all returned, moving the run
/// through its phases: on `shutdown` (or by the idle rule) to stopping,
/// and `shutdown_timeout` later to abandon. Logs the counters every
/// [`COUNTERS_LOG_INTERVAL`]. Returns why the run stopped.
async fn supervise(
    shared: &Shared,
    phases: &Phases,
    mut workers: JoinSet<Result<(), QueueError>>,
    shutdown: &CancellationToken,
) -> Result<StopReason, RunError> {
    let settings = &shared.settings;
    let count = workers.len();
    let mut stop = None;
    let mut abandon_at: Option<tokio::time::Instant> = None;
    let mut idle = IdleRule::new(settings.shutdown_after_number_of_empty_iterations);
    let iteration = settings.sleep_duration.max(MIN_ITERATION);
    let mut idle_tick = tokio::time::interval_at(tokio::time::Instant::now() + iteration, iteration);
    let mut counters_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + COUNTERS_LOG_INTERVAL,
        COUNTERS_LOG_INTERVAL,
    );
    let mut failed = 0;
    let mut lost = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled(), if stop.is_none() => {
                info!(
                    in_flight = shared.busy.load(Ordering::SeqCst),
                    shutdown_timeout = %took(settings.shutdown_timeout),
                    "shutting down: no more reserving; waiting for in-flight handlers"
                );
                stop = Some(StopReason::Shutdown);
                abandon_at = Some(tokio::time::Instant::now() + settings.shutdown_timeout);
                phases.stop();
            }
            _ = sleep_until_some(abandon_at) => {
                abandon_at = None;
                let running = shared.busy.load(Ordering::SeqCst);
                if running > 0 {
                    warn!(
                        in_flight = running,
                        "shutdown_timeout passed: cancelling in-flight handlers and releasing their jobs"
                    );
                }
                phases.abandon();
            }
            _ = idle_tick.tick(), if stop.is_none() => {
                // A job reserved or running, or the queue out of reach: not empty.
                let active = shared.active.swap(false, Ordering::SeqCst)
                    || shared.busy.load(Ordering::SeqCst) > 0
                    || shared.failing.load(Ordering::SeqCst) > 0;
                if idle.iteration(active) {
                    let empty_iterations = idle.empty_iterations();
                    info!(
                        empty_iterations,
                        sleep_duration = %took(settings.sleep_duration),
                        on_idle = %settings.on_idle,
                        "idle: no job for {empty_iterations} iterations in a row; stopping"
                    );
                    stop = Some(StopReason::Idle);
                    phases.stop();
                }
            }
            _ = counters_tick.tick() => log_counters_so_far(&shared.tally),
            joined = workers.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(err))) => {
                    // The queue cannot be used any more: the other workers stop as on a
                    // shutdown, and the run ends with the error (which the caller reports).
                    if lost.is_none() {
                        if stop.is_none() {
                            stop = Some(StopReason::Shutdown);
                            abandon_at = Some(tokio::time::Instant::now() + settings.shutdown_timeout);
                            phases.stop();
                        }
                        lost = Some(err);
                    }
                }
                Some(Err(err)) => {
                    failed += 1;
                    error!("a worker failed: {err}");
                }
            },
        }
    }
    if let Some(err) = lost {
        return Err(RunError::QueueLost(err));
    }
    if failed == count {
        return Err(RunError::WorkersFailed);
    }
    Ok(stop.unwrap_or(StopReason::Shutdown))
}

/// Logs the counters so far, once the runner has reserved anything.
fn log_counters_so_far(tally: &Tally) {
    let snapshot = tally.snapshot();
    let sum = total(&snapshot);
    if sum.reserved > 0 {
        info!(
            reserved = sum.reserved,
            succeeded = sum.succeeded,
            released = sum.released,
            buried = sum.buried,
            timed_out = sum.timed_out,
            "counters so far\n{}",
            render(&snapshot)
        );
    }
}

/// `duration` in whole milliseconds, for reports.
fn millis(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// The wait before try number `failures + 1` at an unavailable queue:
/// 100 ms, doubling, at most 5 s.
fn queue_backoff(failures: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(Duration::from_secs(5))
}

/// Waits out `delay`; false if `shutdown` came first.
async fn wait_unless_shut_down(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// Waits until `at`, or forever when there is no `at`.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Opens one queue handle per worker. A queue that is unavailable (a
/// beanstalkd that cannot be reached yet) is waited for with back-off
/// (logged); other failures are errors. `None`: shutdown came first.
async fn open_queues(
    settings: &Settings,
    shutdown: &CancellationToken,
) -> Result<Option<Vec<Box<dyn Lease>>>, RunError> {
    let mut failures = 0;
    let mut queues: Vec<Box<dyn Lease>> = Vec::with_capacity(settings.concurrency);
    while queues.len() < settings.concurrency {
        let opened = match queues.first_mut() {
            None => queue::open_lease(settings).await,
            Some(first) => first.another().await,
        };
        match opened {
            Ok(queue) => queues.push(queue),
            Err(QueueError::Unavailable(reason)) => {
                failures += 1;
                let delay = queue_backoff(failures);
                warn!("{reason}; retrying in {}", took(delay));
                if !wait_unless_shut_down(delay, shutdown).await {
                    return Ok(None);
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(Some(queues))
}

/// Runs, and with `on_idle = "restart"` restarts in-process after an idle
/// stop: `load` re-reads the settings (the config file may have changed),
/// the handlers are rebuilt and the queue reopened. Returns when a run ends
/// by shutdown, or by the idle rule with `on_idle = "exit"`. The counters of
/// every run are added up.
///
/// The first `load` must succeed. At a restart, settings that cannot be
/// loaded or whose handlers cannot be built (the config file removed or
/// half-written by a deploy) do not stop the runner and are not replaced by
/// defaults: it logs a warning and goes on with the settings it ran with,
/// trying again at the next restart. `load` should read the same source
/// each time (the CLI resolves an implicit `./pulpo.toml` to its path).
pub async fn run_until_stopped(
    mut load: impl FnMut() -> Result<Settings, ConfigError>,
    registry: &Registry,
    shutdown: CancellationToken,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let mut counters: BTreeMap<String, Counters> = BTreeMap::new();
    let mut restarts = 0;
    let mut running: Option<Settings> = None;
    loop {
        let runner = match (load().and_then(|s| Runner::new(s, registry)), running.take()) {
            (Ok(runner), _) => runner,
            (Err(err), None) => return Err(err.into()),
            (Err(err), Some(previous)) => {
                warn!("cannot re-read the config: {err}; keeping the running config");
                Runner::new(previous, registry)?
            }
        };
        running = Some(runner.settings().clone());
        let on_idle = runner.settings().on_idle;
        let report = runner.run(shutdown.clone()).await?;
        for (request_type, c) in &report.counters {
            counters.entry(request_type.clone()).or_default().add(c);
        }
        if report.stop == StopReason::Idle && on_idle == OnIdle::Restart && !shutdown.is_cancelled() {
            restarts += 1;
            info!(
                restarts,
                "on_idle = \"restart\": re-reading the config and starting again"
            );
            continue;
        }
        return Ok(RunReport {
            stop: report.stop,
            counters,
            elapsed: millis(started.elapsed()),
            restarts,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_backoff_doubles_from_100ms_to_5s() {
        let waits: Vec<u128> = (1..=8).map(|n| queue_backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(queue_backoff(u32::MAX), Duration::from_secs(5));
    }
}
