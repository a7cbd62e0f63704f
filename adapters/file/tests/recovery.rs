//! Damaged and foreign files, and file permissions.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use pulpo_filequeue::format::{self, Record};
use pulpo_filequeue::{Error, FileQueue, JobState, Options};

const Z: Duration = Duration::ZERO;
const TTR: Duration = Duration::from_secs(60);

fn opts() -> Options {
    Options {
        fsync: false,
        ..Options::default()
    }
}

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
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("q");
    let q = FileQueue::open(&path, opts()).unwrap();
    let a = q.put("t", 0, Z, TTR, b"a").unwrap();
    drop(q);
    fs::write(
        path.join("log.9"),
        b"this is not a segment at all, just some text",
    )
    .unwrap();
    fs::write(path.join("log.backup"), b"nor this").unwrap();
    let q = FileQueue::open(&path, opts()).unwrap();
    assert_eq!(q.peek(a).unwrap().body, b"a");
    let aside = moved_aside(&path);
    assert!(aside.iter().any(|n| n.starts_with("log.9.")), "{aside:?}");
    assert!(aside.iter().any(|n| n.starts_with("log.backup.")), "{aside:?}");
    assert!(q.put("t", 0, Z, TTR, b"b").unwrap() > a);
}

#[test]
fn a_damaged_only_segment_is_replaced_and_ids_go_on() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("q");
    let q = FileQueue::open(&path, opts()).unwrap();
    let mut last = 0;
    for _ in 0..5 {
        last = q.put("t", 0, Z, TTR, b"x").unwrap();
    }
    drop(q);
    let seg = path.join("log.1");
    let mut bytes = fs::read(&seg).unwrap();
    bytes[..8].copy_from_slice(b"GARBAGE!");
    fs::write(&seg, bytes).unwrap();
    let q = FileQueue::open(&path, opts()).unwrap();
    assert_eq!(moved_aside(&path).len(), 1);
    assert_eq!(q.stats().unwrap().segment, 2);
    assert!(
        q.put("t", 0, Z, TTR, b"y").unwrap() > last,
        "ids salvaged from the moved file are not reused"
    );
}

#[test]
fn a_torn_tail_is_truncated() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("q");
    let q = FileQueue::open(&path, opts()).unwrap();
    let ids: Vec<u64> = (0..3).map(|i| q.put("t", i, Z, TTR, b"whole").unwrap()).collect();
    drop(q);
    let seg = path.join("log.1");
    let good_len = fs::metadata(&seg).unwrap().len();
    let mut rec = Vec::new();
    let put = Record::Put {
        id: 99,
        tube: "t",
        pri: 0,
        delay_ms: 0,
        ttr_ms: 1000,
        created_ms: 1,
        body: b"torn",
    };
    format::encode(&put, &mut rec);
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&rec[..rec.len() - 3])
        .unwrap();
    let q = FileQueue::open(&path, opts()).unwrap();
    assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
    assert!(matches!(q.peek(99), Err(Error::NotFound { id: 99 })));
    for &id in &ids {
        assert_eq!(q.peek(id).unwrap().body, b"whole");
    }
    let n = q.put("t", 0, Z, TTR, b"next").unwrap();
    assert_eq!(n, ids[2] + 1);
    drop(q);
    let q = FileQueue::open(&path, opts()).unwrap();
    assert_eq!(q.peek(n).unwrap().body, b"next");
    assert_eq!(q.stats().unwrap().corrupt_records, 0);
}

#[test]
fn a_bit_flip_in_the_middle_is_skipped_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("q");
    let q = FileQueue::open(&path, opts()).unwrap();
    let a = q.put("t", 0, Z, TTR, b"first job").unwrap();
    let b = q.put("t", 0, Z, TTR, b"SECOND-JOB").unwrap();
    let c = q.put("t", 0, Z, TTR, b"third job").unwrap();
    drop(q);
    let seg = path.join("log.1");
    let mut bytes = fs::read(&seg).unwrap();
    let at = bytes.windows(10).position(|w| w == b"SECOND-JOB").unwrap();
    bytes[at + 3] ^= 0x10;
    fs::write(&seg, &bytes).unwrap();
    let q = FileQueue::open(&path, opts()).unwrap();
    assert_eq!(q.peek(a).unwrap().body, b"first job");
    assert!(matches!(q.peek(b), Err(Error::NotFound { .. })));
    assert_eq!(q.peek(c).unwrap().body, b"third job");
    assert_eq!(q.stats().unwrap().corrupt_records, 1);
    // The damage stays where it is; the queue keeps working after it.
    let n = q.put("t", 0, Z, TTR, b"after").unwrap();
    assert!(n > c);
    assert_eq!(q.reserve(&["t"], Some(Z)).unwrap().unwrap().id, a);
    assert_eq!(
        FileQueue::open(&path, opts()).unwrap().peek(n).unwrap().body,
        b"after"
    );
}

#[test]
fn created_with_private_modes_and_group_writable_dirs_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("q");
    let q = FileQueue::open(&path, opts()).unwrap();
    let id = q.put("t", 0, Z, TTR, b"x").unwrap();
    q.reserve(&["t"], Some(Z)).unwrap();
    q.bury(id, 0, None).unwrap();
    assert_eq!(mode(&path), 0o700);
    for f in ["lock", "sync", "log.1"] {
        assert_eq!(mode(&path.join(f)), 0o600, "{f}");
    }
    drop(q);
    fs::write(path.join("log.zzz"), b"x").unwrap();
    FileQueue::open(&path, opts()).unwrap();
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
    let q = FileQueue::open(&path, opts()).unwrap();
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
