//! Hostile bytes for the protocol readers, in the normal test suite: bounded property runs of
//! what `fuzz/` (`reply_decoder`, `command_decoder`, `stats_yaml`) does at length.
//!
//! `wire.rs` already round-trips generated frames split at one point and feeds random bytes to
//! one decode loop. Here the input is real protocol (captured lines and the fixture documents),
//! damaged by flipped, inserted and deleted bytes, and fed in several pieces: decoding in pieces
//! must give exactly what decoding it whole gives, a waiting decoder must hold less than one
//! frame its caps allow, and every decoded frame must encode and decode back to itself. The stats
//! parsers must read back what their writers write.

use bytes::BytesMut;
use proptest::prelude::*;
use pulpo_beanstalkd::proto::{
    ClientCodec, CodecError, DEFAULT_MAX_BODY, DEFAULT_MAX_DOCUMENT, DEFAULT_MAX_LINE, JobStats,
    ProtocolError, Reply, ServerCodec, ServerStats, StatsDocument, TubeStats, parse_tube_list,
    tube_list_to_yaml,
};
use pulpo_testkit::mutation::{edits, mutate};
use tokio_util::codec::{Decoder, Encoder};

const STATS_JOB: &[u8] = include_bytes!("../../../fixtures/beanstalkd/stats-job.yaml");
const STATS_TUBE: &[u8] = include_bytes!("../../../fixtures/beanstalkd/stats-tube.yaml");
const STATS: &[u8] = include_bytes!("../../../fixtures/beanstalkd/stats.yaml");
const LIST_TUBES: &[u8] = include_bytes!("../../../fixtures/beanstalkd/list-tubes.yaml");

/// Reply lines as a server sends them.
const REPLIES: &[&[u8]] = &[
    b"INSERTED 5\r\n",
    b"BURIED 12\r\n",
    b"BURIED\r\n",
    b"USING emails\r\n",
    b"RESERVED 7 6\r\na\r\nb\0c\r\n",
    b"FOUND 8 0\r\n\r\n",
    b"WATCHING 2\r\n",
    b"KICKED 3\r\n",
    b"DEADLINE_SOON\r\nTIMED_OUT\r\nNOT_FOUND\r\nDELETED\r\n",
    b"OK 14\r\n---\n- default\n\r\n",
];

/// Command lines as a client sends them.
const COMMANDS: &[&[u8]] = &[
    b"put 1024 0 60 5\r\nhello\r\n",
    b"put 0 0 1 4\r\n\r\n\r\n\r\n",
    b"use emails\r\n",
    b"reserve-with-timeout 5\r\n",
    b"release 42 7 10\r\n",
    b"bury 42 8\r\n",
    b"watch a-b+c/d;e.f$g_h(i)\r\nignore default\r\n",
    b"pause-tube t 60\r\n",
    b"stats-job 3\r\nstats-tube default\r\nlist-tubes-watched\r\n",
    b"kick 100\r\nkick-job 3\r\npeek-ready\r\nquit\r\n",
];

/// Codec limits: small ones so that short inputs reach them, and the defaults.
const CAPS: [(usize, usize, usize); 2] = [
    (40, 24, 64),
    (DEFAULT_MAX_LINE, DEFAULT_MAX_BODY, DEFAULT_MAX_DOCUMENT),
];

/// Some of `pool`, concatenated, then damaged.
fn stream(pool: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(prop::sample::select(pool), 1..4), edits()).prop_map(|(parts, edits)| {
        let whole: Vec<u8> = parts.concat();
        mutate(&whole, &edits)
    })
}

/// Where to cut a stream into pieces.
fn cuts() -> impl Strategy<Value = Vec<prop::sample::Index>> {
    prop::collection::vec(any::<prop::sample::Index>(), 0..4)
}

/// The frames of a stream, then how it ended: `Ok(held bytes)` waiting for more, or the error.
type Decoded<T> = (Vec<T>, Result<Vec<u8>, ProtocolError>);

/// Feeds `input` in pieces (cut at `cuts`) to a fresh decoder, decoding after each piece.
fn decode_in_pieces<D>(mut codec: D, input: &[u8], cuts: &[usize], most_held: usize) -> Decoded<D::Item>
where
    D: Decoder<Error = CodecError>,
{
    let mut ends: Vec<usize> = cuts.to_vec();
    ends.push(input.len());
    ends.sort_unstable();
    let (mut frames, mut buf, mut fed) = (Vec::new(), BytesMut::new(), 0);
    for end in ends {
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => {
                    assert!(buf.len() < most_held, "waiting while holding {} bytes", buf.len());
                    assert!(
                        buf.capacity() <= 2 * fed.max(most_held) + 64,
                        "capacity {}",
                        buf.capacity()
                    );
                    break;
                }
                Err(CodecError::Protocol(err)) => {
                    let _ = err.to_string();
                    return (frames, Err(err));
                }
                Err(CodecError::Io(err)) => panic!("I/O error from a buffer: {err}"),
            }
        }
    }
    (frames, Ok(buf.to_vec()))
}

fn check_replies(input: &[u8], cuts: &[prop::sample::Index]) -> Result<(), TestCaseError> {
    for (line, body, document) in CAPS {
        let client = || ClientCodec::new(line, body).with_max_document(document);
        let most_held = line + body.max(document) + 2;
        let whole = decode_in_pieces(client(), input, &[], most_held);
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        let pieces = decode_in_pieces(client(), input, &cuts, most_held);
        prop_assert_eq!(&pieces, &whole, "cut at {:?}", cuts);
        for reply in whole.0 {
            if let Reply::Ok { data } = &reply {
                check_documents(data)?;
            }
            let mut wire = BytesMut::new();
            ServerCodec::new(line, body)
                .encode(reply.clone(), &mut wire)
                .unwrap();
            prop_assert_eq!(client().decode(&mut wire).unwrap(), Some(reply));
            prop_assert!(wire.is_empty());
        }
    }
    Ok(())
}

