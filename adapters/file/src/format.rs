//! On-disk format: the segment header, record framing and the encoding of every record.
//!
//! A segment `log.<N>` starts with a 24-byte header, then holds records back to back:
//!
//! ```text
//! header : "PULPOFQL" (8) | version u32 = 1 | 0u32 | N u64
//! record : magic u16 = 0xF10E | len u32 | crc32 u32 | type u8 | payload (len - 1 bytes)
//!          len counts type + payload; crc32 (crc32fast) covers type + payload
//! ```
//!
//! The records end at the first frame header that is all zeros (the magic is never zero), or at
//! the end of the file. Writers grow a segment with zeros ahead of its data and end every write
//! with ten zero bytes, so the bytes after the last record are zeros whatever lay there before.
//!
//! All integers are little-endian. Strings are UTF-8: a tube is `u8 len | bytes`, a reason is
//! `u32 len | bytes` with `u32::MAX` meaning "none". Bodies come last in `Put` and `Snapshot`, so
//! the in-memory index keeps only their offset and length.

/// The first 8 bytes of every segment.
pub const SEG_MAGIC: [u8; 8] = *b"PULPOFQL";
/// The format version written in segment headers.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment header.
pub const SEG_HEADER_LEN: u64 = 24;
/// The first two bytes of every record.
pub const REC_MAGIC: u16 = 0xF10E;
/// Size of the record frame header (magic, len, crc).
pub const FRAME_LEN: usize = 10;
/// Largest `len` a frame may declare; anything larger is garbage.
pub const MAX_RECORD_LEN: usize = 1 << 28;
/// Largest reason stored with a job (longer ones are cut at a character boundary).
pub const MAX_REASON_LEN: usize = 4096;
/// Largest job id a record may name. Ids are given from 1 upwards and never get near it, so a
/// record naming a larger one is damage; refusing it keeps the next id (and `id + 1`) in range.
pub const MAX_JOB_ID: u64 = u64::MAX / 2;
/// Shortest TTR, in ms: beanstalkd turns 0 into 1 s, and so does the queue, writing and reading.
pub const MIN_TTR_MS: u64 = 1000;
/// Longest delay or TTR the queue writes, in ms; a TTR read from the log is cut to it, so
/// `now + ttr` cannot overflow.
pub const MAX_DURATION_MS: u64 = u64::MAX / 4;
/// Largest segment number; `log.<N>` with a larger N is not a segment, so `N + 1` cannot overflow.
pub const MAX_SEGMENT: u64 = u64::MAX / 2;

/// The header of segment `seg`.
pub fn segment_header(seg: u64) -> [u8; SEG_HEADER_LEN as usize] {
    let mut h = [0u8; SEG_HEADER_LEN as usize];
    h[..8].copy_from_slice(&SEG_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&seg.to_le_bytes());
    h
}

/// Checks a segment header; returns the segment number it declares.
pub fn parse_segment_header(h: &[u8]) -> Result<u64, &'static str> {
    if h.len() < SEG_HEADER_LEN as usize {
        return Err("shorter than a segment header");
    }
    if h[..8] != SEG_MAGIC {
        return Err("not a pulpo file-queue segment (bad magic)");
    }
    if u32::from_le_bytes(h[8..12].try_into().unwrap()) != FORMAT_VERSION {
        return Err("unsupported format version");
    }
    Ok(u64::from_le_bytes(h[16..24].try_into().unwrap()))
}

/// A full job image, written by compaction so that a new segment needs no history.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot<'a> {
    /// Job id.
    pub id: u64,
    /// Tube name.
    pub tube: &'a str,
    /// Priority.
    pub pri: u32,
    /// 0 ready, 1 delayed, 2 reserved, 3 buried.
    pub state: u8,
    /// Delayed: ready-at; reserved: deadline; buried: bury sequence number (all ms or counters).
    pub state_time: u64,
    /// Reserved: the owner token.
    pub owner: u64,
    /// Creation time, wall-clock ms.
    pub created_ms: u64,
    /// Last delay set, ms.
    pub delay_ms: u64,
    /// TTR, ms.
    pub ttr_ms: u64,
    /// reserves, timeouts, releases, buries, kicks.
    pub counters: [u32; 5],
    /// The last reason given by a release or bury.
    pub reason: Option<&'a str>,
    /// The job's body.
    pub body: &'a [u8],
}

