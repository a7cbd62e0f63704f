//! tokio-util codecs: [`ClientCodec`] encodes [`Command`]s and decodes
//! [`Reply`]s; [`ServerCodec`] decodes commands and encodes replies.
//!
//! Decoder contract: `Ok(None)` means more bytes are needed (nothing is
//! consumed); `Err` means the stream is corrupt. Bodies are read by their
//! declared length and must be followed by CRLF. Line length and body size are
//! capped by the constructor's limits.
//!
//! One exception, on the client side: a job body (`RESERVED`, `FOUND`) over
//! the body limit is discarded as it arrives, never buffered whole, and
//! yields [`Reply::ReservedTooBig`] or [`Reply::FoundTooBig`]. While it
//! skips, the codec consumes bytes and keeps its place in its own state.

use std::fmt::Write as _;

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::parse::{Frame, command_line, decode_frame, reply_line};
use super::{Command, ProtocolError, Reply};

/// The protocol's longest command line, CRLF included (protocol.txt: 224).
pub const DEFAULT_MAX_LINE: usize = 224;
/// beanstalkd's default max-job-size.
pub const DEFAULT_MAX_BODY: usize = 65_535;
/// The client's default cap on an `OK <bytes>` YAML document (stats, lists).
pub const DEFAULT_MAX_DOCUMENT: usize = 1 << 20;

/// What a codec can fail with: the transport, or bytes that are not protocol.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Reading or writing the transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The bytes are not valid protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// The client side: writes commands, reads replies.
#[derive(Debug, Clone)]
pub struct ClientCodec {
    max_line: usize,
    max_body: usize,
    max_document: usize,
    /// A job body over `max_body` being discarded.
    skipping: Option<Skipping>,
}

/// A job body being discarded, and the reply to yield after it.
#[derive(Debug, Clone)]
struct Skipping {
    /// Body bytes still to discard (the CRLF after them not counted).
    left: u64,
    /// The body's whole length, for the CRLF error.
    len: u64,
    reply: Reply,
}

impl ClientCodec {
    /// A codec that accepts reply lines up to `max_line` bytes (CRLF included)
    /// and bodies or YAML documents up to `max_body` bytes.
    pub fn new(max_line: usize, max_body: usize) -> ClientCodec {
        ClientCodec {
            max_line,
            max_body,
            max_document: DEFAULT_MAX_DOCUMENT,
            skipping: None,
        }
    }

    /// Caps `OK <bytes>` documents (stats, tube lists) at `max` bytes.
    pub fn with_max_document(mut self, max: usize) -> ClientCodec {
        self.max_document = max;
        self
    }

    /// The cap on reply lines, CRLF included.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The cap on job bodies, both directions.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// The cap on YAML documents.
    pub fn max_document(&self) -> usize {
        self.max_document
    }
}

impl Default for ClientCodec {
    fn default() -> Self {
        ClientCodec::new(DEFAULT_MAX_LINE, DEFAULT_MAX_BODY)
    }
}

impl Decoder for ClientCodec {
    type Item = Reply;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Reply>, CodecError> {
        loop {
            if let Some(skipping) = &mut self.skipping {
                let discard = skipping.left.min(src.len() as u64);
                src.advance(discard as usize);
                skipping.left -= discard;
                if skipping.left > 0 || src.len() < 2 {
                    return Ok(None);
                }
                if &src[..2] != b"\r\n" {
                    let len = usize::try_from(skipping.len).unwrap_or(usize::MAX);
                    return Err(ProtocolError::ExpectedCrlf { len }.into());
                }
                src.advance(2);
                return Ok(self.skipping.take().map(|skipped| skipped.reply));
            }
            let (max_body, max_document) = (self.max_body, self.max_document);
            let frame = decode_frame(src, self.max_line, |line| {
                reply_line(line, max_body, max_document)
            })?;
            match frame {
                None => return Ok(None),
                Some(Frame::Whole(reply)) => return Ok(Some(reply)),
                Some(Frame::Skip { len, frame }) => {
                    self.skipping = Some(Skipping {
                        left: len,
                        len,
                        reply: frame,
                    })
                }
            }
        }
    }
}

