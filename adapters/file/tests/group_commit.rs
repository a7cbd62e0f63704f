//! Group commit with fsync on: concurrent producers on one handle and on several handles all get
//! their jobs durable, and a leader that vanishes without waking anyone does not hang the rest.

use std::fs::File;
use std::sync::mpsc;
use std::time::Duration;

use pulpo_filequeue::{FileQueue, Options};

const Z: Duration = Duration::ZERO;
const TTR: Duration = Duration::from_secs(60);

fn synced() -> Options {
    Options {
        fsync: true,
        ..Options::default()
    }
}

#[test]
fn concurrent_producers_on_own_and_shared_handles_all_land() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("q");
    let first = FileQueue::open(&path, synced()).unwrap();
    let mut handles = vec![first.clone(), first.clone()];
    handles.push(FileQueue::open(&path, synced()).unwrap());
    handles.push(FileQueue::open(&path, synced()).unwrap());
    let per = 200;
    let ids: Vec<u64> = std::thread::scope(|s| {
        let joins: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(p, q)| {
                s.spawn(move || {
                    (0..per)
                        .map(|i| q.put("gc", 0, Z, TTR, format!("{p}-{i}").as_bytes()).unwrap())
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        joins.into_iter().flat_map(|j| j.join().unwrap()).collect()
    });
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 4 * per, "every put got its own id");
    drop(handles);
    drop(first);
    // A fresh handle (as after a crash) sees every acknowledged job.
    let again = FileQueue::open(&path, synced()).unwrap();
    for id in ids {
        again.peek(id).unwrap();
    }
    assert_eq!(again.stats_tube("gc").unwrap().current_jobs_ready, 4 * per as u64);
}

#[test]
fn a_leader_that_vanishes_without_waking_anyone_does_not_hang_a_put() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("q");
    let q = FileQueue::open(&path, synced()).unwrap();
    q.put("t", 0, Z, TTR, b"first").unwrap();
    // Play a leader of another process: hold the sync file's lock; never bump the word.
    let dead = File::options()
        .read(true)
        .write(true)
        .open(path.join("run").join("sync"))
        .unwrap();
    dead.lock().unwrap();
    let (tx, rx) = mpsc::channel();
    let q2 = q.clone();
    let t = std::thread::spawn(move || {
        let id = q2.put("t", 0, Z, TTR, b"second").unwrap();
        tx.send(id).unwrap();
    });
    // While the "leader" holds the lock nothing makes the put durable, so it must not return.
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "a put returned before anyone fdatasynced it"
    );
    drop(dead); // the process dies: the kernel drops its lock, nobody wakes the waiter
    let id = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the put never noticed that the leader was gone");
    t.join().unwrap();
    assert_eq!(q.peek(id).unwrap().body, b"second");
}

#[test]
fn producers_across_compactions_lose_nothing() {
    // Compaction moves the log to a new segment while leaders sync; a leader whose record is in
    // a segment the published end no longer names takes the locked path instead.
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("q");
    let opts = Options {
        fsync: true,
        compact_min_bytes: 2048,
        ..Options::default()
    };
    let handles: Vec<FileQueue> = (0..4)
        .map(|_| FileQueue::open(&path, opts.clone()).unwrap())
        .collect();
    let kept: Vec<u64> = std::thread::scope(|s| {
        let joins: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(p, q)| {
                s.spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..150 {
                        let id = q.put("gc", 0, Z, TTR, format!("{p}-{i}").as_bytes()).unwrap();
                        // Delete most, so the log is mostly dead and compacts often.
                        if i % 5 == 0 {
                            kept.push(id);
                        } else {
                            q.delete(id).unwrap();
                        }
                    }
                    kept
                })
            })
            .collect();
        joins.into_iter().flat_map(|j| j.join().unwrap()).collect()
    });
    drop(handles);
    let compacted = std::fs::read_dir(&path).unwrap().any(|e| {
        let name = e.unwrap().file_name().into_string().unwrap();
        name.strip_prefix("log.").and_then(|n| n.parse::<u64>().ok()) > Some(1)
    });
    assert!(compacted, "the test must compact (a segment past log.1)");
    let again = FileQueue::open(&path, synced()).unwrap();
    assert_eq!(
        again.stats_tube("gc").unwrap().current_jobs_ready,
        kept.len() as u64
    );
    for id in kept {
        again.peek(id).unwrap();
    }
}

#[test]
fn a_garbage_sync_file_is_only_a_slower_start() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("q");
    let q = FileQueue::open(&path, synced()).unwrap();
    let first = q.put("t", 0, Z, TTR, b"first").unwrap();
    drop(q);
    // What a power loss or another program could leave: bytes that decode as nothing.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(path.join("run").join("sync"), &junk).unwrap();
    let q = FileQueue::open(&path, synced()).unwrap();
    let second = q.put("t", 0, Z, TTR, b"second").unwrap();
    drop(q);
    let q = FileQueue::open(&path, synced()).unwrap();
    assert_eq!(q.peek(first).unwrap().body, b"first");
    assert_eq!(q.peek(second).unwrap().body, b"second");
}
