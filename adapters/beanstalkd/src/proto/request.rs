//! [`RequestCodec`]: the server side of a connection as beanstalkd 1.12 reads it. Unlike
//! [`super::ServerCodec`] (strict: a malformed line is a corrupt stream), it never fails on what
//! a client sends: a line beanstalkd would refuse becomes [`Request::Refused`] with the reply
//! beanstalkd gives (`BAD_FORMAT`, `UNKNOWN_COMMAND`, `JOB_TOO_BIG`, `EXPECTED_CRLF`), and the
//! stream goes on where beanstalkd's would.
//!
//! beanstalkd's parsing quirks are kept on purpose, because clients see them: commands are matched
//! by prefix (`quitx` quits), numbers may follow extra spaces, `kick` and
//! `reserve-with-timeout` read their number like C's `strtoul`/`strtol` (trailing garbage
//! ignored, `kick -1` kicks 2^32-1 jobs), a line longer than 224 bytes is discarded up to its
//! CRLF and answered `BAD_FORMAT`, and a put body over the limit is skipped (its length plus
//! two bytes, unchecked) and answered `JOB_TOO_BIG`.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::codec::encode_reply;
use super::{CodecError, Command, DEFAULT_MAX_LINE, Reply, TubeName};

/// What one client line (and body) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A well-formed command.
    ///
    /// `reserve-with-timeout` with a negative timeout (beanstalkd waits forever) is
    /// `ReserveWithTimeout { timeout: u32::MAX }`, which no well-formed timeout reaches.
    Command(Command),
    /// Input beanstalkd refuses, with the reply it gives. `JOB_TOO_BIG` and `EXPECTED_CRLF` come
    /// from a `put`, which beanstalkd counts in `cmd-put` all the same.
    Refused(Reply),
}

/// The timeout [`Request::Command`] gives a `reserve-with-timeout` that waits forever.
pub const RESERVE_FOREVER: u32 = u32::MAX;

/// Where the decoder is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a command line.
    Line,
    /// Discarding an over-long line up to its CRLF.
    Discarding,
    /// Discarding this many bytes of a too-big put body (and its CRLF).
    Skipping(u64),
}

/// Decodes [`Request`]s as beanstalkd reads them; encodes [`Reply`]s.
#[derive(Debug, Clone)]
pub struct RequestCodec {
    max_line: usize,
    max_body: usize,
    state: State,
}

impl RequestCodec {
    /// A codec that accepts put bodies up to `max_body` bytes (beanstalkd's `-z`). Lines are
    /// capped at beanstalkd's 224 bytes, CRLF included.
    pub fn new(max_body: usize) -> RequestCodec {
        RequestCodec {
            max_line: DEFAULT_MAX_LINE,
            max_body,
            state: State::Line,
        }
    }
}

/// What a command line says before its body.
enum Head {
    Done(Request),
    /// A put whose body of `len` bytes (then CRLF) follows.
    Put {
        priority: u32,
        delay: u32,
        ttr: u32,
        len: usize,
    },
    /// A put body over the limit: skip `len` + 2 bytes, then JOB_TOO_BIG.
    Skip(u64),
}

impl Decoder for RequestCodec {
    type Item = Request;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, CodecError> {
        loop {
            match self.state {
                State::Skipping(left) => {
                    let n = left.min(src.len() as u64);
                    src.advance(n as usize);
                    if n < left {
                        self.state = State::Skipping(left - n);
                        return Ok(None);
                    }
                    self.state = State::Line;
                    return Ok(Some(Request::Refused(Reply::JobTooBig)));
                }
                State::Discarding => {
                    // beanstalkd reads an over-long line in buffers of `max_line` bytes and
                    // looks for CRLF within each one.
                    let window = &src[..src.len().min(self.max_line)];
                    if let Some(end) = line_end(window) {
                        src.advance(end + 2);
                        self.state = State::Line;
                        return Ok(Some(Request::Refused(Reply::BadFormat)));
                    }
                    if src.len() < self.max_line {
                        return Ok(None);
                    }
                    src.advance(self.max_line);
                }
                State::Line => {
                    let window = &src[..src.len().min(self.max_line)];
                    let Some(end) = line_end(window) else {
                        if src.len() < self.max_line {
                            return Ok(None);
                        }
                        src.advance(self.max_line);
                        self.state = State::Discarding;
                        continue;
                    };
                    match parse_line(&src[..end], self.max_body) {
                        Head::Done(request) => {
                            src.advance(end + 2);
                            return Ok(Some(request));
                        }
                        Head::Skip(len) => {
                            src.advance(end + 2);
                            self.state = State::Skipping(len + 2);
                        }
                        Head::Put {
                            priority,
                            delay,
                            ttr,
                            len,
                        } => {
                            let start = end + 2;
                            let total = start + len + 2;
                            if src.len() < total {
                                src.reserve(total - src.len());
                                return Ok(None);
                            }
                            let crlf = &src[start + len..total] == b"\r\n";
                            src.advance(start);
                            let body = src.split_to(len).freeze();
                            src.advance(2);
                            if !crlf {
                                return Ok(Some(Request::Refused(Reply::ExpectedCrlf)));
                            }
                            return Ok(Some(Request::Command(Command::Put {
                                priority,
                                delay,
                                ttr,
                                body,
                            })));
                        }
                    }
                }
            }
        }
    }
}