/// One log record. Times are wall-clock milliseconds since the Unix epoch, written by the process
/// that decided, so that every process replays the same state.
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    /// A new job.
    Put {
        /// New id.
        id: u64,
        /// Tube.
        tube: &'a str,
        /// Priority.
        pri: u32,
        /// Delay before ready, ms.
        delay_ms: u64,
        /// Time to run, ms.
        ttr_ms: u64,
        /// Creation time.
        created_ms: u64,
        /// The body.
        body: &'a [u8],
    },
    /// A job reserved by `owner` until `deadline_ms`.
    Reserve {
        /// Job.
        id: u64,
        /// The reserving handle's token.
        owner: u64,
        /// When the reservation expires.
        deadline_ms: u64,
    },
    /// A job deleted.
    Delete {
        /// Job.
        id: u64,
    },
    /// A reserved job put back (ready, or delayed if `delay_ms > 0`).
    Release {
        /// Job.
        id: u64,
        /// New priority.
        pri: u32,
        /// Delay, ms.
        delay_ms: u64,
        /// When it was released.
        at_ms: u64,
        /// Why (the last error), if given.
        reason: Option<&'a str>,
    },
    /// A reserved job buried.
    Bury {
        /// Job.
        id: u64,
        /// New priority.
        pri: u32,
        /// Why, if given.
        reason: Option<&'a str>,
    },
    /// A reservation extended.
    Touch {
        /// Job.
        id: u64,
        /// New deadline.
        deadline_ms: u64,
    },
    /// A reservation expired: the job is ready again.
    Timeout {
        /// Job.
        id: u64,
    },
    /// A buried or delayed job made ready.
    Kick {
        /// Job.
        id: u64,
    },
    /// A tube paused until `until_ms`.
    Pause {
        /// Tube.
        tube: &'a str,
        /// End of the pause.
        until_ms: u64,
        /// The pause as asked, in seconds (stats-tube `pause`).
        secs: u64,
    },
    /// A whole job (compaction).
    Snapshot(Snapshot<'a>),
    /// Ids below `next` are used (compaction, recovery).
    NextId {
        /// The next id to give.
        next: u64,
    },
    /// This segment is closed; the log goes on in `log.<next_segment>`.
    Seal {
        /// The next segment number.
        next_segment: u64,
    },
    /// A tube's lifetime counters (compaction).
    TubeCounters {
        /// Tube.
        tube: &'a str,
        /// Jobs ever put.
        total_jobs: u64,
        /// Deletes.
        cmd_delete: u64,
        /// Pauses.
        cmd_pause: u64,
    },
}

const T_PUT: u8 = 1;
const T_RESERVE: u8 = 2;
const T_DELETE: u8 = 3;
const T_RELEASE: u8 = 4;
const T_BURY: u8 = 5;
const T_TOUCH: u8 = 6;
const T_TIMEOUT: u8 = 7;
const T_KICK: u8 = 8;
const T_PAUSE: u8 = 9;
const T_SNAPSHOT: u8 = 10;
const T_NEXT_ID: u8 = 11;
const T_SEAL: u8 = 12;
const T_TUBE_COUNTERS: u8 = 13;

