//! Hostile bytes on disk, in the normal test suite: bounded property runs of what `fuzz/`
//! (`filequeue_frames`, `filequeue_open`) does at length, and the regression tests for what
//! fuzzing found.
//!
//! A queue directory whose segment holds damaged or forged bytes must open (a file it cannot use
//! is moved aside, damaged records are skipped), answer every read, never give an id twice and
//! never lose a job it accepted. The format functions never panic, and every record the writer
//! can produce decodes back to itself.

use pulpo_testkit::mutation::{edits, mutate};
use std::fs;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use pulpo_filequeue::format::{
    FRAME_LEN, Frame, MAX_DURATION_MS, MAX_JOB_ID, MAX_SEGMENT, Record, SEG_HEADER_LEN, Snapshot, decode,
    encode, parse_frame, parse_segment_header, resync, segment_header,
};
use pulpo_filequeue::{Error, FileQueue, JobState, validate_tube};

mod common;

use common::{TTR, Z, open, opts, queue_dir, queue_dir_with};

/// Builds a queue that has used every command, then returns its segment.
fn build_segment(dir: &Path, compacted: bool) -> Vec<u8> {
    let q = open(dir, opts());
    let a = q.put("default", 5, Z, TTR, b"first\r\nbody").unwrap();
    let b = q.put("emails", 1, Z, TTR, b"{\"header\":{}}").unwrap();
    let c = q.put("emails", 2000, Duration::from_secs(600), TTR, b"").unwrap();
    let d = q.put("default", 7, Z, TTR, b"to delete").unwrap();
    let job = q.reserve(&["emails"], Some(Z)).unwrap().unwrap();
    q.release(job.id, 3, Z, Some("try again")).unwrap();
    let job = q.reserve(&["emails"], Some(Z)).unwrap().unwrap();
    q.touch(job.id).unwrap();
    q.bury(job.id, 9, Some("boom")).unwrap();
    q.kick("emails", 1).unwrap();
    let job = q.reserve(&["default"], Some(Z)).unwrap().unwrap();
    q.delete(d).unwrap();
    q.bury(job.id, 4, None).unwrap();
    q.kick_job(c).unwrap();
    q.pause_tube("emails", Duration::from_secs(30)).unwrap();
    assert_eq!((a, b), (1, 2));
    if compacted {
        q.compact().unwrap();
    }
    let seg = q.stats().unwrap().segment;
    fs::read(dir.join(format!("log.{seg}"))).unwrap()
}

/// A real segment, built once.
fn real_segment() -> &'static [u8] {
    static SEGMENT: OnceLock<Vec<u8>> = OnceLock::new();
    SEGMENT.get_or_init(|| {
        let (_d, dir) = queue_dir();
        build_segment(&dir, false)
    })
}

/// Every read command; returns (jobs in any state, next id, ids seen).
fn inspect(q: &FileQueue) -> (u64, u64, Vec<u64>) {
    let stats = q.stats().unwrap();
    let mut ids = Vec::new();
    for tube in q.list_tubes().unwrap() {
        if validate_tube(&tube).is_err() {
            continue;
        }
        for job in [q.peek_ready(&tube), q.peek_delayed(&tube), q.peek_buried(&tube)] {
            ids.extend(job.unwrap().map(|j| j.id));
        }
        match q.stats_tube(&tube) {
            Ok(_) | Err(Error::TubeNotFound { .. }) => {}
            Err(err) => panic!("stats_tube {tube}: {err}"),
        }
    }
    for id in (1..stats.next_id.min(16)).chain(ids.clone()) {
        match (q.peek(id), q.stats_job(id)) {
            (Ok(job), Ok(_)) => assert_eq!(job.id, id),
            (Err(Error::NotFound { .. }), Err(Error::NotFound { .. })) => {}
            (peek, stats) => panic!("peek {id} / stats_job {id}: {peek:?} / {stats:?}"),
        }
    }
    assert!(ids.iter().all(|&id| id < stats.next_id));
    let jobs = stats.current_jobs_ready
        + stats.current_jobs_delayed
        + stats.current_jobs_reserved
        + stats.current_jobs_buried;
    (jobs, stats.next_id, ids)
}

