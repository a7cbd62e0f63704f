//! One worker: a loop of reserve → run → settle on its own queue handle.
//! The settlement of a job goes out together with the next reserve (one
//! round trip on beanstalkd, one trip to the blocking pool on the file
//! queue). While a handler runs, the worker keeps the job's lease alive and
//! serves the handler's `touch` and `publish` requests on the same handle.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{Instrument, debug, info, warn};

use super::counters::NOT_A_MESSAGE;
use super::metered;
use super::outcome::{self, Count, Facts, Happened, random_fraction, too_many_attempts};
use super::phase::{Phase, reached};
use super::took::took;
use super::{MIN_ITERATION, RESERVE_SLICE, Shared, queue_backoff};
use crate::config::HandlerSettings;
use crate::handlers::{BoxFuture, Context, JobServices, Outcome, printable};
use crate::history::{Attempt, Change, Event, JobRef, MAX_EVENTS};
use crate::message::Message;
use crate::publish::prepare;
use crate::queue::{Lease, QueueError, Reservation, Settlement};

/// The shortest interval between lease renewals.
const MIN_TOUCH_INTERVAL: Duration = Duration::from_millis(200);

/// How often a running handler's job is touched: a third of its TTR, so
/// two renewals can fail or run late before the lease ends.
pub(super) fn touch_interval(ttr: Duration) -> Duration {
    (ttr / 3).max(MIN_TOUCH_INTERVAL)
}

/// How long a job handed back at shutdown stays delayed if its kick does
/// not follow (the runner lost the queue in between): one second, the
/// least a delay can be on beanstalkd.
const HAND_BACK_DELAY: Duration = Duration::from_secs(1);

/// How long a worker whose handler was interrupted (an exec child killed by
/// a signal) waits for the runner to start stopping, in case both were
/// signalled by one stop: the runner's signal may be handled a moment after
/// the child's exit.
const STOP_SIGNAL_GRACE: Duration = Duration::from_secs(1);

/// A decided settlement not yet sent, with what its log line needs.
struct Pending {
    id: u64,
    settlement: Settlement,
    request_type: String,
    /// A release at shutdown, of a job whose handler did not finish or did
    /// not start: handed back ([`hand_back`]), so it uses up no attempt.
    hand_back: bool,
}

/// How a handler run ended.
enum Ran {
    /// It returned an outcome.
    Finished(Outcome),
    /// It panicked.
    Panicked(String),
    /// It was cancelled at its timeout.
    TimedOut(Duration),
    /// It was cancelled because shutdown_timeout passed.
    Abandoned,
}

/// A handler's request to its worker.
enum Request {
    Touch(oneshot::Sender<Result<(), String>>),
    Publish(Box<Message>, oneshot::Sender<Result<u64, String>>),
}

/// What a handler wrote against its job while it ran, for the job's record.
#[derive(Default)]
struct Notes {
    events: Vec<Event>,
}

/// [`JobServices`] for a running handler: requests go to the worker.
struct Services {
    requests: mpsc::Sender<Request>,
    attempt: u32,
    /// Kept only when records are on.
    notes: Option<Arc<Mutex<Notes>>>,
}

impl JobServices for Services {
    fn touch(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.requests
                .send(Request::Touch(tx))
                .await
                .map_err(|_| "the job is no longer running".to_owned())?;
            rx.await.map_err(|_| "the job is no longer running".to_owned())?
        })
    }

    fn publish(&self, message: Message) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.requests
                .send(Request::Publish(Box::new(message), tx))
                .await
                .map_err(|_| "the job is no longer running".to_owned())?;
            rx.await.map_err(|_| "the job is no longer running".to_owned())?
        })
    }

    fn event(&self, text: String) {
        if let Some(notes) = &self.notes {
            let mut notes = notes.lock().unwrap_or_else(|e| e.into_inner());
            if notes.events.len() < MAX_EVENTS {
                notes.events.push(Event {
                    at: Utc::now(),
                    attempt: self.attempt,
                    text,
                });
            }
        }
    }
}

