//! Damaged and foreign files, and file permissions.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

// Every handle here plays a process of its own (`open_other`): these tests are about what one
// process finds of another's writes and damage.
use common::{TTR, Z, closed_queue_with_job, open_other, opts, queue_dir, synced};
use pulpo_filequeue::format::{self, Record};
use pulpo_filequeue::{Error, FileQueue, JobState, Options};

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn moved_aside(q: &Path) -> Vec<String> {
    match fs::read_dir(q.join("corrupt")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn foreign_segments_are_moved_aside() {
    let (_d, path, a) = closed_queue_with_job(opts(), b"a");
    fs::write(
        path.join("log.9"),
        b"this is not a segment at all, just some text",
    )
    .unwrap();
    fs::write(path.join("log.backup"), b"nor this").unwrap();
    let q = open_other(&path, opts());
    assert_eq!(q.peek(a).unwrap().body, b"a");
    let aside = moved_aside(&path);
    assert!(aside.iter().any(|n| n.starts_with("log.9.")), "{aside:?}");
    assert!(aside.iter().any(|n| n.starts_with("log.backup.")), "{aside:?}");
    assert!(q.put("t", 0, Z, TTR, b"b").unwrap() > a);
}

#[test]
fn a_damaged_only_segment_is_replaced_and_ids_go_on() {
    let (_d, path) = queue_dir();
    let q = open_other(&path, opts());
    let mut last = 0;
    for _ in 0..5 {
        last = q.put("t", 0, Z, TTR, b"x").unwrap();
    }
    drop(q);
    let seg = path.join("log.1");
    let mut bytes = fs::read(&seg).unwrap();
    bytes[..8].copy_from_slice(b"GARBAGE!");
    fs::write(&seg, bytes).unwrap();
    let q = open_other(&path, opts());
    assert_eq!(moved_aside(&path).len(), 1);
    assert_eq!(q.stats().unwrap().segment, 2);
    assert!(
        q.put("t", 0, Z, TTR, b"y").unwrap() > last,
        "ids salvaged from the moved file are not reused"
    );
}

/// Where the log in `seg` ends: the first frame header of zeros, or the end of the file.
fn data_end(seg: &Path) -> usize {
    let bytes = fs::read(seg).unwrap();
    let mut at = format::SEG_HEADER_LEN as usize;
    while at < bytes.len() && bytes[at..(at + format::FRAME_LEN).min(bytes.len())] != [0; 10][..] {
        match format::parse_frame(&bytes[at..]) {
            format::Frame::Complete { total, .. } => at += total,
            other => panic!("unexpected frame at {at}: {other:?}"),
        }
    }
    at
}

fn torn_put(id: u64) -> Vec<u8> {
    let mut rec = Vec::new();
    let put = Record::Put {
        id,
        tube: "t",
        pri: 0,
        delay_ms: 0,
        ttr_ms: 1000,
        created_ms: 1,
        body: b"torn",
    };
    format::encode(&put, &mut rec);
    rec.truncate(rec.len() - 3);
    rec
}

/// A writer killed inside its write leaves part of a record where the log ended: followed by
/// the zeros the segment was grown with (`in_zeros`), or by the end of the file.
fn torn_tail_is_cut_off(in_zeros: bool) {
    let (_d, path) = queue_dir();
    let q = open_other(&path, opts());
    let ids: Vec<u64> = (0..3).map(|i| q.put("t", i, Z, TTR, b"whole").unwrap()).collect();
    drop(q);
    let seg = path.join("log.1");
    let good_end = data_end(&seg) as u64;
    let file = OpenOptions::new().write(true).open(&seg).unwrap();
    if in_zeros {
        assert!(
            file.metadata().unwrap().len() > good_end + 100,
            "the segment was grown"
        );
    } else {
        file.set_len(good_end).unwrap();
    }
    std::os::unix::fs::FileExt::write_all_at(&file, &torn_put(99), good_end).unwrap();
    drop(file);
    let q = open_other(&path, opts());
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        good_end,
        "cut off at the last whole record"
    );
    assert!(matches!(q.peek(99), Err(Error::NotFound { id: 99 })));
    for &id in &ids {
        assert_eq!(q.peek(id).unwrap().body, b"whole");
    }
    let n = q.put("t", 0, Z, TTR, b"next").unwrap();
    assert_eq!(n, ids[2] + 1);
    drop(q);
    let q = open_other(&path, opts());
    assert_eq!(q.peek(n).unwrap().body, b"next");
    assert_eq!(q.stats().unwrap().corrupt_records, 0);
}

#[test]
fn a_torn_tail_in_the_grown_zeros_is_cut_off() {
    torn_tail_is_cut_off(true);
}

#[test]
fn a_torn_tail_at_the_end_of_the_file_is_cut_off() {
    torn_tail_is_cut_off(false);
}

/// Bytes past the end of the log (say, of a write a power loss half kept) are never read as log,
/// even once new records reach exactly up to them: every write ends with a zero frame header.
#[test]
fn a_stale_record_past_the_end_is_never_read() {
    let (_d, path, first) = closed_queue_with_job(opts(), b"before");
    let seg = path.join("log.1");
    let end = data_end(&seg);
    // Three puts of "new" will take exactly `3 * len` bytes; a stale record waits right after.
    let mut one = Vec::new();
    let put = Record::Put {
        id: first + 1,
        tube: "t",
        pri: 0,
        delay_ms: 0,
        ttr_ms: 60_000,
        created_ms: 1,
        body: b"new",
    };
    format::encode(&put, &mut one);
    let mut stale = Vec::new();
    let ghost = Record::Put {
        id: 999,
        tube: "t",
        pri: 0,
        delay_ms: 0,
        ttr_ms: 1000,
        created_ms: 1,
        body: b"ghost",
    };
    format::encode(&ghost, &mut stale);
    let file = OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &stale, (end + 3 * one.len()) as u64).unwrap();
    drop(file);
    let q = open_other(&path, opts());
    assert!(matches!(q.peek(999), Err(Error::NotFound { .. })));
    for _ in 0..3 {
        q.put("t", 0, Z, TTR, b"new").unwrap();
    }
    assert_eq!(
        data_end(&seg),
        end + 3 * one.len(),
        "the puts took the bytes planned"
    );
    for q in [q, open_other(&path, opts())] {
        assert!(matches!(q.peek(999), Err(Error::NotFound { .. })));
        assert_eq!(q.stats_tube("t").unwrap().current_jobs_ready, 4);
        assert_eq!(q.stats().unwrap().corrupt_records, 0);
    }
}