fn put_str8(out: &mut Vec<u8>, s: &str) {
    debug_assert!(s.len() <= 255);
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn put_reason(out: &mut Vec<u8>, r: Option<&str>) {
    match r {
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        Some(r) => {
            let r = truncate_reason(r);
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(r.as_bytes());
        }
    }
}

/// Cuts a reason to [`MAX_REASON_LEN`] bytes at a character boundary.
pub fn truncate_reason(r: &str) -> &str {
    if r.len() <= MAX_REASON_LEN {
        return r;
    }
    let mut end = MAX_REASON_LEN;
    while !r.is_char_boundary(end) {
        end -= 1;
    }
    &r[..end]
}

/// Appends the framed encoding of `rec` to `out`.
pub fn encode(rec: &Record<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&REC_MAGIC.to_le_bytes());
    out.extend_from_slice(&[0u8; 8]); // len + crc, filled below
    let u64s = |out: &mut Vec<u8>, v: &[u64]| v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    match rec {
        Record::Put {
            id,
            tube,
            pri,
            delay_ms,
            ttr_ms,
            created_ms,
            body,
        } => {
            out.push(T_PUT);
            u64s(out, &[*id, *delay_ms, *ttr_ms, *created_ms]);
            out.extend_from_slice(&pri.to_le_bytes());
            put_str8(out, tube);
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(body);
        }
        Record::Reserve {
            id,
            owner,
            deadline_ms,
        } => {
            out.push(T_RESERVE);
            u64s(out, &[*id, *owner, *deadline_ms]);
        }
        Record::Delete { id } => {
            out.push(T_DELETE);
            u64s(out, &[*id]);
        }
        Record::Release {
            id,
            pri,
            delay_ms,
            at_ms,
            reason,
        } => {
            out.push(T_RELEASE);
            u64s(out, &[*id, *delay_ms, *at_ms]);
            out.extend_from_slice(&pri.to_le_bytes());
            put_reason(out, *reason);
        }
        Record::Bury { id, pri, reason } => {
            out.push(T_BURY);
            u64s(out, &[*id]);
            out.extend_from_slice(&pri.to_le_bytes());
            put_reason(out, *reason);
        }
        Record::Touch { id, deadline_ms } => {
            out.push(T_TOUCH);
            u64s(out, &[*id, *deadline_ms]);
        }
        Record::Timeout { id } => {
            out.push(T_TIMEOUT);
            u64s(out, &[*id]);
        }
        Record::Kick { id } => {
            out.push(T_KICK);
            u64s(out, &[*id]);
        }
        Record::Pause { tube, until_ms, secs } => {
            out.push(T_PAUSE);
            u64s(out, &[*until_ms, *secs]);
            put_str8(out, tube);
        }
        Record::Snapshot(s) => {
            out.push(T_SNAPSHOT);
            u64s(
                out,
                &[s.id, s.state_time, s.owner, s.created_ms, s.delay_ms, s.ttr_ms],
            );
            out.extend_from_slice(&s.pri.to_le_bytes());
            for c in s.counters {
                out.extend_from_slice(&c.to_le_bytes());
            }
            out.push(s.state);
            put_str8(out, s.tube);
            put_reason(out, s.reason);
            out.extend_from_slice(&(s.body.len() as u32).to_le_bytes());
            out.extend_from_slice(s.body);
        }
        Record::NextId { next } => {
            out.push(T_NEXT_ID);
            u64s(out, &[*next]);
        }
        Record::Seal { next_segment } => {
            out.push(T_SEAL);
            u64s(out, &[*next_segment]);
        }
        Record::TubeCounters {
            tube,
            total_jobs,
            cmd_delete,
            cmd_pause,
        } => {
            out.push(T_TUBE_COUNTERS);
            u64s(out, &[*total_jobs, *cmd_delete, *cmd_pause]);
            put_str8(out, tube);
        }
    }
    let body = &out[start + FRAME_LEN..];
    let len = body.len() as u32;
    let crc = crc32fast::hash(body);
    out[start + 2..start + 6].copy_from_slice(&len.to_le_bytes());
    out[start + 6..start + 10].copy_from_slice(&crc.to_le_bytes());
}

/// What the bytes at some position hold.
#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    /// A whole record with a good checksum: `total` bytes long, `body` = type + payload.
    Complete {
        /// Frame length including its header.
        total: usize,
        /// Type byte and payload.
        body: &'a [u8],
    },
    /// The bytes end inside the record; `need` is its total length when the header was readable.
    Incomplete {
        /// Total frame length, if known.
        need: Option<usize>,
    },
    /// Not a record (bad magic, absurd length or checksum mismatch).
    Bad,
}

