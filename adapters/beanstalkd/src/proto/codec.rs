//! tokio-util codecs: [`ClientCodec`] encodes [`Command`]s and decodes
//! [`Reply`]s; [`ServerCodec`] decodes commands and encodes replies.
//!
//! Decoder contract: `Ok(None)` means more bytes are needed (nothing is
//! consumed); `Err` means the stream is corrupt. Bodies are read by their
//! declared length and must be followed by CRLF. Line length and body size are
//! capped by the constructor's limits.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::{Command, ProtocolError, Reply};

/// The protocol's longest command line, CRLF included (protocol.txt: 224).
pub const DEFAULT_MAX_LINE: usize = 224;
/// beanstalkd's default max-job-size.
pub const DEFAULT_MAX_BODY: usize = 65_535;

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
}

impl ClientCodec {
    /// A codec that accepts reply lines up to `max_line` bytes (CRLF included)
    /// and bodies or YAML documents up to `max_body` bytes.
    pub fn new(max_line: usize, max_body: usize) -> ClientCodec {
        ClientCodec { max_line, max_body }
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
        let _ = (src, self.max_line, self.max_body);
        todo!("decode a reply")
    }
}

impl Encoder<Command> for ClientCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Command, dst: &mut BytesMut) -> Result<(), CodecError> {
        let _ = (item, dst);
        todo!("encode a command")
    }
}

impl Encoder<&Command> for ClientCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Command, dst: &mut BytesMut) -> Result<(), CodecError> {
        let _ = (item, dst);
        todo!("encode a command by reference")
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
        let _ = (src, self.max_line, self.max_body);
        todo!("decode a command")
    }
}

impl Encoder<Reply> for ServerCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Reply, dst: &mut BytesMut) -> Result<(), CodecError> {
        let _ = (item, dst);
        todo!("encode a reply")
    }
}
