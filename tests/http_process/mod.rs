//! A `pulpo serve` with its HTTP side for tests, over a fresh file queue or a real beanstalkd,
//! on free loopback ports, stopped by its pid when dropped; and a small HTTP/1.1 client (one
//! request per connection) to talk to it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pulpo_testkit::Beanstalkd;

/// Which queue the server is over.
pub(crate) enum Over {
    /// A fresh file queue in the test's directory.
    File,
    /// A real beanstalkd started for the test.
    Beanstalkd(Beanstalkd),
}

/// A running `pulpo serve` with `[serve] http`.
pub(crate) struct Http {
    child: Child,
    /// `127.0.0.1:PORT` of the HTTP side.
    pub(crate) address: String,
    /// The directory holding pulpo.toml (and the file queue).
    pub(crate) dir: tempfile::TempDir,
    /// The beanstalkd it serves, if any (kept alive with it).
    pub(crate) over: Over,
}

/// The config for `over`, with `extra` TOML appended.
pub(crate) fn config(over: &Over, extra: &str) -> String {
    let queue = match over {
        Over::File => "queue = \"file\"\n[file]\npath = \"queue\"\nfsync = false\n".to_owned(),
        Over::Beanstalkd(b) => format!(
            "queue = \"beanstalkd\"\n[beanstalkd]\naddress = \"{}\"\n",
            b.address()
        ),
    };
    format!(
        "tube = \"web\"\nwatch = [\"web\"]\nsleep_duration = \"0.2s\"\nshutdown_after_number_of_empty_iterations = 2\n{queue}{extra}"
    )
}

impl Http {
    /// Starts `pulpo serve` over `over` with HTTP on a free port and `serve_extra` lines in
    /// `[serve]` (e.g. a token).
    pub(crate) fn start(over: Over, serve_extra: &str) -> Http {
        let dir = tempfile::tempdir().unwrap();
        let port = pulpo_testkit::free_port();
        let address = format!("127.0.0.1:{port}");
        let toml = config(
            &over,
            &format!(
                "[handlers.boom]\nkind = \"fail\"\n[handlers.ok]\nkind = \"success\"\n[serve]\nlisten = []\nhttp = \"{address}\"\n{serve_extra}\n"
            ),
        );
        std::fs::write(dir.path().join("pulpo.toml"), toml).unwrap();
        let child = pulpo(dir.path(), &["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pulpo serve");
        let http = Http {
            child,
            address,
            dir,
            over,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while get(&http.address, "/healthz").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "pulpo serve did not answer on {}",
                http.address
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        http
    }

    /// The directory of its pulpo.toml.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `pulpo run` on the same queue until it idles out (buries `boom` jobs, deletes
    /// `ok` ones).
    pub(crate) fn run_once(&self) {
        let out = pulpo(self.path(), &["run"]).output().unwrap();
        assert!(
            out.status.success(),
            "pulpo run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `METHOD path` with `headers` and a JSON `body`.
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        request(&self.address, method, path, &[], body)
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pulpo args` in `dir`, without the caller's `PULPO_*` variables.
pub(crate) fn pulpo(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = pulpo_testkit::output::clean_command(env!("CARGO_BIN_EXE_pulpo"), dir, args);
    cmd.env_remove("RUST_LOG");
    cmd
}

/// The binary's path.
pub(crate) fn pulpo_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pulpo"))
}

/// An HTTP reply: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The status code.
    pub(crate) status: u16,
    /// `(name, value)` pairs.
    pub(crate) headers: Vec<(String, String)>,
    /// The body as text.
    pub(crate) body: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection.
pub(crate) fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text += &format!("{name}: {value}\r\n");
    }
    if let Some(body) = body {
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            text += "Content-Type: application/json\r\n";
        }
        text += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    } else {
        text += "Content-Length: 0\r\n\r\n";
    }
    stream.write_all(text.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `GET path`: its status and body.
pub(crate) fn get(address: &str, path: &str) -> (u16, String) {
    match TcpStream::connect(address) {
        Ok(_) => {
            let reply = request(address, "GET", path, &[], None);
            (reply.status, reply.body)
        }
        Err(_) => (0, String::new()),
    }
}

/// Prometheus text exposition as `name{labels} -> value` (labels as written, sorted by the
/// exporter), comments left out.
pub(crate) fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}
