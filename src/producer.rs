//! Publishing from a Rust program: [`Producer`] opens the queue the config
//! names and stores messages on it as `pulpo publish` does (priority, delay
//! and TTR from the header, the request type's handler table, or
//! `[defaults]`), returning each new job's id.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use pulpo::{Message, Producer};
//!
//! // ./pulpo.toml (when present) and PULPO_ variables, as the CLI reads them.
//! let mut producer = Producer::from_config(None).await?;
//! let id = producer
//!     .publish(Message::new("send_email").with_payload("hello"))
//!     .await?;
//! println!("published job {id}");
//! # Ok(())
//! # }
//! ```

use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use crate::config::{self, ConfigError, Overrides, Settings};
use crate::history::{End, JobRef};
use crate::message::Message;
use crate::queue::{self, Queue, QueueError};

/// A handle that publishes messages to the queue of some settings. It holds
/// one connection (beanstalkd) or handle (file queue); calls take `&mut
/// self`, so a program that publishes from many tasks keeps one per task
/// or shares one behind a mutex.
pub struct Producer {
    queue: Box<dyn Queue>,
    settings: Settings,
}

/// Why [`Producer::from_config`] could not open a producer.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The config is missing or invalid (the message names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The queue cannot be opened or reached.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl Producer {
    /// Opens the queue `settings` name (`queue`, `[file]` or
    /// `[beanstalkd]`); messages go to `settings.tube`.
    pub async fn from_settings(settings: &Settings) -> Result<Producer, QueueError> {
        Ok(Producer {
            queue: queue::open(settings).await?,
            settings: settings.clone(),
        })
    }

    /// Loads the config as the `pulpo` command does (built-in defaults <
    /// `config_file`, else `./pulpo.toml` when present < `PULPO_`
    /// variables), then opens its queue.
    pub async fn from_config(config_file: Option<&Path>) -> Result<Producer, ProducerError> {
        let settings = config::load(config_file, &Overrides::default())?;
        Ok(Producer::from_settings(&settings).await?)
    }

    /// Stores `message` in the configured tube; returns the job's id once
    /// the queue has it (with `[file] fsync`, once it is on disk).
    pub async fn publish(&mut self, message: Message) -> Result<u64, QueueError> {
        let tube = self.settings.tube.clone();
        self.publish_to(&tube, message).await
    }

    /// Stores `message` in `tube`; returns the job's id.
    pub async fn publish_to(&mut self, tube: &str, mut message: Message) -> Result<u64, QueueError> {
        let job = crate::publish::prepare(&mut message, &self.settings, Utc::now());
        self.queue.put(tube, job).await
    }

    /// The settings this producer publishes with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The queue itself, for the other beanstalkd verbs (peek, stats, ...).
    pub fn queue(&mut self) -> &mut dyn Queue {
        self.queue.as_mut()
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("queue", &self.queue.describe())
            .field("tube", &self.settings.tube)
            .finish()
    }
}

/// The result message a runner sends to a job's `reply_to` tube when the
/// job ends ([`Producer::publish_and_wait`], `pulpo publish --wait`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reply {
    /// The job.
    pub job: JobRef,
    /// How it ended.
    pub outcome: End,
    /// What its handler returned with its success (`null` if nothing).
    #[serde(default)]
    pub result: serde_json::Value,
    /// Why it failed, when it did.
    #[serde(default)]
    pub error: Option<String>,
    /// Its attempts, the last one included.
    pub attempts: u32,
    /// How long its last attempt took, in milliseconds.
    pub duration_ms: f64,
}

impl Reply {
    /// Reads a reply from a reply job's body (a message whose body holds
    /// the fields).
    pub fn from_body(body: &[u8]) -> Result<Reply, String> {
        let message = Message::from_json(body).map_err(|err| err.to_string())?;
        serde_json::from_value(serde_json::Value::Object(message.body))
            .map_err(|err| format!("not a result message: {err}"))
    }
}

/// A tube name no other waiter uses: `reply.<pid>.<time>.<n>`.
pub fn fresh_reply_tube() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "reply.{}.{nanos:x}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Waits up to `timeout` (none: for ever) for the result message in
/// `tube`, and deletes it once read, so the tube is left empty (and, on
/// both queues, gone once nobody watches it). `None`: no result in time.
pub async fn wait_for_reply(
    queue: &mut dyn Queue,
    tube: &str,
    timeout: Option<Duration>,
) -> Result<Option<Reply>, QueueError> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let watch = [tube.to_owned()];
    loop {
        let left = match deadline {
            Some(at) => at.saturating_duration_since(tokio::time::Instant::now()),
            None => WAIT_SLICE,
        };
        let Some(job) = queue.reserve(&watch, left.min(WAIT_SLICE)).await? else {
            if deadline.is_some_and(|at| tokio::time::Instant::now() >= at) {
                return Ok(None);
            }
            continue;
        };
        queue.delete(job.id).await?;
        match Reply::from_body(&job.body) {
            Ok(reply) => return Ok(Some(reply)),
            Err(err) => tracing::warn!("job {} in reply tube {tube:?} ignored: {err}", job.id),
        }
    }
}

/// The longest one reserve of [`wait_for_reply`] waits.
const WAIT_SLICE: Duration = Duration::from_secs(1);

impl Producer {
    /// Publishes `message` with a fresh `reply_to` tube, then waits up to
    /// `timeout` (none: for ever) for its result, as `pulpo publish --wait`
    /// does. Returns the job's id and its reply (`None`: none in time).
    pub async fn publish_and_wait(
        &mut self,
        message: Message,
        timeout: Option<Duration>,
    ) -> Result<(u64, Option<Reply>), QueueError> {
        let tube = fresh_reply_tube();
        let id = self.publish(message.with_reply_to(tube.clone())).await?;
        let reply = wait_for_reply(self.queue.as_mut(), &tube, timeout).await?;
        Ok((id, reply))
    }
}
