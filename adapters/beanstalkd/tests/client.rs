//! The client against a real beanstalkd (started by `pulpo_testkit` on a free
//! loopback port, or a Unix socket): every command and its typed result, the
//! used tube and watch list the client tracks, bodies of any bytes, the
//! client's own size limits, and pipelining.
//!
//! Error replies are in `client_errors.rs`; reconnecting and connect failures
//! in `reconnect.rs`.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::sorted;
use pulpo_beanstalkd::proto::{Command, JobState, ProtocolError, Reply};
use pulpo_beanstalkd::{Address, Client, ConnectOptions, Error, PutJob, ServerError, TubeName};
use pulpo_testkit::{Beanstalkd, Options};

fn names(tubes: &[TubeName]) -> Vec<&str> {
    tubes.iter().map(TubeName::as_str).collect()
}

#[tokio::test]
async fn every_command_against_a_real_server() {
    let (server, mut c) = common::start().await;
    assert_eq!(c.address(), &Address::Tcp(server.address()));

    assert_eq!(c.list_tube_used().await.unwrap().as_str(), "default");
    assert_eq!(c.use_tube("jobs").await.unwrap().as_str(), "jobs");
    assert_eq!(c.used_tube().as_str(), "jobs");
    let id = c.put(10, 0, 60, "first").await.unwrap();
    let delayed = c.put(10, 100, 60, "later").await.unwrap();

    assert_eq!(c.watch("jobs").await.unwrap(), 2);
    assert_eq!(c.ignore("default").await.unwrap(), 1);
    assert_eq!(names(&c.list_tubes_watched().await.unwrap()), ["jobs"]);
    assert_eq!(names(c.watched()), ["jobs"]);
    assert_eq!(sorted(c.list_tubes().await.unwrap()), ["default", "jobs"]);

    assert_eq!(c.peek(id).await.unwrap().body, Bytes::from_static(b"first"));
    assert_eq!(c.peek_ready().await.unwrap().id, id);
    assert_eq!(c.peek_delayed().await.unwrap().id, delayed);

    let job = c.reserve().await.unwrap();
    assert_eq!((job.id, &job.body[..]), (id, &b"first"[..]));
    c.touch(id).await.unwrap();
    let stats = c.stats_job(id).await.unwrap();
    assert_eq!(
        (
            stats.id,
            stats.state,
            stats.tube.as_str(),
            stats.pri,
            stats.ttr,
            stats.reserves
        ),
        (id, JobState::Reserved, "jobs", 10, Duration::from_secs(60), 1)
    );
    c.release(id, 5, 0).await.unwrap();
    let stats = c.stats_job(id).await.unwrap();
    assert_eq!((stats.state, stats.pri, stats.releases), (JobState::Ready, 5, 1));
    let job = c.reserve_with_timeout(0).await.unwrap();
    assert_eq!(job.id, id);
    c.bury(id, 7).await.unwrap();
    assert_eq!(c.stats_job(id).await.unwrap().state, JobState::Buried);
    assert_eq!(c.peek_buried().await.unwrap().id, id);
    assert_eq!(c.kick(10).await.unwrap(), 1);
    assert_eq!(c.stats_job(id).await.unwrap().kicks, 1);
    assert_eq!(c.stats_job(delayed).await.unwrap().state, JobState::Delayed);
    c.kick_job(delayed).await.unwrap();
    let reserved = c.reserve_job(delayed).await.unwrap();
    assert_eq!(&reserved.body[..], b"later");
    c.delete(delayed).await.unwrap();

    let tube = c.stats_tube("jobs").await.unwrap();
    assert_eq!(
        (
            tube.name.as_str(),
            tube.current_jobs_ready,
            tube.total_jobs,
            tube.cmd_delete
        ),
        ("jobs", 1, 2, 1)
    );
    c.pause_tube("jobs", 1).await.unwrap();
    assert_eq!(c.stats_tube("jobs").await.unwrap().pause, Duration::from_secs(1));
    let stats = c.stats().await.unwrap();
    assert_eq!(
        (stats.cmd_put, stats.current_jobs_ready, stats.version.as_str()),
        (2, 1, "1.12")
    );
    assert_eq!(stats.pid, u64::from(server.pid().unwrap()));
    c.quit().await.unwrap();
}

