//! The client's errors, by cause: a server's error reply, bytes that are not
//! protocol, a reply that does not fit the command, or the transport.

use std::time::Duration;

use crate::proto::{CodecError, InvalidTubeName, ProtocolError, Reply};

/// A result with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error reply of the server: the command was understood and refused, or
/// the server failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// `NOT_FOUND`: no such job or tube, or not in a state the command allows.
    #[error("NOT_FOUND")]
    NotFound,
    /// `BURIED <id>` after put: the server ran out of memory growing the
    /// priority queue and buried the new job.
    #[error("BURIED (job {id} was stored but buried)")]
    Buried {
        /// The buried job's id.
        id: u64,
    },
    /// `JOB_TOO_BIG`: the body exceeds the server's max-job-size.
    #[error("JOB_TOO_BIG")]
    JobTooBig,
    /// `DRAINING`: the server accepts no new jobs.
    #[error("DRAINING")]
    Draining,
    /// `DEADLINE_SOON`: a job reserved by this connection is about to time out.
    #[error("DEADLINE_SOON")]
    DeadlineSoon,
    /// `TIMED_OUT`: reserve-with-timeout found no job in time.
    #[error("TIMED_OUT")]
    TimedOut,
    /// `NOT_IGNORED`: the last watched tube cannot be ignored.
    #[error("NOT_IGNORED")]
    NotIgnored,
    /// `EXPECTED_CRLF`: a job body was not followed by CRLF.
    #[error("EXPECTED_CRLF")]
    ExpectedCrlf,
    /// `BAD_FORMAT`: the server could not parse a command line.
    #[error("BAD_FORMAT")]
    BadFormat,
    /// `UNKNOWN_COMMAND`.
    #[error("UNKNOWN_COMMAND")]
    UnknownCommand,
    /// `OUT_OF_MEMORY`: try again later.
    #[error("OUT_OF_MEMORY")]
    OutOfMemory,
    /// `INTERNAL_ERROR`: a bug in the server.
    #[error("INTERNAL_ERROR")]
    InternalError,
}

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered `command` with an error reply.
    #[error("beanstalkd refused {command}: {error}")]
    Server {
        /// The command's wire name.
        command: &'static str,
        /// The error reply.
        error: ServerError,
    },
    /// The server sent bytes that are not protocol, or an argument breaks the
    /// protocol's rules (e.g. a tube name) and nothing was sent.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A well-formed reply that does not answer `command`.
    #[error("unexpected reply to {command}: {reply}")]
    Unexpected {
        /// The command's wire name.
        command: &'static str,
        /// The reply, for the message.
        reply: String,
    },
    /// The address is neither `HOST:PORT` nor `unix:/path`.
    #[error("invalid beanstalkd address {address:?}: {reason}; use HOST:PORT or unix:/path/to/socket")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting failed.
    #[error("cannot connect to beanstalkd at {address}: {source}; is the server running?")]
    Connect {
        /// The address tried.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Connecting took longer than the connect timeout.
    #[error(
        "cannot connect to beanstalkd at {address}: no answer within {timeout:?}; is the server running?"
    )]
    ConnectTimeout {
        /// The address tried.
        address: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The server closed the connection (or it was lost) before replying.
    #[error("beanstalkd at {address} closed the connection")]
    Closed {
        /// The server's address.
        address: String,
    },
    /// Reading or writing the connection failed.
    #[error("I/O error talking to beanstalkd at {address}: {source}")]
    Io {
        /// The server's address.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A job the server sent (reserved or peeked) has a body larger than
    /// this client's `max_body`. The body was discarded unread, so the
    /// connection is still usable; a reserved job stays reserved by it.
    #[error(
        "job {id} has a body of {len} bytes, over this client's limit; the body was skipped \
         unread (raise ConnectOptions::max_body to read it)"
    )]
    JobTooBigToRead {
        /// The command's wire name.
        command: &'static str,
        /// The job's id.
        id: u64,
        /// The body's length, as the server announced it.
        len: u64,
    },
    /// The server did not answer a command within the command timeout (it
    /// is stopped, overloaded or unreachable). A reply is still owed, so the
    /// connection is broken until [`crate::Client::reconnect`].
    #[error(
        "beanstalkd at {address} did not answer {command} within {timeout:?}; the connection was dropped"
    )]
    CommandTimeout {
        /// The server's address.
        address: String,
        /// The command's wire name (the first of a pipeline).
        command: &'static str,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// A job body is larger than this client's `max_body`; nothing was sent
    /// and the connection is still usable.
    #[error(
        "job body of {len} bytes exceeds this client's limit of {limit} bytes; nothing was sent \
         (raise ConnectOptions::max_body, and the server's -z, to send larger jobs)"
    )]
    BodyTooLarge {
        /// The body's length.
        len: usize,
        /// The client's `max_body`.
        limit: usize,
    },
}