impl Encoder<Command> for ClientCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Command, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(&item, dst)
    }
}

impl Encoder<&Command> for ClientCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Command, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_command(item, self.max_body, dst)
    }
}

/// The server side: reads commands, writes replies.
#[derive(Debug, Clone)]
pub struct ServerCodec {
    max_line: usize,
    max_body: usize,
}

impl ServerCodec {
    /// A codec that accepts command lines up to `max_line` bytes (CRLF
    /// included) and job bodies up to `max_body` bytes.
    pub fn new(max_line: usize, max_body: usize) -> ServerCodec {
        ServerCodec { max_line, max_body }
    }
}

impl Default for ServerCodec {
    fn default() -> Self {
        ServerCodec::new(DEFAULT_MAX_LINE, DEFAULT_MAX_BODY)
    }
}

impl Decoder for ServerCodec {
    type Item = Command;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Command>, CodecError> {
        let max_body = self.max_body;
        match decode_frame(src, self.max_line, |line| command_line(line, max_body))? {
            None => Ok(None),
            Some(Frame::Whole(cmd)) => Ok(Some(cmd)),
            // Command lines never ask for a body to be skipped.
            Some(Frame::Skip { len, .. }) => Err(ProtocolError::BodyTooLarge { len, limit: max_body }.into()),
        }
    }
}

impl Encoder<Reply> for ServerCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Reply, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_reply(&item, dst)
    }
}

/// Writes formatted text into the buffer (writing to a `BytesMut` cannot fail).
fn put_fmt(dst: &mut BytesMut, args: std::fmt::Arguments<'_>) {
    let _ = dst.write_fmt(args);
}

/// Writes `cmd` in its exact wire form; a put body over `max_body` is
/// refused without writing anything.
fn encode_command(cmd: &Command, max_body: usize, dst: &mut BytesMut) -> Result<(), CodecError> {
    match cmd {
        Command::Put {
            priority,
            delay,
            ttr,
            body,
        } => {
            if body.len() > max_body {
                return Err(ProtocolError::BodyTooLarge {
                    len: body.len() as u64,
                    limit: max_body,
                }
                .into());
            }
            dst.reserve(body.len() + 48);
            put_fmt(
                dst,
                format_args!("put {priority} {delay} {ttr} {}\r\n", body.len()),
            );
            dst.put_slice(body);
            dst.put_slice(b"\r\n");
        }
        Command::Use { tube } => put_fmt(dst, format_args!("use {tube}\r\n")),
        Command::Reserve => dst.put_slice(b"reserve\r\n"),
        Command::ReserveWithTimeout { timeout } => {
            put_fmt(dst, format_args!("reserve-with-timeout {timeout}\r\n"))
        }
        Command::ReserveJob { id } => put_fmt(dst, format_args!("reserve-job {id}\r\n")),
        Command::Delete { id } => put_fmt(dst, format_args!("delete {id}\r\n")),
        Command::Release { id, priority, delay } => {
            put_fmt(dst, format_args!("release {id} {priority} {delay}\r\n"))
        }
        Command::Bury { id, priority } => put_fmt(dst, format_args!("bury {id} {priority}\r\n")),
        Command::Touch { id } => put_fmt(dst, format_args!("touch {id}\r\n")),
        Command::Watch { tube } => put_fmt(dst, format_args!("watch {tube}\r\n")),
        Command::Ignore { tube } => put_fmt(dst, format_args!("ignore {tube}\r\n")),
        Command::Peek { id } => put_fmt(dst, format_args!("peek {id}\r\n")),
        Command::PeekReady => dst.put_slice(b"peek-ready\r\n"),
        Command::PeekDelayed => dst.put_slice(b"peek-delayed\r\n"),
        Command::PeekBuried => dst.put_slice(b"peek-buried\r\n"),
        Command::Kick { bound } => put_fmt(dst, format_args!("kick {bound}\r\n")),
        Command::KickJob { id } => put_fmt(dst, format_args!("kick-job {id}\r\n")),
        Command::StatsJob { id } => put_fmt(dst, format_args!("stats-job {id}\r\n")),
        Command::StatsTube { tube } => put_fmt(dst, format_args!("stats-tube {tube}\r\n")),
        Command::Stats => dst.put_slice(b"stats\r\n"),
        Command::ListTubes => dst.put_slice(b"list-tubes\r\n"),
        Command::ListTubeUsed => dst.put_slice(b"list-tube-used\r\n"),
        Command::ListTubesWatched => dst.put_slice(b"list-tubes-watched\r\n"),
        Command::PauseTube { tube, delay } => put_fmt(dst, format_args!("pause-tube {tube} {delay}\r\n")),
        Command::Quit => dst.put_slice(b"quit\r\n"),
    }
    Ok(())
}

