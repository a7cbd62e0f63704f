//! The client against a real beanstalkd (started by `pulpo_testkit` on a free
//! loopback port): every command, every error reply the server can give, odd
//! bodies, limits, Unix sockets and reconnecting. Replies a real server will
//! not give on demand (OUT_OF_MEMORY, garbage, a cut reply) come from a tiny
//! byte-level fake.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pulpo_beanstalkd::proto::{ClientCodec, JobState, Reply};
use pulpo_beanstalkd::{Client, ConnectOptions, Error, PutJob, ServerError};
use pulpo_testkit::{Beanstalkd, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;

fn server_error<T: std::fmt::Debug>(result: Result<T, Error>) -> ServerError {
    match result {
        Err(Error::Server { error, .. }) => error,
        other => panic!("expected a server error reply, got {other:?}"),
    }
}

#[tokio::test]
async fn every_command_against_a_real_server() {
    let server = Beanstalkd::start();
    let mut c = Client::connect(&server.address()).await.unwrap();

    assert_eq!(c.list_tube_used().await.unwrap().as_str(), "default");
    assert_eq!(c.use_tube("jobs").await.unwrap().as_str(), "jobs");
    assert_eq!(c.used_tube().as_str(), "jobs");
    let id = c.put(10, 0, 60, "first").await.unwrap();
    let delayed = c.put(10, 100, 60, "later").await.unwrap();

    assert_eq!(c.watch("jobs").await.unwrap(), 2);
    assert_eq!(c.ignore("default").await.unwrap(), 1);
    let names: Vec<String> = c
        .list_tubes_watched()
        .await
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(names, ["jobs"]);
    assert_eq!(
        c.watched().iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        ["jobs"]
    );
    let mut tubes: Vec<String> = c
        .list_tubes()
        .await
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    tubes.sort();
    assert_eq!(tubes, ["default", "jobs"]);

    assert_eq!(c.peek(id).await.unwrap().body, Bytes::from_static(b"first"));
    assert_eq!(c.peek_ready().await.unwrap().id, id);
    assert_eq!(c.peek_delayed().await.unwrap().id, delayed);

    let job = c.reserve().await.unwrap();
    assert_eq!((job.id, &job.body[..]), (id, &b"first"[..]));
    c.touch(id).await.unwrap();
    let stats = c.stats_job(id).await.unwrap();
    assert_eq!(
        (stats.state, stats.tube.as_str(), stats.pri, stats.reserves),
        (JobState::Reserved, "jobs", 10, 1)
    );
    c.release(id, 5, 0).await.unwrap();
    let job = c.reserve_with_timeout(0).await.unwrap();
    assert_eq!(job.id, id);
    c.bury(id, 7).await.unwrap();
    assert_eq!(c.peek_buried().await.unwrap().id, id);
    assert_eq!(c.kick(10).await.unwrap(), 1);
    c.kick_job(delayed).await.unwrap();
    let reserved = c.reserve_job(delayed).await.unwrap();
    assert_eq!(&reserved.body[..], b"later");
    c.delete(delayed).await.unwrap();

    let tube = c.stats_tube("jobs").await.unwrap();
    assert_eq!(
        (tube.current_jobs_ready, tube.total_jobs, tube.cmd_delete),
        (1, 2, 1)
    );
    c.pause_tube("jobs", 1).await.unwrap();
    assert_eq!(c.stats_tube("jobs").await.unwrap().pause, 1);
    let stats = c.stats().await.unwrap();
    assert_eq!(
        (stats.cmd_put, stats.current_jobs_ready, stats.version.as_str()),
        (2, 1, "1.12")
    );
    assert_eq!(stats.pid, u64::from(server.pid().unwrap()));
    c.quit().await.unwrap();
}

#[tokio::test]
async fn error_replies_of_a_real_server() {
    let options = Options {
        max_job_size: Some(100),
        ..Options::default()
    };
    let server = Beanstalkd::start_with(options);
    let mut c = Client::connect(&server.address()).await.unwrap();
    let missing = 424_242;

    for result in [
        c.delete(missing).await,
        c.release(missing, 0, 0).await,
        c.bury(missing, 0).await,
        c.touch(missing).await,
        c.kick_job(missing).await,
        c.pause_tube("nope", 1).await,
    ] {
        assert_eq!(server_error(result), ServerError::NotFound);
    }
    assert_eq!(server_error(c.peek(missing).await), ServerError::NotFound);
    assert_eq!(server_error(c.peek_ready().await), ServerError::NotFound);
    assert_eq!(server_error(c.reserve_job(missing).await), ServerError::NotFound);
    assert_eq!(server_error(c.stats_job(missing).await), ServerError::NotFound);
    assert_eq!(server_error(c.stats_tube("nope").await), ServerError::NotFound);
    assert!(c.delete(missing).await.unwrap_err().is_not_found());

    // JOB_TOO_BIG: beanstalkd 1.12 accepts exactly max-job-size bytes.
    c.put(0, 0, 10, vec![b'x'; 100]).await.unwrap();
    assert_eq!(
        server_error(c.put(0, 0, 10, vec![b'x'; 101]).await),
        ServerError::JobTooBig
    );
    // TIMED_OUT, and the connection goes on.
    c.use_tube("other").await.unwrap();
    c.watch("empty").await.unwrap();
    c.ignore("default").await.unwrap();
    let err = c.reserve_with_timeout(0).await.unwrap_err();
    assert!(err.is_timed_out(), "{err:?}");
    // NOT_IGNORED: the last watched tube.
    assert_eq!(server_error(c.ignore("empty").await), ServerError::NotIgnored);

    // DEADLINE_SOON: holding a job in its last second of TTR.
    c.put(0, 0, 1, "short").await.unwrap();
    c.watch("other").await.unwrap();
    c.reserve_with_timeout(0).await.unwrap();
    let started = Instant::now();
    assert_eq!(
        server_error(c.reserve_with_timeout(5).await),
        ServerError::DeadlineSoon
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // DRAINING: SIGUSR1 puts the server into drain mode.
    unsafe { libc_kill(server.pid().unwrap() as i32, 10) };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server_error(c.put(0, 0, 10, "no").await), ServerError::Draining);
    assert!(c.stats().await.unwrap().draining);
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Raw bytes to the real server, decoded with the client codec.
fn raw_exchange(server: &Beanstalkd, bytes: &[u8]) -> Reply {
    let mut stream = std::net::TcpStream::connect(server.socket_addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(bytes).unwrap();
    let mut codec = ClientCodec::default();
    let mut buf = BytesMut::new();
    loop {
        if let Some(reply) = codec.decode(&mut buf).unwrap() {
            return reply;
        }
        let mut chunk = [0u8; 256];
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed without a reply");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn malformed_input_replies_of_a_real_server() {
    let server = Beanstalkd::start();
    assert_eq!(
        raw_exchange(&server, b"put 0 0 10 2\r\nabc\r\n"),
        Reply::ExpectedCrlf
    );
    assert_eq!(raw_exchange(&server, b"delete x\r\n"), Reply::BadFormat);
    assert_eq!(raw_exchange(&server, b"frobnicate\r\n"), Reply::UnknownCommand);
}

#[tokio::test]
async fn binary_bodies_and_the_clients_own_limit() {
    let server = Beanstalkd::start();
    let options = ConnectOptions {
        max_body: 1000,
        ..ConnectOptions::default()
    };
    let mut c = Client::connect_with(&server.address(), options).await.unwrap();
    let body: Vec<u8> = (0..=255u8)
        .cycle()
        .take(1000)
        .chain(*b"\r\n\0\r\n")
        .take(1000)
        .collect();
    let tricky = Bytes::from_static(b"line\r\nRESERVED 1 2\r\n\0\0");
    let a = c.put(0, 0, 10, body.clone()).await.unwrap();
    let b = c.put(0, 0, 10, tricky.clone()).await.unwrap();
    let empty = c.put(0, 0, 10, Bytes::new()).await.unwrap();
    assert_eq!(c.peek(a).await.unwrap().body, Bytes::from(body));
    assert_eq!(c.peek(b).await.unwrap().body, tricky);
    assert!(c.peek(empty).await.unwrap().body.is_empty());
    // One byte over the client's cap is refused before anything is sent...
    let err = c.put(0, 0, 10, vec![0u8; 1001]).await.unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    // ...which leaves the connection unusable only until reconnect.
    assert!(c.is_broken());
    c.reconnect().await.unwrap();
    assert_eq!(c.stats().await.unwrap().current_jobs_ready, 3);
}

#[tokio::test]
async fn invalid_tube_names_are_never_sent() {
    let server = Beanstalkd::start();
    let mut c = Client::connect(&server.address()).await.unwrap();
    for bad in ["", "a b", "-x", "a\r\nquit", &"t".repeat(201)] {
        assert!(
            matches!(c.use_tube(bad).await, Err(Error::Protocol(_))),
            "{bad:?}"
        );
        assert!(matches!(c.watch(bad).await, Err(Error::Protocol(_))), "{bad:?}");
    }
    assert!(!c.is_broken());
    assert_eq!(c.use_tube(&"t".repeat(200)).await.unwrap().as_str().len(), 200);
}

#[tokio::test]
async fn pipelined_batch_put_with_per_item_results() {
    let options = Options {
        max_job_size: Some(50),
        ..Options::default()
    };
    let server = Beanstalkd::start_with(options);
    let mut c = Client::connect(&server.address()).await.unwrap();
    let jobs: Vec<PutJob> = (0..10_000)
        .map(|i| PutJob {
            priority: 1,
            delay: 0,
            ttr: 60,
            body: Bytes::from(format!("job {i}")),
        })
        .collect();
    let ids = c.put_batch(&jobs).await.unwrap();
    assert_eq!(ids.len(), 10_000);
    let ids: Vec<u64> = ids.into_iter().map(Result::unwrap).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(
        c.peek(ids[9_999]).await.unwrap().body,
        Bytes::from_static(b"job 9999")
    );

    let mixed = vec![
        PutJob {
            priority: 1,
            delay: 0,
            ttr: 60,
            body: Bytes::from_static(b"ok"),
        },
        PutJob {
            priority: 1,
            delay: 0,
            ttr: 60,
            body: Bytes::from(vec![b'x'; 51]),
        },
        PutJob {
            priority: 1,
            delay: 0,
            ttr: 60,
            body: Bytes::from_static(b"ok too"),
        },
    ];
    let results = c.put_batch(&mixed).await.unwrap();
    assert!(results[0].is_ok() && results[2].is_ok());
    assert_eq!(
        server_error(results.into_iter().nth(1).unwrap()),
        ServerError::JobTooBig
    );
}

#[tokio::test]
async fn unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("beanstalkd.sock");
    let server = Beanstalkd::start_with(Options {
        unix_socket: Some(path.clone()),
        ..Options::default()
    });
    assert_eq!(server.address(), format!("unix:{}", path.display()));
    let mut c = Client::connect(&server.address()).await.unwrap();
    let id = c.put(0, 0, 10, "over a unix socket").await.unwrap();
    assert_eq!(&c.reserve().await.unwrap().body[..], b"over a unix socket");
    c.delete(id).await.unwrap();
    assert_eq!(c.address().to_string(), server.address());
}

#[tokio::test]
async fn reconnect_after_restart_restores_use_and_watch() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        binlog_dir: Some(dir.path().to_owned()),
        ..Options::default()
    };
    let mut server = Beanstalkd::start_with(options);
    let mut c = Client::connect(&server.address()).await.unwrap();
    c.use_tube("emails").await.unwrap();
    c.watch("emails").await.unwrap();
    c.ignore("default").await.unwrap();
    let id = c.put(0, 0, 60, "kept by the binlog").await.unwrap();

    server.restart();
    let err = c.stats().await.unwrap_err();
    assert!(err.is_disconnect(), "{err:?}");
    assert!(
        matches!(c.stats().await, Err(Error::Closed { .. })),
        "a broken connection stays refused"
    );
    c.reconnect().await.unwrap();
    assert_eq!(c.list_tube_used().await.unwrap().as_str(), "emails");
    let watched: Vec<String> = c
        .list_tubes_watched()
        .await
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(watched, ["emails"]);
    let job = c.reserve_with_timeout(1).await.unwrap();
    assert_eq!((job.id, &job.body[..]), (id, &b"kept by the binlog"[..]));
}

#[tokio::test]
async fn unreachable_servers_fail_with_the_address() {
    let port = pulpo_testkit::free_port();
    let address = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let err = Client::connect(&address).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&address));
    assert!(started.elapsed() < Duration::from_secs(1));

    for bad in ["no-port", ":11300", "host:port", "unix:"] {
        assert!(
            matches!(Client::connect(bad).await, Err(Error::InvalidAddress { .. })),
            "{bad}"
        );
    }

    // A connect that never completes: a listener that never accepts, with
    // its accept backlog filled, so the kernel drops further handshakes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..4096 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(stream) => held.push(stream),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    assert!(
        full,
        "the accept backlog never filled after {} connections",
        held.len()
    );
    let options = ConnectOptions {
        connect_timeout: Duration::from_millis(300),
        ..ConnectOptions::default()
    };
    let started = Instant::now();
    let err = Client::connect_with(&addr.to_string(), options)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    drop(listener);
}