#[tokio::test]
async fn raw_send_and_pipeline_return_replies_in_order_and_track_tubes() {
    let (_server, mut c) = common::start().await;
    assert_eq!(
        c.send(&Command::ListTubeUsed).await.unwrap(),
        Reply::Using {
            tube: TubeName::default_tube()
        }
    );
    // Error replies are replies here, not errors.
    assert_eq!(
        c.send(&Command::Delete { id: 99 }).await.unwrap(),
        Reply::NotFound
    );

    let tube = TubeName::new("piped").unwrap();
    let replies = c
        .pipeline(&[
            Command::Use { tube: tube.clone() },
            Command::Watch { tube: tube.clone() },
            Command::Put {
                priority: 1,
                delay: 0,
                ttr: 10,
                body: Bytes::from_static(b"one"),
            },
            Command::Ignore {
                tube: TubeName::default_tube(),
            },
            Command::Delete { id: 99 },
            Command::ReserveWithTimeout { timeout: 0 },
            Command::ListTubeUsed,
        ])
        .await
        .unwrap();
    assert_eq!(
        replies,
        [
            Reply::Using { tube: tube.clone() },
            Reply::Watching { count: 2 },
            Reply::Inserted { id: 1 },
            Reply::Watching { count: 1 },
            Reply::NotFound,
            Reply::Reserved {
                id: 1,
                body: Bytes::from_static(b"one")
            },
            Reply::Using { tube: tube.clone() },
        ]
    );
    // Confirmed use/watch/ignore are tracked whichever method sent them.
    assert_eq!(c.used_tube(), &tube);
    assert_eq!(names(c.watched()), ["piped"]);
    assert!(c.pipeline(&[]).await.unwrap().is_empty());
    assert!(!c.is_broken());
}

#[tokio::test]
async fn use_watch_and_ignore_are_tracked_only_when_confirmed() {
    let (_server, mut c) = common::start().await;
    assert_eq!(c.used_tube().as_str(), "default");
    assert_eq!(names(c.watched()), ["default"]);

    assert_eq!(c.watch("a").await.unwrap(), 2);
    assert_eq!(c.watch("a").await.unwrap(), 2, "watching twice adds nothing");
    assert_eq!(c.watch("b").await.unwrap(), 3);
    assert_eq!(names(c.watched()), ["default", "a", "b"]);
    assert_eq!(c.ignore("never-watched").await.unwrap(), 3);
    assert_eq!(c.ignore("default").await.unwrap(), 2);
    assert_eq!(c.ignore("a").await.unwrap(), 1);
    // The server refuses to ignore the last tube: the list is unchanged.
    let err = c.ignore("b").await.unwrap_err();
    assert_eq!(err.server_error(), Some(ServerError::NotIgnored));
    assert_eq!(names(c.watched()), ["b"]);
    assert_eq!(names(&c.list_tubes_watched().await.unwrap()), ["b"]);

    // A refused tube name changes nothing and sends nothing.
    assert!(matches!(c.use_tube("bad name").await, Err(Error::Protocol(_))));
    assert_eq!(c.used_tube().as_str(), "default");
    c.use_tube("b").await.unwrap();
    assert_eq!(c.used_tube().as_str(), "b");
    assert_eq!(c.list_tube_used().await.unwrap().as_str(), "b");
}

#[tokio::test]
async fn invalid_tube_names_are_never_sent() {
    let (_server, mut c) = common::start().await;
    let long = "t".repeat(201);
    for bad in ["", "a b", "-x", "a\r\nquit", "tab\tbed", "ünïcode", long.as_str()] {
        let invalid =
            |r: Result<_, Error>| matches!(r, Err(Error::Protocol(ProtocolError::InvalidTubeName { .. })));
        assert!(invalid(c.use_tube(bad).await.map(drop)), "use {bad:?}");
        assert!(invalid(c.watch(bad).await.map(drop)), "watch {bad:?}");
        assert!(invalid(c.ignore(bad).await.map(drop)), "ignore {bad:?}");
        assert!(invalid(c.stats_tube(bad).await.map(drop)), "stats-tube {bad:?}");
        assert!(invalid(c.pause_tube(bad, 1).await), "pause-tube {bad:?}");
        let err = c.watch(bad).await.unwrap_err();
        assert!(!err.is_disconnect(), "{err:?}");
    }
    assert!(!c.is_broken());
    // The longest name the protocol allows, and every allowed character.
    let longest = "t".repeat(200);
    assert_eq!(c.use_tube(&longest).await.unwrap().as_str(), longest);
    let odd = "Az09+/;.$_()-";
    assert_eq!(c.watch(odd).await.unwrap(), 2);
    assert_eq!(
        sorted(c.list_tubes_watched().await.unwrap()),
        [odd.to_owned(), "default".to_owned()]
    );
}