impl Encoder<Reply> for RequestCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Reply, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_reply(&item, dst)
    }
}

/// Where the first CRLF starts, as beanstalkd finds it: a `\r` in the window's last byte
/// does not count, and only the first `\r` is looked at.
fn line_end(window: &[u8]) -> Option<usize> {
    if window.len() < 2 {
        return None;
    }
    let r = window[..window.len() - 1].iter().position(|&b| b == b'\r')?;
    (window[r + 1] == b'\n').then_some(r)
}

/// A number as beanstalkd's `read_u64` reads it: spaces skipped, then digits, which must
/// fit in `max`; with `whole`, nothing may follow. Returns the value and what follows.
fn read_num(text: &[u8], max: u64, whole: bool) -> Option<(u64, &[u8])> {
    let text = trim_spaces(text);
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let value: u64 = std::str::from_utf8(&text[..digits]).ok()?.parse().ok()?;
    let rest = &text[digits..];
    (value <= max && (!whole || rest.is_empty())).then_some((value, rest))
}

fn trim_spaces(text: &[u8]) -> &[u8] {
    let skip = text.iter().take_while(|&&b| b == b' ').count();
    &text[skip..]
}

/// C's `isspace`.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// C's `strtoull`/`strtoll` on `text`: whitespace, a sign, digits (none: 0 and `None` for
/// the end); `Err` on overflow of `limit` in magnitude. Returns (negative, magnitude, had digits).
fn c_strto(text: &[u8], limit: u64) -> Result<(bool, u64, bool), ()> {
    let skip = text.iter().take_while(|&&b| is_c_space(b)).count();
    let mut rest = &text[skip..];
    let mut negative = false;
    if let Some((&sign, tail)) = rest.split_first()
        && (sign == b'+' || sign == b'-')
    {
        negative = sign == b'-';
        rest = tail;
    }
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Ok((false, 0, false));
    }
    let mut value: u64 = 0;
    for &d in &rest[..digits] {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .filter(|&v| v <= limit)
            .ok_or(())?;
    }
    Ok((negative, value, true))
}

/// A tube name as beanstalkd's `is_valid_tube` checks it (at most 200 bytes).
fn tube(text: &[u8]) -> Option<TubeName> {
    TubeName::from_bytes(text).ok()
}

