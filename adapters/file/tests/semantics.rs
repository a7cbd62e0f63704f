//! beanstalkd semantics of the file queue, one behaviour per test.

use std::time::{Duration, Instant};

mod common;

use common::{TTR, Z, assert_took, new_queue, open, opts, queue_dir};
use pulpo_filequeue::{Clock, Error, FileQueue, JobState, NewJob, Options};

/// How late a wait may end past the moment it is due: a wake-up is prompt, but a loaded
/// machine may run the woken thread late. Used where the timing is the point of the test; the
/// lower bound stays exact.
const LATE: Duration = Duration::from_millis(500);

/// A new queue without fsync whose clock moves only when the test says: for tests of what
/// time does to jobs (not of how promptly a waiter wakes), which then need no window.
fn queue_on_manual_clock() -> (tempfile::TempDir, FileQueue, Clock) {
    let (d, path) = queue_dir();
    let clock = Clock::manual();
    let q = open(
        &path,
        Options {
            clock: clock.clone(),
            ..opts()
        },
    );
    (d, q, clock)
}

fn poll(q: &FileQueue, watch: &[&str]) -> Option<u64> {
    q.reserve(watch, Some(Z)).unwrap().map(|r| r.id)
}

/// Puts a job with a TTR of one second and reserves it; returns its id.
fn reserved_for_a_second(q: &FileQueue) -> u64 {
    let id = q.put("default", 0, Z, Duration::from_secs(1), b"x").unwrap();
    assert_eq!(poll(q, &["default"]), Some(id));
    id
}

fn not_found(r: Result<impl std::fmt::Debug, Error>, id: u64) {
    match r {
        Err(Error::NotFound { id: got }) => assert_eq!(got, id),
        other => panic!("expected NotFound {id}, got {other:?}"),
    }
}

#[test]
fn lowest_priority_first_then_fifo() {
    let (_d, q) = new_queue();
    let a = q.put("default", 10, Z, TTR, b"a").unwrap();
    let b = q.put("default", 5, Z, TTR, b"b").unwrap();
    let c = q.put("default", 10, Z, TTR, b"c").unwrap();
    let e = q.put("default", 5, Z, TTR, b"e").unwrap();
    assert!(a < b && b < c && c < e);
    let got: Vec<_> = (0..4)
        .map(|_| q.reserve(&["default"], Some(Z)).unwrap().unwrap())
        .collect();
    assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), [b, e, a, c]);
    assert_eq!(got[0].body, b"b");
    assert_eq!(poll(&q, &["default"]), None);
}

#[test]
fn watch_list_spans_tubes_and_ignores_others() {
    let (_d, q) = new_queue();
    let x = q.put("x", 7, Z, TTR, b"x").unwrap();
    let y = q.put("y", 3, Z, TTR, b"y").unwrap();
    let _z = q.put("z", 0, Z, TTR, b"z").unwrap();
    assert_eq!(poll(&q, &["x", "y"]), Some(y));
    assert_eq!(poll(&q, &["x", "y"]), Some(x));
    assert_eq!(poll(&q, &["x", "y", "nope"]), None);
    assert!(matches!(
        q.reserve(&["bad name"], Some(Z)),
        Err(Error::InvalidTube { .. })
    ));
}

#[test]
fn delayed_job_is_ready_after_its_delay_not_before() {
    let (_d, q) = new_queue();
    let t0 = Instant::now();
    let id = q
        .put("default", 0, Duration::from_secs(1), TTR, b"later")
        .unwrap();
    assert_eq!(q.stats_job(id).unwrap().state, JobState::Delayed);
    assert_eq!(q.peek_delayed("default").unwrap().unwrap().id, id);
    assert!(q.peek_ready("default").unwrap().is_none());
    assert_eq!(poll(&q, &["default"]), None);
    let r = q
        .reserve(&["default"], Some(Duration::from_secs(3)))
        .unwrap()
        .unwrap();
    let took = t0.elapsed();
    assert_eq!(r.id, id);
    // Never early; promptly, with room for a loaded machine.
    assert_took(took, Duration::from_secs(1), Duration::from_secs(1) + LATE);
}

