//! The runner, in-process, on both queues: every row of the outcome table,
//! back-off timing, the TTR lease with two runners, concurrency, idle exit
//! and restart, shutdown within and past `shutdown_timeout`, and (on
//! beanstalkd) a server restart in the middle of a run.
//!
//! Handlers are one scripted kind, `script`, whose job payload says what to
//! do (`ok`, `fatal`, `panic`, `transient`, `sleep:<ms>`, ...); it records
//! every run so tests can check who ran what, when, and how often.

#[path = "queue_under_test/mod.rs"]
mod queue_under_test;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use pulpo::config::{Settings, from_toml_str};
use pulpo::handlers::Registry;
use pulpo::handlers::{Context, Outcome};
use pulpo::message::Message;
use pulpo::queue::{self, JobState, Queue, QueueError};
use pulpo::runner::{RunReport, Runner, StopReason, run_until_stopped};
use queue_under_test::QueueUnderTest;
use tokio_util::sync::CancellationToken;

/// One handler run, as the scripted handler saw it.
#[derive(Debug, Clone)]
struct Run {
    id: u64,
    attempt: u32,
    at: Instant,
    payload: String,
}

/// What the scripted handlers did, shared with the test.
#[derive(Default)]
struct Journal {
    runs: Mutex<Vec<Run>>,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl Journal {
    fn runs(&self) -> Vec<Run> {
        self.runs.lock().unwrap().clone()
    }

    fn runs_of(&self, id: u64) -> Vec<Run> {
        self.runs().into_iter().filter(|r| r.id == id).collect()
    }
}

/// The `script` kind: does what the payload says.
///
/// - `ok`: success; `fatal`: fatal; `panic`: panics; `transient`: transient;
/// - `retry_after:<ms>`: transient with an explicit delay;
/// - `sleep:<ms>`: sleeps, then succeeds;
/// - `follow_up`: succeeds with a follow-up `script` message `ok`;
/// - `publish`: publishes a `script` message `ok` through its context, then
///   succeeds.
fn registry(journal: &Arc<Journal>) -> Registry {
    let mut registry = Registry::with_builtins();
    let journal = journal.clone();
    registry.register("script", move |_settings| {
        let journal = journal.clone();
        Ok(Arc::new(move |message: Message, ctx: Context| {
            let journal = journal.clone();
            async move {
                let payload = message.payload_str().unwrap_or("").to_owned();
                journal.runs.lock().unwrap().push(Run {
                    id: ctx.job_id,
                    attempt: ctx.attempt,
                    at: Instant::now(),
                    payload: payload.clone(),
                });
                let now = journal.running.fetch_add(1, Ordering::SeqCst) + 1;
                journal.most_at_once.fetch_max(now, Ordering::SeqCst);
                let outcome = script(&payload, &ctx).await;
                journal.running.fetch_sub(1, Ordering::SeqCst);
                outcome
            }
        }))
    });
    registry
}

async fn script(payload: &str, ctx: &Context) -> Outcome {
    let (verb, arg) = payload.split_once(':').unwrap_or((payload, ""));
    let ms = || Duration::from_millis(arg.parse().unwrap_or(0));
    match verb {
        "ok" => Outcome::success(),
        "fatal" => Outcome::fatal("scripted fatal"),
        "fatal_raw" => Outcome::fatal("raw \x1b[2J\0 text"),
        "panic" => panic!("scripted panic"),
        "transient" => Outcome::transient("scripted transient"),
        "retry_after" => Outcome::retry_after("scripted retry", ms()),
        "sleep" => {
            tokio::time::sleep(ms()).await;
            Outcome::success()
        }
        "follow_up" => Outcome::success_with(vec![Message::new("script").with_payload("ok")]),
        "publish" => match ctx.publish(Message::new("script").with_payload("ok")).await {
            Ok(_) => match ctx.touch().await {
                Ok(()) => Outcome::success(),
                Err(err) => Outcome::fatal(format!("touch failed: {err}")),
            },
            Err(err) => Outcome::fatal(format!("publish failed: {err}")),
        },
        other => Outcome::fatal(format!("unknown script {other:?}")),
    }
}

/// A queue for one test: a file-queue directory or a beanstalkd server.
struct Env {
    on: QueueUnderTest,
}

impl Env {
    fn file() -> Env {
        Env {
            on: QueueUnderTest::file(),
        }
    }

