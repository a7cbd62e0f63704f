//! Test support for pulpo: starts a real `beanstalkd` on a free loopback port
//! (or a Unix socket), waits until it accepts connections, and stops it by pid
//! when dropped.
//!
//! The binary is `beanstalkd` from `PATH` (Debian package `beanstalkd`), or the
//! path in `BEANSTALKD_PATH`. When it is missing, [`Beanstalkd::start`] panics
//! with the command that installs it, so a test run says what to do.

pub mod lazyfs;
pub mod mutation;
pub mod output;
pub mod procs;
pub mod rng;
pub mod skip;
pub mod tmpfs;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a freshly started server may take to accept its first connection.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for a server start; `Default` is a plain in-memory server on TCP.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Listen on a Unix socket at this path instead of TCP loopback.
    pub unix_socket: Option<PathBuf>,
    /// `-z`: the maximum job size in bytes (beanstalkd's default is 65,535).
    pub max_job_size: Option<u32>,
    /// `-b`: keep a write-ahead log (binlog) in this directory.
    pub binlog_dir: Option<PathBuf>,
    /// `-f MS`: fsync at most once every MS milliseconds (with a binlog).
    pub fsync_ms: Option<u32>,
    /// Reuse this TCP port (to restart a server where clients expect it).
    pub port: Option<u16>,
}

/// Where a started server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address on loopback.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl Endpoint {
    /// The address in pulpo's config syntax: `127.0.0.1:PORT` or `unix:/path`.
    pub fn address(&self) -> String {
        match self {
            Endpoint::Tcp(addr) => addr.to_string(),
            Endpoint::Unix(path) => format!("unix:{}", path.display()),
        }
    }
}

/// A running `beanstalkd` child process; killed (by pid) and reaped on drop.
#[derive(Debug)]
pub struct Beanstalkd {
    child: Option<Child>,
    endpoint: Endpoint,
    options: Options,
}

/// The beanstalkd binary to run: `BEANSTALKD_PATH`, else `beanstalkd` on PATH.
pub fn beanstalkd_path() -> PathBuf {
    if let Some(path) = std::env::var_os("BEANSTALKD_PATH") {
        return PathBuf::from(path);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path_var) {
        let candidate = dir.join("beanstalkd");
        if candidate.is_file() {
            return candidate;
        }
    }
    for fallback in [
        "/usr/bin/beanstalkd",
        "/usr/sbin/beanstalkd",
        "/usr/local/bin/beanstalkd",
    ] {
        if Path::new(fallback).is_file() {
            return PathBuf::from(fallback);
        }
    }
    panic!(
        "beanstalkd is not installed: the beanstalkd tests need a real server. \
         Install it with `sudo apt-get install -y beanstalkd` (or run ./scripts/test, \
         which does), or set BEANSTALKD_PATH to the binary"
    );
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener
        .local_addr()
        .expect("local_addr of a bound listener")
        .port()
}

/// How long the start-up probe waits for a `stats` reply.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The pid a beanstalkd reports in `stats`, or `None` if the stream does
/// not answer like one (in [`PROBE_TIMEOUT`]).
fn server_pid<S: std::io::Read + std::io::Write>(mut stream: S) -> Option<u32> {
    use std::io::{BufRead, BufReader, Read};
    stream.write_all(b"stats\r\n").ok()?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header).ok()?;
    let len: usize = header.strip_prefix("OK ")?.trim().parse().ok()?;
    let mut doc = vec![0; len.min(1 << 20)];
    reader.read_exact(&mut doc).ok()?;
    String::from_utf8_lossy(&doc)
        .lines()
        .find_map(|line| line.strip_prefix("pid: "))
        .and_then(|pid| pid.trim().parse().ok())
}

impl Beanstalkd {
    /// Starts a plain server on a free loopback TCP port.
    pub fn start() -> Beanstalkd {
        Beanstalkd::start_with(Options::default())
    }

    /// Starts a server with `options`; retries on another port if the chosen
    /// one was taken between probing and binding.
    pub fn start_with(options: Options) -> Beanstalkd {
        let (child, endpoint) = Beanstalkd::spawn_with_retries(&options);
        Beanstalkd {
            child: Some(child),
            endpoint,
            options,
        }
    }

