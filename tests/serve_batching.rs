//! `pulpo serve` with fsync: puts, deletes and reserves a client pipelines (written together,
//! buffered together) are answered together, one transaction for each run of one kind, so one
//! fdatasync covers many puts or deletes, while their replies and the jobs they touch stay
//! exactly those of one command at a time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `pulpo serve` with fsync on over `queue`; its address.
fn start(queue: &std::path::Path, cwd: &std::path::Path) -> (Child, String) {
    let address = format!("127.0.0.1:{}", pulpo_testkit::free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_pulpo"))
        .args(["serve", "--listen", &address, "--path"])
        .arg(queue)
        .env("PULPO_FILE__FSYNC", "true")
        .env_remove("PULPO_LOG")
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pulpo serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&address).is_err() {
        assert!(Instant::now() < deadline, "pulpo serve did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, address)
}

/// Reads until `want` CRLF-ended lines arrived (or ten seconds passed).
fn read_lines(s: &mut TcpStream, want: usize) -> Vec<String> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while out.windows(2).filter(|w| w == b"\r\n").count() < want {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out)
        .split_terminator("\r\n")
        .map(str::to_owned)
        .collect()
}

#[test]
fn pipelined_puts_share_fdatasyncs_and_keep_their_replies() {
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let (child, address) = start(&dir.path().join("queue"), dir.path());
    let mut c = TcpStream::connect(&address).unwrap();
    // N puts in "default", a use, N + 1 puts in "other": all
    // in one write.
    let mut input = Vec::new();
    for _ in 0..N {
        input.extend_from_slice(b"put 0 0 60 1\r\nx\r\n");
    }
    input.extend_from_slice(b"use other\r\n");
    for _ in 0..N {
        input.extend_from_slice(b"put 0 0 60 2\r\nyy\r\n");
    }
    input.extend_from_slice(b"put 0 0 60 1\r\nw\r\n");
    c.write_all(&input).unwrap();
    let lines = read_lines(&mut c, 2 * N + 2);
    let mut want: Vec<String> = (1..=N).map(|id| format!("INSERTED {id}")).collect();
    want.push("USING other".to_owned());
    want.extend((N + 1..=2 * N).map(|id| format!("INSERTED {id}")));
    want.push(format!("INSERTED {}", 2 * N + 1));
    assert_eq!(lines, want, "replies in order");
    for (tube, n) in [("default", N), ("other", N + 1)] {
        c.write_all(format!("stats-tube {tube}\r\n").as_bytes()).unwrap();
        let stats = read_lines(&mut c, 1).join("\n");
        let mut more = stats.clone();
        if !more.contains("current-jobs-ready") {
            more.push_str(&read_lines(&mut c, 20).join("\n"));
        }
        assert!(
            more.contains(&format!("current-jobs-ready: {n}")),
            "{tube}: {more}"
        );
    }
    drop(c);
    let fdatasyncs = stop(child);
    // One connection, one command at a time, would take one fdatasync per put (2N + 1).
    assert!(
        fdatasyncs <= (2 * N / 10) as u64,
        "{fdatasyncs} fdatasyncs for {} pipelined puts",
        2 * N + 1
    );
}

/// Stops the server (SIGTERM) and returns the fdatasyncs it logged.
fn stop(child: Child) -> u64 {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("pulpo serve stops");
    let log = String::from_utf8_lossy(&out.stderr);
    log.split("fdatasyncs=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no fdatasync count in the log: {log}"))
}

#[test]
fn pipelined_reserves_and_deletes_keep_their_replies_and_share_fdatasyncs() {
    const N: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let (child, address) = start(&dir.path().join("queue"), dir.path());
    let mut c = TcpStream::connect(&address).unwrap();
    let mut input = Vec::new();
    for i in 0..N {
        // Priorities in reverse: the reserves must take the most urgent first.
        input.extend_from_slice(format!("put {} 0 60 1\r\nx\r\n", N - i).as_bytes());
    }
    c.write_all(&input).unwrap();
    assert_eq!(read_lines(&mut c, N).len(), N);
    // N + 2 reserves in one write: N jobs, then two that find none (the second of them waits
    // a second), then a stats-tube, then N + 1 deletes (the last of an id just deleted).
    let mut input = Vec::new();
    for _ in 0..N {
        input.extend_from_slice(b"reserve-with-timeout 0\r\n");
    }
    input.extend_from_slice(b"reserve-with-timeout 0\r\nreserve-with-timeout 1\r\n");
    input.extend_from_slice(b"list-tube-used\r\n");
    for id in (1..=N).rev() {
        input.extend_from_slice(format!("delete {id}\r\n").as_bytes());
    }
    input.extend_from_slice(b"delete 1\r\n");
    c.write_all(&input).unwrap();
    let lines = read_lines(&mut c, 2 * N + 3 + N + 1);
    let mut want = Vec::new();
    for id in (1..=N).rev() {
        want.push(format!("RESERVED {id} 1"));
        want.push("x".to_owned());
    }
    want.extend(["TIMED_OUT", "TIMED_OUT", "USING default"].map(str::to_owned));
    want.extend((0..N).map(|_| "DELETED".to_owned()));
    want.push("NOT_FOUND".to_owned());
    assert_eq!(lines, want, "replies in order");
    drop(c);
    let fdatasyncs = stop(child);
    // The pipelined puts take a few; one delete at a time would take one each (N more).
    assert!(
        fdatasyncs <= (N / 5) as u64,
        "{fdatasyncs} fdatasyncs for {N} pipelined puts and {N} pipelined deletes"
    );
}