/// Writes `reply` in its exact wire form; a reply whose body was skipped
/// cannot be written.
pub(super) fn encode_reply(reply: &Reply, dst: &mut BytesMut) -> Result<(), CodecError> {
    let with_body = |dst: &mut BytesMut, head: std::fmt::Arguments<'_>, body: &[u8]| {
        dst.reserve(body.len() + 48);
        put_fmt(dst, head);
        dst.put_slice(body);
        dst.put_slice(b"\r\n");
    };
    match reply {
        Reply::Inserted { id } => put_fmt(dst, format_args!("INSERTED {id}\r\n")),
        Reply::Buried { id: Some(id) } => put_fmt(dst, format_args!("BURIED {id}\r\n")),
        Reply::Buried { id: None } => dst.put_slice(b"BURIED\r\n"),
        Reply::ExpectedCrlf => dst.put_slice(b"EXPECTED_CRLF\r\n"),
        Reply::JobTooBig => dst.put_slice(b"JOB_TOO_BIG\r\n"),
        Reply::Draining => dst.put_slice(b"DRAINING\r\n"),
        Reply::Using { tube } => put_fmt(dst, format_args!("USING {tube}\r\n")),
        Reply::DeadlineSoon => dst.put_slice(b"DEADLINE_SOON\r\n"),
        Reply::TimedOut => dst.put_slice(b"TIMED_OUT\r\n"),
        Reply::Reserved { id, body } => {
            with_body(dst, format_args!("RESERVED {id} {}\r\n", body.len()), body)
        }
        Reply::Deleted => dst.put_slice(b"DELETED\r\n"),
        Reply::NotFound => dst.put_slice(b"NOT_FOUND\r\n"),
        Reply::Released => dst.put_slice(b"RELEASED\r\n"),
        Reply::Touched => dst.put_slice(b"TOUCHED\r\n"),
        Reply::Watching { count } => put_fmt(dst, format_args!("WATCHING {count}\r\n")),
        Reply::NotIgnored => dst.put_slice(b"NOT_IGNORED\r\n"),
        Reply::Found { id, body } => with_body(dst, format_args!("FOUND {id} {}\r\n", body.len()), body),
        Reply::Kicked { count: Some(count) } => put_fmt(dst, format_args!("KICKED {count}\r\n")),
        Reply::Kicked { count: None } => dst.put_slice(b"KICKED\r\n"),
        Reply::Ok { data } => with_body(dst, format_args!("OK {}\r\n", data.len()), data),
        Reply::Paused => dst.put_slice(b"PAUSED\r\n"),
        Reply::OutOfMemory => dst.put_slice(b"OUT_OF_MEMORY\r\n"),
        Reply::InternalError => dst.put_slice(b"INTERNAL_ERROR\r\n"),
        Reply::BadFormat => dst.put_slice(b"BAD_FORMAT\r\n"),
        Reply::UnknownCommand => dst.put_slice(b"UNKNOWN_COMMAND\r\n"),
        Reply::ReservedTooBig { id, len } | Reply::FoundTooBig { id, len } => {
            return Err(ProtocolError::SkippedBody { id: *id, len: *len }.into());
        }
    }
    Ok(())
}
