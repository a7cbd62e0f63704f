//! The codecs without a socket: exact bytes of every command and reply,
//! decoding from input split at every byte, limits, and property tests.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use pulpo_beanstalkd::proto::{
    ClientCodec, CodecError, Command, DEFAULT_MAX_BODY, DEFAULT_MAX_LINE, ProtocolError, Reply, ServerCodec,
    TubeName,
};
use tokio_util::codec::{Decoder, Encoder};

fn tube(name: &str) -> TubeName {
    TubeName::new(name).unwrap()
}

fn every_command() -> Vec<(Command, &'static [u8])> {
    vec![
        (
            Command::Put {
                priority: 1,
                delay: 2,
                ttr: 3,
                body: Bytes::from_static(b"hello"),
            },
            b"put 1 2 3 5\r\nhello\r\n",
        ),
        (Command::Use { tube: tube("emails") }, b"use emails\r\n"),
        (Command::Reserve, b"reserve\r\n"),
        (
            Command::ReserveWithTimeout { timeout: 5 },
            b"reserve-with-timeout 5\r\n",
        ),
        (Command::ReserveJob { id: 9 }, b"reserve-job 9\r\n"),
        (Command::Delete { id: 42 }, b"delete 42\r\n"),
        (
            Command::Release {
                id: 42,
                priority: 7,
                delay: 10,
            },
            b"release 42 7 10\r\n",
        ),
        (Command::Bury { id: 42, priority: 8 }, b"bury 42 8\r\n"),
        (Command::Touch { id: 42 }, b"touch 42\r\n"),
        (Command::Watch { tube: tube("a-b") }, b"watch a-b\r\n"),
        (
            Command::Ignore {
                tube: tube("default"),
            },
            b"ignore default\r\n",
        ),
        (Command::Peek { id: 1 }, b"peek 1\r\n"),
        (Command::PeekReady, b"peek-ready\r\n"),
        (Command::PeekDelayed, b"peek-delayed\r\n"),
        (Command::PeekBuried, b"peek-buried\r\n"),
        (Command::Kick { bound: 100 }, b"kick 100\r\n"),
        (Command::KickJob { id: 3 }, b"kick-job 3\r\n"),
        (Command::StatsJob { id: 3 }, b"stats-job 3\r\n"),
        (Command::StatsTube { tube: tube("t") }, b"stats-tube t\r\n"),
        (Command::Stats, b"stats\r\n"),
        (Command::ListTubes, b"list-tubes\r\n"),
        (Command::ListTubeUsed, b"list-tube-used\r\n"),
        (Command::ListTubesWatched, b"list-tubes-watched\r\n"),
        (
            Command::PauseTube {
                tube: tube("t"),
                delay: 60,
            },
            b"pause-tube t 60\r\n",
        ),
        (Command::Quit, b"quit\r\n"),
    ]
}

fn every_reply() -> Vec<(Reply, &'static [u8])> {
    vec![
        (Reply::Inserted { id: 5 }, b"INSERTED 5\r\n"),
        (Reply::Buried { id: Some(5) }, b"BURIED 5\r\n"),
        (Reply::Buried { id: None }, b"BURIED\r\n"),
        (Reply::ExpectedCrlf, b"EXPECTED_CRLF\r\n"),
        (Reply::JobTooBig, b"JOB_TOO_BIG\r\n"),
        (Reply::Draining, b"DRAINING\r\n"),
        (Reply::Using { tube: tube("emails") }, b"USING emails\r\n"),
        (Reply::DeadlineSoon, b"DEADLINE_SOON\r\n"),
        (Reply::TimedOut, b"TIMED_OUT\r\n"),
        (
            Reply::Reserved {
                id: 7,
                body: Bytes::from_static(b"a\r\nb\0c"),
            },
            b"RESERVED 7 6\r\na\r\nb\0c\r\n",
        ),
        (Reply::Deleted, b"DELETED\r\n"),
        (Reply::NotFound, b"NOT_FOUND\r\n"),
        (Reply::Released, b"RELEASED\r\n"),
        (Reply::Touched, b"TOUCHED\r\n"),
        (Reply::Watching { count: 2 }, b"WATCHING 2\r\n"),
        (Reply::NotIgnored, b"NOT_IGNORED\r\n"),
        (
            Reply::Found {
                id: 8,
                body: Bytes::new(),
            },
            b"FOUND 8 0\r\n\r\n",
        ),
        (Reply::Kicked { count: Some(3) }, b"KICKED 3\r\n"),
        (Reply::Kicked { count: None }, b"KICKED\r\n"),
        (
            Reply::Ok {
                data: Bytes::from_static(b"---\n- default\n"),
            },
            b"OK 14\r\n---\n- default\n\r\n",
        ),
        (Reply::Paused, b"PAUSED\r\n"),
        (Reply::OutOfMemory, b"OUT_OF_MEMORY\r\n"),
        (Reply::InternalError, b"INTERNAL_ERROR\r\n"),
        (Reply::BadFormat, b"BAD_FORMAT\r\n"),
        (Reply::UnknownCommand, b"UNKNOWN_COMMAND\r\n"),
    ]
}

