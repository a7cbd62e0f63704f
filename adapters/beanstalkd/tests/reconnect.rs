//! Losing and regaining the connection, against a real beanstalkd: a server
//! restart, a server that is down, a call cancelled mid-command, and connect
//! failures (refused, missing socket, a connect that never completes).

mod common;

use std::time::{Duration, Instant};

use common::sorted;
use pulpo_beanstalkd::proto::Command;
use pulpo_beanstalkd::{Client, ConnectOptions, Error};
use pulpo_testkit::{Beanstalkd, Options};

#[tokio::test]
async fn reconnect_after_restart_restores_use_and_watch() {
    let (mut server, mut c) = common::start().await;
    c.use_tube("emails").await.unwrap();
    c.watch("emails").await.unwrap();
    c.watch("sms").await.unwrap();
    c.ignore("default").await.unwrap();
    c.put(0, 0, 60, "lost with the in-memory server").await.unwrap();

    server.restart();
    let err = c.stats().await.unwrap_err();
    assert!(err.is_disconnect(), "{err:?}");
    assert!(c.is_broken());
    let started = Instant::now();
    assert!(
        matches!(c.stats().await, Err(Error::Closed { .. })),
        "a broken connection stays refused"
    );
    assert!(started.elapsed() < Duration::from_millis(100), "and fails fast");

    c.reconnect().await.unwrap();
    assert!(!c.is_broken());
    assert_eq!(c.used_tube().as_str(), "emails");
    assert_eq!(sorted(c.watched()), ["emails", "sms"]);
    // What the new connection's server side says:
    assert_eq!(c.list_tube_used().await.unwrap().as_str(), "emails");
    assert_eq!(sorted(c.list_tubes_watched().await.unwrap()), ["emails", "sms"]);
    // An in-memory server lost its jobs.
    assert_eq!(c.stats().await.unwrap().total_jobs, 0);
    let id = c.put(0, 0, 60, "after").await.unwrap();
    assert_eq!(c.reserve_with_timeout(0).await.unwrap().id, id);
}

#[tokio::test]
async fn reconnect_keeps_default_when_it_is_watched() {
    let (mut server, mut c) = common::start().await;
    c.watch("extra").await.unwrap();
    server.restart();
    assert!(c.list_tube_used().await.unwrap_err().is_disconnect());
    c.reconnect().await.unwrap();
    assert_eq!(c.list_tube_used().await.unwrap().as_str(), "default");
    assert_eq!(
        sorted(c.list_tubes_watched().await.unwrap()),
        ["default", "extra"]
    );
    // Reconnecting a healthy client is allowed too: a fresh connection.
    c.reconnect().await.unwrap();
    assert_eq!(
        sorted(c.list_tubes_watched().await.unwrap()),
        ["default", "extra"]
    );
}

#[tokio::test]
async fn jobs_survive_a_restart_with_a_binlog() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Beanstalkd::start_with(Options {
        binlog_dir: Some(dir.path().to_owned()),
        ..Options::default()
    });
    let mut c = common::connect(&server).await;
    c.use_tube("emails").await.unwrap();
    c.watch("emails").await.unwrap();
    c.ignore("default").await.unwrap();
    let id = c.put(0, 0, 60, "kept by the binlog").await.unwrap();

    server.restart();
    assert!(c.stats().await.unwrap_err().is_disconnect());
    c.reconnect().await.unwrap();
    let job = c.reserve_with_timeout(1).await.unwrap();
    assert_eq!((job.id, &job.body[..]), (id, &b"kept by the binlog"[..]));
}

#[tokio::test]
async fn reconnect_to_a_server_that_is_down_can_be_retried() {
    let (mut server, mut c) = common::start().await;
    c.use_tube("jobs").await.unwrap();
    c.watch("jobs").await.unwrap();
    c.ignore("default").await.unwrap();

    server.kill();
    let err = c.reconnect().await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&server.address()), "{err}");
    assert!(c.is_broken());
    assert!(matches!(c.stats().await, Err(Error::Closed { .. })));
    // The tubes to restore are kept for the next try.
    assert_eq!(c.used_tube().as_str(), "jobs");
    assert_eq!(sorted(c.watched()), ["jobs"]);

    server.restart();
    c.reconnect().await.unwrap();
    assert_eq!(c.list_tube_used().await.unwrap().as_str(), "jobs");
    assert_eq!(sorted(c.list_tubes_watched().await.unwrap()), ["jobs"]);
}

#[tokio::test]
async fn a_server_killed_during_a_reserve() {
    let (mut server, mut c) = common::start().await;
    let (result, ()) = tokio::join!(c.reserve(), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.kill();
    });
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Closed { .. } | Error::Io { .. }), "{err:?}");
    assert!(c.is_broken());
}

#[tokio::test]
async fn a_cancelled_call_marks_the_connection_broken() {
    let (_server, mut c) = common::start().await;
    let id = c.put(0, 0, 60, "held").await.unwrap();
    assert_eq!(c.reserve().await.unwrap().id, id);
    // reserve blocks on an empty tube; cancel it mid-flight. Its reply could
    // still arrive later, so the connection is not reused.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), c.reserve()).await;
    assert!(cancelled.is_err());
    assert!(c.is_broken());
    assert!(matches!(c.put(0, 0, 1, "x").await, Err(Error::Closed { .. })));
    assert!(matches!(c.send(&Command::Stats).await, Err(Error::Closed { .. })));

    // A new connection: the old one's reserved job went back to ready.
    c.reconnect().await.unwrap();
    let job = c.reserve_with_timeout(1).await.unwrap();
    assert_eq!(job.id, id);
    assert_eq!(c.stats_job(id).await.unwrap().reserves, 2);

    // The same for a pipeline dropped while its replies are outstanding.
    let cmds = vec![Command::Reserve; 2];
    let cancelled = tokio::time::timeout(Duration::from_millis(50), c.pipeline(&cmds)).await;
    assert!(cancelled.is_err());
    assert!(c.is_broken());
    c.reconnect().await.unwrap();
    // (The server releases the job when it sees the old connection close.)
    assert_eq!(c.reserve_with_timeout(1).await.unwrap().id, id);
    c.delete(id).await.unwrap();
}

#[tokio::test]
async fn connecting_to_nothing_fails_fast_naming_the_address() {
    let port = pulpo_testkit::free_port();
    let address = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let err = Client::connect(&address).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&address), "{err}");
    assert!(!err.is_disconnect());
    assert!(started.elapsed() < Duration::from_secs(1));

    let dir = tempfile::tempdir().unwrap();
    let address = format!("unix:{}", dir.path().join("missing.sock").display());
    let err = Client::connect(&address).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&address), "{err}");

    for bad in ["no-port", ":11300", "host:port", "unix:"] {
        let err = Client::connect(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidAddress { .. }), "{bad}: {err:?}");
    }
}

/// A listener with an accept backlog of 0 that never accepts: once its queue
/// holds a connection, the kernel drops further SYNs and a connect hangs.
#[tokio::test]
async fn a_connect_that_never_completes_times_out() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => queued.push(stream),
            Ok(Err(err)) => panic!("connect to the full listener failed instead of hanging: {err}"),
            Err(_) => break,
        }
        assert!(queued.len() < 64, "the accept queue never filled");
    }

    let options = ConnectOptions {
        connect_timeout: Duration::from_millis(300),
        ..ConnectOptions::default()
    };
    let started = Instant::now();
    let err = Client::connect_with(&addr.to_string(), options)
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, Error::ConnectTimeout { timeout, .. } if timeout == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(1),
        "{waited:?}"
    );
    drop(listener);
}
