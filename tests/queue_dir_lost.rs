//! A file-queue directory removed under a running runner (issue 11, item 15): the runner stops
//! with one clear error instead of waiting on the removed directory forever while publishers
//! start a new queue with ids from 1. (`tests/cli_run.rs` checks the same of `pulpo run`.)

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use pulpo::config::from_toml_str;
use pulpo::handlers::Registry;
use pulpo::message::Message;
use pulpo::queue::{self, JobState, QueueError};
use pulpo::runner::{RunError, Runner};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_stops_with_an_error_when_its_queue_directory_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue");
    let toml = format!(
        "queue = \"file\"\nsleep_duration = \"200ms\"\nshutdown_after_number_of_empty_iterations = 0\n\
         concurrency = 2\n[file]\npath = \"{}\"\nfsync = false\n[handlers.work]\nkind = \"success\"\n",
        path.display()
    );
    let settings = from_toml_str(&toml, Path::new("test.toml")).unwrap();
    let publish = |settings| {
        let mut message = Message::new("work").with_payload("x");
        pulpo::publish::prepare(&mut message, settings, Utc::now())
    };
    let mut q = queue::open(&settings).await.unwrap();
    let first = q.put(&settings.tube, publish(&settings)).await.unwrap();
    let runner = Runner::new(settings.clone(), &Registry::with_builtins()).unwrap();
    let token = CancellationToken::new();
    let running = tokio::spawn(runner.run(token.clone()));
    // The runner works: the first job is done.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while q.stats_job(first).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner never ran the job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(q);

    std::fs::remove_dir_all(&path).unwrap();
    // A publisher now makes a new queue in its place: that is a new queue, with ids from 1.
    let mut fresh = queue::open(&settings).await.unwrap();
    let id = fresh.put(&settings.tube, publish(&settings)).await.unwrap();
    assert_eq!(id, 1);

    let ended = tokio::time::timeout(Duration::from_secs(20), running).await;
    token.cancel();
    let err = ended
        .expect("the runner carried on after its queue directory was removed")
        .unwrap()
        .expect_err("the run ended without an error");
    assert!(
        matches!(err, RunError::QueueLost(QueueError::Unusable(_))),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("removed or replaced"),
        "{msg}"
    );
    assert_eq!(fresh.stats_job(id).await.unwrap().state, JobState::Ready);
}
