//! Group commit with fsync on: concurrent producers on one handle and on several handles all get
//! their jobs durable, and a leader that vanishes without waking anyone does not hang the rest.

use std::fs::File;
use std::sync::mpsc;
use std::time::Duration;

mod common;

use common::{TTR, Z, closed_queue_with_job, open, queue_dir, synced};
use pulpo_filequeue::{FileQueue, Options};

/// Runs `produce` on a thread of its own for each handle (with the handle's place in the list),
/// all at once; returns the ids they return, in the order of the handles.
fn on_every_handle(
    handles: &[FileQueue],
    produce: impl Fn(usize, &FileQueue) -> Vec<u64> + Sync,
) -> Vec<u64> {
    let produce = &produce;
    std::thread::scope(|s| {
        let joins: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(p, q)| s.spawn(move || produce(p, q)))
            .collect();
        joins.into_iter().flat_map(|j| j.join().unwrap()).collect()
    })
}

#[test]
fn concurrent_producers_on_own_and_shared_handles_all_land() {
    let (_d, path) = queue_dir();
    let first = open(&path, synced());
    let mut handles = vec![first.clone(), first.clone()];
    handles.push(open(&path, synced()));
    handles.push(open(&path, synced()));
    let per = 200;
    let ids = on_every_handle(&handles, |p, q| {
        (0..per)
            .map(|i| q.put("gc", 0, Z, TTR, format!("{p}-{i}").as_bytes()).unwrap())
            .collect()
    });
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 4 * per, "every put got its own id");
    drop(handles);
    drop(first);
    // A fresh handle (as after a crash) sees every acknowledged job.
    let again = open(&path, synced());
    for id in ids {
        again.peek(id).unwrap();
    }
    assert_eq!(again.stats_tube("gc").unwrap().current_jobs_ready, 4 * per as u64);
}

#[test]
fn a_leader_that_vanishes_without_waking_anyone_does_not_hang_a_put() {
    let (_d, path) = queue_dir();
    let q = open(&path, synced());
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
    let (_d, path) = queue_dir();
    let opts = Options {
        fsync: true,
        compact_min_bytes: 2048,
        ..Options::default()
    };
    let handles: Vec<FileQueue> = (0..4).map(|_| open(&path, opts.clone())).collect();
    let kept = on_every_handle(&handles, |p, q| {
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
    });
    drop(handles);
    let compacted = std::fs::read_dir(&path).unwrap().any(|e| {
        let name = e.unwrap().file_name().into_string().unwrap();
        name.strip_prefix("log.").and_then(|n| n.parse::<u64>().ok()) > Some(1)
    });
    assert!(compacted, "the test must compact (a segment past log.1)");
    let again = open(&path, synced());
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
    let (_d, path, first) = closed_queue_with_job(synced(), b"first");
    // What a power loss or another program could leave: bytes that decode as nothing.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(path.join("run").join("sync"), &junk).unwrap();
    let q = open(&path, synced());
    let second = q.put("t", 0, Z, TTR, b"second").unwrap();
    drop(q);
    let q = open(&path, synced());
    assert_eq!(q.peek(first).unwrap().body, b"first");
    assert_eq!(q.peek(second).unwrap().body, b"second");
}
