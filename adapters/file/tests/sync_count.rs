//! With fsync, every durable change waits for an fdatasync; without, nothing syncs. kill -9 keeps
//! the page cache, so no crash test can tell a synced write from an unsynced one: these tests
//! count the syncs instead (`pulpo_filequeue::sync_count`, process-wide, hence this binary of
//! its own, whose tests take turns).

use std::sync::Mutex;
use std::time::Duration;

mod common;

use common::{TTR, Z, open, opts, queue_dir, synced};
use pulpo_filequeue::{FileQueue, NewJob, SyncPoint, sync_count};

/// The counts are process-wide: one test at a time, so that one's syncs are not the other's.
static TURN: Mutex<()> = Mutex::new(());

/// Syncs at every point so far.
fn all_syncs() -> u64 {
    SyncPoint::ALL.iter().map(|&p| sync_count(p)).sum()
}

/// The group commit's fdatasyncs that `f` made, and its value.
fn fdatasyncs<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let before = sync_count(SyncPoint::GroupCommit);
    let v = f();
    (sync_count(SyncPoint::GroupCommit) - before, v)
}

/// Every durable command, once each, in turn on one handle; `each` sees each command's name and
/// the group commit's fdatasyncs it made.
fn every_durable_command(q: &FileQueue, mut each: impl FnMut(&str, u64)) {
    let mut one = |name: &str, f: &mut dyn FnMut()| each(name, fdatasyncs(f).0);
    let mut ids = Vec::new();
    one("put", &mut || ids.push(q.put("t", 0, Z, TTR, b"a").unwrap()));
    let job = NewJob {
        pri: 0,
        delay: Z,
        ttr: TTR,
        body: b"b",
    };
    one("put_many", &mut || {
        ids.extend(q.put_many("t", &[job, job]).unwrap())
    });
    let r = q.reserve(&["t"], Some(Z)).unwrap().unwrap();
    one("release", &mut || q.release(r.id, 0, Z, Some("again")).unwrap());
    let r = q.reserve(&["t"], Some(Z)).unwrap().unwrap();
    one("bury", &mut || q.bury(r.id, 0, None).unwrap());
    one("kick", &mut || assert_eq!(q.kick("t", 1).unwrap(), 1));
    let r = q.reserve(&["t"], Some(Z)).unwrap().unwrap();
    q.bury(r.id, 0, None).unwrap();
    one("kick_job", &mut || q.kick_job(r.id).unwrap());
    one("delete", &mut || q.delete(ids[0]).unwrap());
    one("pause_tube", &mut || {
        q.pause_tube("default", Duration::from_secs(1)).unwrap()
    });
}

#[test]
fn with_fsync_every_durable_change_waits_for_an_fdatasync() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (_d, path) = queue_dir();
    let q = open(&path, synced());
    // Alone on its handle, each command leads its own group commit.
    every_durable_command(&q, |name, syncs| {
        assert!(syncs >= 1, "{name} returned without an fdatasync");
    });
    // N puts in a row on one handle: each one waits for its own.
    let n = 20;
    let (syncs, _) = fdatasyncs(|| {
        for i in 0..n {
            q.put("t", 0, Z, TTR, format!("{i}").as_bytes()).unwrap();
        }
    });
    assert!(syncs >= n, "{n} puts, {syncs} fdatasyncs");
}

#[test]
fn without_fsync_nothing_is_synced_after_open() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (_d, path) = queue_dir();
    let q = open(&path, opts());
    let before = all_syncs();
    every_durable_command(&q, |_, _| {});
    for i in 0..20 {
        q.put("t", 0, Z, TTR, format!("{i}").as_bytes()).unwrap();
    }
    let r = q.reserve(&["t"], Some(Z)).unwrap().unwrap();
    q.touch(r.id).unwrap();
    drop(q);
    assert_eq!(all_syncs() - before, 0, "syncs without fsync");
}
