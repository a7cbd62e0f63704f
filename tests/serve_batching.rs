//! `pulpo serve` with fsync: puts a client pipelines (written together, buffered together)
//! are committed together, so one fdatasync covers many of them, while their replies and the
//! tubes they land in stay exactly those of one put at a time.

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
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("pulpo serve stops");
    let log = String::from_utf8_lossy(&out.stderr);
    let fdatasyncs: u64 = log
        .split("fdatasyncs=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no fdatasync count in the log: {log}"));
    // One connection, one command at a time, would take one fdatasync per put (2N + 1).
    assert!(
        fdatasyncs <= (2 * N / 10) as u64,
        "{fdatasyncs} fdatasyncs for {} pipelined puts",
        2 * N + 1
    );
}
