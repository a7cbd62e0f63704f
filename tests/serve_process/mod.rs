//! A `pulpo serve` process for tests: started on a free loopback port over a fresh queue
//! directory, ready once it answers, and stopped by its pid when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `pulpo serve`.
pub(crate) struct Serve {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// Starts `pulpo serve` with `max_job_size`, fsync off (tests need no durability).
    #[allow(dead_code)]
    pub(crate) fn start(max_job_size: usize) -> Serve {
        Serve::start_with(max_job_size, &[], &[])
    }

    /// [`Serve::start`] with more `KEY=VALUE` config variables and more `--listen` addresses
    /// (beside the loopback port it is probed on).
    pub(crate) fn start_with(max_job_size: usize, env: &[(&str, &str)], listen: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("queue");
        Serve::spawn(dir, &queue, max_job_size, env, listen)
    }

    /// [`Serve::start`] on an existing queue directory (a restart after a crash).
    #[allow(dead_code)]
    pub(crate) fn start_on(queue: &std::path::Path) -> Serve {
        Serve::start_on_with(queue, &[])
    }

    /// [`Serve::start_on`] with more `KEY=VALUE` config variables.
    #[allow(dead_code)]
    pub(crate) fn start_on_with(queue: &std::path::Path, env: &[(&str, &str)]) -> Serve {
        Serve::spawn(tempfile::tempdir().unwrap(), queue, 65_535, env, &[])
    }

    fn spawn(
        dir: tempfile::TempDir,
        queue: &std::path::Path,
        max_job_size: usize,
        env: &[(&str, &str)],
        listen: &[&str],
    ) -> Serve {
        let port = pulpo_testkit::free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulpo"));
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
        for address in listen {
            cmd.args(["--listen", address]);
        }
        let child = cmd
            .arg("--path")
            .arg(queue)
            .env("PULPO_FILE__FSYNC", "false")
            .env("PULPO_SERVE__MAX_JOB_SIZE", max_job_size.to_string())
            .envs(env.iter().copied())
            .env_remove("PULPO_LOG")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pulpo serve");
        let serve = Serve {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = TcpStream::connect(serve.address()) {
                // `stats`, as pulpo_testkit probes beanstalkd, so their counters start alike.
                let mut reply = [0u8; 16];
                if s.write_all(b"stats\r\n").is_ok() && s.read(&mut reply).is_ok_and(|n| n > 0) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "pulpo serve did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        serve
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's pid.
    #[allow(dead_code)]
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the process to exit; its status if it did.
    #[allow(dead_code)]
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
