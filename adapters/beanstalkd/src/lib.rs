//! `pulpo-beanstalkd`: the beanstalkd protocol as typed values, with codecs for
//! both directions (client and server), and an async client for tokio.
//!
//! The protocol is described in beanstalkd's `doc/protocol.txt`. Every command
//! is a [`Command`] variant and every reply a [`Reply`] variant; the
//! [`ClientCodec`] encodes commands and decodes replies, the [`ServerCodec`]
//! does the reverse, so a test fake or a server can reuse them. The
//! [`Client`] owns one connection and gives every command as a method with a
//! typed result.

pub mod client;
pub mod error;
pub mod proto;

pub use client::{Address, Client, ConnectOptions, Job, PutJob};
pub use error::{Error, Result, ServerError};
pub use proto::{
    ClientCodec, CodecError, Command, JobState, JobStats, ProtocolError, Reply, ServerCodec, ServerStats,
    TubeName, TubeStats,
};
