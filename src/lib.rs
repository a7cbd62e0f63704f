//! pulpo: a job-processing runtime. Producers publish messages; the runner
//! reserves them from a queue, routes each to the handler its `request_type`
//! maps to, and settles the job by the handler's outcome.

pub mod cli;
pub mod config;
pub mod duration;
pub mod handlers;
pub mod jobs;
pub mod message;
pub mod producer;
pub mod publish;
pub mod queue;
pub mod runner;
pub mod serve;

pub use config::{ConfigError, Settings};
pub use handlers::{Context, Handler, Outcome, Registry};
pub use message::Message;
pub use producer::{Producer, ProducerError};
pub use queue::{Capabilities, Lease, NewJob, Queue, QueueError};
pub use runner::{RunReport, Runner, run_until_stopped};
