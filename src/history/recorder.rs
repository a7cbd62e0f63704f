//! [`Recorder`]: the runner's writer of job records. One thread owns the
//! store's connection; workers hand it changes, and it commits whatever has
//! arrived meanwhile in one transaction (group commit). Whether a worker
//! waits for its record's commit before settling the job is the store's
//! promise ([`super::must_wait`]): on the file queue it does (a record
//! survives kill -9 with the settlement it describes); on beanstalkd, whose
//! records promise nothing past a crash, it does not, unless the job has a
//! reply tube (its producer may ask for the record once the reply comes).
//! It prunes by `[history] keep` and `max_jobs` as it goes.

use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::{Change, HistoryError};
use crate::config::Settings;

/// The most changes committed in one transaction.
const MAX_GROUP: usize = 512;
/// The most changes waiting for the writer; past it, workers wait (a store
/// slower than the runner holds the runner back rather than growing memory).
const BACKLOG: usize = 4 * MAX_GROUP;
/// How long the writer lets a group grow when nobody waits for it (records
/// on beanstalkd, without a reply tube): one commit for the changes of a few
/// milliseconds rather than one for every change or two, whose fixed cost
/// (locks, WAL pages, checkpoints) took a core's half beside a busy runner
/// (issue 16). A change someone waits for is committed at once.
const GATHER: Duration = Duration::from_millis(5);
/// The write-ahead log's length, in pages, at which the writer checkpoints
/// (about 40 MB; ten times SQLite's default): a tenth of the checkpoint
/// stalls for the workers waiting on their records' commits (issue 16).
const CHECKPOINT_PAGES: u32 = 10_000;
/// How often the recorder prunes, at most.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

type Reply = oneshot::Sender<Result<(), String>>;

/// What the writer thread is asked to do.
enum Op {
    /// Write a change; reply once it is committed, when asked to.
    Write(Box<Change>, Option<Reply>),
    /// Prune now (after every write sent before it).
    Prune(Reply),
}