    fn beanstalkd() -> Env {
        Env {
            on: QueueUnderTest::beanstalkd(true),
        }
    }

    /// Settings from `toml` (top-level keys, then tables) on this queue.
    /// The handler `script` is declared unless `toml` declares it.
    fn settings(&self, toml: &str) -> Settings {
        let queue = self.on.queue_toml(toml, "fsync = false\n");
        let script = if toml.contains("[handlers.script]") {
            ""
        } else {
            "\n[handlers.script]\nkind = \"script\"\n"
        };
        from_toml_str(&(queue + script), Path::new("test.toml")).unwrap()
    }

    async fn queue(&self, settings: &Settings) -> Box<dyn Queue> {
        queue::open(settings).await.unwrap()
    }
}

/// Settings that keep tests quick: short iterations, never idle out.
const QUICK: &str = "sleep_duration = \"200ms\"\nshutdown_after_number_of_empty_iterations = 0\n";

async fn publish(queue: &mut dyn Queue, settings: &Settings, message: Message) -> u64 {
    let mut message = message;
    let job = pulpo::publish::prepare(&mut message, settings, Utc::now());
    queue.put(&settings.tube, job).await.unwrap()
}

async fn publish_script(queue: &mut dyn Queue, settings: &Settings, payload: &str) -> u64 {
    publish(queue, settings, Message::new("script").with_payload(payload)).await
}

/// A runner started in the background.
struct Running {
    token: CancellationToken,
    handle: tokio::task::JoinHandle<RunReport>,
}

impl Running {
    fn start(settings: Settings, registry: &Registry) -> Running {
        let token = CancellationToken::new();
        let runner = Runner::new(settings, registry).unwrap();
        let handle = tokio::spawn(runner.run(token.clone()));
        let handle = tokio::spawn(async move { handle.await.unwrap().unwrap() });
        Running { token, handle }
    }