/// Writes `files` into a fresh queue directory, opens and uses it: nothing accepted is lost.
fn open_and_use(files: &[(&str, &[u8])]) {
    let (_d, dir) = queue_dir_with(files);
    let q = FileQueue::open(&dir, opts()).expect("a damaged directory still opens");
    let (jobs, next_id, ids) = inspect(&q);
    let id = q.put("fuzz", 0, Z, TTR, b"new").unwrap();
    assert!(id >= next_id && !ids.contains(&id), "id {id} not fresh");
    drop(q);
    let q = open(&dir, opts());
    assert_eq!(inspect(&q).0, jobs + 1, "a job lost by reopening");
    q.compact().unwrap();
    assert_eq!(inspect(&q).0, jobs + 1, "a job lost by compaction");
}

/// Walks `data` as the reader does: frame by frame, resyncing over damage.
fn walk(data: &[u8]) {
    if let Ok(n) = parse_segment_header(data) {
        assert_eq!(parse_segment_header(&segment_header(n)), Ok(n));
    }
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        match parse_frame(rest) {
            Frame::Complete { total, body } => {
                assert!(total > FRAME_LEN && total <= rest.len());
                if let Some(record) = decode(body) {
                    let mut again = Vec::new();
                    encode(&record, &mut again);
                    assert_eq!(&again[FRAME_LEN..], body, "encode(decode(b)) != b");
                }
                at += total;
            }
            Frame::Incomplete { need } => {
                assert!(need.is_none_or(|n| n > rest.len()));
                break;
            }
            Frame::Bad => match resync(rest) {
                Some(skip) => {
                    assert!(skip >= 1);
                    assert!(matches!(parse_frame(&rest[skip..]), Frame::Complete { .. }));
                    at += skip;
                }
                None => break,
            },
        }
    }
}

fn small_str() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

/// The values one generated record is made of (which ones it uses depends on its kind).
#[derive(Debug, Clone)]
struct Parts {
    kind: u8,
    id: u64,
    ms_a: u64,
    ms_b: u64,
    any64: u64,
    any32: u32,
    text: String,
    reason: Option<String>,
    body: Vec<u8>,
}

/// Records as the writer produces them (ids and segments in range, reasons not over the cut).
fn record_parts() -> impl Strategy<Value = Parts> {
    (
        0u8..13,
        0..=MAX_JOB_ID,
        0..=MAX_DURATION_MS,
        0..=MAX_DURATION_MS,
        any::<u64>(),
        any::<u32>(),
        small_str(),
        prop::option::of(small_str()),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(kind, id, ms_a, ms_b, any64, any32, text, reason, body)| Parts {
            kind,
            id,
            ms_a,
            ms_b,
            any64,
            any32,
            text,
            reason,
            body,
        })
}