/// Puts three jobs in tube `t` ("first job", "SECOND-JOB", "third job") through a handle it
/// then closes, lets `damage` change the bytes of the segment (given where the second body
/// starts), and opens the queue again: the second job alone is lost, and counted, and a put
/// after the damage works. Returns the handle, the three ids and the id of that put.
fn damage_the_second_of_three(
    path: &Path,
    opts: Options,
    damage: impl FnOnce(&mut Vec<u8>, usize),
) -> (FileQueue, [u64; 3], u64) {
    let q = open_other(path, opts.clone());
    let a = q.put("t", 0, Z, TTR, b"first job").unwrap();
    let b = q.put("t", 0, Z, TTR, b"SECOND-JOB").unwrap();
    let c = q.put("t", 0, Z, TTR, b"third job").unwrap();
    drop(q);
    let seg = path.join("log.1");
    let mut bytes = fs::read(&seg).unwrap();
    let at = bytes.windows(10).position(|w| w == b"SECOND-JOB").unwrap();
    damage(&mut bytes, at);
    fs::write(&seg, &bytes).unwrap();
    let q = open_other(path, opts);
    assert_eq!(q.peek(a).unwrap().body, b"first job");
    assert!(matches!(q.peek(b), Err(Error::NotFound { .. })));
    assert_eq!(q.peek(c).unwrap().body, b"third job");
    assert_eq!(q.stats().unwrap().corrupt_records, 1);
    let n = q.put("t", 0, Z, TTR, b"after").unwrap();
    assert!(n > c);
    (q, [a, b, c], n)
}

#[test]
fn a_bit_flip_in_the_middle_is_skipped_and_counted() {
    let (_d, path) = queue_dir();
    let (q, [a, _, _], n) = damage_the_second_of_three(&path, opts(), |bytes, at| bytes[at + 3] ^= 0x10);
    // The damage stays where it is; the queue keeps working after it.
    assert_eq!(q.reserve(&["t"], Some(Z)).unwrap().unwrap().id, a);
    assert_eq!(open_other(&path, opts()).peek(n).unwrap().body, b"after");
}

