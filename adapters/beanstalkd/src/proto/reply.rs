//! Every server reply of protocol.txt as a value. [`super::ClientCodec`]
//! reads them and [`super::ServerCodec`] writes them.

use bytes::Bytes;

use super::TubeName;

/// One server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `INSERTED <id>\r\n`: put succeeded.
    Inserted {
        /// The new job's id.
        id: u64,
    },
    /// `BURIED <id>\r\n` after put (server out of memory for the priority
    /// queue: the job was buried), or `BURIED\r\n` after release and bury.
    Buried {
        /// The job id; present only in the reply to put.
        id: Option<u64>,
    },
    /// `EXPECTED_CRLF\r\n`: the job body was not followed by CRLF.
    ExpectedCrlf,
    /// `JOB_TOO_BIG\r\n`: the body is larger than the server's max-job-size.
    JobTooBig,
    /// `DRAINING\r\n`: the server accepts no new jobs.
    Draining,
    /// `USING <tube>\r\n`: reply to use and list-tube-used.
    Using {
        /// The used tube.
        tube: TubeName,
    },
    /// `DEADLINE_SOON\r\n`: a reserved job's TTR is about to run out.
    DeadlineSoon,
    /// `TIMED_OUT\r\n`: reserve-with-timeout found no job in time.
    TimedOut,
    /// `RESERVED <id> <bytes>\r\n<data>\r\n`.
    Reserved {
        /// The job id.
        id: u64,
        /// The job body.
        body: Bytes,
    },
    /// `RESERVED <id> <bytes>\r\n<data>\r\n` with more bytes than the
    /// client's body limit: [`super::ClientCodec`] discarded the body unread,
    /// so the stream stays in step and the job stays reserved by this
    /// connection. Not written by the server codec (it has no body to write).
    ReservedTooBig {
        /// The job id.
        id: u64,
        /// The body's length, as announced.
        len: u64,
    },
    /// `DELETED\r\n`.
    Deleted,
    /// `NOT_FOUND\r\n`: no such job (or tube), or not in a state that allows
    /// the command.
    NotFound,
    /// `RELEASED\r\n`.
    Released,
    /// `TOUCHED\r\n`.
    Touched,
    /// `WATCHING <count>\r\n`: reply to watch and ignore.
    Watching {
        /// Tubes now in the watch list.
        count: u64,
    },
    /// `NOT_IGNORED\r\n`: the last watched tube cannot be ignored.
    NotIgnored,
    /// `FOUND <id> <bytes>\r\n<data>\r\n`: reply to the peek commands.
    Found {
        /// The job id.
        id: u64,
        /// The job body.
        body: Bytes,
    },
    /// `FOUND <id> <bytes>\r\n<data>\r\n` with more bytes than the client's
    /// body limit: the body was discarded unread, as for
    /// [`Reply::ReservedTooBig`].
    FoundTooBig {
        /// The job id.
        id: u64,
        /// The body's length, as announced.
        len: u64,
    },
    /// `KICKED <count>\r\n` after kick, `KICKED\r\n` after kick-job.
    Kicked {
        /// Jobs kicked; present only in the reply to kick.
        count: Option<u64>,
    },
    /// `OK <bytes>\r\n<data>\r\n`: a YAML document (stats, lists).
    Ok {
        /// The YAML document.
        data: Bytes,
    },
    /// `PAUSED\r\n`.
    Paused,
    /// `OUT_OF_MEMORY\r\n`.
    OutOfMemory,
    /// `INTERNAL_ERROR\r\n`.
    InternalError,
    /// `BAD_FORMAT\r\n`.
    BadFormat,
    /// `UNKNOWN_COMMAND\r\n`.
    UnknownCommand,
}