impl Error {
    /// The server's error reply, if this is one.
    pub fn server_error(&self) -> Option<ServerError> {
        match self {
            Error::Server { error, .. } => Some(*error),
            _ => None,
        }
    }

    /// Whether the server answered `NOT_FOUND`.
    pub fn is_not_found(&self) -> bool {
        self.server_error() == Some(ServerError::NotFound)
    }

    /// Whether the server answered `TIMED_OUT`.
    pub fn is_timed_out(&self) -> bool {
        self.server_error() == Some(ServerError::TimedOut)
    }

    /// Whether the connection is gone (closed, I/O failure, corrupt stream),
    /// so the caller should reconnect before going on.
    ///
    /// An invalid tube name given by the caller (refused before anything is
    /// sent) and a stats document that does not parse (read whole, so the
    /// stream is still in step) are not disconnects. [`crate::Client::is_broken`]
    /// says for sure whether a client must reconnect.
    pub fn is_disconnect(&self) -> bool {
        match self {
            Error::Closed { .. } | Error::Io { .. } | Error::CommandTimeout { .. } => true,
            Error::Protocol(ProtocolError::InvalidTubeName { .. } | ProtocolError::BadYaml { .. }) => false,
            Error::Protocol(_) => true,
            _ => false,
        }
    }

    /// The error for a reply that does not answer `command` as expected: an
    /// error reply becomes [`Error::Server`], any other reply
    /// [`Error::Unexpected`].
    pub(crate) fn unexpected(command: &'static str, reply: Reply) -> Error {
        let server = |error| Error::Server { command, error };
        match reply {
            Reply::NotFound => server(ServerError::NotFound),
            Reply::Buried { id: Some(id) } => server(ServerError::Buried { id }),
            Reply::JobTooBig => server(ServerError::JobTooBig),
            Reply::Draining => server(ServerError::Draining),
            Reply::DeadlineSoon => server(ServerError::DeadlineSoon),
            Reply::TimedOut => server(ServerError::TimedOut),
            Reply::NotIgnored => server(ServerError::NotIgnored),
            Reply::ExpectedCrlf => server(ServerError::ExpectedCrlf),
            Reply::BadFormat => server(ServerError::BadFormat),
            Reply::UnknownCommand => server(ServerError::UnknownCommand),
            Reply::ReservedTooBig { id, len } | Reply::FoundTooBig { id, len } => {
                Error::JobTooBigToRead { command, id, len }
            }
            Reply::OutOfMemory => server(ServerError::OutOfMemory),
            Reply::InternalError => server(ServerError::InternalError),
            other => Error::Unexpected {
                command,
                reply: format!("{other:?}"),
            },
        }
    }

    /// The error for a codec failure on the connection to `address`.
    pub(crate) fn from_codec(err: CodecError, address: &str) -> Error {
        match err {
            // tokio-util's words for a stream that ended inside a frame.
            CodecError::Io(source) if source.to_string() == "bytes remaining on stream" => Error::Io {
                address: address.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection in the middle of a reply",
                ),
            },
            CodecError::Io(source) => Error::Io {
                address: address.to_owned(),
                source,
            },
            CodecError::Protocol(p) => Error::Protocol(p),
        }
    }
}

/// A tube name the caller gave that breaks the protocol's rules: refused
/// before anything is sent, as the protocol error it would be on the wire.
impl From<InvalidTubeName> for Error {
    fn from(err: InvalidTubeName) -> Error {
        Error::Protocol(ProtocolError::InvalidTubeName(err))
    }
}

/// An address that is neither `HOST:PORT` nor `unix:/path`, with the rule
/// it breaks; the address itself is added by the caller, who has it.
pub(crate) fn invalid_address(address: &str, err: pulpo_model::AddressError) -> Error {
    Error::InvalidAddress {
        address: address.to_owned(),
        reason: err.to_string(),
    }
}
