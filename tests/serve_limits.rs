//! `pulpo serve` under clients that misbehave or are too many: the connection cap, clients that
//! never read or trickle a command byte by byte (the others are not stalled), hostile input
//! (garbage, huge lines and bodies, NUL bytes: the server never panics), and `unix:/path`
//! listeners (put and reserve over the socket; its file on restart).

#[path = "serve_process/mod.rs"]
mod serve_process;

use pulpo_testkit::rng::Rng;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serve_process::Serve;

/// Sends `input` and reads one CRLF-ended line back (a body, if the line announces one, is not
/// read).
fn ask<S: Read + Write>(stream: &mut S, input: &[u8]) -> String {
    stream.write_all(input).unwrap();
    read_line(stream)
}

fn read_line<S: Read>(stream: &mut S) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

fn connect(serve: &Serve) -> TcpStream {
    let s = TcpStream::connect(serve.address()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Whether the server closes this fresh connection without answering (refused by the cap).
fn refused(serve: &Serve) -> bool {
    let mut s = connect(serve);
    let _ = s.write_all(b"list-tube-used\r\n");
    read_line(&mut s).is_empty()
}

/// Asks `cond` every 50 ms for up to ten seconds.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connections_past_max_connections_are_closed_and_a_freed_slot_is_reused() {
    let serve = Serve::start_with(65_535, &[("PULPO_SERVE__MAX_CONNECTIONS", "3")], &[]);
    let mut held: Vec<TcpStream> = Vec::new();
    // The start-up probe's connection may still hold a slot for a moment.
    eventually("three connections served", || {
        held.retain_mut(|s| ask(s, b"list-tube-used\r\n") == "USING default\r\n");
        while held.len() < 3 {
            let mut s = connect(&serve);
            if ask(&mut s, b"list-tube-used\r\n") != "USING default\r\n" {
                return false;
            }
            held.push(s);
        }
        true
    });
    for _ in 0..3 {
        assert!(refused(&serve), "a fourth connection is closed at once");
    }
    // The held connections are unharmed.
    for s in &mut held {
        assert_eq!(ask(s, b"list-tube-used\r\n"), "USING default\r\n");
    }
    drop(held.pop());
    eventually("the freed slot is given to a new connection", || !refused(&serve));
}

#[test]
fn clients_that_never_read_or_trickle_bytes_do_not_stall_the_others() {
    let serve = Serve::start(65_535);
    // Pipelines commands with big replies and never reads one: the server's writes to it block.
    let mut deaf = connect(&serve);
    deaf.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let stats = b"stats\r\n".repeat(10_000);
    let mut sent = 0;
    while deaf.write_all(&stats).is_ok() {
        sent += 1;
        if sent == 200 {
            break;
        }
    }
    // Waits in a reserve, then sends nothing more.
    let mut waiter = connect(&serve);
    waiter.write_all(b"reserve\r\n").unwrap();
    // Sends a put one byte at a time and never finishes it.
    let trickler = std::thread::spawn({
        let mut s = connect(&serve);
        move || {
            for &b in b"put 0 0 10 10\r\nabc" {
                if s.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            s
        }
    });
    // Meanwhile a well-behaved client gets its answers promptly.
    let mut good = connect(&serve);
    assert_eq!(ask(&mut good, b"watch other\r\n"), "WATCHING 2\r\n");
    assert_eq!(ask(&mut good, b"ignore default\r\n"), "WATCHING 1\r\n");
    assert_eq!(ask(&mut good, b"use other\r\n"), "USING other\r\n");
    let started = Instant::now();
    for n in 1..=100u32 {
        let reply = ask(&mut good, b"put 0 0 10 2\r\nhi\r\n");
        assert!(reply.starts_with("INSERTED "), "{reply:?}");
        let id: u64 = reply["INSERTED ".len()..].trim().parse().unwrap();
        assert_eq!(
            ask(&mut good, b"reserve-with-timeout 5\r\n"),
            format!("RESERVED {id} 2\r\n"),
            "round {n}"
        );
        assert_eq!(read_line(&mut good), "hi\r\n");
        assert_eq!(
            ask(&mut good, format!("delete {id}\r\n").as_bytes()),
            "DELETED\r\n"
        );
    }
    // A wide window: 100 rounds take milliseconds; a stall would take forever.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let mut trickler = trickler.join().unwrap();
    trickler.write_all(b"defghij\r\n").unwrap();
    assert!(read_line(&mut trickler).starts_with("INSERTED "));
    // The waiter was never stalled either: it gets the trickled job.
    let reply = read_line(&mut waiter);
    assert!(reply.starts_with("RESERVED "), "{reply:?}");
}

/// Hostile input: pieces of commands, numbers out of range, NUL and high bytes, CR and LF
/// alone, over-long lines, declared bodies far past the limit.
fn hostile(rng: &mut Rng) -> Vec<u8> {
    const WORDS: &[&[u8]] = &[
        b"put",
        b"reserve",
        b"reserve-job",
        b"reserve-with-timeout",
        b"delete",
        b"release",
        b"bury",
        b"touch",
        b"kick",
        b"kick-job",
        b"peek",
        b"peek-ready",
        b"stats",
        b"stats-job",
        b"stats-tube",
        b"use",
        b"watch",
        b"ignore",
        b"pause-tube",
        b"list-tubes",
        b"quitx",
        b"0",
        b"1",
        b"-1",
        b"4294967295",
        b"4294967296",
        b"18446744073709551615",
        b"18446744073709551616",
        b"99999999999999999999999",
        b"\0",
        b"\xff\xfe",
        b"\r",
        b"\n",
        b"\r\n",
        b" ",
        b"  ",
        b"x",
        b"default",
        b"$",
        b"a-b_c(d);e+f/g.h",
    ];
    let mut out = Vec::new();
    for _ in 0..rng.below(40) + 1 {
        match rng.below(20) {
            0 => out.extend(std::iter::repeat_n(b'z', rng.below(300_000) as usize)),
            1 => out.extend(b"put 0 0 1 4294967295\r\n"),
            2 => out.extend(format!("put 0 0 1 {}\r\n", rng.below(200_000)).as_bytes()),
            3 => out.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
            _ => out.extend(WORDS[rng.below(WORDS.len() as u64) as usize]),
        }
    }
    out
}

#[test]
fn hostile_input_never_panics_the_server_or_stalls_the_others() {
    let mut serve = Serve::start(65_535);
    let mut witness = connect(&serve);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..300 {
        let input = hostile(&mut rng);
        let mut s = connect(&serve);
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        // The server may stop reading (a reply it cannot send, a reserve that waits): fine.
        let _ = s.write_all(&input);
        if round % 3 == 0 {
            let _ = s.shutdown(std::net::Shutdown::Write);
            s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let _ = s.read_to_end(&mut Vec::new());
        }
        drop(s);
        if round % 25 == 0 {
            assert_eq!(
                serve.wait_exit(Duration::ZERO),
                None,
                "the server died at round {round}"
            );
            assert_eq!(ask(&mut witness, b"list-tube-used\r\n"), "USING default\r\n");
        }
    }
    assert_eq!(serve.wait_exit(Duration::ZERO), None, "the server died");
    assert_eq!(
        ask(&mut witness, b"put 0 0 10 2\r\nok\r\n").get(..9),
        Some("INSERTED ")
    );
}

#[test]
fn put_and_reserve_over_a_unix_socket_and_its_file_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pulpo.sock");
    let address = format!("unix:{}", path.display());
    let serve = Serve::start_with(65_535, &[], &[&address]);
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(ask(&mut c, b"put 1 0 10 5\r\nhello\r\n"), "INSERTED 1\r\n");
    let mut reader = BufReader::new(c.try_clone().unwrap());
    c.write_all(b"reserve\r\n").unwrap();
    let mut reply = String::new();
    reader.read_line(&mut reply).unwrap();
    reader.read_line(&mut reply).unwrap();
    assert_eq!(reply, "RESERVED 1 5\r\nhello\r\n");
    assert_eq!(ask(&mut c, b"delete 1\r\n"), "DELETED\r\n");

    // A second server on the same socket while the first one lives is refused, and the first
    // one keeps its socket.
    let second = serve_briefly(&address, &dir.path().join("queue2"));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second server took a live socket");
    assert!(
        stderr.contains("pulpo.sock"),
        "the error names the socket: {stderr}"
    );
    let mut again = UnixStream::connect(&path).expect("the first server keeps its socket");
    again.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(ask(&mut again, b"list-tube-used\r\n"), "USING default\r\n");
    drop((c, again, reader));

    // Killed, the server leaves its socket file; a new server replaces it.
    drop(serve);
    assert!(path.exists(), "a killed server cannot remove its socket");
    let serve = Serve::start_with(65_535, &[], &[&address]);
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(ask(&mut c, b"list-tube-used\r\n"), "USING default\r\n");
    drop(c);

    // A path that is not a socket is never removed.
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"keep me").unwrap();
    let out = serve_briefly(&format!("unix:{}", file.display()), &dir.path().join("queue3"));
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    // Stopped gracefully, the server removes its socket file.
    unsafe { libc::kill(serve.pid() as i32, libc::SIGTERM) };
    let mut serve = serve;
    assert!(
        serve
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert!(!path.exists(), "a stopped server removes its socket");
}

/// Runs `pulpo serve --listen address`, expected to fail at once; killed after ten seconds if it
/// serves instead.
fn serve_briefly(address: &str, queue: &std::path::Path) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pulpo"))
        .args(["serve", "--listen", address, "--path"])
        .arg(queue)
        .env("PULPO_FILE__FSYNC", "false")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}