    fn spawn_with_retries(options: &Options) -> (Child, Endpoint) {
        let mut last_error = String::new();
        for _ in 0..50 {
            match Beanstalkd::try_start(options) {
                Ok(started) => return started,
                Err(err) => last_error = err,
            }
            if options.port.is_some() || options.unix_socket.is_some() {
                // A fixed endpoint may need a moment to be released.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("could not start beanstalkd: {last_error}");
    }

    fn try_start(options: &Options) -> Result<(Child, Endpoint), String> {
        let binary = beanstalkd_path();
        let mut cmd = Command::new(&binary);
        let endpoint = match &options.unix_socket {
            Some(path) => {
                let _ = std::fs::remove_file(path);
                cmd.arg("-l").arg(format!("unix:{}", path.display()));
                Endpoint::Unix(path.clone())
            }
            None => {
                let port = options.port.unwrap_or_else(free_port);
                cmd.args(["-l", "127.0.0.1", "-p", &port.to_string()]);
                Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], port)))
            }
        };
        if let Some(size) = options.max_job_size {
            cmd.arg("-z").arg(size.to_string());
        }
        if let Some(dir) = &options.binlog_dir {
            cmd.arg("-b").arg(dir);
        }
        if let Some(ms) = options.fsync_ms {
            cmd.arg("-f").arg(ms.to_string());
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|err| format!("spawn {}: {err}", binary.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{} exited with {status} before accepting connections on {}",
                    binary.display(),
                    endpoint.address()
                ));
            }
            // Whoever answers must be *this* child: two tests can probe the
            // same free port at once, and the loser's beanstalkd exits while
            // the winner's already answers on it.
            let answered = match &endpoint {
                Endpoint::Tcp(addr) => TcpStream::connect_timeout(addr, Duration::from_millis(200))
                    .ok()
                    .and_then(|s| s.set_read_timeout(Some(PROBE_TIMEOUT)).ok().and(server_pid(s))),
                Endpoint::Unix(path) => UnixStream::connect(path)
                    .ok()
                    .and_then(|s| s.set_read_timeout(Some(PROBE_TIMEOUT)).ok().and(server_pid(s))),
            };
            match answered {
                Some(pid) if pid == child.id() => return Ok((child, endpoint)),
                Some(other) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} is taken by beanstalkd pid {other}",
                        endpoint.address()
                    ));
                }
                None => {}
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "beanstalkd did not accept connections on {} within {START_TIMEOUT:?}",
                    endpoint.address()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Where the server listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The address in pulpo's config syntax (`127.0.0.1:PORT` or `unix:/path`).
    pub fn address(&self) -> String {
        self.endpoint.address()
    }

    /// The TCP socket address; panics for a Unix-socket server.
    pub fn socket_addr(&self) -> SocketAddr {
        match &self.endpoint {
            Endpoint::Tcp(addr) => *addr,
            Endpoint::Unix(path) => panic!("server listens on unix socket {}", path.display()),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL and reaps it (clients see a dropped
    /// connection). The endpoint stays reserved for [`Beanstalkd::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = child.wait();
        }
    }

    /// Kills the server if running, then starts it again on the same
    /// endpoint with the same options (a binlog, if any, is replayed).
    pub fn restart(&mut self) {
        self.kill();
        let mut options = self.options.clone();
        if let Endpoint::Tcp(addr) = self.endpoint {
            options.port = Some(addr.port());
        }
        let (child, _) = Beanstalkd::spawn_with_retries(&options);
        self.child = Some(child);
    }
}

impl Drop for Beanstalkd {
    fn drop(&mut self) {
        self.kill();
        if let Endpoint::Unix(path) = &self.endpoint {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn starts_answers_and_stops() {
        let mut server = Beanstalkd::start();
        let mut conn = TcpStream::connect(server.socket_addr()).unwrap();
        conn.write_all(b"list-tube-used\r\n").unwrap();
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"USING default\r\n");
        let pid = server.pid().unwrap();
        server.kill();
        // The pid is reaped: signal 0 to it fails.
        let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
        assert!(!alive, "beanstalkd {pid} still running after kill");
    }
}
