//! The worker commands of protocol.txt: the three reserves, `delete`,
//! `release`, `bury`, `touch`, and the watch list (`watch`, `ignore`).

use super::{Client, Job};
use crate::error::{Error, Result, ServerError};
use crate::proto::{Command, Reply, TubeName};

/// The job of a `RESERVED` reply; any other reply is given back.
fn reserved(reply: Reply) -> Result<Job, Reply> {
    match reply {
        Reply::Reserved { id, body } => Ok(Job { id, body }),
        other => Err(other),
    }
}

/// The watch list's length from a `WATCHING` reply; any other reply is
/// given back.
fn watching(reply: Reply) -> Result<u64, Reply> {
    match reply {
        Reply::Watching { count } => Ok(count),
        other => Err(other),
    }
}

impl Client {
    /// Waits for a job from the watched tubes.
    ///
    /// ```text
    /// reserve\r\n  ->  RESERVED <id> <bytes>\r\n<data>\r\n | DEADLINE_SOON\r\n
    /// ```
    pub async fn reserve(&mut self) -> Result<Job> {
        self.request(Command::Reserve, reserved).await
    }

    /// Waits up to `timeout_secs` (0 = poll) for a job.
    ///
    /// ```text
    /// reserve-with-timeout <secs>\r\n  ->  RESERVED ... | TIMED_OUT\r\n | DEADLINE_SOON\r\n
    /// ```
    pub async fn reserve_with_timeout(&mut self, timeout_secs: u32) -> Result<Job> {
        let cmd = Command::ReserveWithTimeout {
            timeout: timeout_secs,
        };
        self.request(cmd, reserved).await
    }

    /// Reserves a job by id.
    ///
    /// ```text
    /// reserve-job <id>\r\n  ->  RESERVED ... | NOT_FOUND\r\n
    /// ```
    pub async fn reserve_job(&mut self, id: u64) -> Result<Job> {
        self.request(Command::ReserveJob { id }, reserved).await
    }

    /// Deletes a job.
    ///
    /// ```text
    /// delete <id>\r\n  ->  DELETED\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn delete(&mut self, id: u64) -> Result<()> {
        self.expect(Command::Delete { id }, Reply::Deleted).await
    }

    /// Releases a reserved job.
    ///
    /// ```text
    /// release <id> <pri> <delay>\r\n  ->  RELEASED\r\n | BURIED\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn release(&mut self, id: u64, priority: u32, delay: u32) -> Result<()> {
        match self.send(&Command::Release { id, priority, delay }).await? {
            Reply::Released => Ok(()),
            // The server could not grow a priority queue and buried the job
            // instead; the reply names no id, the caller's is the one.
            Reply::Buried { id: None } => Err(Error::Server {
                command: "release",
                error: ServerError::Buried { id },
            }),
            other => Err(Error::unexpected("release", other)),
        }
    }

    /// Buries a reserved job.
    ///
    /// ```text
    /// bury <id> <pri>\r\n  ->  BURIED\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn bury(&mut self, id: u64, priority: u32) -> Result<()> {
        self.expect(Command::Bury { id, priority }, Reply::Buried { id: None })
            .await
    }

    /// Restarts a reserved job's TTR.
    ///
    /// ```text
    /// touch <id>\r\n  ->  TOUCHED\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn touch(&mut self, id: u64) -> Result<()> {
        self.expect(Command::Touch { id }, Reply::Touched).await
    }

    /// Adds a tube to the watch list; returns the list's length.
    ///
    /// ```text
    /// watch <tube>\r\n  ->  WATCHING <count>\r\n
    /// ```
    pub async fn watch(&mut self, tube: &str) -> Result<u64> {
        let tube = TubeName::new(tube)?;
        self.request(Command::Watch { tube }, watching).await
    }

    /// Removes a tube from the watch list; returns the list's length.
    ///
    /// ```text
    /// ignore <tube>\r\n  ->  WATCHING <count>\r\n | NOT_IGNORED\r\n
    /// ```
    pub async fn ignore(&mut self, tube: &str) -> Result<u64> {
        let tube = TubeName::new(tube)?;
        self.request(Command::Ignore { tube }, watching).await
    }
}
