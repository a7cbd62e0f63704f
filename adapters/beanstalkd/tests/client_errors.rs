//! Error replies. Every one a real beanstalkd gives on demand comes from a
//! real server (started by `pulpo_testkit`): NOT_FOUND, JOB_TOO_BIG,
//! DRAINING, DEADLINE_SOON, TIMED_OUT, NOT_IGNORED, and — from raw bytes the
//! client itself would never send — EXPECTED_CRLF, BAD_FORMAT and
//! UNKNOWN_COMMAND. Replies a real server will not give on demand (BURIED
//! after put, OUT_OF_MEMORY, INTERNAL_ERROR, garbage, a reply cut short) come
//! from a tiny byte-level fake.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pulpo_beanstalkd::proto::{ClientCodec, Command, ProtocolError, Reply};
use pulpo_beanstalkd::{Client, Error, PutJob, ServerError};
use pulpo_testkit::{Beanstalkd, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;

/// The server error of a call that must have failed with one.
fn server_error<T: std::fmt::Debug>(result: Result<T, Error>) -> ServerError {
    match result {
        Err(Error::Server { error, .. }) => error,
        other => panic!("expected a server error reply, got {other:?}"),
    }
}

/// The command name and server error of a call that must have failed with one.
fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> (&'static str, ServerError) {
    match result {
        Err(Error::Server { command, error }) => (command, error),
        other => panic!("expected a server error reply, got {other:?}"),
    }
}

#[tokio::test]
async fn not_found_from_every_command_that_can_give_it() {
    let (server, mut c) = common::start().await;
    let missing = 424_242;
    assert_eq!(
        refusal(c.delete(missing).await),
        ("delete", ServerError::NotFound)
    );
    assert_eq!(
        refusal(c.release(missing, 0, 0).await),
        ("release", ServerError::NotFound)
    );
    assert_eq!(refusal(c.bury(missing, 0).await), ("bury", ServerError::NotFound));
    assert_eq!(refusal(c.touch(missing).await), ("touch", ServerError::NotFound));
    assert_eq!(
        refusal(c.kick_job(missing).await),
        ("kick-job", ServerError::NotFound)
    );
    assert_eq!(refusal(c.peek(missing).await), ("peek", ServerError::NotFound));
    assert_eq!(
        refusal(c.peek_ready().await),
        ("peek-ready", ServerError::NotFound)
    );
    assert_eq!(
        refusal(c.peek_delayed().await),
        ("peek-delayed", ServerError::NotFound)
    );
    assert_eq!(
        refusal(c.peek_buried().await),
        ("peek-buried", ServerError::NotFound)
    );
    assert_eq!(
        refusal(c.reserve_job(missing).await),
        ("reserve-job", ServerError::NotFound)
    );
    assert_eq!(
        refusal(c.stats_job(missing).await),
        ("stats-job", ServerError::NotFound)
    );
    assert_eq!(
        refusal(c.stats_tube("nope").await),
        ("stats-tube", ServerError::NotFound)
    );
    assert_eq!(
        refusal(c.pause_tube("nope", 1).await),
        ("pause-tube", ServerError::NotFound)
    );
    let err = c.delete(missing).await.unwrap_err();
    assert!(err.is_not_found() && !err.is_disconnect(), "{err:?}");
    assert_eq!(err.to_string(), "beanstalkd refused delete: NOT_FOUND");

    // A job that exists but is not reserved by this connection: release,
    // bury and touch say NOT_FOUND; kick-job of a ready job too.
    let id = c.put(0, 0, 60, "ready").await.unwrap();
    assert_eq!(server_error(c.release(id, 0, 0).await), ServerError::NotFound);
    assert_eq!(server_error(c.bury(id, 0).await), ServerError::NotFound);
    assert_eq!(server_error(c.touch(id).await), ServerError::NotFound);
    assert_eq!(server_error(c.kick_job(id).await), ServerError::NotFound);
    // Reserved by another connection: this one cannot delete or reserve it.
    let mut other = common::connect(&server).await;
    assert_eq!(other.reserve().await.unwrap().id, id);
    assert_eq!(server_error(c.delete(id).await), ServerError::NotFound);
    assert_eq!(server_error(c.reserve_job(id).await), ServerError::NotFound);
    assert_eq!(server_error(c.touch(id).await), ServerError::NotFound);
    other.delete(id).await.unwrap();
    assert!(!c.is_broken());
}

#[tokio::test]
async fn job_too_big_is_over_the_servers_max_job_size() {
    let server = Beanstalkd::start_with(Options {
        max_job_size: Some(100),
        ..Options::default()
    });
    let mut c = common::connect(&server).await;
    // beanstalkd 1.12 accepts a body of exactly -z bytes and refuses one more.
    let id = c.put(0, 0, 10, vec![b'x'; 100]).await.unwrap();
    assert_eq!(c.peek(id).await.unwrap().body.len(), 100);
    assert_eq!(
        refusal(c.put(0, 0, 10, vec![b'x'; 101]).await),
        ("put", ServerError::JobTooBig)
    );
    // The server reads and drops the refused body, so the stream stays in
    // step even for a body far over the limit.
    assert_eq!(
        server_error(c.put(0, 0, 10, vec![b'\n'; 60_000]).await),
        ServerError::JobTooBig
    );
    assert_eq!(c.list_tube_used().await.unwrap().as_str(), "default");
    assert_eq!(c.stats().await.unwrap().current_jobs_ready, 1);
}

#[tokio::test]
async fn timed_out_after_the_requested_wait() {
    let (_server, mut c) = common::start().await;
    let started = Instant::now();
    let err = c.reserve_with_timeout(0).await.unwrap_err();
    assert!(err.is_timed_out(), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(
        refusal(c.reserve_with_timeout(1).await),
        ("reserve-with-timeout", ServerError::TimedOut)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
    // A job in an unwatched tube does not end the wait.
    c.use_tube("elsewhere").await.unwrap();
    c.put(0, 0, 10, "not for us").await.unwrap();
    assert!(c.reserve_with_timeout(0).await.unwrap_err().is_timed_out());
    assert!(!c.is_broken());
}

#[tokio::test]
async fn not_ignored_for_the_last_watched_tube() {
    let (_server, mut c) = common::start().await;
    assert_eq!(
        refusal(c.ignore("default").await),
        ("ignore", ServerError::NotIgnored)
    );
    c.watch("other").await.unwrap();
    c.ignore("default").await.unwrap();
    assert_eq!(server_error(c.ignore("other").await), ServerError::NotIgnored);
    assert_eq!(c.watched().len(), 1);
}

#[tokio::test]
async fn deadline_soon_in_the_last_second_of_a_reserved_jobs_ttr() {
    let (_server, mut c) = common::start().await;

    // TTR 1: the whole TTR is within the server's one-second safety margin,
    // so the next reserve answers DEADLINE_SOON at once.
    let short = c.put(0, 0, 1, "short").await.unwrap();
    assert_eq!(c.reserve().await.unwrap().id, short);
    let started = Instant::now();
    assert_eq!(refusal(c.reserve().await), ("reserve", ServerError::DeadlineSoon));
    assert!(started.elapsed() < Duration::from_millis(500));
    c.delete(short).await.unwrap();

    // TTR 2: a waiting reserve is woken with DEADLINE_SOON one second in.
    let id = c.put(0, 0, 2, "two seconds").await.unwrap();
    let started = Instant::now();
    assert_eq!(c.reserve_job(id).await.unwrap().id, id);
    assert_eq!(
        refusal(c.reserve_with_timeout(10).await),
        ("reserve-with-timeout", ServerError::DeadlineSoon)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_millis(1600),
        "{waited:?}"
    );
    // The connection goes on; touching gives the job its TTR back.
    c.touch(id).await.unwrap();
    c.delete(id).await.unwrap();
}

#[tokio::test]
async fn draining_after_sigusr1() {
    let (server, mut c) = common::start().await;
    let id = c.put(0, 0, 60, "before").await.unwrap();
    let pid = server.pid().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-USR1", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    // The signal is handled asynchronously: wait (briefly) until it shows.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !c.stats().await.unwrap().draining {
        assert!(Instant::now() < deadline, "the server never reported draining");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        refusal(c.put(0, 0, 10, "no").await),
        ("put", ServerError::Draining)
    );
    let batch = vec![
        PutJob {
            priority: 0,
            delay: 0,
            ttr: 10,
            body: Bytes::from_static(b"no"),
        };
        3
    ];
    for result in c.put_batch(&batch).await.unwrap() {
        assert_eq!(server_error(result), ServerError::Draining);
    }
    // Existing jobs are still served.
    assert_eq!(c.reserve().await.unwrap().id, id);
    c.delete(id).await.unwrap();
}

/// Raw bytes to the real server on a fresh connection; the replies decoded
/// with the client codec, until `count` arrived.
fn raw_exchange(server: &Beanstalkd, bytes: &[u8], count: usize) -> Vec<Reply> {
    let mut stream = std::net::TcpStream::connect(server.socket_addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(bytes).unwrap();
    let mut codec = ClientCodec::default();
    let mut buf = BytesMut::new();
    let mut replies = Vec::new();
    while replies.len() < count {
        if let Some(reply) = codec.decode(&mut buf).unwrap() {
            replies.push(reply);
            continue;
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed after {replies:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(buf.is_empty(), "more bytes than expected: {buf:?}");
    replies
}

#[test]
fn malformed_input_replies_of_a_real_server() {
    let server = Beanstalkd::start();
    let one = |bytes: &[u8]| raw_exchange(&server, bytes, 1).remove(0);
    // The body must be followed by CRLF.
    assert_eq!(one(b"put 0 0 10 2\r\nabcd"), Reply::ExpectedCrlf);
    assert_eq!(one(b"delete x\r\n"), Reply::BadFormat);
    assert_eq!(one(b"put 0 0 10\r\n"), Reply::BadFormat);
    assert_eq!(one(b"delete 18446744073709551616\r\n"), Reply::BadFormat);
    assert_eq!(one(b"pause-tube default 4294967296\r\n"), Reply::BadFormat);
    assert_eq!(one(b"use -x\r\n"), Reply::BadFormat);
    assert_eq!(
        one(format!("use {}\r\n", "t".repeat(201)).as_bytes()),
        Reply::BadFormat
    );
    assert_eq!(one(b"frobnicate\r\n"), Reply::UnknownCommand);
    // A put the server cannot parse is refused without reading its body,
    // which then arrives as a command of its own: beanstalkd's stream is
    // out of step after BAD_FORMAT on a put (or a put in upper case).
    assert_eq!(
        raw_exchange(&server, b"PUT 0 0 10 1\r\nx\r\n", 2),
        [Reply::UnknownCommand, Reply::UnknownCommand]
    );
    assert_eq!(
        raw_exchange(&server, b"put -1 0 10 1\r\nx\r\n", 2),
        [Reply::BadFormat, Reply::UnknownCommand]
    );
    // JOB_TOO_BIG, by contrast, skips the body.
    let server = Beanstalkd::start_with(Options {
        max_job_size: Some(3),
        ..Options::default()
    });
    assert_eq!(
        raw_exchange(&server, b"put 0 0 10 4\r\nabcd\r\nlist-tube-used\r\n", 2),
        [
            Reply::JobTooBig,
            Reply::Using {
                tube: pulpo_beanstalkd::TubeName::default_tube()
            }
        ]
    );
}

/// A relay to the real server that swaps the client's first command line for
/// `raw` and passes everything else through both ways: the reply the client
/// maps is the real server's answer to bytes the client would never send.
async fn relay(server: &Beanstalkd, raw: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let upstream = server.address();
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut server = TcpStream::connect(upstream).await.unwrap();
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            match client.read_u8().await {
                Ok(byte) => line.push(byte),
                Err(_) => return,
            }
        }
        server.write_all(raw).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    });
    address
}

#[tokio::test]
async fn the_client_maps_the_real_servers_malformed_input_replies() {
    let server = Beanstalkd::start();
    for (raw, want) in [
        (&b"put 0 0 10 2\r\nabcd"[..], ServerError::ExpectedCrlf),
        (b"delete x\r\n", ServerError::BadFormat),
        (b"frobnicate\r\n", ServerError::UnknownCommand),
    ] {
        let mut c = Client::connect(&relay(&server, raw).await).await.unwrap();
        let err = c.stats().await.unwrap_err();
        assert!(
            matches!(err, Error::Server { command: "stats", error } if error == want),
            "{err:?}"
        );
        assert!(!err.is_disconnect() && !c.is_broken());
        // The connection is in step: the next command gets its own reply.
        assert_eq!(c.list_tube_used().await.unwrap().as_str(), "default");
    }
}

#[tokio::test]
async fn quit_sent_raw_ends_the_connection() {
    let (server, mut c) = common::start().await;
    let err = c.send(&Command::Quit).await.unwrap_err();
    assert!(
        matches!(err, Error::Closed { .. }) && err.is_disconnect(),
        "{err:?}"
    );
    assert!(err.to_string().contains(&server.address()), "{err}");
    assert!(c.is_broken());
    c.reconnect().await.unwrap();
    c.stats().await.unwrap();
}

/// A fake server for replies a real beanstalkd does not give on demand: it
/// reads what the client sends, writes `reply`, then either closes at once
/// or waits for the client to hang up.
async fn fake(reply: &'static [u8], close: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let _ = socket.read(&mut buf).await;
        let _ = socket.write_all(reply).await;
        if close {
            let _ = socket.shutdown().await;
        } else {
            while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
        }
    });
    address
}

async fn fake_client(reply: &'static [u8]) -> Client {
    Client::connect(&fake(reply, false).await).await.unwrap()
}

#[tokio::test]
async fn server_errors_only_a_fake_server_gives() {
    let mut c = fake_client(b"BURIED 77\r\n").await;
    assert_eq!(
        refusal(c.put(0, 0, 1, "x").await),
        ("put", ServerError::Buried { id: 77 })
    );
    assert!(!c.is_broken());
    let mut c = fake_client(b"OUT_OF_MEMORY\r\n").await;
    assert_eq!(server_error(c.put(0, 0, 1, "x").await), ServerError::OutOfMemory);
    let mut c = fake_client(b"INTERNAL_ERROR\r\n").await;
    assert_eq!(refusal(c.stats().await), ("stats", ServerError::InternalError));
    let mut c = fake_client(b"OUT_OF_MEMORY\r\n").await;
    assert_eq!(server_error(c.reserve().await), ServerError::OutOfMemory);
    // release answers a plain BURIED when the server cannot requeue the job.
    let mut c = fake_client(b"BURIED\r\n").await;
    assert_eq!(
        refusal(c.release(5, 0, 0).await),
        ("release", ServerError::Buried { id: 5 })
    );

    // Per-item results of a batch, in order.
    let mut c = fake_client(b"INSERTED 1\r\nBURIED 2\r\nOUT_OF_MEMORY\r\nINSERTED 4\r\n").await;
    let job = PutJob {
        priority: 0,
        delay: 0,
        ttr: 10,
        body: Bytes::from_static(b"x"),
    };
    let results = c.put_batch(&vec![job; 4]).await.unwrap();
    assert_eq!(*results[0].as_ref().unwrap(), 1);
    assert_eq!(
        results[1].as_ref().unwrap_err().server_error(),
        Some(ServerError::Buried { id: 2 })
    );
    assert_eq!(
        results[2].as_ref().unwrap_err().server_error(),
        Some(ServerError::OutOfMemory)
    );
    assert_eq!(*results[3].as_ref().unwrap(), 4);
}

#[tokio::test]
async fn a_reply_that_does_not_fit_the_command_is_unexpected() {
    let mut c = fake_client(b"DELETED\r\n").await;
    let err = c.put(0, 0, 1, "x").await.unwrap_err();
    assert!(matches!(err, Error::Unexpected { command: "put", .. }), "{err:?}");
    assert!(
        !err.is_disconnect() && !c.is_broken(),
        "the stream is still in step"
    );
    let mut c = fake_client(b"KICKED\r\n").await;
    assert!(matches!(
        c.kick(1).await,
        Err(Error::Unexpected { command: "kick", .. })
    ));
    let mut c = fake_client(b"KICKED 3\r\n").await;
    assert!(matches!(
        c.kick_job(1).await,
        Err(Error::Unexpected {
            command: "kick-job",
            ..
        })
    ));
    let mut c = fake_client(b"OK 5\r\nhello\r\n").await;
    let err = c.stats().await.unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::BadYaml { .. })),
        "{err:?}"
    );
    assert!(
        !err.is_disconnect() && !c.is_broken(),
        "the document was read whole"
    );
}