fn make_record(parts: &Parts) -> Record<'_> {
    let Parts {
        kind,
        id,
        ms_a,
        ms_b,
        any64,
        any32,
        ref text,
        ref reason,
        ref body,
    } = *parts;
    let reason = reason.as_deref();
    match kind {
        0 => Record::Put {
            id,
            tube: text,
            pri: any32,
            delay_ms: ms_a,
            ttr_ms: ms_b,
            created_ms: any64,
            body,
        },
        1 => Record::Reserve {
            id,
            owner: any64,
            deadline_ms: ms_a,
        },
        2 => Record::Delete { id },
        3 => Record::Release {
            id,
            pri: any32,
            delay_ms: ms_a,
            at_ms: any64,
            reason,
        },
        4 => Record::Bury {
            id,
            pri: any32,
            reason,
        },
        5 => Record::Touch {
            id,
            deadline_ms: any64,
        },
        6 => Record::Timeout { id },
        7 => Record::Kick { id },
        8 => Record::Pause {
            tube: text,
            until_ms: any64,
            secs: ms_a,
        },
        9 => Record::Snapshot(Snapshot {
            id,
            tube: text,
            pri: any32,
            state: (any64 % 4) as u8,
            state_time: any64,
            owner: ms_a,
            created_ms: any64,
            delay_ms: ms_a,
            ttr_ms: ms_b,
            counters: [any32, 0, 1, any32, 2],
            reason,
            body,
        }),
        10 => Record::NextId { next: id + 1 },
        11 => Record::Seal {
            next_segment: id.min(MAX_SEGMENT),
        },
        _ => Record::TubeCounters {
            tube: text,
            total_jobs: any64,
            cmd_delete: ms_a,
            cmd_pause: ms_b,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn damaged_segments_open_answer_and_keep_what_they_accept(edits in edits(), keep_header in any::<bool>()) {
        let real = real_segment();
        let header = if keep_header { SEG_HEADER_LEN as usize } else { 0 };
        let mut bytes = real[..header].to_vec();
        bytes.extend(mutate(&real[header..], &edits));
        open_and_use(&[("log.1", &bytes)]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_record_the_writer_can_write_decodes_to_itself(parts in record_parts()) {
        let record = make_record(&parts);
        let mut framed = Vec::new();
        encode(&record, &mut framed);
        let Frame::Complete { total, body } = parse_frame(&framed) else {
            panic!("not a complete frame: {record:?}");
        };
        prop_assert_eq!(total, framed.len());
        prop_assert_eq!(decode(body), Some(record));
        for cut in 0..framed.len() {
            let partial = matches!(parse_frame(&framed[..cut]), Frame::Incomplete { .. });
            prop_assert!(partial, "cut at {}", cut);
        }
    }

    #[test]
    fn format_functions_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        edits in edits(),
        from_real in any::<bool>(),
    ) {
        let input = if from_real { mutate(real_segment(), &edits) } else { bytes };
        walk(&input);
        walk(input.get(SEG_HEADER_LEN as usize..).unwrap_or_default());
        let _ = decode(&input);
    }
}

/// The first record of the segment `filequeue_open` found: a `Put` with id `u64::MAX`, which
/// made replay compute `id + 1` and panic (debug) or wrap the next id to 0 (release).
const PUT_WITH_THE_LARGEST_ID: [u8; 83] = [
    0x50, 0x55, 0x4c, 0x50, 0x4f, 0x46, 0x51, 0x4c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0e, 0xf1, 0x31, 0x00, 0x00, 0x00, 0xc7, 0x17, 0x36, 0xf1,
    0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x07, 0x64, 0x65, 0x66, 0x61, 0x75, 0x6c, 0x74, 0x00, 0x00, 0x00, 0x00,
];

#[test]
fn a_put_with_the_largest_id_is_skipped_as_damage() {
    let (_d, dir) = queue_dir_with(&[("log.1", &PUT_WITH_THE_LARGEST_ID)]);
    let q = open(&dir, opts());
    let stats = q.stats().unwrap();
    assert_eq!(
        (stats.corrupt_records, stats.current_jobs_ready, stats.next_id),
        (1, 0, 1)
    );
    assert_eq!(q.put("default", 0, Z, TTR, b"x").unwrap(), 1);
    open_and_use(&[("log.1", &PUT_WITH_THE_LARGEST_ID)]);
}

/// `filequeue_open` found this: `log.+1` (or `log.01`) was read as segment 1, so opening
/// chose `log.1` and then removed "the older copy of segment 1", which was `log.1` itself: the
/// live segment was unlinked while in use and every job in it was lost at the next open.
#[test]
fn a_segment_name_in_another_spelling_never_removes_the_live_segment() {
    for odd in ["log.+1", "log.01"] {
        let (_d, dir) = queue_dir();
        let q = open(&dir, opts());
        let id = q.put("default", 0, Z, TTR, b"kept").unwrap();
        drop(q);
        fs::write(dir.join(odd), segment_header(1)).unwrap();
        let q = open(&dir, opts());
        assert_eq!(q.peek(id).unwrap().body, b"kept", "{odd}");
        drop(q);
        let q = open(&dir, opts());
        assert_eq!(
            q.peek(id).unwrap().body,
            b"kept",
            "{odd}: lost at the second open"
        );
        assert!(!dir.join(odd).exists(), "{odd} is moved aside");
        // The exact input: a header-only log.1 and its copy under the odd name.
        open_and_use(&[("log.1", &segment_header(1)), (odd, &segment_header(1))]);
    }
}

#[test]
fn segment_numbers_at_the_limit_do_not_overflow() {
    // A foreign file with the largest number: moved aside, and the new segment is not N + 1.
    open_and_use(&[("log.18446744073709551615", b"not a segment")]);
    open_and_use(&[("log.18446744073709551615", &segment_header(u64::MAX))]);
    // The largest segment number the queue accepts: it works, compaction is skipped.
    let mut seg = segment_header(MAX_SEGMENT).to_vec();
    encode(
        &Record::Put {
            id: 1,
            tube: "default",
            pri: 0,
            delay_ms: 0,
            ttr_ms: 1000,
            created_ms: 1,
            body: b"at the limit",
        },
        &mut seg,
    );
    let name = format!("log.{MAX_SEGMENT}");
    open_and_use(&[(&name, &seg), ("log.7", &segment_header(7))]);
    // A damaged file numbered at the limit is replaced by a new segment of the same number.
    open_and_use(&[(&name, b"damaged")]);
}

fn segment(records: &[Record<'_>]) -> Vec<u8> {
    let mut out = segment_header(1).to_vec();
    for record in records {
        encode(record, &mut out);
    }
    out
}

fn put(id: u64, tube: &str) -> Record<'_> {
    Record::Put {
        id,
        tube,
        pri: 0,
        delay_ms: 0,
        ttr_ms: 1000,
        created_ms: 1,
        body: b"x",
    }
}

/// Values the writer never writes, which made arithmetic on them overflow.
#[test]
fn values_at_the_top_of_their_range_saturate() {
    let edges = segment(&[
        // A TTR beyond what the writer clamps to: cut to it, so `now + ttr` cannot overflow.
        Record::Put {
            id: 1,
            tube: "a",
            pri: 0,
            delay_ms: 0,
            ttr_ms: u64::MAX,
            created_ms: 1,
            body: b"",
        },
        Record::Put {
            id: 2,
            tube: "a",
            pri: 0,
            delay_ms: 5,
            ttr_ms: 1000,
            created_ms: u64::MAX,
            body: b"created at the end of time",
        },
        put(3, "a"),
        Record::Release {
            id: 3,
            pri: 0,
            delay_ms: MAX_DURATION_MS,
            at_ms: u64::MAX,
            reason: Some("later"),
        },
        Record::Release {
            id: 3,
            pri: 0,
            delay_ms: u64::MAX,
            at_ms: 0,
            reason: None,
        },
        Record::Snapshot(Snapshot {
            id: 4,
            tube: "b",
            pri: 0,
            state: 3,
            state_time: u64::MAX,
            owner: 0,
            created_ms: 0,
            delay_ms: 0,
            ttr_ms: 1000,
            counters: [u32::MAX; 5],
            reason: None,
            body: b"counted out",
        }),
        Record::Kick { id: 4 },
        put(5, "b"),
        Record::Bury {
            id: 5,
            pri: 0,
            reason: None,
        },
        Record::TubeCounters {
            tube: "a",
            total_jobs: u64::MAX,
            cmd_delete: u64::MAX,
            cmd_pause: u64::MAX,
        },
        Record::TubeCounters {
            tube: "b",
            total_jobs: u64::MAX,
            cmd_delete: 1,
            cmd_pause: 1,
        },
        put(6, "a"),
        Record::Delete { id: 6 },
        Record::Pause {
            tube: "a",
            until_ms: 0,
            secs: u64::MAX,
        },
    ]);
    let (_d, dir) = queue_dir_with(&[("log.1", &edges)]);
    let q = open(&dir, opts());
    let stats = q.stats().unwrap();
    assert_eq!(stats.corrupt_records, 0);
    assert_eq!(stats.total_jobs, u64::MAX, "saturated, not wrapped");
    assert_eq!(
        q.stats_job(1).unwrap().ttr,
        Duration::from_millis(MAX_DURATION_MS)
    );
    let job = q.reserve(&["a"], Some(Z)).unwrap().expect("job 1 is ready");
    assert_eq!(job.id, 1);
    q.touch(1).unwrap();
    q.release(1, 0, Z, None).unwrap();
    assert_eq!(q.stats_job(2).unwrap().state, JobState::Delayed);
    assert_eq!(q.stats_job(3).unwrap().state, JobState::Delayed);
    assert_eq!(q.stats_job(4).unwrap().kicks, u32::MAX);
    assert_eq!(q.stats_job(5).unwrap().state, JobState::Buried);
    let job = q.reserve(&["b"], Some(Z)).unwrap().expect("job 4 is ready");
    assert_eq!((job.id, q.stats_job(4).unwrap().reserves), (4, u32::MAX));
    q.touch(4).unwrap();
    q.compact().unwrap();
    assert_eq!(q.stats().unwrap().total_jobs, u64::MAX);
    open_and_use(&[("log.1", &edges)]);
}

/// The first record of the segment `filequeue_open` found: a ready job (a `Snapshot`, id 2, tube
/// "fuzz") with TTR 0. Reserving it set a deadline of now, so the next command timed it out and
/// its release (or delete) was `NOT_FOUND`: the job could never be finished, only handed out
/// again and again. A TTR read from the log is now at least 1 s, as beanstalkd makes it.
const READY_JOB_WITH_TTR_ZERO: [u8; 121] = [
    0x50, 0x55, 0x4c, 0x50, 0x4f, 0x46, 0x51, 0x4c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0e, 0xf1, 0x57, 0x00, 0x00, 0x00, 0x61, 0x95, 0xca, 0x0e,
    0x0a, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x66, 0x75, 0x7a, 0x7a, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00,
];

#[test]
fn a_job_with_ttr_zero_can_be_finished() {
    let (_d, dir) = queue_dir_with(&[("log.1", &READY_JOB_WITH_TTR_ZERO)]);
    let q = open(&dir, opts());
    assert_eq!(q.stats_job(2).unwrap().ttr, Duration::from_secs(1));
    let job = q.reserve(&["fuzz"], Some(Z)).unwrap().expect("job 2 is ready");
    assert_eq!(job.id, 2);
    q.release(2, 1, Z, Some("fuzz")).unwrap();
    let job = q.reserve(&["fuzz"], Some(Z)).unwrap().expect("job 2 again");
    q.delete(job.id).unwrap();
    open_and_use(&[("log.1", &READY_JOB_WITH_TTR_ZERO)]);
}

/// A next id at the limit (only a forged or damaged log sets it) refuses a put before writing,
/// instead of giving an id that replay refuses or that collides.
#[test]
fn used_up_ids_refuse_a_put() {
    let (_d, dir) = queue_dir_with(&[("log.1", &segment(&[Record::NextId { next: MAX_JOB_ID }]))]);
    let q = open(&dir, opts());
    assert_eq!(q.put("t", 0, Z, TTR, b"last").unwrap(), MAX_JOB_ID);
    let before = q.stats().unwrap().log_bytes;
    assert!(matches!(
        q.put("t", 0, Z, TTR, b"one too many"),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(q.stats().unwrap().log_bytes, before, "nothing written");
    drop(q);
    let q = open(&dir, opts());
    assert_eq!(q.peek(MAX_JOB_ID).unwrap().body, b"last");
    // Past the limit the record itself is damage.
    assert!(decode(&segment(&[Record::NextId { next: MAX_JOB_ID + 2 }])[24 + FRAME_LEN..]).is_none());
    assert!(decode(&segment(&[put(MAX_JOB_ID + 1, "t")])[24 + FRAME_LEN..]).is_none());
}

/// Writes real segments into `$PULPO_FUZZ_SEEDS` for `scripts/fuzz` (the fuzzer cannot guess
/// CRCs well, so it starts from files the writer made).
#[test]
#[ignore = "run by scripts/fuzz"]
fn write_fuzz_seeds() {
    let Some(out) = std::env::var_os("PULPO_FUZZ_SEEDS") else {
        return;
    };
    let out = Path::new(&out);
    fs::create_dir_all(out).unwrap();
    for (name, compacted) in [("segment-ops", false), ("segment-compacted", true)] {
        let (_d, dir) = queue_dir();
        fs::write(out.join(name), build_segment(&dir, compacted)).unwrap();
    }
    fs::write(out.join("segment-largest-id"), PUT_WITH_THE_LARGEST_ID).unwrap();
}
