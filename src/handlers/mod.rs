//! Handlers: the API a job's code is written against (the whole [`Message`]
//! and a [`Context`] in, an [`Outcome`] out), the [`Registry`] of handler
//! kinds, and the kinds pulpo ships: [`exec`] and the [`samples`]. The
//! runner — never the handler — deletes, releases or buries the job by the
//! outcome.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::message::Message;

pub mod exec;
pub mod registry;
pub mod samples;

pub use registry::{Factory, Registry};

/// `text` safe for a log line, a terminal or a stored reason: control
/// characters that a child's stderr or a job body may carry (ESC, NUL, CR,
/// DEL, the C1 range) are written as escapes (`\x1b`, `\0`, `\u{85}`);
/// newlines and tabs are kept. Text without any is borrowed as is.
pub fn printable(text: &str) -> Cow<'_, str> {
    let escaped = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            c if escaped(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if escaped(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// What a handler decided about its job.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done: the runner publishes `follow_ups`, then deletes the job.
    Success {
        /// Messages to publish before the job is deleted.
        follow_ups: Vec<Message>,
        /// What the job produced: kept in its record (`[history]`) and sent
        /// to its `reply_to` tube.
        result: Option<serde_json::Value>,
    },
    /// Failed in a way worth retrying: released with back-off while attempts
    /// are left, else buried.
    Transient {
        /// Why, for the log and the queue's stored reason.
        reason: String,
        /// Retry after exactly this long instead of the back-off policy's delay.
        delay: Option<Duration>,
    },
    /// Failed for good: buried.
    Fatal {
        /// Why, for the log and the queue's stored reason.
        reason: String,
    },
    /// Stopped from outside, not by its own failure (an exec child killed
    /// by a signal): fatal while the runner runs, but once the runner is
    /// stopping it is part of the stop (systemd signals every process of a
    /// service at once), and the job is handed back unused.
    Interrupted {
        /// Why, for the log and the queue's stored reason.
        reason: String,
    },
}

impl Outcome {
    /// Success with no follow-up messages.
    pub fn success() -> Outcome {
        Outcome::Success {
            follow_ups: Vec::new(),
            result: None,
        }
    }

    /// Success with a result, kept in the job's record and sent to its
    /// `reply_to` tube.
    pub fn success_with_result(result: impl Into<serde_json::Value>) -> Outcome {
        Outcome::Success {
            follow_ups: Vec::new(),
            result: Some(result.into()),
        }
    }

    /// Success that publishes `follow_ups` before the job is deleted.
    pub fn success_with(follow_ups: Vec<Message>) -> Outcome {
        Outcome::Success {
            follow_ups,
            result: None,
        }
    }

    /// A transient failure retried by the back-off policy.
    pub fn transient(reason: impl Into<String>) -> Outcome {
        Outcome::Transient {
            reason: reason.into(),
            delay: None,
        }
    }

    /// A transient failure retried after exactly `delay`.
    pub fn retry_after(reason: impl Into<String>, delay: Duration) -> Outcome {
        Outcome::Transient {
            reason: reason.into(),
            delay: Some(delay),
        }
    }

    /// A fatal failure: the job is buried.
    pub fn fatal(reason: impl Into<String>) -> Outcome {
        Outcome::Fatal {
            reason: reason.into(),
        }
    }

    /// Work stopped from outside (see [`Outcome::Interrupted`]).
    pub fn interrupted(reason: impl Into<String>) -> Outcome {
        Outcome::Interrupted {
            reason: reason.into(),
        }
    }

    /// The outcome's name for logs and counters.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Success { .. } => "success",
            Outcome::Transient { .. } => "transient",
            Outcome::Fatal { .. } => "fatal",
            Outcome::Interrupted { .. } => "interrupted",
        }
    }
}

/// Where a job came from and what it may ask of the runner while it runs.
#[derive(Clone)]
pub struct Context {
    /// The queue's job id.
    pub job_id: u64,
    /// Which attempt this is, from 1 (the queue's reserve count).
    pub attempt: u32,
    /// The tube the job was reserved from.
    pub tube: String,
    /// The message's request type.
    pub request_type: String,
    services: Arc<dyn JobServices>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("job_id", &self.job_id)
            .field("attempt", &self.attempt)
            .field("tube", &self.tube)
            .field("request_type", &self.request_type)
            .finish_non_exhaustive()
    }
}