#[tokio::test]
async fn reserve_and_delete_round_trips_in_priority_order() {
    let (_server, mut c) = common::start().await;
    let low = c.put(1000, 0, 60, "low").await.unwrap();
    let high = c.put(0, 0, 60, "high").await.unwrap();
    let mid = c.put(500, 0, 60, "mid").await.unwrap();
    for (want, body) in [(high, "high"), (mid, "mid"), (low, "low")] {
        let job = c.reserve().await.unwrap();
        assert_eq!((job.id, &job.body[..]), (want, body.as_bytes()));
        c.delete(job.id).await.unwrap();
    }
    for i in 0..200u32 {
        let id = c.put(i, 0, 60, i.to_string()).await.unwrap();
        let job = c.reserve_with_timeout(0).await.unwrap();
        assert_eq!((job.id, job.body), (id, Bytes::from(i.to_string())));
        c.delete(id).await.unwrap();
    }
    let stats = c.stats().await.unwrap();
    assert_eq!((stats.current_jobs_ready, stats.cmd_delete), (0, 203));
    assert!(c.peek(low).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn a_delayed_job_becomes_ready_after_its_delay() {
    let (_server, mut c) = common::start().await;
    let started = Instant::now();
    let id = c.put(0, 1, 60, "soon").await.unwrap();
    assert!(c.reserve_with_timeout(0).await.unwrap_err().is_timed_out());
    let job = c.reserve_with_timeout(3).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(job.id, id);
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
}

#[tokio::test]
async fn binary_bodies_round_trip_verbatim() {
    let (_server, mut c) = common::start().await;
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let bodies = [
        Bytes::from(every_byte),
        Bytes::from_static(b"\r\n"),
        Bytes::from_static(b"\0\0\0"),
        Bytes::from_static(b"line\r\nRESERVED 1 2\r\n\0\r\n"),
        Bytes::from_static(b"ends with CRLF\r\n"),
        Bytes::from_static(b"\r\n\r\n\r\n"),
        Bytes::new(),
    ];
    let mut ids = Vec::new();
    for body in &bodies {
        ids.push(c.put(0, 0, 60, body.clone()).await.unwrap());
    }
    for (id, body) in ids.iter().zip(&bodies) {
        assert_eq!(&c.peek(*id).await.unwrap().body, body);
    }
    for (id, body) in ids.iter().zip(&bodies) {
        let job = c.reserve().await.unwrap();
        assert_eq!((&job.id, &job.body), (id, body));
        c.delete(job.id).await.unwrap();
    }
}

#[tokio::test]
async fn the_clients_body_limit_refuses_before_sending() {
    let (server, mut c) = common::start_with_client_options(ConnectOptions {
        max_body: 1000,
        ..ConnectOptions::default()
    })
    .await;
    let exact = Bytes::from(vec![b'\n'; 1000]);
    let id = c.put(0, 0, 10, exact.clone()).await.unwrap();
    assert_eq!(c.reserve().await.unwrap().body, exact);

    // One byte over: refused before anything is sent; the connection goes on.
    let err = c.put(0, 0, 10, vec![0u8; 1001]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::BodyTooLarge {
                len: 1001,
                limit: 1000
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_disconnect());
    assert!(!c.is_broken());
    let over = Command::Put {
        priority: 0,
        delay: 0,
        ttr: 10,
        body: Bytes::from(vec![0u8; 1001]),
    };
    assert!(matches!(c.send(&over).await, Err(Error::BodyTooLarge { .. })));
    assert!(matches!(
        c.pipeline(&[Command::Stats, over]).await,
        Err(Error::BodyTooLarge { .. })
    ));
    c.delete(id).await.unwrap();
    assert_eq!(
        c.stats().await.unwrap().cmd_put,
        1,
        "nothing over the limit was sent"
    );

    // A job stored by someone else that is larger than this client accepts
    // is skipped unread: a typed error with its id and size, and the
    // connection goes on, still holding a job it reserved.
    let mut other = common::connect(&server).await;
    let big = other.put(0, 0, 10, vec![b'x'; 1001]).await.unwrap();
    let err = c.peek(big).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::JobTooBigToRead {
                command: "peek",
                id,
                len: 1001
            } if id == big
        ),
        "{err:?}"
    );
    assert!(!err.is_disconnect() && !c.is_broken());
    let err = c.reserve_with_timeout(0).await.unwrap_err();
    assert!(
        matches!(err, Error::JobTooBigToRead { id, len: 1001, .. } if id == big),
        "{err:?}"
    );
    assert!(!c.is_broken());
    let info = c.stats_job(big).await.unwrap();
    assert_eq!(info.state, JobState::Reserved);
    c.bury(big, 5).await.unwrap();
    assert_eq!(c.stats_job(big).await.unwrap().pri, 5);
}

/// A server that stops answering (SIGSTOP) fails a command after the
/// command timeout, breaks the connection (a reply is owed), and a
/// reconnect works once the server resumes.
#[tokio::test]
async fn a_stopped_server_times_out_commands() {
    let (server, mut c) = common::start_with_client_options(ConnectOptions {
        command_timeout: Duration::from_millis(300),
        ..ConnectOptions::default()
    })
    .await;
    c.watch("w").await.unwrap();
    let pid = server.pid().unwrap() as libc::pid_t;
    // SAFETY: kill(2) on the pid of the server this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let started = Instant::now();
    let err = c.stats().await.unwrap_err();
    let waited = started.elapsed();
    let err_again = c.stats().await.unwrap_err();
    // A pipeline (and a reserve-with-timeout, which waits its own second on
    // top) times out the same way, on a fresh connection.
    let mut piped = Client::connect_with(
        &server.address(),
        ConnectOptions {
            command_timeout: Duration::from_millis(300),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    let started = Instant::now();
    let piped_err = piped
        .pipeline(&[Command::Stats, Command::ReserveWithTimeout { timeout: 1 }])
        .await
        .unwrap_err();
    let piped_waited = started.elapsed();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    assert!(
        matches!(err, Error::CommandTimeout { command: "stats", .. }),
        "{err:?}"
    );
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(5));
    assert!(err.is_disconnect() && c.is_broken());
    assert!(
        matches!(err_again, Error::Closed { .. }),
        "not reused: {err_again:?}"
    );
    assert!(matches!(piped_err, Error::CommandTimeout { .. }), "{piped_err:?}");
    assert!(piped_waited >= Duration::from_millis(1300), "{piped_waited:?}");
    c.reconnect().await.unwrap();
    assert_eq!(common::sorted(c.watched()), ["default", "w"]);
    c.stats().await.unwrap();
}

#[tokio::test]
async fn the_clients_document_limit() {
    let (_server, mut c) = common::start_with_client_options(ConnectOptions {
        max_document: 64,
        ..ConnectOptions::default()
    })
    .await;
    // A short list fits; the server stats (about 1 KiB) do not.
    assert_eq!(sorted(c.list_tubes().await.unwrap()), ["default"]);
    let err = c.stats().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Protocol(ProtocolError::BodyTooLarge { limit: 64, .. })
        ),
        "{err:?}"
    );
    assert!(c.is_broken());
}

