//! Parsers for command and reply lines (nom), and the framing shared by both
//! codecs: find the line within the line limit, then read a body by its
//! declared length and require CRLF after it.

use bytes::{Buf, Bytes, BytesMut};
use nom::IResult;
use nom::bytes::complete::take_while1;
use nom::character::complete::char;
use nom::combinator::all_consuming;
use nom::multi::separated_list1;

use super::{Command, ProtocolError, Reply, TubeName};

/// What a line says: a whole frame, or a frame still needing a body of
/// `len` bytes, finished by `make`.
pub(crate) enum Head<T> {
    /// The line is the whole frame.
    Done(T),
    /// A body of `len` bytes (then CRLF) follows; `make` builds the frame.
    Body {
        /// The declared body length.
        len: usize,
        /// The limit that applies to this body.
        limit: usize,
        /// Builds the frame from the body.
        make: Box<dyn FnOnce(Bytes) -> T + Send>,
    },
    /// A body of `len` bytes (then CRLF) follows that is over the limit but
    /// may be skipped: the frame is `frame`, which does not hold the body.
    Skip {
        /// The declared body length.
        len: u64,
        /// The frame, once the body and its CRLF are discarded.
        frame: T,
    },
}

/// What [`decode_frame`] found: a whole frame, or the head of one whose
/// body the caller must discard (`len` bytes, then CRLF) before `frame`.
pub(crate) enum Frame<T> {
    /// A whole frame, consumed from the buffer.
    Whole(T),
    /// The head line is consumed; `len` body bytes and a CRLF follow.
    Skip {
        /// The declared body length.
        len: u64,
        /// The frame to yield once the body is discarded.
        frame: T,
    },
}

/// The largest job body a client skips rather than refusing the stream:
/// beanstalkd's own ceiling on `-z` (1 GiB). A longer announced body is not
/// a job any beanstalkd can hold, so the stream is taken as corrupt.
pub(crate) const MAX_SKIPPED_BODY: u64 = 1 << 30;

/// Splits a line into its space-separated words (no empty word allowed).
fn words(line: &[u8]) -> IResult<&[u8], Vec<&[u8]>> {
    all_consuming(separated_list1(char(' '), take_while1(|b| b != b' ')))(line)
}

fn bad_line(line: &[u8]) -> ProtocolError {
    let cut = &line[..line.len().min(256)];
    ProtocolError::BadLine {
        line: String::from_utf8_lossy(cut).into_owned(),
    }
}