/// Parses a command line (without CRLF) as beanstalkd's `dispatch_cmd` does.
fn parse_line(line: &[u8], max_body: usize) -> Head {
    let bad = Head::Done(Request::Refused(Reply::BadFormat));
    let done = |cmd: Command| Head::Done(Request::Command(cmd));
    if line.contains(&0) {
        return bad;
    }
    let id = |rest: &[u8]| read_num(rest, u64::MAX, true).map(|(n, _)| n);
    let exact = |name: &[u8], cmd: Command| {
        if line == name {
            done(cmd)
        } else {
            Head::Done(Request::Refused(Reply::BadFormat))
        }
    };
    let after = |prefix: &[u8]| line.strip_prefix(prefix);
    let u32max = u64::from(u32::MAX);
    // In beanstalkd's order of prefixes.
    if let Some(rest) = after(b"put ") {
        let parsed = (|| {
            let (priority, rest) = read_num(rest, u32max, false)?;
            let (delay, rest) = read_num(rest, u32max, false)?;
            let (ttr, rest) = read_num(rest, u32max, false)?;
            let (len, rest) = read_num(rest, u32max, false)?;
            Some((priority as u32, delay as u32, ttr as u32, len, rest.is_empty()))
        })();
        return match parsed {
            None => bad,
            Some((.., len, _)) if len > max_body as u64 => Head::Skip(len),
            Some((.., false)) => bad,
            Some((priority, delay, ttr, len, true)) => Head::Put {
                priority,
                delay,
                ttr,
                len: len as usize,
            },
        };
    }
    if let Some(rest) = after(b"peek ") {
        return id(rest).map_or(bad, |id| done(Command::Peek { id }));
    }
    if line.starts_with(b"peek-ready") {
        return exact(b"peek-ready", Command::PeekReady);
    }
    if line.starts_with(b"peek-delayed") {
        return exact(b"peek-delayed", Command::PeekDelayed);
    }
    if line.starts_with(b"peek-buried") {
        return exact(b"peek-buried", Command::PeekBuried);
    }
    if let Some(rest) = after(b"reserve-with-timeout ") {
        return match c_strto(rest, i64::MAX as u64 + 1) {
            Err(()) => bad,
            Ok((negative, magnitude, _)) => {
                if !negative && magnitude > i64::MAX as u64 {
                    return bad;
                }
                let long = if negative {
                    (magnitude as i64).wrapping_neg()
                } else {
                    magnitude as i64
                };
                // beanstalkd stores it in an int.
                let int = long as i32;
                let timeout = u32::try_from(int).unwrap_or(RESERVE_FOREVER);
                done(Command::ReserveWithTimeout { timeout })
            }
        };
    }
    if let Some(rest) = after(b"reserve-job ") {
        return id(rest).map_or(bad, |id| done(Command::ReserveJob { id }));
    }
    if line.starts_with(b"reserve") {
        return exact(b"reserve", Command::Reserve);
    }
    if let Some(rest) = after(b"delete ") {
        return id(rest).map_or(bad, |id| done(Command::Delete { id }));
    }
    if let Some(rest) = after(b"release ") {
        let parsed = (|| {
            let (id, rest) = read_num(rest, u64::MAX, false)?;
            let (priority, rest) = read_num(rest, u32max, false)?;
            let (delay, _) = read_num(rest, u32max, true)?;
            Some(Command::Release {
                id,
                priority: priority as u32,
                delay: delay as u32,
            })
        })();
        return parsed.map_or(bad, done);
    }
    if let Some(rest) = after(b"bury ") {
        let parsed = (|| {
            let (id, rest) = read_num(rest, u64::MAX, false)?;
            let (priority, _) = read_num(rest, u32max, true)?;
            Some(Command::Bury {
                id,
                priority: priority as u32,
            })
        })();
        return parsed.map_or(bad, done);
    }
    if let Some(rest) = after(b"kick ") {
        return match c_strto(rest, u64::MAX) {
            Ok((negative, magnitude, true)) => {
                let long = if negative {
                    magnitude.wrapping_neg()
                } else {
                    magnitude
                };
                // beanstalkd stores it in an unsigned int.
                done(Command::Kick {
                    bound: u64::from(long as u32),
                })
            }
            _ => bad,
        };
    }
    if let Some(rest) = after(b"kick-job ") {
        return id(rest).map_or(bad, |id| done(Command::KickJob { id }));
    }
    if let Some(rest) = after(b"touch ") {
        return id(rest).map_or(bad, |id| done(Command::Touch { id }));
    }
    if let Some(rest) = after(b"stats-job ") {
        return id(rest).map_or(bad, |id| done(Command::StatsJob { id }));
    }
    if let Some(rest) = after(b"stats-tube ") {
        return tube(rest).map_or(bad, |tube| done(Command::StatsTube { tube }));
    }
    if line.starts_with(b"stats") {
        return exact(b"stats", Command::Stats);
    }
    if let Some(rest) = after(b"use ") {
        return tube(rest).map_or(bad, |tube| done(Command::Use { tube }));
    }
    if let Some(rest) = after(b"watch ") {
        return tube(rest).map_or(bad, |tube| done(Command::Watch { tube }));
    }
    if let Some(rest) = after(b"ignore ") {
        return tube(rest).map_or(bad, |tube| done(Command::Ignore { tube }));
    }
    if line.starts_with(b"list-tubes-watched") {
        return exact(b"list-tubes-watched", Command::ListTubesWatched);
    }
    if line.starts_with(b"list-tube-used") {
        return exact(b"list-tube-used", Command::ListTubeUsed);
    }
    if line.starts_with(b"list-tubes") {
        return exact(b"list-tubes", Command::ListTubes);
    }
    if line.starts_with(b"quit") {
        return done(Command::Quit);
    }
    if let Some(rest) = after(b"pause-tube") {
        let rest = trim_spaces(rest);
        let name_len = rest.iter().take_while(|&&b| is_name_char(b)).count();
        if name_len == 0 {
            return bad;
        }
        let Some((delay, _)) = read_num(&rest[name_len..], u32max, true) else {
            return bad;
        };
        return tube(&rest[..name_len]).map_or(bad, |tube| {
            done(Command::PauseTube {
                tube,
                delay: delay as u32,
            })
        });
    }
    Head::Done(Request::Refused(Reply::UnknownCommand))
}

