//! A file-queue directory removed under a running runner (issue 11, item 15): the runner stops
//! with one clear error instead of waiting on the removed directory forever while publishers
//! start a new queue with ids from 1.

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

/// `pulpo run` on a queue directory that is then removed exits 1 with one line saying so.
#[test]
fn pulpo_run_exits_1_with_one_line_when_its_queue_directory_is_removed() {
    use std::process::{Command, Stdio};
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("queue");
    std::fs::write(
        work.path().join("pulpo.toml"),
        format!(
            "sleep_duration = \"200ms\"\nshutdown_after_number_of_empty_iterations = 0\n\
             [file]\npath = \"{}\"\n[handlers.work]\nkind = \"success\"\n",
            path.display()
        ),
    )
    .unwrap();
    let mut runner = Command::new(env!("CARGO_BIN_EXE_pulpo"))
        .arg("run")
        .current_dir(work.path())
        .env("PULPO_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !path.join("lock").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner never opened its queue"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_dir_all(&path).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while runner.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = runner.kill();
            panic!("the runner carried on after its queue directory was removed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = runner.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("removed or replaced"), "{stderr}");
}