fn check_commands(input: &[u8], cuts: &[prop::sample::Index]) -> Result<(), TestCaseError> {
    for (line, body, _) in CAPS {
        let server = || ServerCodec::new(line, body);
        let whole = decode_in_pieces(server(), input, &[], line + body + 2);
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        let pieces = decode_in_pieces(server(), input, &cuts, line + body + 2);
        prop_assert_eq!(&pieces, &whole, "cut at {:?}", cuts);
        for command in whole.0 {
            let mut wire = BytesMut::new();
            ClientCodec::new(line, body).encode(&command, &mut wire).unwrap();
            prop_assert_eq!(server().decode(&mut wire).unwrap(), Some(command));
            prop_assert!(wire.is_empty());
        }
    }
    Ok(())
}

/// Every stats parser on `yaml`; whatever parses must read back from its own writing.
fn check_documents(yaml: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(stats) = JobStats::parse(yaml) {
        prop_assert_eq!(JobStats::parse(&stats.to_yaml()), Ok(stats));
    }
    if let Ok(stats) = TubeStats::parse(yaml) {
        prop_assert_eq!(TubeStats::parse(&stats.to_yaml()), Ok(stats));
    }
    if let Ok(stats) = ServerStats::parse(yaml) {
        // Floats are written with 6 decimals, as beanstalkd does: compare from the first write.
        let written = stats.to_yaml();
        let again = ServerStats::parse(&written).map(|s| s.to_yaml());
        prop_assert_eq!(again, Ok(written));
    }
    if let Ok(tubes) = parse_tube_list(yaml) {
        prop_assert_eq!(parse_tube_list(&tube_list_to_yaml(&tubes)), Ok(tubes));
    }
    for err in [
        JobStats::parse(yaml).err(),
        TubeStats::parse(yaml).err(),
        ServerStats::parse(yaml).err(),
        parse_tube_list(yaml).err(),
    ]
    .into_iter()
    .flatten()
    {
        let _ = err.to_string();
    }
    Ok(())
}

/// A captured document wrapped as the `OK <bytes>` reply that carries it.
fn ok_reply(document: &[u8]) -> Vec<u8> {
    let mut wire = format!("OK {}\r\n", document.len()).into_bytes();
    wire.extend_from_slice(document);
    wire.extend_from_slice(b"\r\n");
    wire
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn damaged_reply_streams_decode_alike_in_pieces(input in stream(REPLIES), cuts in cuts()) {
        check_replies(&input, &cuts)?;
    }

    #[test]
    fn damaged_command_streams_decode_alike_in_pieces(input in stream(COMMANDS), cuts in cuts()) {
        check_commands(&input, &cuts)?;
    }

    #[test]
    fn damaged_documents_parse_or_fail_cleanly(
        document in prop::sample::select(vec![STATS_JOB, STATS_TUBE, STATS, LIST_TUBES]),
        edits in edits(),
        cuts in cuts(),
    ) {
        let document = mutate(document, &edits);
        check_documents(&document)?;
        check_replies(&ok_reply(&document), &cuts)?;
    }

    #[test]
    fn arbitrary_bytes_after_a_frame_head(
        head in prop::sample::select(vec!["", "OK ", "RESERVED 1 ", "FOUND 2 ", "put 0 0 1 ", "use ", "pause-tube "]),
        tail in prop::collection::vec(any::<u8>(), 0..120),
        cuts in cuts(),
    ) {
        let mut input = head.as_bytes().to_vec();
        input.extend_from_slice(&tail);
        check_replies(&input, &cuts)?;
        check_commands(&input, &cuts)?;
        check_documents(&tail)?;
    }
}

/// Lengths the caps refuse fail from the line alone, before any body is buffered.
#[test]
fn refused_lengths_allocate_nothing() {
    for line in [
        &b"OK 18446744073709551615\r\n"[..],
        b"OK 1048577\r\n",
        b"RESERVED 1 18446744073709551616\r\n",
        b"FOUND 1 1073741825\r\n",
    ] {
        let mut buf = BytesMut::from(line);
        let err = ClientCodec::default().decode(&mut buf).unwrap_err();
        assert!(matches!(err, CodecError::Protocol(_)), "{err}");
        assert!(buf.capacity() < 64, "{} after {:?}", buf.capacity(), line);
    }
    // A job body over the cap (but one a beanstalkd could hold) is skipped:
    // the decoder waits for it without reserving room for it.
    let mut buf = BytesMut::from(&b"FOUND 1 65536\r\n"[..]);
    assert_eq!(ClientCodec::default().decode(&mut buf).unwrap(), None::<Reply>);
    assert!(buf.is_empty() && buf.capacity() < 64, "{}", buf.capacity());
    let mut buf = BytesMut::from(&b"put 0 0 1 65536\r\n"[..]);
    assert!(ServerCodec::default().decode(&mut buf).is_err());
    assert!(buf.capacity() < 64);
    // At the cap the decoder may wait for the body, and then holds no more than it.
    let mut buf = BytesMut::from(&b"OK 1048576\r\n"[..]);
    assert_eq!(ClientCodec::default().decode(&mut buf).unwrap(), None::<Reply>);
    assert!(
        buf.capacity() <= DEFAULT_MAX_DOCUMENT + 64 + 2,
        "{}",
        buf.capacity()
    );
}