/// A byte beanstalkd allows in a tube name.
fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-+/;.$_()".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], max_body: usize) -> Vec<Request> {
        let mut codec = RequestCodec::new(max_body);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(r) = codec.decode(&mut buf).unwrap() {
            out.push(r);
        }
        out
    }

    fn refused(reply: Reply) -> Request {
        Request::Refused(reply)
    }

    #[test]
    fn beanstalkd_quirks() {
        let got = decode_all(
            b"quitx\r\nkick -1\r\nkick 5abc\r\nkick x\r\nreserve-with-timeout abc\r\nreserve-with-timeout -1\r\n\
              peek  7\r\npeek 7 \r\nstats-jobx\r\nreservex\r\nuse\r\n\r\npause-tube  a 3\r\nuse -a\r\n",
            100,
        );
        assert_eq!(
            got,
            vec![
                Request::Command(Command::Quit),
                Request::Command(Command::Kick {
                    bound: u32::MAX as u64
                }),
                Request::Command(Command::Kick { bound: 5 }),
                refused(Reply::BadFormat),
                Request::Command(Command::ReserveWithTimeout { timeout: 0 }),
                Request::Command(Command::ReserveWithTimeout {
                    timeout: RESERVE_FOREVER
                }),
                Request::Command(Command::Peek { id: 7 }),
                refused(Reply::BadFormat),
                refused(Reply::BadFormat),
                refused(Reply::BadFormat),
                refused(Reply::UnknownCommand),
                refused(Reply::UnknownCommand),
                Request::Command(Command::PauseTube {
                    tube: TubeName::new("a").unwrap(),
                    delay: 3
                }),
                refused(Reply::BadFormat),
            ]
        );
    }

    #[test]
    fn bodies_too_big_missing_crlf_and_long_lines() {
        let long = format!("use {}\r\n", "a".repeat(300));
        let input = [
            b"put 0 0 1 5\r\nhello\r\n".as_slice(),
            b"put 0 0 1 3\r\nabcde\r\n",
            long.as_bytes(),
            b"put 1 2 3 4\r\nabcd\r\n",
        ]
        .concat();
        let got = decode_all(&input, 4);
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], refused(Reply::JobTooBig));
        assert_eq!(got[1], refused(Reply::ExpectedCrlf));
        // The short put's body ended early: the CRLF after it reads as an empty line.
        assert_eq!(got[2], refused(Reply::UnknownCommand));
        assert_eq!(got[3], refused(Reply::BadFormat), "a line over 224 bytes");
        assert!(matches!(&got[4], Request::Command(Command::Put { body, .. }) if &body[..] == b"abcd"));
    }

    #[test]
    fn input_split_at_every_byte_decodes_the_same() {
        let input = b"put 0 0 1 5\r\nhe\r\no\r\nput 0 0 1 9\r\n123456789\r\nstats\r\n";
        let whole = decode_all(input, 8);
        for cut in 0..input.len() {
            let mut codec = RequestCodec::new(8);
            let mut buf = BytesMut::from(&input[..cut]);
            let mut out = Vec::new();
            while let Some(r) = codec.decode(&mut buf).unwrap() {
                out.push(r);
            }
            buf.extend_from_slice(&input[cut..]);
            while let Some(r) = codec.decode(&mut buf).unwrap() {
                out.push(r);
            }
            assert_eq!(out, whole, "cut at {cut}");
        }
    }
}