#[tokio::test]
async fn a_corrupt_or_cut_stream_breaks_the_connection() {
    // What the fake sends, and the error it must give.
    type Case = (&'static [u8], fn(&Error) -> bool);
    let cases: [Case; 6] = [
        (b"HELLO THERE\r\n", |e| {
            matches!(e, Error::Protocol(ProtocolError::BadLine { .. }))
        }),
        (&[b'A'; 4096], |e| {
            matches!(e, Error::Protocol(ProtocolError::LineTooLong { .. }))
        }),
        (b"OK 999999999999\r\n", |e| {
            matches!(e, Error::Protocol(ProtocolError::BodyTooLarge { .. }))
        }),
        (b"FOUND 1 3\r\nabcXY", |e| {
            matches!(e, Error::Protocol(ProtocolError::ExpectedCrlf { .. }))
        }),
        // The server hangs up with half a reply, or with none.
        (b"RESERVED 1 10\r\nabc", |e| {
            matches!(e, Error::Io { .. } | Error::Closed { .. })
        }),
        (b"", |e| matches!(e, Error::Closed { .. })),
    ];
    for (reply, want) in cases {
        let mut c = Client::connect(&fake(reply, true).await).await.unwrap();
        let err = c.peek(1).await.unwrap_err();
        assert!(want(&err), "{reply:?}: {err:?}");
        assert!(err.is_disconnect(), "{err:?}");
        assert!(c.is_broken());
        // Fails fast from now on, without touching the stream.
        assert!(matches!(c.stats().await, Err(Error::Closed { .. })));
        assert!(matches!(
            c.pipeline(&[Command::Stats]).await,
            Err(Error::Closed { .. })
        ));
        c.quit().await.unwrap();
    }
}
