//! The beanstalkd codecs under hostile bytes, in both directions.
//!
//! A stream is decoded twice: from one buffer holding all of it, and in two
//! pieces split where the fuzzer says. Both must give the same frames and end
//! the same way, error included (the `Decoder` contract: `Ok(None)` consumes
//! nothing, and an error depends only on bytes already there). After
//! every `Ok(None)` the buffer must hold less than one longest frame the caps
//! allow, and its capacity must not follow a length the caps refuse. Every
//! decoded frame is encoded by the other side's codec and must decode back to
//! itself.

use bytes::BytesMut;
use pulpo_beanstalkd::proto::{
    ClientCodec, CodecError, Command, DEFAULT_MAX_BODY, DEFAULT_MAX_DOCUMENT, DEFAULT_MAX_LINE,
    ProtocolError, Reply, ServerCodec,
};
use tokio_util::codec::{Decoder, Encoder};

/// The limits a codec is built with.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Longest line, CRLF included.
    pub line: usize,
    /// Largest job body.
    pub body: usize,
    /// Largest `OK <bytes>` document (client side only).
    pub document: usize,
}

impl Caps {
    /// The codecs' defaults.
    pub const DEFAULT: Caps = Caps {
        line: DEFAULT_MAX_LINE,
        body: DEFAULT_MAX_BODY,
        document: DEFAULT_MAX_DOCUMENT,
    };
    /// Small caps, so that inputs of a few hundred bytes hit every limit.
    pub const SMALL: Caps = Caps {
        line: 40,
        body: 24,
        document: 64,
    };

    /// The most bytes a decoder may hold while it waits for the rest of one
    /// frame: a whole line, the largest body it allows, and its CRLF.
    fn most_held(self, largest_body: usize) -> usize {
        self.line + largest_body + 2
    }

    fn client(self) -> ClientCodec {
        ClientCodec::new(self.line, self.body).with_max_document(self.document)
    }

    fn server(self) -> ServerCodec {
        ServerCodec::new(self.line, self.body)
    }
}

/// How decoding a stream ended after its frames.
#[derive(Debug, PartialEq)]
enum End {
    /// Waiting for more bytes, holding these.
    NeedMore(Vec<u8>),
    /// The stream is corrupt.
    Corrupt(ProtocolError),
}

fn protocol(err: CodecError) -> ProtocolError {
    match err {
        CodecError::Protocol(err) => {
            // Error messages are built from hostile bytes: they must format.
            let _ = err.to_string();
            err
        }
        CodecError::Io(err) => panic!("a decoder without I/O returned an I/O error: {err}"),
    }
}

/// Decodes what `buf` holds until the decoder asks for more or fails,
/// checking the hold limits after every `Ok(None)`.
fn drain<D>(
    codec: &mut D,
    buf: &mut BytesMut,
    frames: &mut Vec<D::Item>,
    most_held: usize,
    fed: usize,
) -> Option<End>
where
    D: Decoder<Error = CodecError>,
{
    loop {
        match codec.decode(buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => {
                assert!(
                    buf.len() < most_held,
                    "waiting for more while holding {} bytes (caps allow {most_held})",
                    buf.len()
                );
                // `reserve` may double what is there, never more: a length the caps refuse
                // must not turn into an allocation.
                let bound = 2 * fed.max(most_held) + 64;
                assert!(
                    buf.capacity() <= bound,
                    "buffer capacity {} after {fed} bytes (bound {bound})",
                    buf.capacity()
                );
                return None;
            }
            Err(err) => return Some(End::Corrupt(protocol(err))),
        }
    }
}

/// Decodes `input` whole and split at `at`; both must agree. Returns the frames.
fn decode_both<D>(make: impl Fn() -> D, input: &[u8], at: usize, most_held: usize) -> Vec<D::Item>
where
    D: Decoder<Error = CodecError>,
    D::Item: PartialEq + std::fmt::Debug,
{
    let mut whole = Vec::new();
    let mut buf = BytesMut::from(input);
    let whole_end = drain(&mut make(), &mut buf, &mut whole, most_held, input.len())
        .unwrap_or_else(|| End::NeedMore(buf.to_vec()));

    let mut split = Vec::new();
    let mut codec = make();
    let mut buf = BytesMut::from(&input[..at]);
    let split_end = match drain(&mut codec, &mut buf, &mut split, most_held, at) {
        Some(end) => end,
        None => {
            buf.extend_from_slice(&input[at..]);
            drain(&mut codec, &mut buf, &mut split, most_held, input.len())
                .unwrap_or_else(|| End::NeedMore(buf.to_vec()))
        }
    };
    assert_eq!(whole, split, "frames differ (split at {at})");
    assert_eq!(
        whole_end, split_end,
        "the stream ends differently (split at {at})"
    );
    whole
}

/// The reply decoder (client side) on `input` split at `at`, with both cap sets.
pub fn check_replies(input: &[u8], at: usize) {
    for caps in [Caps::SMALL, Caps::DEFAULT] {
        let most_held = caps.most_held(caps.body.max(caps.document));
        for reply in decode_both(|| caps.client(), input, at, most_held) {
            if let Reply::Ok { data } = &reply {
                assert!(data.len() <= caps.document);
                crate::text::check_stats_yaml(data);
            }
            if let Reply::Reserved { body, .. } | Reply::Found { body, .. } = &reply {
                assert!(body.len() <= caps.body);
            }
            let mut wire = BytesMut::new();
            caps.server()
                .encode(reply.clone(), &mut wire)
                .expect("encoding a reply");
            let mut client = caps.client();
            let again = client.decode(&mut wire).expect("a re-encoded reply decodes");
            assert_eq!(again.as_ref(), Some(&reply), "decode(encode(reply))");
            assert!(wire.is_empty(), "a re-encoded reply left {:?}", &wire[..]);
        }
    }
}

/// The command decoder (server side) on `input` split at `at`, with both cap sets.
pub fn check_commands(input: &[u8], at: usize) {
    for caps in [Caps::SMALL, Caps::DEFAULT] {
        for command in decode_both(|| caps.server(), input, at, caps.most_held(caps.body)) {
            if let Command::Put { body, .. } = &command {
                assert!(body.len() <= caps.body);
            }
            let mut wire = BytesMut::new();
            caps.client()
                .encode(&command, &mut wire)
                .expect("a decoded command encodes under the same caps");
            let again = caps
                .server()
                .decode(&mut wire)
                .expect("a re-encoded command decodes");
            assert_eq!(again.as_ref(), Some(&command), "decode(encode(command))");
            assert!(wire.is_empty(), "a re-encoded command left {:?}", &wire[..]);
        }
    }
}