/// What the runner offers a running handler: renewing the job's lease and
/// publishing messages. Implemented by the runner; tests may implement it.
pub trait JobServices: Send + Sync {
    /// Restarts the job's TTR now (the runner also does it on its own).
    fn touch(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Publishes a message at once (not waiting for the handler's outcome).
    fn publish(&self, message: Message) -> BoxFuture<'_, Result<u64, String>>;
    /// Adds a line to the job's record (kept when `[history]` is on; the
    /// default does nothing).
    fn event(&self, text: String) {
        let _ = text;
    }
}

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Context {
    /// A context for job `job_id`, attempt `attempt`, served by `services`.
    pub fn new(
        job_id: u64,
        attempt: u32,
        tube: impl Into<String>,
        request_type: impl Into<String>,
        services: Arc<dyn JobServices>,
    ) -> Context {
        Context {
            job_id,
            attempt,
            tube: tube.into(),
            request_type: request_type.into(),
            services,
        }
    }

    /// Restarts the job's TTR now. The runner already touches the job well
    /// before its TTR ends; call this only to be sure after a long pause.
    pub async fn touch(&self) -> Result<(), String> {
        self.services.touch().await
    }

    /// Publishes a message at once; returns its job id.
    pub async fn publish(&self, message: Message) -> Result<u64, String> {
        self.services.publish(message).await
    }

    /// Writes an event against the job: a line with its time, kept in the
    /// job's record (`pulpo status`) when `[history]` is on.
    pub fn event(&self, text: impl Into<String>) {
        self.services.event(text.into());
    }
}

/// A job's code. Built once per request type from its `[handlers.<type>]`
/// table and shared by every job of that type.
pub trait Handler: Send + Sync + 'static {
    /// Runs one job.
    fn handle(&self, message: Message, context: Context) -> BoxFuture<'static, Outcome>;
}

/// Any `Fn(Message, Context) -> impl Future<Output = Outcome>` is a handler.
impl<F, Fut> Handler for F
where
    F: Fn(Message, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    fn handle(&self, message: Message, context: Context) -> BoxFuture<'static, Outcome> {
        Box::pin(self(message, context))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn printable_escapes_control_characters_but_keeps_lines_and_tabs() {
        assert!(matches!(printable("plain\ttext\nline 2 é"), Cow::Borrowed(_)));
        assert_eq!(
            printable("a\x1b[31mb\0c\rd\x7fe\u{85}f\n"),
            "a\\x1b[31mb\\0c\\x0dd\\x7fe\\u{85}f\n"
        );
    }

    /// Records what a handler asked of the runner.
    #[derive(Default)]
    struct Recorder {
        touches: Mutex<u32>,
        published: Mutex<Vec<Message>>,
    }

    impl JobServices for Recorder {
        fn touch(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async move {
                *self.touches.lock().unwrap() += 1;
                Ok(())
            })
        }

        fn publish(&self, message: Message) -> BoxFuture<'_, Result<u64, String>> {
            Box::pin(async move {
                let mut published = self.published.lock().unwrap();
                published.push(message);
                Ok(published.len() as u64)
            })
        }
    }

    #[tokio::test]
    async fn a_closure_is_a_handler_with_a_working_context() {
        let recorder = Arc::new(Recorder::default());
        let handler: Arc<dyn Handler> = Arc::new(|message: Message, ctx: Context| async move {
            ctx.touch().await.unwrap();
            let id = ctx
                .publish(Message::new("audit").with_payload(ctx.job_id.to_string()))
                .await
                .unwrap();
            match message.payload_str() {
                Some("boom") => Outcome::fatal("cannot handle boom"),
                Some(_) if ctx.attempt < 3 => Outcome::retry_after("not yet", Duration::from_secs(2)),
                _ => Outcome::success_with(vec![Message::new("done").with_payload(id.to_string())]),
            }
        });
        let ctx = |attempt| Context::new(7, attempt, "default", "work", recorder.clone());

        let first = handler
            .handle(Message::new("work").with_payload("x"), ctx(1))
            .await;
        assert_eq!(
            first,
            Outcome::Transient {
                reason: "not yet".into(),
                delay: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(first.name(), "transient");
        let third = handler
            .handle(Message::new("work").with_payload("x"), ctx(3))
            .await;
        let Outcome::Success { follow_ups, .. } = &third else {
            panic!("{third:?}")
        };
        assert_eq!(follow_ups[0].payload_str(), Some("2"));
        let fatal = handler
            .handle(Message::new("work").with_payload("boom"), ctx(1))
            .await;
        assert_eq!(fatal, Outcome::fatal("cannot handle boom"));

        assert_eq!(*recorder.touches.lock().unwrap(), 3);
        let published = recorder.published.lock().unwrap();
        assert_eq!(published.len(), 3);
        assert_eq!(published[0].request_type(), "audit");
        assert_eq!(published[0].payload_str(), Some("7"));
        assert!(format!("{:?}", ctx(1)).contains("job_id: 7"));
    }
}