/// Looks at the frame starting at `buf[0]`.
pub fn parse_frame(buf: &[u8]) -> Frame<'_> {
    if buf.len() >= 2 && u16::from_le_bytes([buf[0], buf[1]]) != REC_MAGIC {
        return Frame::Bad;
    }
    if buf.len() < FRAME_LEN {
        return Frame::Incomplete { need: None };
    }
    let len = u32::from_le_bytes(buf[2..6].try_into().unwrap()) as usize;
    if len == 0 || len > MAX_RECORD_LEN {
        return Frame::Bad;
    }
    let total = FRAME_LEN + len;
    if buf.len() < total {
        return Frame::Incomplete { need: Some(total) };
    }
    let crc = u32::from_le_bytes(buf[6..10].try_into().unwrap());
    let body = &buf[FRAME_LEN..total];
    if crc32fast::hash(body) != crc {
        return Frame::Bad;
    }
    Frame::Complete { total, body }
}

/// Finds the first position after `buf[0]` where a complete, valid frame starts.
pub fn resync(buf: &[u8]) -> Option<usize> {
    let m = REC_MAGIC.to_le_bytes();
    (1..buf.len().saturating_sub(1))
        .filter(|&i| buf[i] == m[0] && buf[i + 1] == m[1])
        .find(|&i| matches!(parse_frame(&buf[i..]), Frame::Complete { body, .. } if decode(body).is_some()))
}

struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }
    fn str8(&mut self) -> Option<&'a str> {
        let n = self.u8()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    fn reason(&mut self) -> Option<Option<&'a str>> {
        let n = self.u32()?;
        if n == u32::MAX {
            return Some(None);
        }
        Some(Some(std::str::from_utf8(self.take(n as usize)?).ok()?))
    }
    fn bytes32(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn end<T>(&self, v: T) -> Option<T> {
        self.0.is_empty().then_some(v)
    }
}

/// Decodes a frame body (type + payload); `None` if it is malformed or names an id or segment
/// the queue never writes (see [`MAX_JOB_ID`], [`MAX_SEGMENT`]).
pub fn decode(body: &[u8]) -> Option<Record<'_>> {
    let mut c = Cur(body);
    let t = c.u8()?;
    let rec = match t {
        T_PUT => {
            let (id, delay_ms, ttr_ms, created_ms) = (c.u64()?, c.u64()?, c.u64()?, c.u64()?);
            let pri = c.u32()?;
            let tube = c.str8()?;
            let body = c.bytes32()?;
            Record::Put {
                id,
                tube,
                pri,
                delay_ms,
                ttr_ms,
                created_ms,
                body,
            }
        }
        T_RESERVE => Record::Reserve {
            id: c.u64()?,
            owner: c.u64()?,
            deadline_ms: c.u64()?,
        },
        T_DELETE => Record::Delete { id: c.u64()? },
        T_RELEASE => {
            let (id, delay_ms, at_ms) = (c.u64()?, c.u64()?, c.u64()?);
            let pri = c.u32()?;
            Record::Release {
                id,
                pri,
                delay_ms,
                at_ms,
                reason: c.reason()?,
            }
        }
        T_BURY => Record::Bury {
            id: c.u64()?,
            pri: c.u32()?,
            reason: c.reason()?,
        },
        T_TOUCH => Record::Touch {
            id: c.u64()?,
            deadline_ms: c.u64()?,
        },
        T_TIMEOUT => Record::Timeout { id: c.u64()? },
        T_KICK => Record::Kick { id: c.u64()? },
        T_PAUSE => {
            let (until_ms, secs) = (c.u64()?, c.u64()?);
            Record::Pause {
                tube: c.str8()?,
                until_ms,
                secs,
            }
        }
        T_SNAPSHOT => {
            let (id, state_time, owner, created_ms, delay_ms, ttr_ms) =
                (c.u64()?, c.u64()?, c.u64()?, c.u64()?, c.u64()?, c.u64()?);
            let pri = c.u32()?;
            let counters = [c.u32()?, c.u32()?, c.u32()?, c.u32()?, c.u32()?];
            let state = c.u8()?;
            if state > 3 {
                return None;
            }
            let tube = c.str8()?;
            let reason = c.reason()?;
            let body = c.bytes32()?;
            Record::Snapshot(Snapshot {
                id,
                tube,
                pri,
                state,
                state_time,
                owner,
                created_ms,
                delay_ms,
                ttr_ms,
                counters,
                reason,
                body,
            })
        }
        T_NEXT_ID => Record::NextId { next: c.u64()? },
        T_SEAL => Record::Seal {
            next_segment: c.u64()?,
        },
        T_TUBE_COUNTERS => {
            let (total_jobs, cmd_delete, cmd_pause) = (c.u64()?, c.u64()?, c.u64()?);
            Record::TubeCounters {
                tube: c.str8()?,
                total_jobs,
                cmd_delete,
                cmd_pause,
            }
        }
        _ => return None,
    };
    c.end(rec).filter(in_range)
}

