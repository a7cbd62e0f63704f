//! The handles of one process share one index per directory and the work of following the log:
//! what one appends, the others do not read back. Alone in its file (its own process), because
//! it counts the records the whole process reads.

mod common;

use common::{TTR, Z, open, open_other, opts, queue_dir};
use pulpo_filequeue::records_read;

/// Four handles of one process put 100 jobs each, in turns: no handle reads back what another
/// appended (they share the index that applied it). With an index per handle, each one caught up
/// on the other three's 300 records before every put: 900 records read, 1200 with the reserves.
/// A handle with an index of its own (another process, played here) still catches up.
#[test]
fn handles_of_one_process_follow_the_log_once() {
    let (_d, path) = queue_dir();
    let handles: Vec<_> = (0..4).map(|_| open(&path, opts())).collect();
    let before = records_read();
    for _ in 0..100 {
        for q in &handles {
            q.put("t", 0, Z, TTR, b"job").unwrap();
        }
    }
    for q in &handles {
        let job = q.reserve(&["t"], Some(Z)).unwrap().expect("a ready job");
        q.delete(job.id).unwrap();
    }
    let read = records_read() - before;
    assert!(
        read == 0,
        "the handles of one process read back {read} records of each other's"
    );
    let other = open_other(&path, opts());
    let before = records_read();
    handles[0].put("t", 0, Z, TTR, b"one more").unwrap();
    assert_eq!(other.stats().unwrap().current_jobs_ready, 397);
    let after = records_read();
    assert!(
        after > before,
        "another process did not read the new record ({before} then {after})"
    );
}

/// Reservations stay the handle's own, though the index is shared: another handle of the same
/// process cannot release, bury or touch them, and the owner still can.
#[test]
fn a_shared_index_keeps_reservations_per_handle() {
    let (_d, path) = queue_dir();
    let (a, b) = (open(&path, opts()), open(&path, opts()));
    let id = a.put("t", 0, Z, TTR, b"x").unwrap();
    let job = b.reserve(&["t"], Some(Z)).unwrap().expect("ready");
    assert_eq!(job.id, id);
    assert!(a.release(id, 0, Z, None).is_err(), "another handle released it");
    assert!(a.bury(id, 0, None).is_err(), "another handle buried it");
    assert!(a.touch(id).is_err(), "another handle touched it");
    assert!(a.delete(id).is_err(), "another handle deleted it");
    b.release(id, 0, Z, None).unwrap();
}
