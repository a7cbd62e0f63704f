//! The record store: one SQLite database (WAL mode) per queue, shared by
//! every runner and `pulpo` command on the machine. SQLite's locks make it
//! safe for many processes; its write-ahead log makes a committed write
//! survive kill -9 (`synchronous = NORMAL`: the log is fsynced at each
//! checkpoint, not at each commit, so a power cut may lose the last
//! commits, never the database's consistency); the
//! primary key finds a record by job id without a scan; an index on the
//! last update time makes pruning by age and count cheap.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Change, Filter, HistoryError, Record};
use pulpo_model::JobRef;

/// How long a write waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// An open record store.
pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if missing) the store at `path`. A commit survives a
    /// crash of the process, not a power cut (`synchronous = NORMAL`): an
    /// fsync per commit cost more than half the runner's speed with the
    /// file queue's `fsync = true` (issue 16).
    pub(crate) fn open(path: &Path) -> Result<Store, HistoryError> {
        let fail = |err: rusqlite::Error| HistoryError::Store {
            path: path.to_path_buf(),
            problem: err.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|err| HistoryError::Store {
                path: dir.to_path_buf(),
                problem: format!("cannot create the directory: {err}"),
            })?;
        }
        let conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        // Switching a new store to WAL and creating its table take locks that
        // SQLite does not wait for through the busy timeout: two runners
        // opening a fresh store at once would see "database is locked". Such
        // a step is tried again until the timeout.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let when_free = |step: &dyn Fn() -> rusqlite::Result<()>| loop {
            match step() {
                Err(rusqlite::Error::SqliteFailure(err, _))
                    if matches!(
                        err.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other,
            }
        };
        when_free(&|| conn.pragma_update(None, "journal_mode", "WAL")).map_err(fail)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(fail)?;
        when_free(&|| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS records (
                     id INTEGER PRIMARY KEY,
                     request_type TEXT NOT NULL,
                     outcome TEXT,
                     updated_ms INTEGER NOT NULL,
                     record TEXT NOT NULL);
                 CREATE INDEX IF NOT EXISTS records_by_update ON records(updated_ms);",
            )
        })
        .map_err(fail)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens the store at `path` only to read it, as a lookup does: no
    /// directory, file, table or journal mode is created or set (a store
    /// that exists was made by [`Store::open`]), so the common `pulpo
    /// status` pays for no schema statements. `None` when there is no store
    /// yet: nothing was recorded.
    pub(crate) fn open_to_read(path: &Path) -> Result<Option<Store>, HistoryError> {
        use rusqlite::OpenFlags;
        if !path.exists() {
            return Ok(None);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|err| HistoryError::Store {
            path: path.to_path_buf(),
            problem: err.to_string(),
        })?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store
            .conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|err| store.fail(err))?;
        Ok(Some(store))
    }

    /// Checkpoints this connection's commits only once the write-ahead log
    /// holds `pages` pages (SQLite's default is 1000). A checkpoint copies
    /// the log back into the database and fsyncs twice, a stall for every
    /// worker waiting on the commit it follows; a runner's records rewrite
    /// the same few pages commit after commit, so a longer log copies
    /// hardly more pages per checkpoint, and far fewer per record.
    pub(crate) fn checkpoint_every(&self, pages: u32) -> Result<(), HistoryError> {
        self.conn
            .pragma_update(None, "wal_autocheckpoint", pages)
            .map_err(|err| self.fail(err))
    }

    fn fail(&self, err: impl std::fmt::Display) -> HistoryError {
        HistoryError::Store {
            path: self.path.clone(),
            problem: err.to_string(),
        }
    }

    /// The record of `job`, if one is kept.
    pub(crate) fn get(&self, job: JobRef) -> Result<Option<Record>, HistoryError> {
        let found = self
            .conn
            .query_row(
                "SELECT record FROM records WHERE id = ?1",
                params![job.id as i64],
                |row| row.get(0),
            )
            .optional();
        let text: Option<String> = match found {
            // A store opened to read before any runner made its table.
            Err(rusqlite::Error::SqliteFailure(_, Some(message))) if message.starts_with("no such table") => {
                None
            }
            other => other.map_err(|err| self.fail(err))?,
        };
        text.map(|text| serde_json::from_str(&text).map_err(|err| self.fail(err)))
            .transpose()
    }

    /// Applies `changes` in one transaction: one commit (one fsync) for a
    /// group of them.
    pub(crate) fn apply(&mut self, changes: &[Change], now: DateTime<Utc>) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let fail = |err: rusqlite::Error| HistoryError::Store {
            path: path.clone(),
            problem: err.to_string(),
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(fail)?;
        // A group often holds several changes of one job (an attempt's start and its end):
        // each record is read and written once per group, not once per change.
        let mut records: Vec<Record> = Vec::new();
        let mut at: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for change in changes {
            let job = change.job();
            let i = match at.get(&job.id) {
                Some(&i) => i,
                None => {
                    let old: Option<String> = tx
                        .prepare_cached("SELECT record FROM records WHERE id = ?1")
                        .and_then(|mut s| s.query_row(params![job.id as i64], |row| row.get(0)).optional())
                        .map_err(fail)?;
                    // A record that cannot be read (written by a newer pulpo, say)
                    // is replaced rather than blocking the job's settlement.
                    records.push(
                        old.and_then(|text| serde_json::from_str::<Record>(&text).ok())
                            .unwrap_or_else(|| Record::new(job)),
                    );
                    at.insert(job.id, records.len() - 1);
                    records.len() - 1
                }
            };
            records[i].apply(change, now);
        }
        for record in &records {
            let text = serde_json::to_string(record).map_err(|err| HistoryError::Store {
                path: path.clone(),
                problem: err.to_string(),
            })?;
            tx.prepare_cached(
                "INSERT INTO records (id, request_type, outcome, updated_ms, record)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET request_type = ?2, outcome = ?3,
                     updated_ms = ?4, record = ?5",
            )
            .and_then(|mut s| {
                s.execute(params![
                    record.job.id as i64,
                    record.request_type,
                    record.outcome.map(|o| o.name()),
                    now.timestamp_millis(),
                    text
                ])
            })
            .map_err(fail)?;
        }
        tx.commit().map_err(fail)
    }

    /// Writes `records` as they are, replacing any kept under the same ids,
    /// in one transaction; returns how many.
    pub(crate) fn import(&mut self, records: impl IntoIterator<Item = Record>) -> Result<u64, HistoryError> {
        let path = self.path.clone();
        let fail = |err: &dyn std::fmt::Display| HistoryError::Store {
            path: path.clone(),
            problem: err.to_string(),
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|err| fail(&err))?;
        let mut written = 0;
        {
            let mut insert = tx
                .prepare(
                    "INSERT OR REPLACE INTO records (id, request_type, outcome, updated_ms, record)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(|err| fail(&err))?;
            for record in records {
                let text = serde_json::to_string(&record).map_err(|err| fail(&err))?;
                insert
                    .execute(params![
                        record.job.id as i64,
                        record.request_type,
                        record.outcome.map(|o| o.name()),
                        record.updated.timestamp_millis(),
                        text
                    ])
                    .map_err(|err| fail(&err))?;
                written += 1;
            }
        }
        tx.commit().map_err(|err| fail(&err))?;
        Ok(written)
    }

    /// Records matching `filter`, newest first.
    pub(crate) fn list(&self, filter: &Filter) -> Result<Vec<Record>, HistoryError> {
        let since = filter.since.map_or(i64::MIN, |t| t.timestamp_millis());
        let mut statement = self
            .conn
            .prepare(
                "SELECT record FROM records WHERE updated_ms >= ?1
                   AND (?2 IS NULL OR request_type = ?2)
                   AND (?3 IS NULL OR outcome = ?3)
                 ORDER BY updated_ms DESC, id DESC LIMIT ?4",
            )
            .map_err(|err| self.fail(err))?;
        let rows = statement
            .query_map(
                params![
                    since,
                    filter.request_type,
                    filter.outcome.map(|o| o.name()),
                    filter.limit as i64
                ],
                |row| row.get::<_, String>(0),
            )
            .map_err(|err| self.fail(err))?;
        let mut records = Vec::new();
        for text in rows {
            let text = text.map_err(|err| self.fail(err))?;
            if let Ok(record) = serde_json::from_str(&text) {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Removes records last updated before `now - keep`, then the oldest
    /// beyond `max_jobs`; returns how many went.
    pub(crate) fn prune(
        &mut self,
        keep: Duration,
        max_jobs: u64,
        now: DateTime<Utc>,
    ) -> Result<u64, HistoryError> {
        let cutoff = now.timestamp_millis() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|err| HistoryError::Store {
                path: path.clone(),
                problem: err.to_string(),
            })?;
        let mut gone = tx
            .execute("DELETE FROM records WHERE updated_ms < ?1", params![cutoff])
            .map_err(|err| HistoryError::Store {
                path: self.path.clone(),
                problem: err.to_string(),
            })? as u64;
        let count: i64 = tx
            .query_row("SELECT COUNT(*) FROM records", [], |row| row.get(0))
            .unwrap_or(0);
        let over = (count as u64).saturating_sub(max_jobs);
        if over > 0 {
            gone += tx
                .execute(
                    "DELETE FROM records WHERE id IN
                       (SELECT id FROM records ORDER BY updated_ms, id LIMIT ?1)",
                    params![over as i64],
                )
                .map_err(|err| HistoryError::Store {
                    path: self.path.clone(),
                    problem: err.to_string(),
                })? as u64;
        }
        tx.commit().map_err(|err| HistoryError::Store {
            path,
            problem: err.to_string(),
        })?;
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Attempt, End};

    fn attempt(job: u64, n: u32, end: Option<End>) -> Change {
        Change::Attempt {
            job: JobRef::new(job),
            request_type: "noop".into(),
            tube: "default".into(),
            attempt: Box::new(Attempt {
                attempt: n,
                started: Utc::now(),
                finished: Utc::now(),
                duration_ms: 0.1,
                settlement: if end.is_some() { "delete" } else { "release" }.into(),
                error: None,
            }),
            events: Vec::new(),
            result: None,
            end,
        }
    }

    /// Several changes of one job in a group (its attempts, as a busy runner sends them) read
    /// and write its row once, and the record has them all, in order.
    #[test]
    fn a_group_writes_each_job_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("records.sqlite")).unwrap();
        let before = store.conn.total_changes();
        let group = [
            attempt(7, 1, None),
            attempt(8, 1, Some(End::Succeeded)),
            attempt(7, 2, Some(End::Succeeded)),
        ];
        store.apply(&group, Utc::now()).unwrap();
        assert_eq!(store.conn.total_changes() - before, 2, "one row write per job");
        let record = store.get(JobRef::new(7)).unwrap().expect("job 7's record");
        let numbers: Vec<u32> = record.attempts.iter().map(|a| a.attempt).collect();
        assert_eq!(numbers, [1, 2]);
        assert_eq!(record.outcome, Some(End::Succeeded));
        assert!(store.get(JobRef::new(8)).unwrap().is_some());
    }
}
