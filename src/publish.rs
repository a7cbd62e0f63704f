//! Turning a [`Message`] into a job to store: its priority, delay and TTR
//! from the message's header, its request type's handler table, or the
//! `[defaults]`; shared by `pulpo publish`, the runner's follow-ups and
//! [`crate::handlers::Context::publish`].

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::config::Settings;
use crate::message::Message;
use crate::queue::{NewJob, whole_seconds_ceil};

/// The job that stores `message`, with the header's scheduling fields
/// filled in so the stored message says what the queue was told:
///
/// - priority: the header's, else the request type's handler `priority`,
///   else `defaults.priority`;
/// - TTR: the request type's handler `ttr` (it knows how long its jobs
///   take), else the header's, else `defaults.ttr`; whole seconds, at least 1;
/// - delay: until the header's `delay` time, if it is still ahead of `now`.
pub fn prepare(message: &mut Message, settings: &Settings, now: DateTime<Utc>) -> NewJob {
    let handler = settings.handler(message.request_type());
    let priority = message
        .header
        .priority
        .or_else(|| handler.and_then(|h| h.priority))
        .unwrap_or(settings.defaults.priority);
    let ttr = handler
        .and_then(|h| h.ttr)
        .or_else(|| {
            message
                .header
                .ttr
                .map(|secs| Duration::from_secs(u64::from(secs)))
        })
        .unwrap_or(settings.defaults.ttr);
    let ttr_secs = whole_seconds_ceil(ttr).max(1);
    message.header.priority = Some(priority);
    message.header.ttr = Some(ttr_secs);
    let delay = message
        .header
        .delay
        .and_then(|at| (at - now).to_std().ok())
        .unwrap_or_default();
    NewJob {
        priority,
        delay,
        ttr: Duration::from_secs(u64::from(ttr_secs)),
        body: Bytes::from(message.to_json()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::from_toml_str;

    #[test]
    fn header_then_handler_then_defaults() {
        let settings = from_toml_str(
            "[defaults]\npriority = 7\nttr = 9\n[handlers.slow]\nkind = \"success\"\npriority = 3\nttr = \"2m\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let now = Utc::now();

        let mut plain = Message::new("other");
        let job = prepare(&mut plain, &settings, now);
        assert_eq!(
            (job.priority, job.ttr, job.delay),
            (7, Duration::from_secs(9), Duration::ZERO)
        );
        assert_eq!((plain.header.priority, plain.header.ttr), (Some(7), Some(9)));

        let mut slow = Message::new("slow").with_ttr(5);
        let job = prepare(&mut slow, &settings, now);
        assert_eq!((job.priority, job.ttr), (3, Duration::from_secs(120)));

        let mut urgent = Message::new("slow")
            .with_priority(0)
            .with_delay(now + chrono::Duration::seconds(30));
        let job = prepare(&mut urgent, &settings, now);
        assert_eq!(job.priority, 0);
        assert_eq!(job.delay, Duration::from_secs(30));
        let stored = Message::from_json(&job.body).unwrap();
        assert_eq!(stored.header.priority, Some(0));

        let mut late = Message::new("x").with_delay(now - chrono::Duration::seconds(5));
        assert_eq!(prepare(&mut late, &settings, now).delay, Duration::ZERO);
    }
}
