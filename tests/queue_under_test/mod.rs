//! The queue a test runs on, either kind: a file queue in a temporary directory, or a real
//! beanstalkd started for the test on a free loopback port (stopped with it); and the config
//! lines that name it.
#![allow(dead_code)]

use std::path::Path;

use pulpo_testkit::{Beanstalkd, Options};

/// A queue for one test, and a temporary directory for what else it writes.
pub(crate) struct QueueUnderTest {
    pub(crate) dir: tempfile::TempDir,
    /// The beanstalkd, when the test runs on one.
    pub(crate) server: Option<Beanstalkd>,
}

impl QueueUnderTest {
    /// A file queue in `<dir>/queue`.
    pub(crate) fn file() -> QueueUnderTest {
        QueueUnderTest {
            dir: tempfile::tempdir().unwrap(),
            server: None,
        }
    }

    /// A fresh beanstalkd, with its binlog in `<dir>/binlog` if `binlog` (so that a restart
    /// keeps its jobs).
    pub(crate) fn beanstalkd(binlog: bool) -> QueueUnderTest {
        let dir = tempfile::tempdir().unwrap();
        let server = if binlog {
            std::fs::create_dir_all(dir.path().join("binlog")).unwrap();
            Beanstalkd::start_with(Options {
                binlog_dir: Some(dir.path().join("binlog")),
                ..Options::default()
            })
        } else {
            Beanstalkd::start()
        };
        QueueUnderTest {
            dir,
            server: Some(server),
        }
    }

    /// The test's directory.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Config naming this queue: `queue = "..."`, then `top` (top-level keys), then the
    /// queue's table (`[file]` with `file_keys` too, or `[beanstalkd]`).
    pub(crate) fn queue_toml(&self, top: &str, file_keys: &str) -> String {
        match &self.server {
            Some(server) => format!(
                "queue = \"beanstalkd\"\n{top}\n[beanstalkd]\naddress = \"{}\"\n",
                server.address()
            ),
            None => format!(
                "queue = \"file\"\n{top}\n[file]\npath = \"{}\"\n{file_keys}",
                self.path().join("queue").display()
            ),
        }
    }
}
