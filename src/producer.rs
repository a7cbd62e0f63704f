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

use chrono::Utc;

use crate::config::{self, ConfigError, Overrides, Settings};
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