#[test]
fn created_with_private_modes_and_group_writable_dirs_refused() {
    let (_d, path) = queue_dir();
    let q = open_other(&path, opts());
    let id = q.put("t", 0, Z, TTR, b"x").unwrap();
    q.reserve(&["t"], Some(Z)).unwrap();
    q.bury(id, 0, None).unwrap();
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&path.join("run")), 0o700);
    for f in ["lock", "run/sync", "log.1"] {
        assert_eq!(mode(&path.join(f)), 0o600, "{f}");
    }
    drop(q);
    fs::write(path.join("log.zzz"), b"x").unwrap();
    open_other(&path, opts());
    assert_eq!(mode(&path.join("corrupt")), 0o700);

    fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
    let err = FileQueue::open(&path, opts()).unwrap_err();
    assert!(matches!(err, Error::Permissions { mode: 0o777, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("chmod go-w") && msg.contains(&path.display().to_string()),
        "{msg}"
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o720)).unwrap();
    assert!(matches!(
        FileQueue::open(&path, opts()),
        Err(Error::Permissions { .. })
    ));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o750)).unwrap();
    let q = open_other(&path, opts());
    assert_eq!(q.stats_job(id).unwrap().state, JobState::Buried);
}

#[test]
fn io_errors_name_the_file_and_what_to_do() {
    let e = Error::Io {
        path: "/q/log.1".into(),
        op: "append to",
        source: std::io::Error::from(std::io::ErrorKind::StorageFull),
    };
    let msg = e.to_string();
    assert!(msg.contains("/q/log.1") && msg.contains("free space"), "{msg}");
}

/// A block of zeros inside records that were synced (a disk that lost a block) is damage, not
/// the end of the log: the records after it are kept and the damaged one is counted.
#[test]
fn zeros_over_synced_records_are_skipped_not_taken_for_the_end() {
    let (_d, path) = queue_dir();
    damage_the_second_of_three(&path, synced(), |bytes, body_at| {
        // Zero everything from the header of b's record to the end of its body.
        let mut start = format::SEG_HEADER_LEN as usize;
        while let format::Frame::Complete { total, .. } = format::parse_frame(&bytes[start..]) {
            if start + total > body_at {
                break;
            }
            start += total;
        }
        bytes[start..body_at + 10].fill(0);
    });
}

/// A queue as a compactor killed after renaming `log.2` into place, but before sealing `log.1`,
/// leaves it: three jobs, and a handle that opened before the rename (still on `log.1`).
/// Returns the queue's path, the jobs' ids and that handle.
fn dead_compaction(d: &Path, opts: &Options) -> (PathBuf, Vec<u64>, FileQueue) {
    // Make a compacted `log.2` of three jobs, and a copy of the unsealed `log.1` it came from.
    let src = d.join("src");
    let q = open_other(&src, opts.clone());
    let ids: Vec<u64> = (0..3).map(|_| q.put("t", 0, Z, TTR, b"old").unwrap()).collect();
    let unsealed = fs::read(src.join("log.1")).unwrap();
    q.compact().unwrap();
    let compacted = fs::read(src.join("log.2")).unwrap();
    drop(q);
    let path = d.join("q");
    fs::create_dir(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(path.join("log.1"), &unsealed).unwrap();
    let early = open_other(&path, opts.clone());
    // What the compactor did before it died: note the compaction (at byte 192 of run/sync, see
    // the crate's sync_file.rs), then rename the new segment into place.
    fs::OpenOptions::new()
        .write(true)
        .open(path.join("run").join("sync"))
        .unwrap()
        .write_all_at(&2u32.to_le_bytes(), 192)
        .unwrap();
    fs::write(path.join("log.2"), &compacted).unwrap();
    (path, ids, early)
}

/// Checks that a fresh handle finds the three old jobs and the new one.
fn all_there(path: &Path, opts: Options, ids: &[u64], new: u64) {
    let q = open_other(path, opts);
    assert_eq!(
        q.peek(new).unwrap().body,
        b"new",
        "the put after the rename was lost"
    );
    for &id in ids {
        assert_eq!(q.peek(id).unwrap().body, b"old");
    }
}

/// A dead compactor: a handle still on `log.1` must go on in `log.2`, not append to `log.1`,
/// which the next opener deletes.
#[test]
fn a_compaction_that_died_before_its_seal_does_not_split_the_log() {
    let d = tempfile::tempdir().unwrap();
    let (path, ids, early) = dead_compaction(d.path(), &opts());
    let new = early.put("t", 0, Z, TTR, b"new").unwrap();
    assert!(new > ids[2]);
    drop(early);
    all_there(&path, opts(), &ids, new);
}

/// The same dead compactor, but the handle on the unsealed `log.1` stays idle while another
/// process opens (taking `log.2` and deleting `log.1`) and compacts again, clearing the note, and
/// a third opens: the idle handle must still follow the log, not append to the deleted segment.
/// With and without fsync (handles without it publish no end of the log).
#[test]
fn an_idle_handle_follows_the_log_past_a_dead_compaction_and_a_later_one() {
    for fsync in [true, false] {
        let opts = Options { fsync, ..opts() };
        let d = tempfile::tempdir().unwrap();
        let (path, ids, idle) = dead_compaction(d.path(), &opts);
        // Another process: opens (log.2 is the highest; log.1 is deleted), compacts to log.3.
        let other = open_other(&path, opts.clone());
        assert!(!path.join("log.1").exists());
        other.compact().unwrap();
        assert!(path.join("log.3").exists() && !path.join("log.2").exists());
        // And a third opens meanwhile.
        let third = open_other(&path, opts.clone());
        let new = idle.put("t", 0, Z, TTR, b"new").unwrap();
        for q in [&other, &third] {
            assert_eq!(
                q.peek(new).unwrap().body,
                b"new",
                "another process misses the put"
            );
        }
        drop((idle, other, third));
        all_there(&path, opts, &ids, new);
    }
}

/// A segment cut shorter than its header under an open handle: the commands say so, no hang.
#[test]
fn a_segment_cut_below_its_header_is_an_error_not_a_hang() {
    let (_d, path) = queue_dir();
    let q = open_other(&path, opts());
    q.put("t", 0, Z, TTR, b"job").unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(path.join("log.1"))
        .unwrap()
        .set_len(10)
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(q.stats().map(|_| ())).unwrap());
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("stats hung on a cut segment");
    let err = got.expect_err("stats of a cut segment");
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("log.1"), "{err}");
}

