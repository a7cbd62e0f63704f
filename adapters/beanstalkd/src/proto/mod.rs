//! The wire protocol: commands, replies, tube names, stats documents, and the
//! codecs that turn them into bytes and back.

mod codec;
mod command;
mod parse;
mod reply;
mod request;
mod stats;
mod tube;

pub use codec::{
    ClientCodec, CodecError, DEFAULT_MAX_BODY, DEFAULT_MAX_DOCUMENT, DEFAULT_MAX_LINE, ServerCodec,
};
pub use command::Command;
pub use reply::Reply;
pub use request::{RESERVE_FOREVER, Request, RequestCodec};
pub use stats::{
    JobState, JobStats, ServerStats, StatsDocument, TubeStats, parse_tube_list, tube_list_to_yaml,
};
pub use tube::{InvalidTubeName, TubeName};

/// A frame that is not valid beanstalkd protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A line grew past the codec's line limit without a `\r\n`.
    #[error("protocol line longer than {limit} bytes without CRLF")]
    LineTooLong {
        /// The codec's line limit in bytes (including CRLF).
        limit: usize,
    },
    /// A body length above the codec's body limit was announced.
    #[error("body of {len} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The announced length.
        len: u64,
        /// The codec's body limit.
        limit: usize,
    },
    /// A reply whose body the client skipped unread cannot be written back.
    #[error("job {id}'s body of {len} bytes was skipped unread and cannot be written")]
    SkippedBody {
        /// The job id.
        id: u64,
        /// The skipped body's length.
        len: u64,
    },
    /// The bytes after a body were not `\r\n`.
    #[error("expected CRLF after a {len}-byte body")]
    ExpectedCrlf {
        /// The declared body length.
        len: usize,
    },
    /// A line that names no known command or reply, or has the wrong
    /// arguments for it.
    #[error("malformed protocol line: {line:?}")]
    BadLine {
        /// The offending line, lossily decoded, without CRLF, cut to 256 bytes.
        line: String,
    },
    /// A tube name that breaks the protocol's naming rules.
    #[error(transparent)]
    InvalidTubeName(#[from] InvalidTubeName),
    /// A YAML stats or list document that does not parse.
    #[error("malformed {what} document: {detail}")]
    BadYaml {
        /// Which document: "stats-job", "stats-tube", "stats", "tube list".
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}
