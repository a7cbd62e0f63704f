//! The runner timed over queued jobs with a no-op handler (request type `noop`), shared by the
//! benches that measure it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pulpo::config::Settings;
use pulpo::handlers::{Context, Outcome, Registry};
use pulpo::message::Message;
use pulpo::runner::Runner;
use tokio_util::sync::CancellationToken;

/// Jobs/s of [`Runner`] over `n` queued `noop` jobs: from its start until the handler has seen
/// the last one.
pub(crate) fn jobs_per_second(runtime: &tokio::runtime::Runtime, settings: &Settings, n: usize) -> f64 {
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let mut registry = Registry::with_builtins();
    let (counter, finished, target) = (seen.clone(), done.clone(), n as u64);
    registry.register("noop", move |_| {
        let (counter, finished) = (counter.clone(), finished.clone());
        Ok(Arc::new(move |_message: Message, _ctx: Context| {
            let (counter, finished) = (counter.clone(), finished.clone());
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) + 1 == target {
                    finished.notify_one();
                }
                Outcome::success()
            }
        }))
    });
    let runner = Runner::new(settings.clone(), &registry).expect("runner");
    runtime.block_on(async {
        let token = CancellationToken::new();
        let started = Instant::now();
        let task = tokio::spawn(runner.run(token.clone()));
        done.notified().await;
        let took = started.elapsed();
        token.cancel();
        task.await.expect("runner task").expect("runner");
        n as f64 / took.as_secs_f64()
    })
}
