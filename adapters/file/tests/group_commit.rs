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
        .open(path.join("sync"))
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
