//! Hostile inputs, each from a fixture under `fixtures/hostile/`:
//!
//! - a "beanstalkd" that answers with garbage, an endless line, a document
//!   of 4 GiB, or closes in the middle of a reply: `pulpo` fails with a
//!   one-line error and exit 1, at once, without reading without bound;
//! - a message whose id looks like a path, and one whose body is not UTF-8:
//!   the runner builds no path from them (files are named by the queue's
//!   numeric id) and a body that is not a message is buried, not crashed on.
//!
//! (Bad tube names, oversized jobs, bad configs and flooding or endless exec
//! handlers have their own tests: conformance.rs, client_errors.rs,
//! config.rs, exec.rs, runner.rs.)

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulpo::config::from_toml_str;
use pulpo::handlers::Registry;
use pulpo::queue::{self, JobState, NewJob};
use pulpo::runner::Runner;
use tokio_util::sync::CancellationToken;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/hostile");

/// What the fake server does after reading the first command line.
enum Answer {
    /// Sends these bytes, then closes.
    Bytes(Vec<u8>),
    /// Sends `a` forever (until the client hangs up).
    Endless,
}

/// A one-connection fake server on a free loopback port; returns its address.
fn fake_server(answer: Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let mut stream = stream;
        match answer {
            Answer::Bytes(bytes) => {
                let _ = stream.write_all(&bytes);
            }
            Answer::Endless => {
                let chunk = vec![b'a'; 64 * 1024];
                while stream.write_all(&chunk).is_ok() {}
            }
        }
    });
    address
}

fn pulpo_against(address: &str, args: &[&str]) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_pulpo"))
        .args(["--queue", "beanstalkd", "--address", address])
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn a_hostile_server_gets_a_clear_error_not_a_hang() {
    let fixture = |name: &str| std::fs::read(Path::new(FIXTURES).join("replies").join(name)).unwrap();
    let cases: Vec<(&str, Answer, &[&str], &str)> = vec![
        (
            "garbage",
            Answer::Bytes(fixture("garbage.txt")),
            &["stats"],
            "malformed",
        ),
        ("an endless line", Answer::Endless, &["stats"], "line"),
        (
            "a 4 GiB document",
            Answer::Bytes(fixture("huge_document.txt")),
            &["stats"],
            "exceeds the limit",
        ),
        (
            "a cut stats reply",
            Answer::Bytes(fixture("cut_stats.txt")),
            &["stats"],
            "closed the connection in the middle of a reply",
        ),
        (
            "a cut job body",
            Answer::Bytes(fixture("cut_mid_body.txt")),
            &["pop"],
            "closed the connection in the middle of a reply",
        ),
        (
            "empty lines",
            Answer::Bytes(fixture("empty_lines.txt")),
            &["stats"],
            "malformed",
        ),
    ];
    for (what, answer, args, needle) in cases {
        let address = fake_server(answer);
        let (code, stderr, took) = pulpo_against(&address, args);
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr}");
        assert!(stderr.starts_with("pulpo: error: "), "{what}: {stderr}");
        assert!(
            stderr.to_lowercase().contains(needle),
            "{what}: expected {needle:?} in {stderr}"
        );
        assert!(took < Duration::from_secs(5), "{what}: took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_like_ids_and_non_utf8_bodies_build_no_paths() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let text = format!(
        "sleep_duration = \"200ms\"\nshutdown_after_number_of_empty_iterations = 3\n\
         [file]\npath = \"{}\"\nfsync = false\n[handlers.echo]\nkind = \"echo\"\ndestination_directory = \"{}\"\n",
        dir.path().join("queue").display(),
        output.display()
    );
    let settings = from_toml_str(&text, Path::new("hostile.toml")).unwrap();
    let mut q = queue::open(&settings).await.unwrap();
    let mut ids = Vec::new();
    for name in ["path_like_id.json", "not_utf8.json"] {
        let body = std::fs::read(Path::new(FIXTURES).join("messages").join(name)).unwrap();
        let job = NewJob {
            priority: 1,
            delay: Duration::ZERO,
            ttr: Duration::from_secs(60),
            body: Bytes::from(body),
        };
        ids.push(q.put("default", job).await.unwrap());
    }
    let report = Runner::new(settings, &Registry::with_builtins())
        .unwrap()
        .run(CancellationToken::new())
        .await
        .unwrap();
    // The path-like id is only the message's; the file is named by the queue's id.
    let written: Vec<String> = std::fs::read_dir(&output)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, [format!("{}-1.txt", ids[0])]);
    assert!(!Path::new("/tmp/pulpo-escape").exists());
    // A body that is not UTF-8 is not a message: buried, with the reason.
    let info = q.stats_job(ids[1]).await.unwrap();
    assert_eq!(info.state, JobState::Buried);
    assert!(info.reason.unwrap().contains("not a pulpo message"));
    assert_eq!(report.counters["echo"].succeeded, 1);
}