/// A handle on the runner's record writer; cloned into every worker.
#[derive(Clone)]
pub struct Recorder {
    sender: mpsc::Sender<Op>,
    /// Whether every record is committed before its job is settled.
    wait: bool,
    /// How many transactions the writer committed.
    #[cfg(test)]
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

impl Recorder {
    /// Opens the store of `settings` and starts its writer thread, which
    /// ends when the last handle is dropped. `None` when records are off.
    pub fn start(settings: &Settings) -> Result<Option<Recorder>, HistoryError> {
        if !settings.history.enabled {
            return Ok(None);
        }
        let mut store = super::open(settings)?;
        store.checkpoint_every(CHECKPOINT_PAGES)?;
        let (keep, max_jobs) = (settings.history.keep, settings.history.max_jobs);
        let (sender, mut receiver) = mpsc::channel::<Op>(BACKLOG);
        #[cfg(test)]
        let (commits, counted) = {
            let commits = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            (commits.clone(), commits)
        };
        std::thread::Builder::new()
            .name("pulpo-records".to_owned())
            .spawn(move || {
                // Prune once at start, then every PRUNE_EVERY while writing.
                let mut pruned = Instant::now() - PRUNE_EVERY;
                let mut next = receiver.blocking_recv();
                while let Some(op) = next.take() {
                    let first = match op {
                        Op::Prune(reply) => {
                            pruned = Instant::now();
                            let done = store.prune(keep, max_jobs, Utc::now());
                            let _ = reply.send(done.map(drop).map_err(|err| err.to_string()));
                            next = receiver.blocking_recv();
                            continue;
                        }
                        Op::Write(change, reply) => (*change, reply),
                    };
                    let mut group = vec![first];
                    let mut gathered = false;
                    loop {
                        while group.len() < MAX_GROUP {
                            match receiver.try_recv() {
                                Ok(Op::Write(change, reply)) => group.push((*change, reply)),
                                Ok(prune) => {
                                    next = Some(prune);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        let waited_for = group.iter().any(|(_, reply)| reply.is_some());
                        if gathered || waited_for || next.is_some() || group.len() >= MAX_GROUP {
                            break;
                        }
                        gathered = true;
                        std::thread::sleep(GATHER);
                    }
                    let (changes, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                    let done = store.apply(&changes, Utc::now()).map_err(|err| err.to_string());
                    #[cfg(test)]
                    commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let mut unheard = 0;
                    for reply in replies {
                        match reply {
                            Some(reply) => drop(reply.send(done.clone())),
                            None => unheard += 1,
                        }
                    }
                    if let Err(err) = &done
                        && unheard > 0
                    {
                        warn!("could not record {unheard} job(s): {err}");
                    }
                    if pruned.elapsed() >= PRUNE_EVERY {
                        pruned = Instant::now();
                        if let Err(err) = store.prune(keep, max_jobs, Utc::now()) {
                            warn!("could not prune job records: {err}");
                        }
                    }
                    if next.is_none() {
                        next = receiver.blocking_recv();
                    }
                }
            })
            .map_err(|err| HistoryError::Store {
                path: super::store_path(settings),
                problem: format!("cannot start the record writer: {err}"),
            })?;
        Ok(Some(Recorder {
            sender,
            wait: super::must_wait(settings),
            #[cfg(test)]
            commits: counted,
        }))
    }

    /// Writes `change`; returns once it is committed when the store promises
    /// that ([`super::must_wait`]) or `wait` asks it, else once the writer
    /// has it.
    pub(crate) async fn record(&self, change: Change, wait: bool) -> Result<(), String> {
        if !(wait || self.wait) {
            return self
                .sender
                .send(Op::Write(Box::new(change), None))
                .await
                .map_err(|_| "the record writer has stopped".to_owned());
        }
        let (reply, done) = oneshot::channel();
        self.send(Op::Write(Box::new(change), Some(reply)), done).await
    }

    /// Prunes by `[history] keep` and `max_jobs` now (the runner does it as
    /// it stops, so even a brief run leaves the records bounded); returns
    /// once every change sent before is committed too.
    pub(crate) async fn prune(&self) -> Result<(), String> {
        let (reply, done) = oneshot::channel();
        self.send(Op::Prune(reply), done).await
    }

    async fn send(&self, op: Op, done: oneshot::Receiver<Result<(), String>>) -> Result<(), String> {
        self.sender
            .send(op)
            .await
            .map_err(|_| "the record writer has stopped".to_owned())?;
        done.await
            .map_err(|_| "the record writer has stopped".to_owned())?
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::history::{Attempt, Change, JobRef};

    fn change(id: u64) -> Change {
        Change::Attempt {
            job: JobRef::new(id),
            request_type: "noop".into(),
            tube: "default".into(),
            attempt: Box::new(Attempt {
                attempt: 1,
                started: Utc::now(),
                finished: Utc::now(),
                duration_ms: 0.1,
                settlement: "delete".into(),
                error: None,
            }),
            events: Vec::new(),
            result: None,
            end: Some(crate::history::End::Succeeded),
        }
    }

    /// Records on beanstalkd (nobody waits for their commit) arriving one
    /// every 200 µs, as from a busy runner, share commits instead of paying
    /// one each; every one is kept.
    #[tokio::test]
    async fn changes_nobody_waits_for_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "queue = \"beanstalkd\"\n[history]\nenabled = true\npath = \"{}\"\n",
            dir.path().display()
        );
        let settings = crate::config::from_toml_str(&text, Path::new("t.toml")).unwrap();
        let recorder = Recorder::start(&settings).unwrap().unwrap();
        assert!(!recorder.wait, "beanstalkd's records are not waited for");
        let sent = 200;
        for id in 1..=sent {
            recorder.record(change(id), false).await.unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
        recorder.prune().await.unwrap();
        let commits = recorder.commits.load(std::sync::atomic::Ordering::Relaxed);
        assert!(commits <= sent / 4, "{commits} commits for {sent} records");
        for id in 1..=sent {
            let record = crate::history::lookup(&settings, JobRef::new(id)).unwrap();
            assert!(record.is_some(), "record {id}");
        }
    }

    /// The writer checkpoints only after a long log: 2,000 records each
    /// committed on its own (file queue: waited for), a log of over 4,000
    /// pages, leave it whole, where SQLite alone would have checkpointed
    /// (and fsynced twice, every worker waiting) every 1,000 pages.
    #[tokio::test]
    async fn the_writer_checkpoints_rarely() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "queue = \"file\"\n[file]\npath = \"{}\"\n[history]\nenabled = true\n",
            dir.path().join("queue").display()
        );
        let settings = crate::config::from_toml_str(&text, Path::new("t.toml")).unwrap();
        let recorder = Recorder::start(&settings).unwrap().unwrap();
        assert!(recorder.wait, "the file queue's records are waited for");
        for id in 1..=2000 {
            recorder.record(change(id), true).await.unwrap();
        }
        let other = rusqlite::Connection::open(crate::history::store_path(&settings)).unwrap();
        let (log, copied): (i64, i64) = other
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok((row.get(1)?, row.get(2)?))
            })
            .unwrap();
        assert!(log > 4000, "a log of {log} pages ({copied} copied now)");
        assert!(
            crate::history::lookup(&settings, JobRef::new(2000))
                .unwrap()
                .is_some()
        );
    }
}