/// A decimal number: digits only (no sign, no spaces), without overflow.
fn number<T: std::str::FromStr>(word: &[u8]) -> Option<T> {
    if word.is_empty() || !word.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// A body length, checked against `limit` before anything is buffered.
fn body_len(word: &[u8], limit: usize) -> Result<usize, Option<ProtocolError>> {
    let len: u64 = number(word).ok_or(None)?;
    match usize::try_from(len) {
        Ok(len) if len <= limit => Ok(len),
        _ => Err(Some(ProtocolError::BodyTooLarge { len, limit })),
    }
}

/// A job body length over `limit` that is still one a beanstalkd could
/// hold ([`MAX_SKIPPED_BODY`]): such a body is skipped, not refused.
fn oversized(word: &[u8], limit: usize) -> Option<u64> {
    let len: u64 = number(word)?;
    (len > limit as u64 && len <= MAX_SKIPPED_BODY).then_some(len)
}

/// The head of a reply carrying job `id`'s body of the length in `word`:
/// read whole (`whole`) within `max_body`, else skipped (`too_big`).
fn job_head(
    id: u64,
    word: &[u8],
    max_body: usize,
    whole: fn(u64, Bytes) -> Reply,
    too_big: fn(u64, u64) -> Reply,
) -> Result<Head<Reply>, Option<ProtocolError>> {
    if let Some(len) = oversized(word, max_body) {
        return Ok(Head::Skip {
            len,
            frame: too_big(id, len),
        });
    }
    Ok(Head::Body {
        len: body_len(word, max_body)?,
        limit: max_body,
        make: Box::new(move |body| whole(id, body)),
    })
}

/// Parses a reply line (without CRLF).
pub(crate) fn reply_line(
    line: &[u8],
    max_body: usize,
    max_document: usize,
) -> Result<Head<Reply>, ProtocolError> {
    let bad = || bad_line(line);
    let (_, w) = words(line).map_err(|_| bad())?;
    let num64 = |i: usize| number::<u64>(w[i]).ok_or_else(bad);
    let len_at = |i: usize, limit: usize| body_len(w[i], limit).map_err(|e| e.unwrap_or_else(bad));
    let simple = |reply: Reply| Ok(Head::Done(reply));
    match (w[0], w.len()) {
        (b"INSERTED", 2) => simple(Reply::Inserted { id: num64(1)? }),
        (b"BURIED", 1) => simple(Reply::Buried { id: None }),
        (b"BURIED", 2) => simple(Reply::Buried { id: Some(num64(1)?) }),
        (b"EXPECTED_CRLF", 1) => simple(Reply::ExpectedCrlf),
        (b"JOB_TOO_BIG", 1) => simple(Reply::JobTooBig),
        (b"DRAINING", 1) => simple(Reply::Draining),
        (b"USING", 2) => simple(Reply::Using {
            tube: TubeName::from_bytes(w[1])?,
        }),
        (b"DEADLINE_SOON", 1) => simple(Reply::DeadlineSoon),
        (b"TIMED_OUT", 1) => simple(Reply::TimedOut),
        (b"RESERVED", 3) => job_head(
            num64(1)?,
            w[2],
            max_body,
            |id, body| Reply::Reserved { id, body },
            |id, len| Reply::ReservedTooBig { id, len },
        )
        .map_err(|e| e.unwrap_or_else(bad)),
        (b"FOUND", 3) => job_head(
            num64(1)?,
            w[2],
            max_body,
            |id, body| Reply::Found { id, body },
            |id, len| Reply::FoundTooBig { id, len },
        )
        .map_err(|e| e.unwrap_or_else(bad)),
        (b"OK", 2) => Ok(Head::Body {
            len: len_at(1, max_document)?,
            limit: max_document,
            make: Box::new(|data| Reply::Ok { data }),
        }),
        (b"DELETED", 1) => simple(Reply::Deleted),
        (b"NOT_FOUND", 1) => simple(Reply::NotFound),
        (b"RELEASED", 1) => simple(Reply::Released),
        (b"TOUCHED", 1) => simple(Reply::Touched),
        (b"WATCHING", 2) => simple(Reply::Watching { count: num64(1)? }),
        (b"NOT_IGNORED", 1) => simple(Reply::NotIgnored),
        (b"KICKED", 1) => simple(Reply::Kicked { count: None }),
        (b"KICKED", 2) => simple(Reply::Kicked {
            count: Some(num64(1)?),
        }),
        (b"PAUSED", 1) => simple(Reply::Paused),
        (b"OUT_OF_MEMORY", 1) => simple(Reply::OutOfMemory),
        (b"INTERNAL_ERROR", 1) => simple(Reply::InternalError),
        (b"BAD_FORMAT", 1) => simple(Reply::BadFormat),
        (b"UNKNOWN_COMMAND", 1) => simple(Reply::UnknownCommand),
        _ => Err(bad()),
    }
}

/// Parses a command line (without CRLF).
pub(crate) fn command_line(line: &[u8], max_body: usize) -> Result<Head<Command>, ProtocolError> {
    let bad = || bad_line(line);
    let (_, w) = words(line).map_err(|_| bad())?;
    let n32 = |i: usize| number::<u32>(w[i]).ok_or_else(bad);
    let n64 = |i: usize| number::<u64>(w[i]).ok_or_else(bad);
    let tube = |i: usize| TubeName::from_bytes(w[i]);
    let done = |cmd: Command| Ok(Head::Done(cmd));
    match (w[0], w.len()) {
        (b"put", 5) => {
            let (priority, delay, ttr) = (n32(1)?, n32(2)?, n32(3)?);
            let len = body_len(w[4], max_body).map_err(|e| e.unwrap_or_else(bad))?;
            Ok(Head::Body {
                len,
                limit: max_body,
                make: Box::new(move |body| Command::Put {
                    priority,
                    delay,
                    ttr,
                    body,
                }),
            })
        }
        (b"use", 2) => done(Command::Use { tube: tube(1)? }),
        (b"reserve", 1) => done(Command::Reserve),
        (b"reserve-with-timeout", 2) => done(Command::ReserveWithTimeout { timeout: n32(1)? }),
        (b"reserve-job", 2) => done(Command::ReserveJob { id: n64(1)? }),
        (b"delete", 2) => done(Command::Delete { id: n64(1)? }),
        (b"release", 4) => done(Command::Release {
            id: n64(1)?,
            priority: n32(2)?,
            delay: n32(3)?,
        }),
        (b"bury", 3) => done(Command::Bury {
            id: n64(1)?,
            priority: n32(2)?,
        }),
        (b"touch", 2) => done(Command::Touch { id: n64(1)? }),
        (b"watch", 2) => done(Command::Watch { tube: tube(1)? }),
        (b"ignore", 2) => done(Command::Ignore { tube: tube(1)? }),
        (b"peek", 2) => done(Command::Peek { id: n64(1)? }),
        (b"peek-ready", 1) => done(Command::PeekReady),
        (b"peek-delayed", 1) => done(Command::PeekDelayed),
        (b"peek-buried", 1) => done(Command::PeekBuried),
        (b"kick", 2) => done(Command::Kick { bound: n64(1)? }),
        (b"kick-job", 2) => done(Command::KickJob { id: n64(1)? }),
        (b"stats-job", 2) => done(Command::StatsJob { id: n64(1)? }),
        (b"stats-tube", 2) => done(Command::StatsTube { tube: tube(1)? }),
        (b"stats", 1) => done(Command::Stats),
        (b"list-tubes", 1) => done(Command::ListTubes),
        (b"list-tube-used", 1) => done(Command::ListTubeUsed),
        (b"list-tubes-watched", 1) => done(Command::ListTubesWatched),
        (b"pause-tube", 3) => done(Command::PauseTube {
            tube: tube(1)?,
            delay: n32(2)?,
        }),
        (b"quit", 1) => done(Command::Quit),
        _ => Err(bad()),
    }
}

/// Decodes one frame from `src` following the tokio-util `Decoder` contract:
/// `Ok(None)` consumes nothing and asks for more bytes. A [`Frame::Skip`]
/// consumed its head line only; the caller discards the body.
pub(crate) fn decode_frame<T>(
    src: &mut BytesMut,
    max_line: usize,
    parse: impl FnOnce(&[u8]) -> Result<Head<T>, ProtocolError>,
) -> Result<Option<Frame<T>>, ProtocolError> {
    let window = &src[..src.len().min(max_line)];
    let Some(end) = window.windows(2).position(|pair| pair == b"\r\n") else {
        if src.len() >= max_line {
            return Err(ProtocolError::LineTooLong { limit: max_line });
        }
        return Ok(None);
    };
    match parse(&src[..end])? {
        Head::Done(frame) => {
            src.advance(end + 2);
            Ok(Some(Frame::Whole(frame)))
        }
        Head::Skip { len, frame } => {
            src.advance(end + 2);
            Ok(Some(Frame::Skip { len, frame }))
        }
        Head::Body { len, limit, make } => {
            debug_assert!(len <= limit);
            let body_start = end + 2;
            let total = body_start + len + 2;
            if src.len() < total {
                src.reserve(total - src.len());
                return Ok(None);
            }
            if &src[body_start + len..total] != b"\r\n" {
                return Err(ProtocolError::ExpectedCrlf { len });
            }
            src.advance(body_start);
            let body = src.split_to(len).freeze();
            src.advance(2);
            Ok(Some(Frame::Whole(make(body))))
        }
    }
}