/// A fake server that answers the first command with `reply` bytes, then
/// closes; for replies a real beanstalkd does not give on demand.
async fn fake(reply: &'static [u8]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = socket.read(&mut buf).await;
        let _ = socket.write_all(reply).await;
        let _ = socket.shutdown().await;
    });
    address
}

#[tokio::test]
async fn replies_only_a_fake_server_gives() {
    let mut c = Client::connect(&fake(b"BURIED 77\r\n").await).await.unwrap();
    assert_eq!(
        server_error(c.put(0, 0, 1, "x").await),
        ServerError::Buried { id: 77 }
    );
    let mut c = Client::connect(&fake(b"OUT_OF_MEMORY\r\n").await).await.unwrap();
    assert_eq!(server_error(c.put(0, 0, 1, "x").await), ServerError::OutOfMemory);
    let mut c = Client::connect(&fake(b"INTERNAL_ERROR\r\n").await).await.unwrap();
    assert_eq!(server_error(c.stats().await), ServerError::InternalError);
    // A well-formed reply to the wrong command.
    let mut c = Client::connect(&fake(b"DELETED\r\n").await).await.unwrap();
    assert!(matches!(
        c.put(0, 0, 1, "x").await,
        Err(Error::Unexpected { command: "put", .. })
    ));
    // Garbage, an endless line, a huge document, a reply cut short.
    let mut c = Client::connect(&fake(b"HELLO THERE\r\n").await).await.unwrap();
    assert!(matches!(c.stats().await, Err(Error::Protocol(_))));
    let mut c = Client::connect(&fake(&[b'A'; 4096]).await).await.unwrap();
    assert!(matches!(c.stats().await, Err(Error::Protocol(_))));
    let mut c = Client::connect(&fake(b"OK 999999999999\r\n").await)
        .await
        .unwrap();
    assert!(matches!(c.stats().await, Err(Error::Protocol(_))));
    let mut c = Client::connect(&fake(b"RESERVED 1 10\r\nabc").await)
        .await
        .unwrap();
    let err = c.reserve().await.unwrap_err();
    assert!(err.is_disconnect(), "{err:?}");
}

#[tokio::test]
async fn a_cancelled_call_marks_the_connection_broken() {
    let server = Beanstalkd::start();
    let mut c = Client::connect(&server.address()).await.unwrap();
    // reserve blocks on an empty tube; cancel it mid-flight.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), c.reserve()).await;
    assert!(cancelled.is_err());
    assert!(c.is_broken());
    assert!(matches!(c.put(0, 0, 1, "x").await, Err(Error::Closed { .. })));
    c.reconnect().await.unwrap();
    c.put(0, 0, 1, "x").await.unwrap();
}
