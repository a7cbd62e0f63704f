//! A program with its own handler kind: `word_count` counts the words of a
//! job's string payload and writes the count to `<output_directory>/<job id>.txt`.
//! It registers the kind, then hands over to pulpo's whole command line, so
//! `publish`, `run`, `stats` and the rest work as with the `pulpo` binary.
//!
//! ```text
//! cargo run --example custom_handler -- --config examples/custom_handler.toml publish word_count "a b c"
//! cargo run --example custom_handler -- --config examples/custom_handler.toml run
//! ```
//!
//! The kind's options, in a `[handlers.<request_type>]` table:
//!
//! ```toml
//! [handlers.word_count]
//! kind = "word_count"
//! output_directory = "./word-count-output"   # required
//! notify = "word_counted"                    # optional: publish a follow-up of this request type
//! io_retry_delay = "5s"                      # optional: the retry delay after a failed write
//! ```
//!
//! Outcomes: a payload that is not a string is a fatal failure (buried: no
//! retry would help); a write that fails (a full disk, a missing mount) is
//! retried after `io_retry_delay` instead of the configured back-off; on
//! success the `notify` message, if any, is published before the job is
//! deleted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use pulpo::handlers::Registry;
use pulpo::handlers::{Context, Handler, Outcome};
use pulpo::message::Message;
use serde::Deserialize;
use serde_json::Value;

/// The options of one `word_count` table, read by
/// `HandlerSettings::options_as` when the runner starts: an unknown,
/// missing or mistyped option is an error naming its key, e.g.
/// `pulpo.toml: key "handlers.word_count.output_directory" is missing: ...`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WordCount {
    /// Where the counts go, one file per job.
    output_directory: PathBuf,
    /// The request type of the follow-up message published on success.
    #[serde(default)]
    notify: Option<String>,
    /// How long to wait before retrying after a failed write: "5s",
    /// "250ms", or a plain number of seconds.
    #[serde(default = "five_seconds", with = "pulpo::duration::human")]
    io_retry_delay: Duration,
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

impl WordCount {
    /// Runs one job: count, write, and say what should become of the job.
    async fn handle(&self, message: Message, context: Context) -> Outcome {
        let text = match message.payload() {
            Some(Value::String(text)) => text,
            Some(other) => return Outcome::fatal(format!("word_count needs a string payload, got {other}")),
            None => return Outcome::fatal("word_count needs a string payload, got none"),
        };
        let words = text.split_whitespace().count();
        let path = self.output_directory.join(format!("{}.txt", context.job_id));
        // A retried job writes the same file again: the handler is idempotent.
        let written = async {
            tokio::fs::create_dir_all(&self.output_directory).await?;
            tokio::fs::write(&path, format!("{words}\n")).await
        };
        if let Err(err) = written.await {
            let reason = format!("cannot write {}: {err}", path.display());
            return Outcome::retry_after(reason, self.io_retry_delay);
        }
        match &self.notify {
            Some(request_type) => Outcome::success_with(vec![
                Message::new(request_type.as_str())
                    .with_payload(format!("job {}: {words} words", context.job_id))
                    .with_body_field("words", words),
            ]),
            None => Outcome::success(),
        }
    }
}

fn main() -> ExitCode {
    let mut registry = Registry::with_builtins();
    registry.register("word_count", |settings| {
        let mut word_count = settings.options_as::<WordCount>()?;
        // Relative to the config file's directory when written there, as pulpo's own kinds.
        word_count.output_directory = settings.option_path("output_directory", &word_count.output_directory);
        let word_count = Arc::new(word_count);
        let handler = move |message: Message, context: Context| {
            let word_count = word_count.clone();
            async move { word_count.handle(message, context).await }
        };
        Ok(Arc::new(handler) as Arc<dyn Handler>)
    });
    pulpo::cli::main_with(registry)
}