#[test]
fn blocking_reserve_wakes_on_put_from_another_handle() {
    let (_d, q) = new_queue();
    let q2 = open(q.dir(), opts());
    let h = std::thread::spawn(move || {
        let t0 = Instant::now();
        let r = q2.reserve(&["default"], Some(Duration::from_secs(5))).unwrap();
        (r.map(|r| r.id), t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    let id = q.put("default", 0, Z, TTR, b"x").unwrap();
    let (got, took) = h.join().unwrap();
    assert_eq!(got, Some(id));
    // Woken by the put, not by its 5 s timeout (which is all it would wait for otherwise).
    assert!(took < Duration::from_secs(3), "{took:?}");
    // And a reserve with a timeout returns None when it ends: not before, promptly after.
    let t0 = Instant::now();
    assert!(
        q.reserve(&["default"], Some(Duration::from_millis(150)))
            .unwrap()
            .is_none()
    );
    let took = t0.elapsed();
    assert_took(
        took,
        Duration::from_millis(150),
        Duration::from_millis(150) + LATE,
    );
}

#[test]
fn ttr_expiry_makes_the_job_ready_again_and_counts_a_timeout() {
    let (_d, q) = new_queue();
    let other = open(q.dir(), opts());
    let id = q.put("default", 0, Z, Duration::ZERO, b"x").unwrap(); // TTR 0 becomes 1 s
    assert_eq!(q.stats_job(id).unwrap().ttr, Duration::from_secs(1));
    let t0 = Instant::now();
    assert_eq!(poll(&q, &["default"]), Some(id));
    let s = q.stats_job(id).unwrap();
    assert_eq!(s.state, JobState::Reserved);
    // A full TTR, less what passed since the reserve (and 1 ms of rounding to ms).
    let spent = t0.elapsed() + Duration::from_millis(1);
    assert!(s.time_left <= Duration::from_secs(1), "{:?}", s.time_left);
    assert!(s.time_left + spent >= Duration::from_secs(1), "{:?}", s.time_left);
    let r = other
        .reserve(&["default"], Some(Duration::from_secs(3)))
        .unwrap()
        .unwrap();
    let took = t0.elapsed();
    assert_eq!(r.id, id);
    // The waiter on the other handle wakes when the TTR runs out: not before, promptly after.
    assert_took(took, Duration::from_secs(1), Duration::from_secs(1) + LATE);
    let s = other.stats_job(id).unwrap();
    assert_eq!((s.reserves, s.timeouts), (2, 1));
    // The first owner lost it: release/bury/touch/delete are NotFound for it now.
    not_found(q.release(id, 0, Z, None), id);
    not_found(q.bury(id, 0, None), id);
    not_found(q.touch(id), id);
    not_found(q.delete(id), id);
    other.delete(id).unwrap();
}

#[test]
fn expired_reservation_not_taken_again_is_ready_and_old_owner_can_only_delete() {
    let (_d, q) = new_queue();
    let id = reserved_for_a_second(&q);
    std::thread::sleep(Duration::from_millis(1050));
    assert_eq!(q.stats_job(id).unwrap().state, JobState::Ready);
    not_found(q.release(id, 0, Z, None), id);
    q.delete(id).unwrap();
}

#[test]
fn touch_extends_the_reservation() {
    let (_d, q, clock) = queue_on_manual_clock();
    let id = reserved_for_a_second(&q);
    clock.advance(Duration::from_millis(600));
    q.touch(id).unwrap();
    clock.advance(Duration::from_millis(600));
    let s = q.stats_job(id).unwrap();
    assert_eq!((s.state, s.timeouts), (JobState::Reserved, 0));
    assert_eq!(
        s.time_left,
        Duration::from_millis(400),
        "a full TTR from the touch"
    );
    clock.advance(Duration::from_millis(400));
    let s = q.stats_job(id).unwrap();
    assert_eq!((s.state, s.timeouts), (JobState::Ready, 1), "and no more");
    q.delete(id).unwrap();
}

#[test]
fn release_with_priority_delay_and_reason() {
    let (_d, q) = new_queue();
    let id = q.put("default", 5, Z, TTR, b"x").unwrap();
    assert_eq!(poll(&q, &["default"]), Some(id));
    q.release(id, 9, Duration::from_millis(300), Some("boom: disk on fire"))
        .unwrap();
    let s = q.stats_job(id).unwrap();
    assert_eq!((s.state, s.pri, s.releases), (JobState::Delayed, 9, 1));
    assert_eq!(s.delay, Duration::from_millis(300));
    assert_eq!(s.reason.as_deref(), Some("boom: disk on fire"));
    assert_eq!(
        q.peek(id).unwrap().stats.reason.as_deref(),
        Some("boom: disk on fire")
    );
    assert_eq!(poll(&q, &["default"]), None);
    let t0 = Instant::now();
    assert_eq!(
        q.reserve(&["default"], Some(Duration::from_secs(2)))
            .unwrap()
            .map(|r| r.id),
        Some(id)
    );
    // Ready once its 300 ms are up, promptly (with room for a loaded machine).
    assert!(t0.elapsed() < Duration::from_millis(300) + LATE);
    q.release(id, 1, Z, None).unwrap();
    let s = q.stats_job(id).unwrap();
    assert_eq!((s.state, s.pri, s.releases), (JobState::Ready, 1, 2));
    assert_eq!(
        s.reason.as_deref(),
        Some("boom: disk on fire"),
        "a release without reason keeps the last one"
    );
}

#[test]
fn bury_kick_and_kick_job() {
    let (_d, q) = new_queue();
    let ids: Vec<u64> = (0..3).map(|i| q.put("t", i, Z, TTR, b"x").unwrap()).collect();
    for &id in &ids {
        assert_eq!(poll(&q, &["t"]), Some(id));
        q.bury(id, 100, Some("fatal")).unwrap();
    }
    let delayed = q.put("t", 0, Duration::from_secs(60), TTR, b"d").unwrap();
    let s = q.stats_job(ids[0]).unwrap();
    assert_eq!((s.state, s.pri, s.buries), (JobState::Buried, 100, 1));
    assert_eq!(s.reason.as_deref(), Some("fatal"));
    assert_eq!(q.peek_buried("t").unwrap().unwrap().id, ids[0]);
    // kick takes buried first, oldest burial first, bounded.
    assert_eq!(q.kick("t", 2).unwrap(), 2);
    assert_eq!(q.stats_job(ids[0]).unwrap().state, JobState::Ready);
    assert_eq!(q.stats_job(ids[1]).unwrap().kicks, 1);
    assert_eq!(q.stats_job(ids[2]).unwrap().state, JobState::Buried);
    assert_eq!(q.kick("t", 10).unwrap(), 1);
    // No buried left: kick takes delayed ones.
    assert_eq!(q.kick("t", 10).unwrap(), 1);
    assert_eq!(q.stats_job(delayed).unwrap().state, JobState::Ready);
    assert_eq!(q.kick("t", 10).unwrap(), 0);
    assert_eq!(q.kick("nothing-here", 10).unwrap(), 0);
    // kick-job: buried or delayed only.
    let dj = q.put("t", 0, Duration::from_secs(60), TTR, b"d").unwrap();
    q.kick_job(dj).unwrap();
    assert_eq!(q.stats_job(dj).unwrap().state, JobState::Ready);
    not_found(q.kick_job(dj), dj);
    not_found(q.kick_job(9999), 9999);
}

#[test]
fn every_not_found_case() {
    let (_d, q) = new_queue();
    let other = open(q.dir(), opts());
    let id = q.put("default", 0, Z, TTR, b"x").unwrap();
    for missing in [0, 12345] {
        not_found(q.delete(missing), missing);
        not_found(q.release(missing, 0, Z, None), missing);
        not_found(q.bury(missing, 0, None), missing);
        not_found(q.touch(missing), missing);
        not_found(q.peek(missing), missing);
        not_found(q.stats_job(missing), missing);
        not_found(q.kick_job(missing), missing);
    }
    // Not reserved: release, bury and touch are refused.
    not_found(q.release(id, 0, Z, None), id);
    not_found(q.bury(id, 0, None), id);
    not_found(q.touch(id), id);
    // Reserved by another handle: only that handle may act on it.
    assert_eq!(poll(&other, &["default"]), Some(id));
    not_found(q.release(id, 0, Z, None), id);
    not_found(q.bury(id, 0, None), id);
    not_found(q.touch(id), id);
    not_found(q.delete(id), id);
    not_found(q.kick_job(id), id);
    other.delete(id).unwrap();
    not_found(other.delete(id), id);
    assert!(matches!(
        q.stats_tube("never-used"),
        Err(Error::TubeNotFound { .. })
    ));
}

#[test]
fn delete_in_every_allowed_state() {
    let (_d, q) = new_queue();
    let ready = q.put("default", 0, Z, TTR, b"r").unwrap();
    let delayed = q.put("default", 0, Duration::from_secs(60), TTR, b"d").unwrap();
    let buried = q.put("default", 1, Z, TTR, b"b").unwrap();
    let reserved = q.put("default", 2, Z, TTR, b"v").unwrap();
    q.delete(ready).unwrap();
    assert_eq!(poll(&q, &["default"]), Some(buried));
    q.bury(buried, 1, None).unwrap();
    assert_eq!(poll(&q, &["default"]), Some(reserved));
    for id in [delayed, buried, reserved] {
        q.delete(id).unwrap();
    }
    assert_eq!(q.stats().unwrap().current_jobs_ready, 0);
    assert_eq!(q.stats_tube("default").unwrap().cmd_delete, 4);
}

#[test]
fn job_size_limit_is_inclusive() {
    let (_d, path) = queue_dir();
    let q = open(
        &path,
        Options {
            max_job_size: 100,
            ..opts()
        },
    );
    q.put("default", 0, Z, TTR, &[7u8; 100]).unwrap();
    match q.put("default", 0, Z, TTR, &[7u8; 101]) {
        Err(Error::JobTooBig { size: 101, max: 100 }) => {}
        other => panic!("{other:?}"),
    }
    let dflt = open(&path, opts());
    dflt.put("default", 0, Z, TTR, &vec![1u8; 65_535]).unwrap();
    assert!(matches!(
        dflt.put("default", 0, Z, TTR, &vec![1u8; 65_536]),
        Err(Error::JobTooBig { .. })
    ));
    assert!(matches!(
        q.put("-bad", 0, Z, TTR, b""),
        Err(Error::InvalidTube { .. })
    ));
    assert_eq!(q.put("default", 0, Z, TTR, b"").map(|_| ()).unwrap(), ());
}

#[test]
fn pause_skips_a_tube_until_the_pause_ends() {
    let (_d, q) = new_queue();
    let a = q.put("a", 0, Z, TTR, b"a").unwrap();
    let b = q.put("b", 9, Z, TTR, b"b").unwrap();
    let t0 = Instant::now();
    q.pause_tube("a", Duration::from_secs(1)).unwrap();
    let s = q.stats_tube("a").unwrap();
    assert_eq!((s.pause, s.cmd_pause_tube), (Duration::from_secs(1), 1));
    // The whole pause, less what passed since it began (and 1 ms of rounding to ms).
    let spent = t0.elapsed() + Duration::from_millis(1);
    assert!(s.pause_time_left + spent >= Duration::from_secs(1));
    assert_eq!(poll(&q, &["a", "b"]), Some(b));
    assert_eq!(
        q.reserve(&["a"], Some(Duration::from_secs(3)))
            .unwrap()
            .map(|r| r.id),
        Some(a)
    );
    // A waiter wakes when the pause ends: not before, promptly after.
    assert_took(
        t0.elapsed(),
        Duration::from_secs(1),
        Duration::from_secs(1) + LATE,
    );
    let s = q.stats_tube("a").unwrap();
    assert_eq!((s.pause, s.pause_time_left), (Z, Z));
    // As in beanstalkd, a tube that does not exist cannot be paused...
    assert!(matches!(
        q.pause_tube("never-used", Duration::from_secs(60)),
        Err(pulpo_filequeue::Error::TubeNotFound { .. })
    ));
    // ...and a paused tube keeps existing after its last job is gone.
    let e = q.put("empty", 1, Z, Duration::from_secs(60), b"x").unwrap();
    q.pause_tube("empty", Duration::from_secs(60)).unwrap();
    q.delete(e).unwrap();
    assert!(q.list_tubes().unwrap().contains(&"empty".to_string()));
}

#[test]
fn every_peek() {
    let (_d, q) = new_queue();
    assert!(q.peek_ready("t").unwrap().is_none());
    assert!(q.peek_delayed("t").unwrap().is_none());
    assert!(q.peek_buried("t").unwrap().is_none());
    let r1 = q.put("t", 5, Z, TTR, b"r1").unwrap();
    let r0 = q.put("t", 1, Z, TTR, b"r0").unwrap();
    let d2 = q.put("t", 0, Duration::from_secs(20), TTR, b"d2").unwrap();
    let _d1 = q.put("t", 0, Duration::from_secs(30), TTR, b"d1").unwrap();
    let p = q.peek_ready("t").unwrap().unwrap();
    assert_eq!((p.id, p.body.as_slice()), (r0, &b"r0"[..]));
    assert_eq!(q.peek_delayed("t").unwrap().unwrap().id, d2);
    assert_eq!(poll(&q, &["t"]), Some(r0));
    q.bury(r0, 0, Some("why")).unwrap();
    let p = q.peek_buried("t").unwrap().unwrap();
    assert_eq!((p.id, p.stats.reason.as_deref()), (r0, Some("why")));
    let p = q.peek(r1).unwrap();
    assert_eq!((p.body.as_slice(), p.stats.state), (&b"r1"[..], JobState::Ready));
}

#[test]
fn stats_job_tube_and_queue_fields() {
    let (_d, q, clock) = queue_on_manual_clock();
    let id = q
        .put("s", 7, Duration::from_secs(5), Duration::from_secs(30), b"x")
        .unwrap();
    q.put("s", 2000, Z, TTR, b"y").unwrap();
    q.put("s", 3, Z, TTR, b"z").unwrap();
    clock.advance(Duration::from_millis(50));
    let s = q.stats_job(id).unwrap();
    assert_eq!(s.id, id);
    assert_eq!(s.tube, "s");
    assert_eq!(s.state, JobState::Delayed);
    assert_eq!(s.pri, 7);
    assert_eq!(s.age, Duration::from_millis(50));
    assert_eq!(s.delay, Duration::from_secs(5));
    assert_eq!(s.ttr, Duration::from_secs(30));
    assert_eq!(s.time_left, Duration::from_millis(4950));
    assert_eq!(
        (s.file, s.reserves, s.timeouts, s.releases, s.buries, s.kicks),
        (0, 0, 0, 0, 0, 0)
    );
    assert_eq!(s.reason, None);
    let r = q.reserve(&["s"], Some(Z)).unwrap().unwrap();
    let t = q.stats_tube("s").unwrap();
    assert_eq!(t.name, "s");
    assert_eq!(
        (
            t.current_jobs_urgent,
            t.current_jobs_ready,
            t.current_jobs_reserved,
            t.current_jobs_delayed
        ),
        (0, 1, 1, 1)
    );
    assert_eq!(
        (
            t.current_jobs_buried,
            t.total_jobs,
            t.cmd_delete,
            t.cmd_pause_tube
        ),
        (0, 3, 0, 0)
    );
    // The handle still watches "s" after its reserve returned, as a beanstalkd connection would.
    assert_eq!(
        (t.current_using, t.current_waiting, t.current_watching),
        (0, 0, 1)
    );
    q.bury(r.id, 1, None).unwrap();
    let g = q.stats().unwrap();
    assert_eq!(
        (
            g.current_jobs_urgent,
            g.current_jobs_ready,
            g.current_jobs_reserved
        ),
        (0, 1, 0)
    );
    assert_eq!(
        (g.current_jobs_delayed, g.current_jobs_buried, g.total_jobs),
        (1, 1, 3)
    );
    assert_eq!(g.current_tubes, 2);
    assert_eq!(q.list_tubes().unwrap(), ["default", "s"]);
    // A handle waiting on a tube shows in current-waiting.
    let q2 = q.clone();
    let h = std::thread::spawn(move || q2.reserve(&["w"], Some(Duration::from_secs(30))).unwrap());
    let t0 = Instant::now();
    while q.stats_tube("w").map_or(0, |s| s.current_waiting) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the reserve never showed as waiting"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(q.stats_tube("w").unwrap().current_waiting, 1);
    // A job for it ends the wait; then nobody waits.
    let w = q.put("w", 0, Z, TTR, b"w").unwrap();
    assert_eq!(h.join().unwrap().map(|r| r.id), Some(w));
    assert_eq!(q.stats_tube("w").unwrap().current_waiting, 0);
}

#[test]
fn put_many_gives_consecutive_ids() {
    let (_d, q) = new_queue();
    let jobs: Vec<NewJob> = (0..5)
        .map(|_| NewJob {
            pri: 1,
            delay: Z,
            ttr: TTR,
            body: b"many",
        })
        .collect();
    let ids = q.put_many("default", &jobs).unwrap();
    assert_eq!(ids.windows(2).filter(|w| w[1] == w[0] + 1).count(), 4);
    assert_eq!(q.stats().unwrap().current_jobs_ready, 5);
}

#[test]
fn reopen_keeps_everything_and_never_reuses_ids() {
    let (_d, path) = queue_dir();
    let (a, b, c);
    {
        let q = open(&path, Options::default());
        a = q.put("x", 3, Z, TTR, b"a").unwrap();
        b = q.put("x", 4, Duration::from_secs(60), TTR, b"b").unwrap();
        c = q.put("x", 1, Z, TTR, b"c").unwrap();
        assert_eq!(poll(&q, &["x"]), Some(c));
        q.bury(c, 2, Some("kept")).unwrap();
        q.pause_tube("x", Duration::from_secs(60)).unwrap();
        let last = q.put("x", 0, Z, TTR, b"gone").unwrap();
        q.delete(last).unwrap();
    }
    let q = open(&path, Options::default());
    assert_eq!(q.stats_job(a).unwrap().state, JobState::Ready);
    assert_eq!(q.stats_job(b).unwrap().state, JobState::Delayed);
    let s = q.stats_job(c).unwrap();
    assert_eq!(
        (s.state, s.pri, s.reason.as_deref()),
        (JobState::Buried, 2, Some("kept"))
    );
    assert_eq!(q.peek(a).unwrap().body, b"a");
    assert!(q.stats_tube("x").unwrap().pause_time_left > Duration::from_secs(50));
    let next = q.put("x", 0, Z, TTR, b"new").unwrap();
    assert_eq!(next, c + 2, "the deleted job's id is not reused");
    // Compaction keeps state, counters and the id sequence.
    q.compact().unwrap();
    drop(q);
    let q = open(&path, Options::default());
    assert_eq!(q.stats().unwrap().segment, 2);
    let s = q.stats_job(c).unwrap();
    assert_eq!(
        (s.state, s.buries, s.reserves, s.reason.as_deref()),
        (JobState::Buried, 1, 1, Some("kept"))
    );
    assert_eq!(q.peek(next).unwrap().body, b"new");
    assert_eq!(q.stats_tube("x").unwrap().total_jobs, 5);
    assert_eq!(q.stats_tube("x").unwrap().cmd_delete, 1);
    assert!(q.put("x", 0, Z, TTR, b"after").unwrap() > next);
}

#[test]
fn compaction_happens_by_itself_and_other_handles_follow() {
    let (_d, path) = queue_dir();
    let o = Options {
        fsync: false,
        compact_min_bytes: 64 << 10,
        ..Options::default()
    };
    let q = open(&path, o.clone());
    let other = open(&path, o);
    let keep = q.put("k", 0, Z, TTR, b"keep me").unwrap();
    for i in 0..2000u32 {
        let id = q.put("t", 0, Z, TTR, &i.to_le_bytes().repeat(16)).unwrap();
        q.delete(id).unwrap();
    }
    let s = q.stats().unwrap();
    assert!(s.segment > 1, "{s:?}");
    assert!(s.log_bytes < 64 << 10);
    assert_eq!(other.peek(keep).unwrap().body, b"keep me");
    assert_eq!(other.stats().unwrap().segment, s.segment);
    let n = other.put("t", 0, Z, TTR, b"x").unwrap();
    assert_eq!(q.peek(n).unwrap().body, b"x");
    let logs = std::fs::read_dir(&path)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("log.")
        })
        .count();
    assert_eq!(logs, 1, "old segments are removed");
}

/// A tube exists while a live handle (of any process) watches it, as on beanstalkd: named in
/// its latest reserve, until it closes. A list left by a dead process counts for nothing and is
/// removed (issue 11, item 13).
#[test]
fn a_tube_exists_while_a_live_handle_watches_it() {
    let (_d, q) = new_queue();
    let runner = open(q.dir(), opts());
    assert!(matches!(q.stats_tube("w"), Err(Error::TubeNotFound { .. })));
    assert!(runner.reserve(&["w", "v"], Some(Z)).unwrap().is_none());
    assert_eq!(q.stats_tube("w").unwrap().current_watching, 1);
    assert!(q.list_tubes().unwrap().contains(&"v".to_string()));
    q.pause_tube("w", Duration::from_secs(1)).unwrap();
    // A new watch list replaces the old one.
    assert!(runner.reserve(&["w"], Some(Z)).unwrap().is_none());
    assert!(matches!(q.stats_tube("v"), Err(Error::TubeNotFound { .. })));
    drop(runner);
    assert!(matches!(q.pause_tube("v", Z), Err(Error::TubeNotFound { .. })));

    // The list of a process that died: nobody holds its lock.
    let ghost = q.dir().join("run/watch/00000000000000ff");
    std::fs::write(&ghost, b"ghost\n").unwrap();
    assert!(matches!(q.stats_tube("ghost"), Err(Error::TubeNotFound { .. })));
    assert!(!ghost.exists(), "a dead handle's list stays");
}

#[test]
fn reserve_job_takes_a_ready_delayed_or_buried_job_by_id_never_a_reserved_one() {
    let (_d, q) = new_queue();
    let other = open(q.dir(), opts());
    let ready = q.put("default", 1, Z, TTR, b"r").unwrap();
    let delayed = q.put("default", 2, Duration::from_secs(100), TTR, b"d").unwrap();
    let buried = q.put("default", 3, Z, TTR, b"b").unwrap();
    q.pause_tube("default", Duration::from_secs(100)).unwrap();
    not_found(q.reserve_job(99), 99);
    let got = q.reserve_job(buried).unwrap();
    q.bury(got.id, 3, None).unwrap();
    let got = q.reserve_job(buried).unwrap();
    assert_eq!((got.body.as_slice(), got.reserves), (&b"b"[..], 2));
    assert_eq!(q.reserve_job(delayed).unwrap().body, b"d");
    let got = other.reserve_job(ready).unwrap();
    assert_eq!((got.tube.as_str(), got.pri, got.ttr), ("default", 1, TTR));
    // Reserved: by this handle or another, it is not found, and stays the holder's.
    for id in [ready, delayed, buried] {
        not_found(q.reserve_job(id), id);
        not_found(other.reserve_job(id), id);
    }
    other.delete(ready).unwrap();
    not_found(other.delete(delayed), delayed);
    q.release(delayed, 2, Z, None).unwrap();
}