    async fn stop(self) -> RunReport {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("the runner stops")
            .unwrap()
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `limit`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn state(queue: &mut dyn Queue, id: u64) -> Option<JobState> {
    match queue.stats_job(id).await {
        Ok(info) => Some(info.state),
        Err(QueueError::JobNotFound { .. }) => None,
        Err(err) => panic!("stats-job {id}: {err}"),
    }
}

/// Waits until job `id` is gone (deleted).
async fn until_deleted(queue: &mut dyn Queue, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(queue, id).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for job {id} to be deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until job `id` is buried; returns its stats.
async fn until_buried(queue: &mut dyn Queue, id: u64) -> queue::JobStats {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(info) = queue.stats_job(id).await
            && info.state == JobState::Buried
        {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for job {id} to be buried"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- scenarios

/// success → delete; success with follow-ups → published, then delete;
/// a handler publishing through its context.
async fn success_deletes_and_publishes_follow_ups(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(QUICK);
    let mut q = env.queue(&settings).await;
    let ok = publish_script(q.as_mut(), &settings, "ok").await;
    let follow = publish_script(q.as_mut(), &settings, "follow_up").await;
    let via_ctx = publish_script(q.as_mut(), &settings, "publish").await;
    let running = Running::start(settings, &registry(&journal));
    for id in [ok, follow, via_ctx] {
        until_deleted(q.as_mut(), id).await;
    }
    // The two published `ok` messages ran too.
    eventually(Duration::from_secs(10), "follow-ups ran", || async {
        (journal.runs().iter().filter(|r| r.payload == "ok").count() == 3).then_some(())
    })
    .await;
    let report = running.stop().await;
    let c = report.counters["script"];
    assert_eq!(
        (c.reserved, c.succeeded, c.buried, c.released),
        (5, 5, 0, 0),
        "{c:?}"
    );
}

/// fatal → bury; panic → bury; the reason is kept where the queue can.
async fn fatal_and_panic_bury(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(QUICK);
    let mut q = env.queue(&settings).await;
    let fatal = publish_script(q.as_mut(), &settings, "fatal").await;
    let panic = publish_script(q.as_mut(), &settings, "panic").await;
    let raw = publish_script(q.as_mut(), &settings, "fatal_raw").await;
    let running = Running::start(settings, &registry(&journal));
    let fatal_info = until_buried(q.as_mut(), fatal).await;
    let panic_info = until_buried(q.as_mut(), panic).await;
    let raw_info = until_buried(q.as_mut(), raw).await;
    assert_eq!((fatal_info.reserves, fatal_info.buries), (1, 1));
    if q.capabilities().keeps_reasons {
        assert_eq!(fatal_info.reason.as_deref(), Some("scripted fatal"));
        // Control characters in a reason are escaped, not stored raw.
        assert_eq!(raw_info.reason.as_deref(), Some(r"raw \x1b[2J\0 text"));
        let reason = panic_info.reason.unwrap();
        assert!(
            reason.contains("panicked") && reason.contains("scripted panic"),
            "{reason}"
        );
    }
    let report = running.stop().await;
    assert_eq!(report.counters["script"].buried, 3);
    assert_eq!(journal.runs().len(), 3, "each ran once");
}

/// No handler for the request type, a body that is not a message, and an
/// expired message: buried without running anything.
async fn unknown_foreign_and_expired_jobs_are_buried(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(QUICK);
    let mut q = env.queue(&settings).await;
    let unknown = publish(q.as_mut(), &settings, Message::new("nobody_handles_this")).await;
    let foreign = q
        .put(
            "default",
            queue::NewJob {
                priority: 10,
                delay: Duration::ZERO,
                ttr: Duration::from_secs(60),
                body: bytes::Bytes::from_static(b"\xff not json"),
            },
        )
        .await
        .unwrap();
    let expired = publish(
        q.as_mut(),
        &settings,
        Message::new("script")
            .with_payload("ok")
            .with_expiration(Utc::now() - chrono::Duration::seconds(1)),
    )
    .await;
    let running = Running::start(settings, &registry(&journal));
    let unknown_info = until_buried(q.as_mut(), unknown).await;
    let foreign_info = until_buried(q.as_mut(), foreign).await;
    until_buried(q.as_mut(), expired).await;
    assert_eq!(foreign_info.pri, 10, "a bury keeps the priority");
    if q.capabilities().keeps_reasons {
        let reason = unknown_info.reason.unwrap();
        assert!(
            reason.contains("no handler") && reason.contains("nobody_handles_this"),
            "{reason}"
        );
        assert!(foreign_info.reason.unwrap().contains("not a pulpo message"));
    }
    let report = running.stop().await;
    assert!(journal.runs().is_empty(), "nothing ran: {:?}", journal.runs());
    assert_eq!(report.counters[pulpo::runner::NOT_A_MESSAGE].buried, 1);
    assert_eq!(report.counters["nobody_handles_this"].buried, 1);
    // An expired job buried counts as expired and as buried.
    let script = report.counters["script"];
    assert_eq!((script.expired, script.buried), (1, 1));
}

/// `on_expired = "delete"` deletes an expired job instead.
async fn expired_jobs_can_be_deleted(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(&format!("{QUICK}on_expired = \"delete\"\n"));
    let mut q = env.queue(&settings).await;
    let expired = publish(
        q.as_mut(),
        &settings,
        Message::new("script")
            .with_payload("ok")
            .with_expiration(Utc::now() - chrono::Duration::seconds(1)),
    )
    .await;
    let running = Running::start(settings, &registry(&journal));
    until_deleted(q.as_mut(), expired).await;
    let report = running.stop().await;
    assert!(journal.runs().is_empty());
    assert_eq!(report.counters["script"].expired, 1);
}

/// transient → released with the back-off delay until max_attempts, then
/// buried; the attempt number is the queue's reserve count.
async fn transient_retries_with_backoff_then_buries(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(&format!(
        "{QUICK}[retry]\nmax_attempts = 3\nbackoff = \"fixed\"\ndelay = \"1s\"\n"
    ));
    let mut q = env.queue(&settings).await;
    let id = publish_script(q.as_mut(), &settings, "transient").await;
    let running = Running::start(settings, &registry(&journal));
    let info = until_buried(q.as_mut(), id).await;
    let report = running.stop().await;
    let runs = journal.runs_of(id);
    assert_eq!(runs.iter().map(|r| r.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    for pair in runs.windows(2) {
        let gap = pair[1].at - pair[0].at;
        // A 1 s delay: ready after 1 s; reserved within the next slice.
        assert!(
            gap >= Duration::from_millis(950) && gap < Duration::from_millis(2300),
            "gap between attempts {gap:?}"
        );
    }
    assert_eq!((info.reserves, info.releases, info.buries), (3, 2, 1));
    if q.capabilities().keeps_reasons {
        assert!(info.reason.unwrap().contains("attempt 3 of 3"));
    }
    let c = report.counters["script"];
    assert_eq!((c.reserved, c.released, c.buried), (3, 2, 1));
}

/// A handler's explicit retry delay wins over the policy's; a per-handler
/// retry table overrides the global one.
async fn explicit_delay_and_per_handler_retry(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(&format!(
        "{QUICK}[retry]\nmax_attempts = 9\ndelay = \"10s\"\n[handlers.script]\nkind = \"script\"\nretry = {{ max_attempts = 2 }}\n"
    ));
    let mut q = env.queue(&settings).await;
    let id = publish_script(q.as_mut(), &settings, "retry_after:2000").await;
    let running = Running::start(settings, &registry(&journal));
    let info = until_buried(q.as_mut(), id).await;
    running.stop().await;
    let runs = journal.runs_of(id);
    assert_eq!(runs.len(), 2, "max_attempts = 2 from the handler's table");
    let gap = runs[1].at - runs[0].at;
    assert!(
        gap >= Duration::from_millis(1950) && gap < Duration::from_millis(3300),
        "explicit 2 s delay, got {gap:?}"
    );
    assert_eq!(info.releases, 1);
}

/// A job the queue has handed out max_attempts times already (its workers
/// died) is buried without running.
async fn attempts_are_counted_by_the_queue(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(&format!("{QUICK}[retry]\nmax_attempts = 2\n"));
    let mut q = env.queue(&settings).await;
    let id = publish_script(q.as_mut(), &settings, "ok").await;
    // Two "crashed" attempts: reserved, then handed back without running.
    for _ in 0..2 {
        let job = q
            .reserve(&settings.watch, Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.id, id);
        q.release(id, 1024, Duration::ZERO, None).await.unwrap();
    }
    let running = Running::start(settings, &registry(&journal));
    let info = until_buried(q.as_mut(), id).await;
    running.stop().await;
    assert!(journal.runs().is_empty(), "a poison job is not run again");
    assert_eq!(info.reserves, 3);
    if q.capabilities().keeps_reasons {
        // The reason says what it counted.
        let reason = info.reason.unwrap();
        assert!(
            reason.contains("attempt 3 is more than max_attempts = 2")
                && reason.contains("reserved it 3 times"),
            "{reason}"
        );
    }
}

/// Graceful shutdowns do not use up attempts: a long job interrupted by
/// three shutdowns in a row is handed back each time and runs again as
/// attempt 1, although max_attempts is 2.
async fn graceful_shutdowns_do_not_use_up_attempts(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(&format!(
        "{QUICK}shutdown_timeout = \"200ms\"\n[retry]\nmax_attempts = 2\n"
    ));
    let mut q = env.queue(&settings).await;
    let id = publish_script(q.as_mut(), &settings, "sleep:30000").await;
    for n in 1..=3 {
        let running = Running::start(settings.clone(), &registry(&journal));
        eventually(Duration::from_secs(10), "the handler started", || async {
            (journal.runs_of(id).len() >= n).then_some(())
        })
        .await;
        running.stop().await;
        let info = q.stats_job(id).await.unwrap();
        assert_eq!(info.state, JobState::Ready, "handed back, ready at once");
    }
    let attempts: Vec<u32> = journal.runs_of(id).iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [1, 1, 1]);
    assert_eq!(q.stats_job(id).await.unwrap().reserves, 3);
}

/// An outage is not idleness: with the server gone for longer than the
/// idle rule's iterations, the runner waits for it instead of stopping as
/// idle, and runs the jobs once it is back.
async fn an_outage_is_not_idleness(mut env: Env) {
    let journal = Arc::new(Journal::default());
    let settings =
        env.settings("sleep_duration = \"200ms\"\nshutdown_after_number_of_empty_iterations = 3\n");
    let running = Running::start(settings.clone(), &registry(&journal));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = env.on.server.as_mut().unwrap();
    server.kill();
    // Ten iterations of 200 ms without the queue.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !running.handle.is_finished(),
        "the runner stopped as idle while the queue was down"
    );
    server.restart();
    let mut q = env.queue(&settings).await;
    let id = publish_script(q.as_mut(), &settings, "ok").await;
    until_deleted(q.as_mut(), id).await;
    let report = running.stop().await;
    assert_eq!(report.counters["script"].succeeded, 1);
}

/// A handler past its timeout is cancelled and treated as transient.
async fn timeout_cancels_then_retries(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(&format!(
        "{QUICK}[retry]\nmax_attempts = 2\nbackoff = \"fixed\"\ndelay = \"1s\"\n[handlers.script]\nkind = \"script\"\ntimeout = \"300ms\"\n"
    ));
    let mut q = env.queue(&settings).await;
    let id = publish_script(q.as_mut(), &settings, "sleep:5000").await;
    let started = Instant::now();
    let running = Running::start(settings, &registry(&journal));
    let info = until_buried(q.as_mut(), id).await;
    let took = started.elapsed();
    let report = running.stop().await;
    assert!(
        took < Duration::from_secs(4),
        "two 300 ms runs and a 1 s delay took {took:?}"
    );
    assert_eq!((info.reserves, info.releases), (2, 1));
    let c = report.counters["script"];
    assert_eq!((c.timed_out, c.released, c.buried, c.succeeded), (2, 1, 1, 0));
    if q.capabilities().keeps_reasons {
        assert!(info.reason.unwrap().contains("timed out after 300ms"));
    }
}

/// The TTR lease: a 3 s handler with a 1 s TTR runs once, with two runners
/// watching the queue.
async fn ttr_lease_keeps_a_long_job_with_one_runner(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(&format!("{QUICK}concurrency = 2\n"));
    let mut q = env.queue(&settings).await;
    let id = publish(
        q.as_mut(),
        &settings,
        Message::new("script").with_payload("sleep:3000").with_ttr(1),
    )
    .await;
    let registry = registry(&journal);
    let first = Running::start(settings.clone(), &registry);
    let second = Running::start(settings, &registry);
    until_deleted(q.as_mut(), id).await;
    let a = first.stop().await;
    let b = second.stop().await;
    assert_eq!(journal.runs_of(id).len(), 1, "ran once: {:?}", journal.runs());
    let reserved = |r: &RunReport| r.counters.get("script").map_or(0, |c| c.reserved);
    let info_total = reserved(&a) + reserved(&b);
    assert_eq!(info_total, 1);
}

/// `concurrency = 4` runs four handlers at once.
async fn concurrency_runs_handlers_at_once(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(&format!("{QUICK}concurrency = 4\n"));
    let mut q = env.queue(&settings).await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(publish_script(q.as_mut(), &settings, "sleep:600").await);
    }
    let started = Instant::now();
    let running = Running::start(settings, &registry(&journal));
    for id in ids {
        until_deleted(q.as_mut(), id).await;
    }
    let took = started.elapsed();
    running.stop().await;
    assert_eq!(journal.most_at_once.load(Ordering::SeqCst), 4);
    assert!(
        took < Duration::from_millis(2400),
        "8 × 600 ms on 4 workers took {took:?}"
    );
}

/// The idle rule: after N empty iterations of sleep_duration, the run ends
/// with StopReason::Idle.
async fn idle_exit(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(
        "sleep_duration = \"200ms\"\nshutdown_after_number_of_empty_iterations = 3\nconcurrency = 2\n",
    );
    let mut q = env.queue(&settings).await;
    let id = publish_script(q.as_mut(), &settings, "sleep:500").await;
    let started = Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(15),
        Runner::new(settings, &registry(&journal))
            .unwrap()
            .run(CancellationToken::new()),
    )
    .await
    .expect("idles out")
    .unwrap();
    let took = started.elapsed();
    assert_eq!(report.stop, StopReason::Idle);
    assert_eq!(report.counters["script"].succeeded, 1);
    assert!(state(q.as_mut(), id).await.is_none());
    // 500 ms of work, then 3 × 200 ms idle (and up to a reserve slice).
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(4),
        "took {took:?}"
    );
}

/// `on_idle = "restart"`: the config is read again and the run goes on; a
/// handler added to the config in between serves jobs after the restart.
async fn idle_restart_rereads_the_config(env: Env) {
    let journal = Arc::new(Journal::default());
    let idle =
        "sleep_duration = \"200ms\"\nshutdown_after_number_of_empty_iterations = 2\non_idle = \"restart\"\n";
    let first = env.settings(idle);
    let second = env.settings(&format!("{idle}[handlers.late]\nkind = \"success\"\n"));
    let loads = Arc::new(AtomicUsize::new(0));
    let token = CancellationToken::new();
    let counted = loads.clone();
    let load = move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        Ok(if n == 0 { first.clone() } else { second.clone() })
    };
    let registry = registry(&journal);
    let run_token = token.clone();
    let handle = tokio::spawn(async move { run_until_stopped(load, &registry, run_token).await });
    let settings = env.settings(idle);
    let mut q = env.queue(&settings).await;
    eventually(Duration::from_secs(10), "a restart", || async {
        (loads.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    let id = publish(q.as_mut(), &settings, Message::new("late")).await;
    until_deleted(q.as_mut(), id).await;
    eventually(Duration::from_secs(10), "another restart", || async {
        (loads.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    token.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report.stop, StopReason::Shutdown);
    assert!(report.restarts >= 2, "{report:?}");
    assert_eq!(report.counters["late"].succeeded, 1);
}

/// Shutdown with a handler that finishes within shutdown_timeout: it
/// completes and its job is deleted; nothing more is reserved.
async fn shutdown_waits_for_in_flight_handlers(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(&format!("{QUICK}shutdown_timeout = \"5s\"\nconcurrency = 1\n"));
    let mut q = env.queue(&settings).await;
    let slow = publish_script(q.as_mut(), &settings, "sleep:1000").await;
    let running = Running::start(settings.clone(), &registry(&journal));
    eventually(Duration::from_secs(10), "the handler started", || async {
        (!journal.runs().is_empty()).then_some(())
    })
    .await;
    let next = publish_script(q.as_mut(), &settings, "ok").await;
    let report = running.stop().await;
    assert_eq!(report.stop, StopReason::Shutdown);
    assert_eq!(state(q.as_mut(), slow).await, None, "finished and deleted");
    assert_eq!(
        state(q.as_mut(), next).await,
        Some(JobState::Ready),
        "not reserved after the stop"
    );
    assert_eq!(report.counters["script"].succeeded, 1);
}

/// Shutdown with a handler that outlives shutdown_timeout: it is cancelled
/// and its job released at once, ready for another worker.
async fn shutdown_past_the_timeout_releases_at_once(env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(&format!("{QUICK}shutdown_timeout = \"300ms\"\n"));
    let mut q = env.queue(&settings).await;
    let slow = publish_script(q.as_mut(), &settings, "sleep:30000").await;
    let running = Running::start(settings, &registry(&journal));
    eventually(Duration::from_secs(10), "the handler started", || async {
        (!journal.runs().is_empty()).then_some(())
    })
    .await;
    let stopping = Instant::now();
    let report = running.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "stopped in {:?}",
        stopping.elapsed()
    );
    // Handed back: released, then kicked to ready at once (the kick keeps
    // the reservation from counting as an attempt).
    let info = q.stats_job(slow).await.unwrap();
    assert_eq!((info.state, info.releases, info.kicks), (JobState::Ready, 1, 1));
    assert_eq!(report.counters["script"].released, 1);
}

/// An exec handler past its timeout: the runner cancels it, the child is
/// killed, and the job goes on as a transient failure (here: the last
/// attempt, so buried). Exit codes reach the outcome table too.
async fn exec_handlers_through_the_runner(env: Env) {
    let journal = Arc::new(Journal::default());
    let pid_file = env.on.path().join("pid");
    let settings = env.settings(&format!(
        "{QUICK}[retry]\nmax_attempts = 1\n\
         [handlers.slow]\nkind = \"exec\"\ncommand = [\"sh\", \"-c\", \"echo $$ > {}; exec sleep 30\"]\ntimeout = \"300ms\"\n\
         [handlers.flaky]\nkind = \"exec\"\ncommand = [\"sh\", \"-c\", \"exit 75\"]\n\
         [handlers.fine]\nkind = \"exec\"\ncommand = [\"sh\", \"-c\", \"test \\\"$(cat)\\\" = hello\"]\n",
        pid_file.display()
    ));
    let mut q = env.queue(&settings).await;
    let slow = publish(q.as_mut(), &settings, Message::new("slow")).await;
    let flaky = publish(q.as_mut(), &settings, Message::new("flaky")).await;
    let fine = publish(q.as_mut(), &settings, Message::new("fine").with_payload("hello")).await;
    let running = Running::start(settings, &registry(&journal));
    let slow_info = until_buried(q.as_mut(), slow).await;
    let flaky_info = until_buried(q.as_mut(), flaky).await;
    until_deleted(q.as_mut(), fine).await;
    let report = running.stop().await;
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signal 0 only checks whether the process exists.
    assert!(
        unsafe { libc::kill(pid, 0) } != 0,
        "the timed-out child {pid} is gone"
    );
    assert_eq!(report.counters["slow"].timed_out, 1);
    if q.capabilities().keeps_reasons {
        assert!(slow_info.reason.unwrap().contains("timed out after 300ms"));
        assert!(flaky_info.reason.unwrap().contains("code 75"));
    }
}

/// The runner recovers by itself when beanstalkd is killed (SIGKILL) and
/// restarts mid-run, and the binlog keeps every job across it: one a runner
/// holds at the kill and delayed ones queued behind it all run afterwards.
/// Without `-b` the server comes back empty, and this fails.
async fn beanstalkd_restart_during_a_run(mut env: Env) {
    let journal = Arc::new(Journal::default());
    let settings = env.settings(&format!("{QUICK}concurrency = 2\n"));
    let mut q = env.queue(&settings).await;
    let before = publish_script(q.as_mut(), &settings, "ok").await;
    let running = Running::start(settings.clone(), &registry(&journal));
    until_deleted(q.as_mut(), before).await;

    let held = publish_script(q.as_mut(), &settings, "sleep:1500").await;
    let mut queued = Vec::new();
    for _ in 0..3 {
        let mut message = Message::new("script").with_payload("ok");
        message.header.delay = Some(Utc::now() + chrono::Duration::seconds(2));
        queued.push(publish(q.as_mut(), &settings, message).await);
    }
    eventually(
        Duration::from_secs(10),
        "the runner holds the sleeping job",
        || {
            let started = !journal.runs_of(held).is_empty();
            async move { started.then_some(()) }
        },
    )
    .await;
    assert_eq!(state(q.as_mut(), held).await, Some(JobState::Reserved));

    let server = env.on.server.as_mut().unwrap();
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    let mut q = env.queue(&settings).await;
    for &id in &queued {
        assert!(
            state(q.as_mut(), id).await.is_some(),
            "job {id}, queued at the kill, did not survive the restart"
        );
    }
    let after = publish_script(q.as_mut(), &settings, "ok").await;
    for id in queued.iter().copied().chain([held, after]) {
        until_deleted(q.as_mut(), id).await;
    }
    let report = running.stop().await;
    for id in queued.iter().copied().chain([after]) {
        assert_eq!(journal.runs_of(id).len(), 1, "job {id} ran once");
    }
    // The held job finished while the server was down; its delete was
    // lost, so it ran again, or the retried delete removed it.
    assert!(!journal.runs_of(held).is_empty());
    assert!(report.counters["script"].succeeded >= 5, "{:?}", report.counters);
}

macro_rules! on_both_queues {
    ($($scenario:ident),* $(,)?) => {
        mod file_queue {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Env::file()).await;
                }
            )*
        }
        mod beanstalkd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Env::beanstalkd()).await;
                }
            )*
        }
    };
}

