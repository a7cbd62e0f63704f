//! Disk faults under the file queue, on a small tmpfs the test mounts
//! (this needs root, as the test suite has here; without it the test says
//! so and stops): a full filesystem and a read-only one. `pulpo publish`
//! fails with a clear error and a non-zero exit, nothing half-written
//! appears, a runner waits while the disk is full and finishes the work once
//! space returns.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pulpo_testkit::tmpfs::Tmpfs;
use serde_json::Value;

/// A tmpfs mounted for one test, unmounted when dropped.
fn pulpo(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pulpo"))
        .args(args)
        .current_dir(dir)
        .env("PULPO_LOG", "error")
        .output()
        .unwrap()
}

fn stats(dir: &Path) -> Value {
    let out = pulpo(dir, &["stats", "--json"]);
    assert!(
        out.status.success(),
        "stats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn config(work: &Path, queue: &Path) {
    std::fs::write(
        work.join("pulpo.toml"),
        format!(
            "sleep_duration = \"200ms\"\nshutdown_after_number_of_empty_iterations = 0\n\
             [file]\npath = \"{}\"\n[handlers.work]\nkind = \"success\"\n",
            queue.display()
        ),
    )
    .unwrap();
}

#[test]
fn a_full_disk_fails_publish_cleanly_and_runners_wait_for_space() {
    let Some(fs) = Tmpfs::mount(
        "256k",
        "a_full_disk_fails_publish_cleanly_and_runners_wait_for_space",
    ) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let queue = fs.path.join("queue");
    config(work.path(), &queue);

    // Fill the disk with 2 KiB jobs until publish refuses.
    let payload = "x".repeat(2048);
    let mut acknowledged = 0u64;
    let error = loop {
        let out = pulpo(work.path(), &["publish", "work", &payload]);
        if !out.status.success() {
            break (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        acknowledged += 1;
        assert!(
            acknowledged < 1000,
            "a 256 KiB disk took {acknowledged} jobs of 2 KiB"
        );
    };
    assert_eq!(error.0, Some(1), "{}", error.1);
    assert_eq!(error.1.lines().count(), 1, "one line: {}", error.1);
    assert!(
        error.1.contains("No space left on device") && error.1.contains(&queue.display().to_string()),
        "names the cause and the path: {}",
        error.1
    );
    assert!(acknowledged > 10);

    // Every acknowledged job is there, whole; nothing half-written.
    let before = stats(work.path());
    assert_eq!(before["total_jobs"].as_u64(), Some(acknowledged), "{before}");
    assert_eq!(before["current_jobs_ready"].as_u64(), Some(acknowledged));
    assert_eq!(before["corrupt_records"].as_u64(), Some(0));
    let peek = pulpo(work.path(), &["peek", &acknowledged.to_string(), "--json"]);
    let job: Value = serde_json::from_slice(&peek.stdout).unwrap();
    assert_eq!(job["message"]["body"]["payload"].as_str(), Some(payload.as_str()));

    // A runner on the full disk cannot even record a reservation: it waits.
    let mut runner: Child = Command::new(env!("CARGO_BIN_EXE_pulpo"))
        .arg("run")
        .arg("--json")
        .current_dir(work.path())
        .env("PULPO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        runner.try_wait().unwrap().is_none(),
        "the runner waits instead of exiting"
    );

    // Space returns: the runner carries on and finishes every job.
    fs.remount("size=16m");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = stats(work.path());
        if now["current_jobs_ready"].as_u64() == Some(0) && now["current_jobs_reserved"].as_u64() == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the runner did not finish after space returned: {now}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(runner.id() as i32, libc::SIGTERM) };
    let out = runner.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["total"]["buried"].as_u64(), Some(0), "{summary}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("No space left on device"),
        "the runner said why it waited: {log}"
    );

    // Publishing works again, too.
    let out = pulpo(work.path(), &["publish", "work", "after"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_read_only_queue_fails_publish_with_a_clear_error() {
    let Some(fs) = Tmpfs::mount("1m", "a_read_only_queue_fails_publish_with_a_clear_error") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let queue = fs.path.join("queue");
    config(work.path(), &queue);
    let out = pulpo(work.path(), &["publish", "work", "first"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    fs.remount("ro");
    let out = pulpo(work.path(), &["publish", "work", "second"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");

    fs.remount("rw");
    let after = stats(work.path());
    assert_eq!(
        after["total_jobs"].as_u64(),
        Some(1),
        "the refused job left nothing: {after}"
    );
    assert_eq!(after["corrupt_records"].as_u64(), Some(0));
}

#[test]
fn a_publish_cut_short_by_a_full_disk_reports_what_it_stored() {
    let count = 100_000u64;
    let count_arg = count.to_string();
    for json in [false, true] {
        let Some(fs) = Tmpfs::mount("1m", "a_publish_cut_short_by_a_full_disk_reports_what_it_stored") else {
            return;
        };
        let work = tempfile::tempdir().unwrap();
        config(work.path(), &fs.path.join("queue"));
        let mut args = vec!["publish", "work", "p", "--count", &count_arg];
        if json {
            args.push("--json");
        }
        let out = pulpo(work.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "json {json}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("No space left on device"), "{stderr}");
        let text = String::from_utf8_lossy(&out.stdout);
        let ids: Vec<u64> = if json {
            // One document with the ids stored and the error.
            assert_eq!(text.lines().count(), 1, "one document on one line: {text}");
            let doc: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"));
            assert!(
                doc["error"].as_str().unwrap().contains("No space left on device"),
                "{doc}"
            );
            let ids = doc["ids"].as_array().unwrap();
            ids.iter().map(|id| id.as_u64().unwrap()).collect()
        } else {
            // The ids as they were stored, then the error on stderr.
            text.lines().map(|l| l.parse().unwrap()).collect()
        };
        let stored = ids.len() as u64;
        assert!(
            stored > 0 && stored < count,
            "the disk took some batches: {stderr}"
        );
        assert!(
            stderr.contains(&format!("storing {stored} of {count} jobs")),
            "stderr says how many: {stderr}"
        );
        assert_eq!(ids, (1..=stored).collect::<Vec<_>>(), "json {json}");
        assert_eq!(
            stats(work.path())["total_jobs"].as_u64(),
            Some(stored),
            "a retry knows exactly what is already stored"
        );
    }
}

/// Log lines, captured for a test (a `tracing` writer).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A compaction that fails on a full disk removes its temporary file (which would otherwise hold
/// the last free space, so that even deletes fail) and is not tried again after every command
/// (issue 11, item 10).
#[test]
fn a_compaction_that_fails_on_a_full_disk_cleans_up_and_backs_off() {
    use pulpo_filequeue::{FileQueue, Options};
    let Some(fs) = Tmpfs::mount(
        "256k",
        "a_compaction_that_fails_on_a_full_disk_cleans_up_and_backs_off",
    ) else {
        return;
    };
    let queue = fs.path.join("queue");
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let options = Options {
            fsync: false,
            compact_min_bytes: 32 << 10,
            ..Options::default()
        };
        let q = FileQueue::open(&queue, options).unwrap();
        // Room kept aside while the jobs fill the disk, then given back: enough for the deletes,
        // not for a compaction, which must write the live half of the log.
        let room = fs.path.join("room");
        std::fs::write(&room, [0u8; 16 << 10]).unwrap();
        let body = [b'x'; 2048];
        let mut ids = Vec::new();
        let full = loop {
            match q.put("t", 0, Duration::ZERO, Duration::from_secs(60), &body) {
                Ok(id) => ids.push(id),
                Err(err) => break err,
            }
            assert!(
                ids.len() < 1000,
                "a 256 KiB disk took {} jobs of 2 KiB",
                ids.len()
            );
        };
        assert!(full.to_string().contains("No space left on device"), "{full}");
        std::fs::remove_file(&room).unwrap();
        // Once less than half of the log is live, every delete would compact, and fail: the
        // disk has no room for the live half. Every delete still succeeds.
        let files = || -> Vec<(String, u64)> {
            std::fs::read_dir(&queue)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.metadata().unwrap().len(),
                    )
                })
                .collect()
        };
        for &id in &ids {
            if let Err(err) = q.delete(id) {
                panic!("delete {id} of {}: {err}; files: {:?}", ids.len(), files());
            }
            let files = files();
            assert!(
                files.iter().all(|(name, _)| !name.ends_with(".tmp")),
                "a failed compaction left its file behind: {files:?}"
            );
        }
    });
    let log = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    let tries = log.matches("could not compact").count();
    assert!(
        (1..=3).contains(&tries),
        "compaction tried {tries} times over the deletes:\n{log}"
    );
}