/// Feeds `bytes` split at `at`: the prefix must decode to nothing and
/// consume nothing; the whole must decode to exactly one frame.
fn decode_split<D: Decoder>(codec: &mut D, bytes: &[u8], at: usize) -> D::Item
where
    D::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::from(&bytes[..at]);
    if at < bytes.len() {
        assert!(
            codec.decode(&mut buf).unwrap().is_none(),
            "complete after {at} of {} bytes",
            bytes.len()
        );
        assert_eq!(&buf[..], &bytes[..at], "a partial frame consumed bytes");
    }
    buf.extend_from_slice(&bytes[at..]);
    let item = codec.decode(&mut buf).unwrap().expect("a whole frame");
    assert!(buf.is_empty(), "left over: {:?}", &buf[..]);
    item
}

/// Each frame must encode to exactly its wire bytes with `Writer`'s codec,
/// and decode back from those bytes split at every point with `Reader`'s.
fn exact_bytes_and_every_split<T, Writer, Reader>(frames: Vec<(T, &'static [u8])>)
where
    T: Clone + PartialEq + std::fmt::Debug,
    Writer: Encoder<T, Error = CodecError> + Default,
    Reader: Decoder<Item = T, Error = CodecError> + Default,
{
    for (frame, wire) in frames {
        let mut out = BytesMut::new();
        Writer::default().encode(frame.clone(), &mut out).unwrap();
        assert_eq!(&out[..], wire, "{frame:?}");
        for at in 0..=wire.len() {
            assert_eq!(
                decode_split(&mut Reader::default(), wire, at),
                frame,
                "split at {at}"
            );
        }
    }
}

#[test]
fn commands_encode_to_exact_bytes_and_decode_from_every_split() {
    exact_bytes_and_every_split::<_, ClientCodec, ServerCodec>(every_command());
}

#[test]
fn replies_encode_to_exact_bytes_and_decode_from_every_split() {
    exact_bytes_and_every_split::<_, ServerCodec, ClientCodec>(every_reply());
}

#[test]
fn several_frames_in_one_buffer() {
    let mut buf = BytesMut::from(&b"INSERTED 1\r\nRESERVED 1 2\r\n\r\n\r\nDELETED\r\nTIM"[..]);
    let mut codec = ClientCodec::default();
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(Reply::Inserted { id: 1 }));
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(Reply::Reserved {
            id: 1,
            body: Bytes::from_static(b"\r\n")
        })
    );
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(Reply::Deleted));
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert_eq!(&buf[..], b"TIM");
}

