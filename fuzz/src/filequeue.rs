//! The file queue's on-disk reader under hostile bytes.
//!
//! [`check_frames`] calls the format functions on raw bytes. [`check_open`]
//! writes bytes as segment files into a fresh queue directory, opens it and
//! uses it: whatever the files hold, opening works (a file it cannot use is
//! moved aside, damaged records are skipped), every read command answers, the
//! counts agree with each other, a new job gets an unused id, and a reopen
//! and a compaction keep every job. (Two handles per input: closing an
//! inotify descriptor takes milliseconds, so each handle costs.)

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use pulpo_filequeue::format::{
    self, FRAME_LEN, Frame, MAX_RECORD_LEN, Record, SEG_HEADER_LEN, Snapshot, decode, encode, parse_frame,
    parse_segment_header, resync, segment_header,
};
use pulpo_filequeue::{Error, FileQueue, Options, validate_tube};

/// The format functions on `data`: headers, one frame, one record, resync,
/// and a walk over all of it as the reader does.
pub fn check_frames(data: &[u8]) {
    if let Ok(n) = parse_segment_header(data) {
        assert_eq!(parse_segment_header(&segment_header(n)), Ok(n));
    }
    check_record_body(data);
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        match parse_frame(rest) {
            Frame::Complete { total, body } => {
                assert!(
                    total > FRAME_LEN && total <= rest.len(),
                    "frame of {total} in {} bytes",
                    rest.len()
                );
                assert_eq!(body, &rest[FRAME_LEN..total]);
                check_record_body(body);
                at += total;
            }
            Frame::Incomplete { need } => {
                if let Some(need) = need {
                    assert!(
                        need > rest.len() && need <= FRAME_LEN + MAX_RECORD_LEN,
                        "need {need}"
                    );
                }
                break;
            }
            Frame::Bad => match resync(rest) {
                Some(skip) => {
                    assert!(skip >= 1 && skip < rest.len());
                    assert!(
                        matches!(parse_frame(&rest[skip..]), Frame::Complete { body, .. } if decode(body).is_some()),
                        "resync stopped at a frame that does not decode"
                    );
                    at += skip;
                }
                None => break,
            },
        }
    }
}

/// `body` as a record; one that decodes must encode to a frame that decodes to it.
fn check_record_body(body: &[u8]) {
    let Some(record) = decode(body) else { return };
    let mut framed = Vec::new();
    encode(&record, &mut framed);
    let Frame::Complete { total, body: written } = parse_frame(&framed) else {
        panic!("an encoded record is not a complete frame: {record:?}");
    };
    assert_eq!(total, framed.len());
    let again = decode(written).expect("an encoded record decodes");
    if !long_reason(&record) {
        assert_eq!(written, body, "encode(decode(b)) != b for {record:?}");
        assert_eq!(again, record);
    }
}

/// Whether the record carries a reason that encoding cuts.
fn long_reason(record: &Record<'_>) -> bool {
    let reason = match record {
        Record::Release { reason, .. } | Record::Bury { reason, .. } => reason,
        Record::Snapshot(s) => &s.reason,
        _ => return false,
    };
    reason.is_some_and(|r| r.len() > format::MAX_REASON_LEN)
}

/// A directory of its own for this process's queue.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("pulpo-fuzz-{}", std::process::id())))
}

fn options() -> Options {
    Options {
        fsync: false,
        ..Options::default()
    }
}

/// Names a segment file may have: what the queue writes, and what it must refuse or survive.
const NAMES: [&str; 8] = [
    "log.1",
    "log.2",
    "log.0",
    "log.01",
    "log.+1",
    "log.9223372036854775807",
    "log.18446744073709551615",
    "log.1.tmp",
];