/// Whether the ids of `rec` are ones the queue could have written.
fn in_range(rec: &Record<'_>) -> bool {
    match *rec {
        Record::Put { id, .. } => id <= MAX_JOB_ID,
        Record::Snapshot(ref s) => s.id <= MAX_JOB_ID,
        Record::NextId { next } => next <= MAX_JOB_ID + 1,
        Record::Seal { next_segment } => next_segment <= MAX_SEGMENT,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Record<'static>> {
        vec![
            Record::Put {
                id: 7,
                tube: "default",
                pri: 3,
                delay_ms: 4,
                ttr_ms: 5,
                created_ms: 6,
                body: b"hello\r\nworld",
            },
            Record::Reserve {
                id: 1,
                owner: 2,
                deadline_ms: 3,
            },
            Record::Delete { id: 9 },
            Record::Release {
                id: 1,
                pri: 2,
                delay_ms: 3,
                at_ms: 4,
                reason: Some("boom"),
            },
            Record::Release {
                id: 1,
                pri: 2,
                delay_ms: 3,
                at_ms: 4,
                reason: None,
            },
            Record::Bury {
                id: 1,
                pri: 2,
                reason: Some(""),
            },
            Record::Touch {
                id: 1,
                deadline_ms: 2,
            },
            Record::Timeout { id: 1 },
            Record::Kick { id: 1 },
            Record::Pause {
                tube: "t",
                until_ms: 1,
                secs: 2,
            },
            Record::Snapshot(Snapshot {
                id: 1,
                tube: "x",
                pri: 2,
                state: 3,
                state_time: 4,
                owner: 5,
                created_ms: 6,
                delay_ms: 7,
                ttr_ms: 8,
                counters: [1, 2, 3, 4, 5],
                reason: Some("why"),
                body: b"",
            }),
            Record::NextId { next: 5 },
            Record::Seal { next_segment: 2 },
            Record::TubeCounters {
                tube: "a",
                total_jobs: 1,
                cmd_delete: 2,
                cmd_pause: 3,
            },
        ]
    }

    #[test]
    fn every_record_round_trips() {
        for r in samples() {
            let mut buf = Vec::new();
            encode(&r, &mut buf);
            let Frame::Complete { total, body } = parse_frame(&buf) else {
                panic!("{r:?}")
            };
            assert_eq!(total, buf.len());
            assert_eq!(decode(body), Some(r.clone()));
            for cut in 0..buf.len() {
                assert!(
                    matches!(parse_frame(&buf[..cut]), Frame::Incomplete { .. }),
                    "{r:?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn bit_flips_are_detected_and_resync_finds_the_next_record() {
        let mut buf = Vec::new();
        let recs = samples();
        encode(&recs[0], &mut buf);
        let first = buf.len();
        encode(&recs[1], &mut buf);
        for bit in 0..first * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(parse_frame(&b), Frame::Complete { total, .. } if total == first),
                "bit {bit}"
            );
            assert_eq!(resync(&b), Some(first));
        }
    }

    #[test]
    fn segment_header_round_trips_and_rejects_foreign_bytes() {
        assert_eq!(parse_segment_header(&segment_header(42)), Ok(42));
        assert!(parse_segment_header(b"garbage garbage garbage garbage").is_err());
        assert!(parse_segment_header(b"PULPOFQL").is_err());
    }
}