fn protocol_error<T: std::fmt::Debug>(result: Result<T, CodecError>) -> ProtocolError {
    match result {
        Err(CodecError::Protocol(err)) => err,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn body_limits_are_exact() {
    let mut codec = ServerCodec::new(DEFAULT_MAX_LINE, 10);
    let at_max = b"put 0 0 1 10\r\n0123456789\r\n";
    assert!(matches!(
        codec.decode(&mut BytesMut::from(&at_max[..])).unwrap(),
        Some(Command::Put { .. })
    ));
    // Refused from the header alone, before the body is buffered.
    let err = protocol_error(codec.decode(&mut BytesMut::from(&b"put 0 0 1 11\r\n"[..])));
    assert_eq!(err, ProtocolError::BodyTooLarge { len: 11, limit: 10 });

    let mut client = ClientCodec::new(DEFAULT_MAX_LINE, 10);
    // A job body over the limit is skipped, not refused (see
    // `an_oversized_job_body_is_skipped_at_every_split`); one longer than
    // any beanstalkd can hold is a corrupt stream.
    let err = protocol_error(client.decode(&mut BytesMut::from(&b"RESERVED 1 1073741825\r\n"[..])));
    assert_eq!(
        err,
        ProtocolError::BodyTooLarge {
            len: 1_073_741_825,
            limit: 10
        }
    );
    let mut client = ClientCodec::new(DEFAULT_MAX_LINE, 10);
    let big = Command::Put {
        priority: 0,
        delay: 0,
        ttr: 1,
        body: Bytes::from(vec![0u8; 11]),
    };
    let mut out = BytesMut::new();
    assert!(client.encode(big, &mut out).is_err());
    assert!(out.is_empty(), "nothing written for a refused put");
    // Documents have their own, larger cap.
    let mut doc = BytesMut::from(&b"OK 13\r\n---\n- abcdefg\r\n"[..]);
    assert!(matches!(client.decode(&mut doc).unwrap(), Some(Reply::Ok { .. })));
    let mut small_docs = ClientCodec::default().with_max_document(4);
    assert!(small_docs.decode(&mut BytesMut::from(&b"OK 5\r\n"[..])).is_err());
}

#[test]
fn body_must_end_with_crlf() {
    let err =
        protocol_error(ServerCodec::default().decode(&mut BytesMut::from(&b"put 0 0 1 2\r\nabc\r\n"[..])));
    assert_eq!(err, ProtocolError::ExpectedCrlf { len: 2 });
}

#[test]
fn line_limit_is_exact_and_endless_lines_fail_early() {
    let mut codec = ServerCodec::default();
    // A 200-byte tube name gives a 224-byte line with CRLF: exactly the limit.
    let name = "t".repeat(200);
    let line = format!("pause-tube {name} 1234567890\r\n");
    assert_eq!(line.len(), DEFAULT_MAX_LINE);
    assert!(
        codec
            .decode(&mut BytesMut::from(line.as_bytes()))
            .unwrap()
            .is_some()
    );
    let longer = format!("pause-tube {name} 12345678901\r\n");
    let err = protocol_error(codec.decode(&mut BytesMut::from(longer.as_bytes())));
    assert_eq!(
        err,
        ProtocolError::LineTooLong {
            limit: DEFAULT_MAX_LINE
        }
    );
    // No CRLF ever: refused once the limit's worth is buffered.
    let mut endless = BytesMut::from(&vec![b'a'; DEFAULT_MAX_LINE - 1][..]);
    assert!(ClientCodec::default().decode(&mut endless).unwrap().is_none());
    endless.extend_from_slice(b"a");
    assert!(ClientCodec::default().decode(&mut endless).is_err());
}

#[test]
fn bad_numbers_and_words_are_refused() {
    for line in [
        "delete -1",
        "delete +1",
        "delete 1x",
        "delete 18446744073709551616",
        "release 1 4294967296 0",
        "delete  1",
        "delete",
        "delete 1 2",
        "frobnicate",
        "",
        " reserve",
    ] {
        let mut buf = BytesMut::from(format!("{line}\r\n").as_bytes());
        assert!(
            ServerCodec::default().decode(&mut buf).is_err(),
            "{line:?} accepted"
        );
    }
    for line in ["INSERTED x", "WATCHING", "OK -1", "RESERVED 1", "HELLO"] {
        let mut buf = BytesMut::from(format!("{line}\r\n").as_bytes());
        assert!(
            ClientCodec::default().decode(&mut buf).is_err(),
            "{line:?} accepted"
        );
    }
}

#[test]
fn tube_names_follow_the_protocol() {
    let long = "x".repeat(201);
    for bad in [
        "",
        "has space",
        "-leading",
        "cr\rlf",
        "new\nline",
        "ünï",
        long.as_str(),
    ] {
        assert!(TubeName::new(bad).is_err(), "{bad:?} accepted");
    }
    for good in ["default", "a-b+c/d;e.f$g_h(i)", "0", &"y".repeat(200)] {
        assert!(TubeName::new(good).is_ok(), "{good:?} refused");
    }
    let mut buf = BytesMut::from(&b"use -bad\r\n"[..]);
    assert!(matches!(
        protocol_error(ServerCodec::default().decode(&mut buf)),
        ProtocolError::InvalidTubeName { .. }
    ));
}

fn tube_strategy() -> impl Strategy<Value = TubeName> {
    "[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]{0,40}".prop_map(|s| TubeName::new(s).unwrap())
}

fn body_strategy() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn command_strategy() -> impl Strategy<Value = Command> {
    prop_oneof![
        (any::<u32>(), any::<u32>(), any::<u32>(), body_strategy()).prop_map(
            |(priority, delay, ttr, body)| Command::Put {
                priority,
                delay,
                ttr,
                body
            }
        ),
        tube_strategy().prop_map(|tube| Command::Use { tube }),
        Just(Command::Reserve),
        any::<u32>().prop_map(|timeout| Command::ReserveWithTimeout { timeout }),
        any::<u64>().prop_map(|id| Command::ReserveJob { id }),
        any::<u64>().prop_map(|id| Command::Delete { id }),
        (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(id, priority, delay)| Command::Release {
            id,
            priority,
            delay
        }),
        (any::<u64>(), any::<u32>()).prop_map(|(id, priority)| Command::Bury { id, priority }),
        any::<u64>().prop_map(|id| Command::Touch { id }),
        tube_strategy().prop_map(|tube| Command::Watch { tube }),
        tube_strategy().prop_map(|tube| Command::Ignore { tube }),
        any::<u64>().prop_map(|id| Command::Peek { id }),
        Just(Command::PeekReady),
        Just(Command::PeekDelayed),
        Just(Command::PeekBuried),
        any::<u64>().prop_map(|bound| Command::Kick { bound }),
        any::<u64>().prop_map(|id| Command::KickJob { id }),
        any::<u64>().prop_map(|id| Command::StatsJob { id }),
        tube_strategy().prop_map(|tube| Command::StatsTube { tube }),
        Just(Command::Stats),
        Just(Command::ListTubes),
        Just(Command::ListTubeUsed),
        Just(Command::ListTubesWatched),
        (tube_strategy(), any::<u32>()).prop_map(|(tube, delay)| Command::PauseTube { tube, delay }),
        Just(Command::Quit),
    ]
}

fn reply_strategy() -> impl Strategy<Value = Reply> {
    prop_oneof![
        any::<u64>().prop_map(|id| Reply::Inserted { id }),
        any::<Option<u64>>().prop_map(|id| Reply::Buried { id }),
        Just(Reply::ExpectedCrlf),
        Just(Reply::JobTooBig),
        Just(Reply::Draining),
        tube_strategy().prop_map(|tube| Reply::Using { tube }),
        Just(Reply::DeadlineSoon),
        Just(Reply::TimedOut),
        (any::<u64>(), body_strategy()).prop_map(|(id, body)| Reply::Reserved { id, body }),
        Just(Reply::Deleted),
        Just(Reply::NotFound),
        Just(Reply::Released),
        Just(Reply::Touched),
        any::<u64>().prop_map(|count| Reply::Watching { count }),
        Just(Reply::NotIgnored),
        (any::<u64>(), body_strategy()).prop_map(|(id, body)| Reply::Found { id, body }),
        any::<Option<u64>>().prop_map(|count| Reply::Kicked { count }),
        body_strategy().prop_map(|data| Reply::Ok { data }),
        Just(Reply::Paused),
        Just(Reply::OutOfMemory),
        Just(Reply::InternalError),
        Just(Reply::BadFormat),
        Just(Reply::UnknownCommand),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_command_round_trips(command in command_strategy(), split in any::<prop::sample::Index>()) {
        let mut wire = BytesMut::new();
        ClientCodec::default().encode(&command, &mut wire).unwrap();
        let at = split.index(wire.len() + 1);
        prop_assert_eq!(decode_split(&mut ServerCodec::default(), &wire, at), command);
    }

    #[test]
    fn every_reply_round_trips(reply in reply_strategy(), split in any::<prop::sample::Index>()) {
        let mut wire = BytesMut::new();
        ServerCodec::default().encode(reply.clone(), &mut wire).unwrap();
        let at = split.index(wire.len() + 1);
        prop_assert_eq!(decode_split(&mut ClientCodec::default(), &wire, at), reply);
    }

    #[test]
    fn random_bytes_never_panic(
        prefix in prop_oneof![Just(""), Just("put 1 2 3 "), Just("RESERVED 1 "), Just("OK "), Just("use ")],
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut input = prefix.as_bytes().to_vec();
        input.extend_from_slice(&bytes);
        for limit in [DEFAULT_MAX_BODY, 16] {
            let mut buf = BytesMut::from(&input[..]);
            let mut client = ClientCodec::new(DEFAULT_MAX_LINE, limit).with_max_document(limit);
            while let Ok(Some(_)) = client.decode(&mut buf) {}
            // Nothing is buffered beyond what a frame within the limits needs.
            prop_assert!(buf.capacity() <= input.len().max(DEFAULT_MAX_LINE + limit + 2) + 64);
            let mut buf = BytesMut::from(&input[..]);
            let mut server = ServerCodec::new(DEFAULT_MAX_LINE, limit);
            while let Ok(Some(_)) = server.decode(&mut buf) {}
        }
    }
}

/// A job body over the client's limit is discarded as it arrives (never
/// buffered whole) and yields a `...TooBig` reply with the job's id and
/// size, wherever the input is split; the next reply decodes in step.
#[test]
fn an_oversized_job_body_is_skipped_at_every_split() {
    let body = vec![b'\n'; 40];
    let mut wire = b"RESERVED 7 40\r\n".to_vec();
    wire.extend_from_slice(&body);
    wire.extend_from_slice(b"\r\nFOUND 8 40\r\n");
    wire.extend_from_slice(&body);
    wire.extend_from_slice(b"\r\nDELETED\r\n");
    let want = [
        Reply::ReservedTooBig { id: 7, len: 40 },
        Reply::FoundTooBig { id: 8, len: 40 },
        Reply::Deleted,
    ];
    for split in 0..=wire.len() {
        let mut codec = ClientCodec::new(DEFAULT_MAX_LINE, 10);
        let mut buf = BytesMut::from(&wire[..split]);
        let mut got = Vec::new();
        while let Some(reply) = codec.decode(&mut buf).unwrap() {
            got.push(reply);
        }
        assert!(
            buf.len() <= DEFAULT_MAX_LINE,
            "split {split}: a body is never buffered"
        );
        buf.extend_from_slice(&wire[split..]);
        while let Some(reply) = codec.decode(&mut buf).unwrap() {
            got.push(reply);
        }
        assert_eq!(got, want, "split at {split}");
        assert!(buf.is_empty());
    }
    // The CRLF after a skipped body is still required.
    let mut codec = ClientCodec::new(DEFAULT_MAX_LINE, 10);
    let mut bad = BytesMut::from(&b"RESERVED 7 11\r\n01234567890XY"[..]);
    let err = protocol_error(codec.decode(&mut bad));
    assert_eq!(err, ProtocolError::ExpectedCrlf { len: 11 });
    // A skipped reply cannot be written back by a server.
    let mut out = BytesMut::new();
    assert!(
        ServerCodec::default()
            .encode(Reply::ReservedTooBig { id: 1, len: 2 }, &mut out)
            .is_err()
    );
}