/// Segment files built from fuzzer input. Byte 0 picks the layout (low 2 bits) and the name of
/// one more file (the rest): raw bytes, a good header then raw bytes, or well-formed records
/// then damaged; the last layout is two segments, as a compaction that died would leave them.
pub fn segment_files(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let Some((&layout, rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut files = match layout % 4 {
        0 => vec![("log.1".to_owned(), rest.to_vec())],
        1 => {
            let mut file = segment_header(1).to_vec();
            file.extend_from_slice(rest);
            vec![("log.1".to_owned(), file)]
        }
        2 => vec![("log.1".to_owned(), structured(rest, 1).unwrap_or_default())],
        _ => {
            let half = rest.len() / 2;
            let mut old = structured(&rest[..half], 1).unwrap_or_default();
            encode(&Record::Seal { next_segment: 2 }, &mut old);
            let new = structured(&rest[half..], 2).unwrap_or_default();
            vec![("log.1".to_owned(), old), ("log.2".to_owned(), new)]
        }
    };
    // One more file under another name, holding a copy of the first with its own header.
    if let Some(&name) = NAMES.get((layout / 4) as usize % 16)
        && !files.iter().any(|(n, _)| n == name)
    {
        let seg = name
            .strip_prefix("log.")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut copy = files[0].1.clone();
        if copy.len() >= SEG_HEADER_LEN as usize {
            copy[..SEG_HEADER_LEN as usize].copy_from_slice(&segment_header(seg));
        }
        files.push((name.to_owned(), copy));
    }
    files
}

/// Writes `files` into a fresh queue directory, then opens and uses the queue.
pub fn check_open(files: &[(String, Vec<u8>)]) {
    let dir = scratch().join("q");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the scratch queue directory");
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("writing a segment");
    }
    let q = FileQueue::open(&dir, options()).unwrap_or_else(|err| panic!("open failed: {err}"));
    let before = inspect(&q);
    let id = match q.put("fuzz", 0, Duration::ZERO, Duration::from_secs(60), b"new") {
        Ok(id) => id,
        // A record set the next id at the limit: refusing the put is the right answer.
        Err(Error::Corrupt { .. }) if before.next_id > format::MAX_JOB_ID => return,
        Err(err) => panic!("put failed: {err}"),
    };
    assert!(
        id >= before.next_id,
        "new id {id} below next id {}",
        before.next_id
    );
    assert!(!before.ids.contains(&id), "id {id} given twice");
    drop(q);
    let q = FileQueue::open(&dir, options()).unwrap_or_else(|err| panic!("reopen failed: {err}"));
    let reopened = inspect(&q);
    assert_eq!(
        reopened.jobs,
        before.jobs + 1,
        "jobs lost by reopening after a put"
    );
    if let Ok(Some(job)) = q.reserve(&["fuzz"], Some(Duration::ZERO)) {
        q.release(job.id, 1, Duration::ZERO, Some("fuzz"))
            .expect("releasing a reserved job");
    }
    // Compaction rewrites the segment and reads it back from disk, as a reopen would.
    q.compact().unwrap_or_else(|err| panic!("compact failed: {err}"));
    let compacted = inspect(&q);
    assert_eq!(compacted.jobs, reopened.jobs, "jobs changed by compaction");
    assert!(compacted.next_id > id);
}

/// What [`inspect`] saw.
struct Seen {
    /// Jobs in any state.
    jobs: u64,
    /// The next id the queue gives.
    next_id: u64,
    /// Ids found by peeking.
    ids: Vec<u64>,
}

/// Every read command, with the counts checked against each other.
fn inspect(q: &FileQueue) -> Seen {
    let stats = q.stats().unwrap_or_else(|err| panic!("stats failed: {err}"));
    let tubes = q
        .list_tubes()
        .unwrap_or_else(|err| panic!("list_tubes failed: {err}"));
    let mut ids = Vec::new();
    for tube in &tubes {
        if validate_tube(tube).is_err() {
            // A name only a damaged file could hold: the commands refuse it, that is all.
            continue;
        }
        for peek in [
            FileQueue::peek_ready,
            FileQueue::peek_delayed,
            FileQueue::peek_buried,
        ] {
            if let Some(job) = peek(q, tube).unwrap_or_else(|err| panic!("peek in {tube:?} failed: {err}")) {
                ids.push(job.id);
            }
        }
        match q.stats_tube(tube) {
            Ok(_) | Err(Error::TubeNotFound { .. }) => {}
            Err(err) => panic!("stats_tube {tube:?} failed: {err}"),
        }
    }
    for id in (1..stats.next_id.min(32)).chain(ids.clone()) {
        match (q.peek(id), q.stats_job(id)) {
            (Ok(job), Ok(_)) => assert_eq!(job.id, id),
            (Err(Error::NotFound { .. }), Err(Error::NotFound { .. })) => {}
            (peek, stats) => panic!("peek {id} and stats_job {id} disagree: {peek:?} / {stats:?}"),
        }
    }
    let jobs = stats.current_jobs_ready
        + stats.current_jobs_delayed
        + stats.current_jobs_reserved
        + stats.current_jobs_buried;
    assert!(stats.current_jobs_urgent <= stats.current_jobs_ready);
    assert!(
        ids.iter().all(|&id| id < stats.next_id),
        "a job at or above the next id"
    );
    Seen {
        jobs,
        next_id: stats.next_id,
        ids,
    }
}

/// A number that is often small, often at an edge, sometimes anything.
fn num(u: &mut Unstructured<'_>) -> ArbResult<u64> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => u.int_in_range(0u64..=8)?,
        1 => u64::MAX - u.int_in_range(0u64..=8)?,
        2 => 1_700_000_000_000 + u.int_in_range(0u64..=1 << 40)?,
        _ => u.arbitrary()?,
    })
}

