//! The commands that move jobs or tubes along for an operator: `kick`,
//! `kick-job` and `pause-tube`.

use super::Client;
use crate::error::Result;
use crate::proto::{Command, Reply, TubeName};

impl Client {
    /// Kicks up to `bound` buried (else delayed) jobs of the used tube.
    ///
    /// ```text
    /// kick <bound>\r\n  ->  KICKED <count>\r\n
    /// ```
    pub async fn kick(&mut self, bound: u64) -> Result<u64> {
        self.request(Command::Kick { bound }, |reply| match reply {
            Reply::Kicked { count: Some(count) } => Ok(count),
            other => Err(other),
        })
        .await
    }

    /// Kicks one buried or delayed job.
    ///
    /// ```text
    /// kick-job <id>\r\n  ->  KICKED\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn kick_job(&mut self, id: u64) -> Result<()> {
        self.expect(Command::KickJob { id }, Reply::Kicked { count: None })
            .await
    }

    /// Holds back reservations from a tube for `delay_secs`.
    ///
    /// ```text
    /// pause-tube <tube> <delay>\r\n  ->  PAUSED\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn pause_tube(&mut self, tube: &str, delay_secs: u32) -> Result<()> {
        let tube = TubeName::new(tube)?;
        let cmd = Command::PauseTube {
            tube,
            delay: delay_secs,
        };
        self.expect(cmd, Reply::Paused).await
    }
}