/// The worker loop; returns when the runner stops, or with the error of a queue that cannot be
/// used any more ([`QueueError::Unusable`]: retrying would not help, and reopening could start
/// a new queue where the old one was), which ends the run.
pub(super) async fn run(shared: Arc<Shared>, mut queue: Box<dyn Lease>, n: usize) -> Result<(), QueueError> {
    let mut phase = shared.phase.clone();
    let slice = shared.settings.sleep_duration.clamp(MIN_ITERATION, RESERVE_SLICE);
    let mut pending: Option<Pending> = None;
    let mut failures = 0u32;
    let mut meters = metered::Meters::default();
    loop {
        if *phase.borrow() != Phase::Running {
            if let Some(p) = pending.take() {
                let what = describe(&*queue, &p);
                let settle = async {
                    if p.hand_back {
                        hand_back(queue.as_mut(), &p).await
                    } else {
                        queue.settle(p.id, &p.settlement).await
                    }
                };
                if let Some(settled) = within_shutdown(&phase, &what, settle).await {
                    report_settled(&shared, &p, settled);
                }
            }
            if failures > 0 {
                shared.failing.fetch_sub(1, Ordering::SeqCst);
            }
            debug!(worker = n, "worker stopped");
            return Ok(());
        }
        let watch = &shared.settings.watch;
        let reserved = match pending.take() {
            // The settlement and a look for the next job in one trip; wait
            // for a job only when none is ready.
            Some(p) => {
                let settle = Some((p.id, p.settlement.clone()));
                let what = describe(&*queue, &p);
                let trip = queue.settle_and_reserve(settle, watch, Duration::ZERO);
                let Some((settled, reserved)) = within_shutdown(&phase, &what, trip).await else {
                    return Ok(());
                };
                if let Err(err @ QueueError::Unavailable(_)) = &settled {
                    // The queue could not take it (a full disk, a lost
                    // connection), and nothing was reserved: try again once
                    // it is back. If the job is no longer ours by then, that
                    // try says so.
                    warn!(
                        id = p.id,
                        "could not {} job {}: {err}; will try again",
                        p.settlement.name(),
                        p.id
                    );
                    pending = Some(p);
                    reserved
                } else {
                    report_settled(&shared, &p, settled);
                    match reserved {
                        Ok(None) => queue.reserve(watch, slice, &shared.stopping).await,
                        other => other,
                    }
                }
            }
            None => queue.reserve(watch, slice, &shared.stopping).await,
        };
        // An outage is not idleness: the idle rule counts no iteration
        // while a worker cannot reach the queue.
        match (&reserved, failures) {
            (Ok(_), 1..) => {
                shared.failing.fetch_sub(1, Ordering::SeqCst);
            }
            (Err(_), 0) => {
                shared.failing.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        match reserved {
            Ok(Some(job)) => {
                failures = 0;
                shared.active.store(true, Ordering::SeqCst);
                if *phase.borrow() != Phase::Running {
                    // Reserved as the stop came: hand it straight back.
                    pending = Some(Pending {
                        id: job.id,
                        settlement: Settlement::Release {
                            priority: job.priority,
                            delay: Duration::ZERO,
                            reason: Some(
                                "the runner is stopping: handed back unrun, not counted as an attempt"
                                    .to_owned(),
                            ),
                        },
                        request_type: NOT_A_MESSAGE.to_owned(),
                        hand_back: true,
                    });
                    continue;
                }
                shared.busy.fetch_add(1, Ordering::SeqCst);
                pending = Some(run_job(&shared, queue.as_mut(), job, &mut phase, &mut meters).await);
                shared.busy.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(None) => failures = 0,
            Err(err @ QueueError::Unusable(_)) => return Err(err),
            Err(err) => {
                metered::queue_error("reserve");
                failures += 1;
                recover(queue.as_mut(), err, failures, n, &mut phase).await;
            }
        }
    }
}

/// Waits out a queue error with back-off, then reconnects where that means
/// something (beanstalkd); returns early when the runner stops.
async fn recover(
    queue: &mut dyn Lease,
    err: QueueError,
    failures: u32,
    n: usize,
    phase: &mut watch::Receiver<Phase>,
) {
    let delay = queue_backoff(failures);
    let what = queue.describe();
    match &err {
        QueueError::Unavailable(_) => warn!(
            worker = n,
            queue = %what,
            "queue unavailable: {err}; trying again in {}",
            took(delay)
        ),
        _ => warn!(
            worker = n,
            queue = %what,
            "reserve failed: {err}; trying again in {}",
            took(delay)
        ),
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = reached(phase, Phase::Stopping) => return,
    }
    if matches!(err, QueueError::Unavailable(_)) {
        match queue.reopen().await {
            Ok(reopened) => {
                if failures > 1 || reopened {
                    info!(worker = n, queue = %what, "reconnected");
                }
            }
            Err(err) => debug!(worker = n, "reconnect failed: {err}"),
        }
    }
}

/// Hands a job back at shutdown without using up an attempt: released with
/// [`HAND_BACK_DELAY`], then kicked at once, so it is ready again now and its
/// `kicks` (which [`Reservation::attempt`] subtracts) record that this
/// reservation was given back, on either queue. If the kick fails, the job
/// is ready after the delay and this reservation counts as an attempt.
async fn hand_back(queue: &mut dyn Lease, p: &Pending) -> Result<(), QueueError> {
    let Settlement::Release { priority, reason, .. } = &p.settlement else {
        return queue.settle(p.id, &p.settlement).await;
    };
    let release = Settlement::Release {
        priority: *priority,
        delay: HAND_BACK_DELAY,
        reason: reason.clone(),
    };
    queue.settle(p.id, &release).await?;
    if let Err(err) = queue.kick_job(p.id).await {
        warn!(
            id = p.id,
            "job {} was released but not kicked: {err}; it is ready again in {}, and this \
             reservation counts as an attempt",
            p.id,
            took(HAND_BACK_DELAY)
        );
    }
    Ok(())
}

/// How long a settling call may go on after shutdown_timeout has passed.
const SETTLE_GRACE: Duration = Duration::from_secs(1);

/// How long a settling call may wait during a shutdown before it is logged.
const SLOW_SETTLE: Duration = Duration::from_secs(1);

/// `<queue> to <operation> job <id>`, for the lines about a slow settlement.
fn describe(queue: &dyn Lease, p: &Pending) -> String {
    format!("{} to {} job {}", queue.describe(), p.settlement.name(), p.id)
}

/// Runs `call`, a queue call that settles a job (`what` says which), but
/// gives up on it once shutdown_timeout has passed (and [`SETTLE_GRACE`]),
/// so that a queue that stopped answering cannot hold the runner past it;
/// says so when it waits long during a shutdown. `None`: given up (the
/// handle is then unusable; the runner is stopping anyway).
async fn within_shutdown<T>(
    phase: &watch::Receiver<Phase>,
    what: &str,
    call: impl std::future::Future<Output = T>,
) -> Option<T> {
    let (mut stopping, mut abandon) = (phase.clone(), phase.clone());
    let slow = async move {
        reached(&mut stopping, Phase::Stopping).await;
        tokio::time::sleep(SLOW_SETTLE).await;
    };
    let give_up = async move {
        reached(&mut abandon, Phase::Abandon).await;
        tokio::time::sleep(SETTLE_GRACE).await;
    };
    tokio::pin!(call, slow, give_up);
    let mut warned = false;
    loop {
        tokio::select! {
            out = &mut call => return Some(out),
            _ = &mut slow, if !warned => {
                warned = true;
                warn!("still waiting for {what}; giving up {} after shutdown_timeout",
                    took(SETTLE_GRACE));
            }
            _ = &mut give_up => {
                warn!("gave up waiting for {what}: no answer by shutdown_timeout; the queue will hand \
                       the job out again (at once if the connection closes, else after its TTR)");
                return None;
            }
        }
    }
}

/// Logs a settlement's result; a failed one is counted (the job comes back
/// by itself: its lease ends, or its connection is gone).
fn report_settled(shared: &Shared, p: &Pending, settled: Result<(), QueueError>) {
    if let Err(err) = settled {
        metered::queue_error("settle");
        shared.tally.update(&p.request_type, |c| c.settle_failed += 1);
        warn!(
            id = p.id,
            request_type = %p.request_type,
            "could not {} job {}: {err}; the queue will hand it out again",
            p.settlement.name(),
            p.id
        );
    }
}

/// Runs one reserved job to its settlement: finds out what happened
/// ([`what_happened`]) and asks the outcome table what follows.
async fn run_job(
    shared: &Shared,
    queue: &mut dyn Lease,
    job: Reservation,
    phase: &mut watch::Receiver<Phase>,
    meters: &mut metered::Meters,
) -> Pending {
    // A body over the handle's limit was not read: there is nothing to run.
    let message = match &job.too_big {
        Some(reason) => Err(Happened::TooBig(reason.clone())),
        None => Message::from_json(&job.body).map_err(|err| Happened::NotAMessage(err.to_string())),
    };
    // As logs and counters show it: a job body may carry control characters.
    let request_type = match &message {
        Ok(message) => printable(message.request_type()).into_owned(),
        Err(_) => NOT_A_MESSAGE.to_owned(),
    };
    shared.tally.update(&request_type, |c| c.reserved += 1);
    let span = tracing::info_span!(
        "job",
        id = job.id,
        request_type = %request_type,
        attempt = job.attempt(),
        tube = %job.tube,
        outcome = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    let started = Instant::now();
    let started_at = Utc::now();
    let notes = shared
        .recorder
        .as_ref()
        .map(|_| Arc::new(Mutex::new(Notes::default())));
    // What the job's end needs of its message: where its result goes, and
    // the message itself for an `on_buried` follow-up.
    let mut reply_to = None;
    let mut original = None;
    let mut result = None;
    meters.job_started(&request_type, job.waited);
    let happened = match message {
        Ok(mut message) => {
            message.set_job_id(job.id);
            reply_to = message.reply_to().map(str::to_owned);
            if shared
                .settings
                .handler(message.request_type())
                .is_some_and(|h| h.on_buried.is_some())
            {
                original = Some(message.clone());
            }
            what_happened(shared, queue, &job, message, phase, notes.clone(), &mut result)
                .instrument(span.clone())
                .await
        }
        Err(happened) => happened,
    };
    let facts = Facts {
        request_type: &request_type,
        attempt: job.attempt(),
        reserves: job.reserves,
        priority: job.priority,
        retry: shared
            .settings
            .handler(&request_type)
            .map_or(&shared.settings.retry, |handler| &handler.retry),
        on_expired: shared.settings.on_expired,
        random: random_fraction(),
    };
    let expired_at = match &happened {
        Happened::Expired(at) => at.clone(),
        _ => String::new(),
    };
    let (mut settlement, count) = outcome::decide(happened, &facts);
    let hand_back = count == Count::HandedBack;
    // One place for every reason, whichever handler wrote it: escaped for
    // the log, the terminal and the queue's stored reason.
    if let Settlement::Release {
        reason: Some(reason), ..
    }
    | Settlement::Bury {
        reason: Some(reason), ..
    } = &mut settlement
        && let std::borrow::Cow::Owned(escaped) = printable(reason)
    {
        *reason = escaped;
    }
    shared.tally.update(&request_type, |c| count.apply(c));
    let elapsed = started.elapsed();
    meters.job_done(&request_type, count, elapsed);
    let duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1000.0;
    span.record("outcome", settlement.name());
    span.record("duration_ms", duration_ms);
    let _entered = span.enter();
    // One line per finished job at the default level, as Sidekiq logs.
    let elapsed = took(elapsed);
    let job_label = match request_type.as_str() {
        NOT_A_MESSAGE => format!("job {} {NOT_A_MESSAGE}", job.id),
        request_type => format!("job {} ({request_type})", job.id),
    };
    match &settlement {
        Settlement::Delete if count == Count::ExpiredDeleted => {
            info!("{job_label} deleted after {elapsed}: expired at {expired_at} before it ran")
        }
        Settlement::Delete => info!("{job_label} succeeded in {elapsed}"),
        // The reason as a field: a child's stderr in it may span lines.
        Settlement::Release { delay, reason, .. } => info!(
            reason = reason.as_deref().unwrap_or(""),
            "{job_label} released after {elapsed}, ready again in {}",
            took(*delay)
        ),
        Settlement::Bury { reason, .. } => warn!(
            reason = reason.as_deref().unwrap_or(""),
            "{job_label} buried after {elapsed}"
        ),
    }
    drop(_entered);
    let ending = Ending {
        job: &job,
        request_type: &request_type,
        settlement: &settlement,
        count,
        started_at,
        duration_ms,
        result,
        notes,
    };
    ending.follow(shared, queue, reply_to, original).await;
    Pending {
        id: job.id,
        settlement,
        request_type,
        hand_back,
    }
}

/// A decided job before its settlement goes out: what its record, its
/// reply and its `on_buried` follow-up are made of.
struct Ending<'a> {
    job: &'a Reservation,
    request_type: &'a str,
    settlement: &'a Settlement,
    count: Count,
    started_at: chrono::DateTime<Utc>,
    duration_ms: f64,
    result: Option<serde_json::Value>,
    notes: Option<Arc<Mutex<Notes>>>,
}

impl Ending<'_> {
    /// The settlement's error text, if it is a failure.
    fn error(&self) -> Option<String> {
        match self.settlement {
            Settlement::Release { reason, .. } | Settlement::Bury { reason, .. } => reason.clone(),
            Settlement::Delete => None,
        }
    }

    /// Before the settlement: writes the job's record (so a record is never
    /// lost to a crash between the two: at worst the job runs again and
    /// adds an attempt), then, when the job has ended, sends its result to
    /// its `reply_to` tube and publishes its handler's `on_buried`
    /// follow-up. None of these holds up the settlement when it fails: each
    /// is logged.
    async fn follow(
        self,
        shared: &Shared,
        queue: &mut dyn Lease,
        reply_to: Option<String>,
        original: Option<Message>,
    ) {
        let end = self.count.end();
        let id = self.job.id;
        if self.count == Count::HandedBack {
            return;
        }
        if let Some(recorder) = &shared.recorder {
            let events = self
                .notes
                .as_ref()
                .map(|n| std::mem::take(&mut n.lock().unwrap_or_else(|e| e.into_inner()).events))
                .unwrap_or_default();
            let change = Change::Attempt {
                job: JobRef::new(id),
                request_type: self.request_type.to_owned(),
                tube: self.job.tube.clone(),
                attempt: Box::new(Attempt {
                    attempt: self.job.attempt(),
                    started: self.started_at,
                    finished: Utc::now(),
                    duration_ms: self.duration_ms,
                    settlement: self.settlement.name().to_owned(),
                    error: self.error(),
                }),
                events,
                result: self.result.clone(),
                end,
            };
            // A producer waiting on a reply may ask for the record next.
            if let Err(err) = recorder.record(change, reply_to.is_some()).await {
                warn!(id, "could not record job {id}: {err}");
            }
        }
        let Some(end) = end else { return };
        if let Some(tube) = reply_to {
            let reply = Message::new(REPLY_REQUEST_TYPE)
                .with_body_field("job", JobRef::new(id).to_string())
                .with_body_field("outcome", end.name())
                .with_body_field("result", self.result.clone().unwrap_or_default())
                .with_body_field("error", self.error().map_or(serde_json::Value::Null, Into::into))
                .with_body_field("attempts", self.job.attempt())
                .with_body_field("duration_ms", self.duration_ms);
            if let Err(err) = put_message(shared, queue, &tube, reply).await {
                warn!(
                    id,
                    "could not send the result of job {id} to its reply tube {tube:?}: {err}"
                );
            }
        }
        if let (Settlement::Bury { .. }, Some(message)) = (self.settlement, original)
            && let Some(on_buried) = shared
                .settings
                .handler(self.request_type)
                .and_then(|h| h.on_buried.as_ref())
        {
            let follow_up = Message::new(on_buried.request_type.clone())
                .with_body_field("job", JobRef::new(id).to_string())
                .with_body_field("outcome", end.name())
                .with_body_field("error", self.error().unwrap_or_default())
                .with_body_field("message", message.to_json_value());
            if let Err(err) = put_message(shared, queue, &shared.settings.tube, follow_up).await {
                warn!(
                    id,
                    "could not publish the on_buried {:?} message of job {id}: {err}", on_buried.request_type
                );
            }
        }
    }
}

/// The request type of a result message sent to a `reply_to` tube.
pub(crate) const REPLY_REQUEST_TYPE: &str = "pulpo_result";

/// Publishes `message` to `tube` as `pulpo publish` would.
async fn put_message(
    shared: &Shared,
    queue: &mut dyn Lease,
    tube: &str,
    mut message: Message,
) -> Result<u64, QueueError> {
    let new = prepare(&mut message, &shared.settings, Utc::now());
    queue.put(tube, new).await
}

/// What happened to a job that is a message: the checks before it runs,
/// then its handler's run (with its follow-ups published on success).
async fn what_happened(
    shared: &Shared,
    queue: &mut dyn Lease,
    job: &Reservation,
    message: Message,
    phase: &mut watch::Receiver<Phase>,
    notes: Option<Arc<Mutex<Notes>>>,
    result: &mut Option<serde_json::Value>,
) -> Happened {
    let request_type = message.request_type().to_owned();
    let (Some(handler), Some(handler_settings)) = (
        shared.handlers.get(&request_type),
        shared.settings.handler(&request_type),
    ) else {
        return Happened::NoHandler;
    };
    if message.is_expired(Utc::now()) {
        let expired_at = message
            .header
            .expiration
            .map(crate::message::format_time)
            .unwrap_or_default();
        return Happened::Expired(expired_at);
    }
    if too_many_attempts(&handler_settings.retry, job.attempt()) {
        return Happened::TooManyAttempts;
    }
    let ran = run_handler(
        shared,
        queue,
        job,
        message,
        (handler.clone(), handler_settings),
        phase,
        notes,
    )
    .await;
    match ran {
        Ran::Finished(Outcome::Success {
            follow_ups,
            result: returned,
        }) => {
            *result = returned;
            for mut follow_up in follow_ups {
                let new = prepare(&mut follow_up, &shared.settings, Utc::now());
                if let Err(err) = queue.put(&shared.settings.tube, new).await {
                    return Happened::FollowUpFailed(format!(
                        "succeeded, but publishing a follow-up {:?} message failed: {err}",
                        follow_up.request_type()
                    ));
                }
            }
            Happened::Succeeded
        }
        Ran::Finished(Outcome::Transient { reason, delay }) => Happened::Transient { reason, delay },
        Ran::Finished(Outcome::Fatal { reason }) => Happened::Fatal(reason),
        Ran::Finished(Outcome::Interrupted { reason }) => {
            // The signal that killed a child may be the first sign of a stop
            // that signalled every process at once: give the runner's own
            // signal a moment to arrive before calling it a failure.
            let stopping = tokio::time::timeout(STOP_SIGNAL_GRACE, reached(phase, Phase::Stopping))
                .await
                .is_ok();
            Happened::Interrupted { reason, stopping }
        }
        Ran::Panicked(what) => Happened::Panicked(what),
        Ran::TimedOut(limit) => Happened::TimedOut(limit),
        Ran::Abandoned => Happened::Abandoned,
    }
}

/// Runs the handler in its own task (so a panic is caught and it can be
/// cancelled), renewing the job's lease and serving its requests until it
/// ends, its timeout passes, or shutdown abandons it.
async fn run_handler(
    shared: &Shared,
    queue: &mut dyn Lease,
    job: &Reservation,
    message: Message,
    (handler, settings): (Arc<dyn crate::handlers::Handler>, &HandlerSettings),
    phase: &mut watch::Receiver<Phase>,
    notes: Option<Arc<Mutex<Notes>>>,
) -> Ran {
    let (requests, mut incoming) = mpsc::channel(8);
    let context = Context::new(
        job.id,
        job.attempt(),
        job.tube.clone(),
        message.request_type().to_owned(),
        Arc::new(Services {
            requests,
            attempt: job.attempt(),
            notes,
        }),
    );
    let started = tokio::time::Instant::now();
    // A handler that finishes at its first poll (most quick ones) runs
    // right here; one that has to wait moves to a task of its own, so the
    // lease keeps being renewed whatever it does (a panic is caught either
    // way).
    let mut future = AssertUnwindSafe(handler.handle(message, context))
        .catch_unwind()
        .boxed();
    match (&mut future).now_or_never() {
        Some(Ok(outcome)) => return Ran::Finished(outcome),
        Some(Err(panic)) => return Ran::Panicked(panic_text(panic)),
        None => {}
    }
    let mut task = tokio::spawn(future.in_current_span());
    let every = touch_interval(job.ttr);
    let mut next_touch = started + every;
    let deadline = settings.timeout.map(|limit| (started + limit, limit));
    let joined =
        |joined: Result<std::thread::Result<Outcome>, tokio::task::JoinError>, otherwise: Ran| match joined {
            Ok(Ok(outcome)) => Ran::Finished(outcome),
            Ok(Err(panic)) => Ran::Panicked(panic_text(panic)),
            Err(err) if err.is_panic() => Ran::Panicked(panic_text(err.into_panic())),
            Err(_) => otherwise,
        };
    loop {
        tokio::select! {
            biased;
            result = &mut task => return joined(result, Ran::Abandoned),
            _ = reached(phase, Phase::Abandon) => {
                task.abort();
                return joined((&mut task).await, Ran::Abandoned);
            }
            _ = sleep_until_deadline(deadline) => {
                task.abort();
                let limit = deadline.map(|(_, limit)| limit).unwrap_or_default();
                return joined((&mut task).await, Ran::TimedOut(limit));
            }
            _ = tokio::time::sleep_until(next_touch) => {
                if let Err(err) = touch(queue, job.id, phase).await {
                    warn!("could not renew the lease of job {}: {err}", job.id);
                }
                next_touch = tokio::time::Instant::now() + every;
            }
            Some(request) = incoming.recv() => match request {
                Request::Touch(reply) => {
                    let result = touch(queue, job.id, phase).await;
                    next_touch = tokio::time::Instant::now() + every;
                    let _ = reply.send(result);
                }
                Request::Publish(mut message, reply) => {
                    let new = prepare(&mut message, &shared.settings, Utc::now());
                    let result = queue
                        .put(&shared.settings.tube, new)
                        .await
                        .map_err(|err| err.to_string());
                    let _ = reply.send(result);
                }
            },
        }
    }
}

/// Renews job `id`'s lease, but not past shutdown_timeout (see
/// [`within_shutdown`]): a queue that stopped answering must not keep the
/// worker from cancelling its handler.
async fn touch(queue: &mut dyn Lease, id: u64, phase: &watch::Receiver<Phase>) -> Result<(), String> {
    let what = format!("{} to touch job {id}", queue.describe());
    let touched = match within_shutdown(phase, &what, queue.touch(id)).await {
        Some(touched) => touched.map_err(|err| err.to_string()),
        None => Err("the queue did not answer before shutdown_timeout".to_owned()),
    };
    metered::touched(touched.is_ok());
    touched
}

async fn sleep_until_deadline(deadline: Option<(tokio::time::Instant, Duration)>) {
    match deadline {
        Some((at, _)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A panic's message, when it has one.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_renewed_three_times_per_ttr() {
        assert_eq!(touch_interval(Duration::from_secs(60)), Duration::from_secs(20));
        assert_eq!(
            touch_interval(Duration::from_secs(1)),
            Duration::from_nanos(333_333_333)
        );
        assert_eq!(touch_interval(Duration::from_millis(300)), MIN_TOUCH_INTERVAL);
    }
}
