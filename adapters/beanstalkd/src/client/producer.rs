//! The producer commands of protocol.txt: `put` (one job, or a pipelined
//! batch) and `use`.

use bytes::Bytes;

use super::Client;
use crate::error::{Error, Result};
use crate::proto::{Command, Reply, TubeName};

/// One job of a [`Client::put_batch`]: what `put` sends, so that a batch
/// can be built before it is sent in one pipelined round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutJob {
    /// 0 is most urgent.
    pub priority: u32,
    /// Seconds before the job is ready.
    pub delay: u32,
    /// Seconds a worker may hold it.
    pub ttr: u32,
    /// The body.
    pub body: Bytes,
}

/// The new job's id from the reply to a `put`; any other reply is given back.
fn inserted(reply: Reply) -> Result<u64, Reply> {
    match reply {
        Reply::Inserted { id } => Ok(id),
        other => Err(other),
    }
}

impl Client {
    /// Puts a job into the used tube; returns its id.
    ///
    /// ```text
    /// put <pri> <delay> <ttr> <bytes>\r\n<data>\r\n  ->  INSERTED <id>\r\n
    ///                                  | BURIED <id>\r\n | JOB_TOO_BIG\r\n | DRAINING\r\n
    /// ```
    pub async fn put(&mut self, priority: u32, delay: u32, ttr: u32, body: impl Into<Bytes>) -> Result<u64> {
        let cmd = Command::Put {
            priority,
            delay,
            ttr,
            body: body.into(),
        };
        self.request(cmd, inserted).await
    }

    /// Puts many jobs into the used tube, pipelined; one result per job, in
    /// order. An inner error is that job's own: the server's refusal
    /// (`JOB_TOO_BIG`, `BURIED <id>`, `DRAINING`, ...) or
    /// [`Error::BodyTooLarge`] for a body over the client's `max_body`, which
    /// is not sent. The outer error means the connection was lost: jobs
    /// before it may be stored.
    ///
    /// ```text
    /// put <pri> <delay> <ttr> <bytes>\r\n<data>\r\n ...  ->  INSERTED <id>\r\n ...
    /// ```
    pub async fn put_batch(&mut self, jobs: &[PutJob]) -> Result<Vec<Result<u64>>> {
        let limit = self.options().max_body;
        let cmds: Vec<Command> = jobs
            .iter()
            .filter(|job| job.body.len() <= limit)
            .map(|job| Command::Put {
                priority: job.priority,
                delay: job.delay,
                ttr: job.ttr,
                body: job.body.clone(),
            })
            .collect();
        let mut replies = self.pipeline(&cmds).await?.into_iter();
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            if job.body.len() > limit {
                results.push(Err(Error::BodyTooLarge {
                    len: job.body.len(),
                    limit,
                }));
                continue;
            }
            // `pipeline` returns exactly one reply per command.
            let result = match replies.next() {
                Some(reply) => inserted(reply).map_err(|other| Error::unexpected("put", other)),
                None => Err(self.conn.closed()),
            };
            results.push(result);
        }
        Ok(results)
    }

    /// Chooses the tube later puts go to.
    ///
    /// ```text
    /// use <tube>\r\n  ->  USING <tube>\r\n
    /// ```
    pub async fn use_tube(&mut self, tube: &str) -> Result<TubeName> {
        let tube = TubeName::new(tube)?;
        self.request(Command::Use { tube }, |reply| match reply {
            Reply::Using { tube } => Ok(tube),
            other => Err(other),
        })
        .await
    }
}