fn small(u: &mut Unstructured<'_>) -> ArbResult<u32> {
    Ok(match u.int_in_range(0u8..=2)? {
        0 => u.int_in_range(0u32..=3)?,
        1 => u32::MAX - u.int_in_range(0u32..=3)?,
        _ => u.arbitrary()?,
    })
}

fn tube<'a>(u: &mut Unstructured<'a>) -> ArbResult<&'a str> {
    const NAMES: [&str; 5] = ["default", "fuzz", "a", "bad name", ""];
    if u.ratio(3, 4)? {
        return Ok(NAMES[u.choose_index(NAMES.len())?]);
    }
    let text: &str = u.arbitrary()?;
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Ok(&text[..end])
}

fn reason<'a>(u: &mut Unstructured<'a>) -> ArbResult<Option<&'a str>> {
    Ok(if u.arbitrary()? {
        Some(u.arbitrary()?)
    } else {
        None
    })
}

fn record<'a>(u: &mut Unstructured<'a>) -> ArbResult<Record<'a>> {
    let id = if u.ratio(3, 4)? {
        u.int_in_range(1u64..=6)?
    } else {
        num(u)?
    };
    Ok(match u.int_in_range(0u8..=12)? {
        0 => Record::Put {
            id,
            tube: tube(u)?,
            pri: small(u)?,
            delay_ms: num(u)?,
            ttr_ms: num(u)?,
            created_ms: num(u)?,
            body: u.arbitrary()?,
        },
        1 => Record::Reserve {
            id,
            owner: num(u)?,
            deadline_ms: num(u)?,
        },
        2 => Record::Delete { id },
        3 => Record::Release {
            id,
            pri: small(u)?,
            delay_ms: num(u)?,
            at_ms: num(u)?,
            reason: reason(u)?,
        },
        4 => Record::Bury {
            id,
            pri: small(u)?,
            reason: reason(u)?,
        },
        5 => Record::Touch {
            id,
            deadline_ms: num(u)?,
        },
        6 => Record::Timeout { id },
        7 => Record::Kick { id },
        8 => Record::Pause {
            tube: tube(u)?,
            until_ms: num(u)?,
            secs: num(u)?,
        },
        9 => Record::Snapshot(Snapshot {
            id,
            tube: tube(u)?,
            pri: small(u)?,
            state: u.int_in_range(0u8..=3)?,
            state_time: num(u)?,
            owner: num(u)?,
            created_ms: num(u)?,
            delay_ms: num(u)?,
            ttr_ms: num(u)?,
            counters: [small(u)?, small(u)?, small(u)?, small(u)?, small(u)?],
            reason: reason(u)?,
            body: u.arbitrary()?,
        }),
        10 => Record::NextId { next: num(u)? },
        11 => Record::Seal {
            next_segment: u.int_in_range(0u64..=4)?,
        },
        _ => Record::TubeCounters {
            tube: tube(u)?,
            total_jobs: num(u)?,
            cmd_delete: num(u)?,
            cmd_pause: num(u)?,
        },
    })
}

/// Segment `seg`: a header and well-formed records chosen by `data`, then a
/// few byte-level injuries (flips, a cut, garbage) where `data` says.
fn structured(data: &[u8], seg: u64) -> ArbResult<Vec<u8>> {
    let mut u = Unstructured::new(data);
    let mut file = segment_header(seg).to_vec();
    let count = u.int_in_range(0u8..=24)?;
    for _ in 0..count {
        encode(&record(&mut u)?, &mut file);
    }
    let injuries = u.int_in_range(0u8..=3)?;
    for _ in 0..injuries {
        let len = file.len();
        let at = SEG_HEADER_LEN as usize + u.choose_index(len - SEG_HEADER_LEN as usize + 1)?;
        match u.int_in_range(0u8..=2)? {
            0 if at < len => file[at] ^= 1 << u.int_in_range(0u8..=7)?,
            1 => file.truncate(at),
            _ => {
                let garbage: &[u8] = u.arbitrary()?;
                file.splice(at..at, garbage.iter().copied());
            }
        }
    }
    Ok(file)
}