on_both_queues!(
    success_deletes_and_publishes_follow_ups,
    fatal_and_panic_bury,
    unknown_foreign_and_expired_jobs_are_buried,
    expired_jobs_can_be_deleted,
    transient_retries_with_backoff_then_buries,
    explicit_delay_and_per_handler_retry,
    attempts_are_counted_by_the_queue,
    timeout_cancels_then_retries,
    ttr_lease_keeps_a_long_job_with_one_runner,
    concurrency_runs_handlers_at_once,
    idle_exit,
    idle_restart_rereads_the_config,
    shutdown_waits_for_in_flight_handlers,
    shutdown_past_the_timeout_releases_at_once,
    exec_handlers_through_the_runner,
    graceful_shutdowns_do_not_use_up_attempts,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beanstalkd_restart_mid_run() {
    beanstalkd_restart_during_a_run(Env::beanstalkd()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beanstalkd_outage_is_not_idleness() {
    an_outage_is_not_idleness(Env::beanstalkd()).await;
}

#[test]
fn counters_serialize_by_request_type() {
    let report = RunReport {
        stop: StopReason::Idle,
        counters: BTreeMap::from([("x".to_owned(), pulpo::runner::Counters::default())]),
        elapsed: Duration::from_millis(1500),
        restarts: 0,
    };
    let value = serde_json::to_value(&report).unwrap();
    assert_eq!(value["stop"], "idle");
    assert_eq!(value["counters"]["x"]["reserved"], 0);
}