/// A queue directory removed under a handle (or replaced by a new one) fails every command of
/// the handle, and wakes a reserve blocked on it, instead of carrying on in files nobody else
/// sees while a new queue starts its ids from 1 (issue 11, item 15).
#[test]
fn a_removed_or_replaced_directory_fails_the_handle_and_wakes_a_blocked_reserve() {
    let (_d, path) = queue_dir();
    let q = open_other(&path, opts());
    assert_eq!(q.put("t", 0, Z, TTR, b"a").unwrap(), 1);
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = q.clone();
    std::thread::spawn(move || {
        let _ = tx.send(waiter.reserve(&["idle"], None));
    });
    std::thread::sleep(Duration::from_millis(200));
    fs::remove_dir_all(&path).unwrap();
    let woken = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a reserve blocked on a removed directory never woke");
    assert!(matches!(woken, Err(Error::Replaced { .. })), "{woken:?}");
    let err = q.put("t", 0, Z, TTR, b"b").unwrap_err();
    assert!(matches!(err, Error::Replaced { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");

    // Someone makes a new queue in its place: a new queue, ids from 1; the old handle still
    // refuses to go on.
    let fresh = open_other(&path, opts());
    assert_eq!(fresh.put("t", 0, Z, TTR, b"c").unwrap(), 1);
    assert!(matches!(q.put("t", 0, Z, TTR, b"d"), Err(Error::Replaced { .. })));
    assert!(matches!(q.reserve(&["t"], Some(Z)), Err(Error::Replaced { .. })));
    assert_eq!(fresh.stats().unwrap().current_jobs_ready, 1);
}

/// A queue directory moved away and replaced by a new one under a handle (its files still
/// linked, in the moved directory) is noticed too, by a blocked reserve and by the next command.
#[test]
fn a_directory_moved_away_and_replaced_fails_the_handle() {
    let (d, path) = queue_dir();
    let q = open_other(&path, opts());
    q.put("t", 0, Z, TTR, b"a").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = q.clone();
    std::thread::spawn(move || {
        let _ = tx.send(waiter.reserve(&["idle"], None));
    });
    std::thread::sleep(Duration::from_millis(200));
    fs::rename(&path, d.path().join("moved")).unwrap();
    let fresh = open_other(&path, opts());
    let woken = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a reserve blocked on a replaced directory never woke");
    assert!(matches!(woken, Err(Error::Replaced { .. })), "{woken:?}");
    std::thread::sleep(Duration::from_millis(600));
    assert!(matches!(q.put("t", 0, Z, TTR, b"b"), Err(Error::Replaced { .. })));
    assert_eq!(fresh.stats().unwrap().total_jobs, 0);
}
