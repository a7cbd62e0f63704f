//! The commands that look without changing anything: the four peeks, the
//! three stats documents, and the tube lists.

use bytes::Bytes;

use super::{Client, Job};
use crate::error::Result;
use crate::proto::{
    Command, JobStats, Reply, ServerStats, StatsDocument, TubeName, TubeStats, parse_tube_list,
};

/// The job of a `FOUND` reply; any other reply is given back.
fn found(reply: Reply) -> Result<Job, Reply> {
    match reply {
        Reply::Found { id, body } => Ok(Job { id, body }),
        other => Err(other),
    }
}

/// The YAML document of an `OK` reply; any other reply is given back.
fn document(reply: Reply) -> Result<Bytes, Reply> {
    match reply {
        Reply::Ok { data } => Ok(data),
        other => Err(other),
    }
}

impl Client {
    /// Looks at a job by id.
    ///
    /// ```text
    /// peek <id>\r\n  ->  FOUND <id> <bytes>\r\n<data>\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn peek(&mut self, id: u64) -> Result<Job> {
        self.request(Command::Peek { id }, found).await
    }

    /// Looks at the next ready job of the used tube.
    ///
    /// ```text
    /// peek-ready\r\n  ->  FOUND ... | NOT_FOUND\r\n
    /// ```
    pub async fn peek_ready(&mut self) -> Result<Job> {
        self.request(Command::PeekReady, found).await
    }

    /// Looks at the delayed job of the used tube with the least delay left.
    ///
    /// ```text
    /// peek-delayed\r\n  ->  FOUND ... | NOT_FOUND\r\n
    /// ```
    pub async fn peek_delayed(&mut self) -> Result<Job> {
        self.request(Command::PeekDelayed, found).await
    }

    /// Looks at the next buried job of the used tube.
    ///
    /// ```text
    /// peek-buried\r\n  ->  FOUND ... | NOT_FOUND\r\n
    /// ```
    pub async fn peek_buried(&mut self) -> Result<Job> {
        self.request(Command::PeekBuried, found).await
    }

    /// A job's statistics.
    ///
    /// ```text
    /// stats-job <id>\r\n  ->  OK <bytes>\r\n<yaml>\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn stats_job(&mut self, id: u64) -> Result<JobStats> {
        let yaml = self.request(Command::StatsJob { id }, document).await?;
        Ok(JobStats::parse(&yaml)?)
    }

    /// A tube's statistics.
    ///
    /// ```text
    /// stats-tube <tube>\r\n  ->  OK <bytes>\r\n<yaml>\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn stats_tube(&mut self, tube: &str) -> Result<TubeStats> {
        let tube = TubeName::new(tube)?;
        let yaml = self.request(Command::StatsTube { tube }, document).await?;
        Ok(TubeStats::parse(&yaml)?)
    }

    /// The server's statistics.
    ///
    /// ```text
    /// stats\r\n  ->  OK <bytes>\r\n<yaml>\r\n
    /// ```
    pub async fn stats(&mut self) -> Result<ServerStats> {
        let yaml = self.request(Command::Stats, document).await?;
        Ok(ServerStats::parse(&yaml)?)
    }

    /// All existing tubes.
    ///
    /// ```text
    /// list-tubes\r\n  ->  OK <bytes>\r\n<yaml list>\r\n
    /// ```
    pub async fn list_tubes(&mut self) -> Result<Vec<TubeName>> {
        let yaml = self.request(Command::ListTubes, document).await?;
        Ok(parse_tube_list(&yaml)?)
    }

    /// The tube this connection uses.
    ///
    /// ```text
    /// list-tube-used\r\n  ->  USING <tube>\r\n
    /// ```
    pub async fn list_tube_used(&mut self) -> Result<TubeName> {
        self.request(Command::ListTubeUsed, |reply| match reply {
            Reply::Using { tube } => Ok(tube),
            other => Err(other),
        })
        .await
    }

    /// The tubes this connection watches.
    ///
    /// ```text
    /// list-tubes-watched\r\n  ->  OK <bytes>\r\n<yaml list>\r\n
    /// ```
    pub async fn list_tubes_watched(&mut self) -> Result<Vec<TubeName>> {
        let yaml = self.request(Command::ListTubesWatched, document).await?;
        Ok(parse_tube_list(&yaml)?)
    }
}