#[tokio::test]
async fn pipelined_batch_put_of_ten_thousand_jobs() {
    let (_server, mut c) = common::start().await;
    c.use_tube("batch").await.unwrap();
    let jobs: Vec<PutJob> = (0..10_000)
        .map(|i| PutJob {
            priority: i % 7,
            delay: 0,
            ttr: 60,
            body: Bytes::from(format!("job {i}")),
        })
        .collect();
    let results = c.put_batch(&jobs).await.unwrap();
    assert_eq!(results.len(), 10_000);
    let ids: Vec<u64> = results.into_iter().map(Result::unwrap).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "ids in put order");
    for i in [0, 1, 4_999, 9_999] {
        let job = c.peek(ids[i]).await.unwrap();
        assert_eq!(job.body, Bytes::from(format!("job {i}")));
        assert_eq!(c.stats_job(ids[i]).await.unwrap().pri, i as u32 % 7);
    }
    assert_eq!(c.stats_tube("batch").await.unwrap().current_jobs_ready, 10_000);
    assert!(c.put_batch(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_mixed_batch_has_per_item_results() {
    let server = Beanstalkd::start_with(Options {
        max_job_size: Some(50),
        ..Options::default()
    });
    let options = ConnectOptions {
        max_body: 100,
        ..ConnectOptions::default()
    };
    let mut c = Client::connect_with(&server.address(), options).await.unwrap();
    let job = |body: &[u8]| PutJob {
        priority: 1,
        delay: 0,
        ttr: 60,
        body: Bytes::copy_from_slice(body),
    };
    let batch = [
        job(b"ok"),
        job(&[b'x'; 51]), // over the server's -z 50: JOB_TOO_BIG
        job(b"ok too"),
        job(&[b'y'; 101]), // over the client's max_body: never sent
        job(b"last"),
    ];
    let results = c.put_batch(&batch).await.unwrap();
    assert_eq!(results.len(), 5);
    let ok: Vec<u64> = [0, 2, 4].iter().map(|&i| *results[i].as_ref().unwrap()).collect();
    assert_eq!(
        results[1].as_ref().unwrap_err().server_error(),
        Some(ServerError::JobTooBig)
    );
    assert!(matches!(
        results[3],
        Err(Error::BodyTooLarge { len: 101, limit: 100 })
    ));
    for (id, body) in ok.iter().zip([&b"ok"[..], b"ok too", b"last"]) {
        assert_eq!(&c.peek(*id).await.unwrap().body[..], body);
    }
    assert_eq!(c.stats().await.unwrap().cmd_put, 4);
}

/// Big commands and big replies in one pipeline: a client that wrote the
/// whole window before reading would stall once both socket buffers fill.
#[tokio::test]
async fn a_pipeline_of_big_puts_and_big_peeks_does_not_deadlock() {
    let (_server, mut c) = common::start().await;
    let body = Bytes::from(vec![b'b'; 60_000]);
    let first = c.put(0, 0, 60, body.clone()).await.unwrap();
    let mut cmds = Vec::new();
    for _ in 0..300 {
        cmds.push(Command::Put {
            priority: 0,
            delay: 0,
            ttr: 60,
            body: body.clone(),
        });
        cmds.push(Command::Peek { id: first });
    }
    let replies = tokio::time::timeout(Duration::from_secs(60), c.pipeline(&cmds))
        .await
        .expect("the pipeline stalled")
        .unwrap();
    assert_eq!(replies.len(), 600);
    for (i, pair) in replies.chunks(2).enumerate() {
        assert_eq!(
            pair[0],
            Reply::Inserted {
                id: first + 1 + i as u64
            }
        );
        assert!(matches!(&pair[1], Reply::Found { id, body: b } if *id == first && *b == body));
    }
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
    let mut c = common::connect(&server).await;
    assert_eq!(c.address(), &Address::Unix(path.clone()));
    assert_eq!(c.address().to_string(), server.address());
    c.use_tube("local").await.unwrap();
    let results = c
        .put_batch(&[PutJob {
            priority: 0,
            delay: 0,
            ttr: 10,
            body: Bytes::from_static(b"batched\r\n"),
        }])
        .await
        .unwrap();
    let id = c.put(0, 0, 10, "over a unix socket").await.unwrap();
    c.watch("local").await.unwrap();
    c.ignore("default").await.unwrap();
    let first = c.reserve().await.unwrap();
    assert_eq!(
        (first.id, &first.body[..]),
        (*results[0].as_ref().unwrap(), &b"batched\r\n"[..])
    );
    assert_eq!(&c.reserve().await.unwrap().body[..], b"over a unix socket");
    c.delete(id).await.unwrap();
    c.quit().await.unwrap();
}

/// The address rules themselves (IPv6, `unix:`, port 0) are `pulpo-model`'s
/// tests; this checks how the client reports an address they refuse.
#[tokio::test]
async fn refused_addresses_fail_before_connecting() {
    for bad in [
        "",
        "no-port",
        ":11300",
        "host:",
        "host:0",
        "host:port",
        "host:65536",
        "unix:",
    ] {
        let err = Client::connect(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidAddress { .. }), "{bad:?}: {err:?}");
        assert!(err.to_string().contains("HOST:PORT"), "{err}");
    }
}
