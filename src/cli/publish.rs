//! `pulpo publish`: a message from the flags, put `--count` times in
//! batches, with the new ids printed as each batch is stored.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::{Value, json};

use super::{Failure, parse_duration_arg, parse_time_arg, show};
use crate::config::Settings;
use crate::message::Message;
use crate::queue::{self, NewJob, Queue};

/// How many messages `publish --count` hands the queue at once: each batch's
/// ids are printed as soon as the queue has stored it.
const PUBLISH_BATCH: u64 = 1_000;

#[derive(Debug, Args)]
pub(super) struct PublishArgs {
    /// The message's request type (selects the handler).
    request_type: String,
    /// The payload, stored as body.payload.
    payload: Option<String>,
    /// Priority: 0 is most urgent [default: the handler's priority, else defaults.priority].
    #[arg(long, value_name = "N")]
    priority: Option<u32>,
    /// Hold the job back this long before it is ready, e.g. 10s.
    #[arg(long, value_parser = parse_duration_arg, value_name = "D")]
    delay: Option<Duration>,
    /// Time to run once reserved [default: the handler's ttr, else defaults.ttr].
    #[arg(long, value_parser = parse_duration_arg, value_name = "D")]
    ttr: Option<Duration>,
    /// The job expires this long from now.
    #[arg(long, value_parser = parse_duration_arg, value_name = "D", conflicts_with = "expiration")]
    expires_in: Option<Duration>,
    /// The job expires at this time (RFC 3339, or YYYY-MM-DD HH:MM:SS local).
    #[arg(long, value_parser = parse_time_arg, value_name = "TIME")]
    expiration: Option<DateTime<Utc>>,
    /// An extra header field, KEY=VALUE (VALUE read as JSON when it parses).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// The message body as a JSON object; the payload argument, if given, sets its "payload".
    #[arg(long, value_name = "JSON")]
    body_json: Option<String>,
    /// Publish this many copies.
    #[arg(long, default_value_t = 1, value_name = "N")]
    count: u64,
}

/// Builds the message `publish` stores, from its flags and the defaults.
fn build_message(args: &PublishArgs, now: DateTime<Utc>) -> Result<Message, Failure> {
    let mut message = Message::new(&args.request_type);
    if let Some(body_json) = &args.body_json {
        let body: Value = serde_json::from_str(body_json)
            .map_err(|err| Failure::usage(format!("--body-json is not valid JSON: {err}")))?;
        let Value::Object(body) = body else {
            return Err(Failure::usage(
                "--body-json must be a JSON object, e.g. '{\"to\": \"a@example.com\"}'",
            ));
        };
        message.body = body;
    }
    if let Some(payload) = &args.payload {
        message
            .body
            .insert("payload".to_owned(), Value::String(payload.clone()));
    }
    for pair in &args.headers {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Failure::usage(format!("--header {pair:?}: expected KEY=VALUE")));
        };
        if matches!(
            key,
            "request_type" | "priority" | "delay" | "expiration" | "ttr" | "attempts"
        ) {
            return Err(Failure::usage(format!(
                "--header {key}=...: {key} has its own flag (see pulpo publish --help)"
            )));
        }
        if key.is_empty() {
            return Err(Failure::usage(format!("--header {pair:?}: the key is empty")));
        }
        if key == "source" {
            message.header.source = Some(value.to_owned());
            continue;
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        message.header.extra.insert(key.to_owned(), value);
    }
    message.header.priority = args.priority;
    if let Some(delay) = args.delay {
        message.header.delay = Some(now + chrono_duration(delay)?);
    }
    if let Some(ttr) = args.ttr {
        message.header.ttr = Some(queue::whole_seconds_ceil(ttr).max(1));
    }
    message.header.expiration = match (args.expires_in, args.expiration) {
        (Some(expires_in), _) => Some(now + chrono_duration(expires_in)?),
        (None, expiration) => expiration,
    };
    Ok(message)
}

fn chrono_duration(duration: Duration) -> Result<chrono::Duration, Failure> {
    chrono::Duration::from_std(duration)
        .map_err(|_| Failure::usage(format!("duration {duration:?} is too long")))
}

pub(super) async fn publish(
    queue: &mut dyn Queue,
    settings: &Settings,
    args: PublishArgs,
    json: bool,
) -> Result<(), Failure> {
    if args.count == 0 {
        return Err(Failure::usage("--count must be at least 1"));
    }
    let now = Utc::now();
    let mut message = build_message(&args, now)?;
    // As in `publish::prepare`, the request type's handler table comes
    // before `[defaults]`; a flag comes before both.
    let handler = settings.handler(&args.request_type);
    let priority = args
        .priority
        .or_else(|| handler.and_then(|h| h.priority))
        .unwrap_or(settings.defaults.priority);
    message.header.priority = Some(priority);
    let ttr = args
        .ttr
        .or_else(|| handler.and_then(|h| h.ttr))
        .unwrap_or(settings.defaults.ttr);
    message.header.ttr = Some(queue::whole_seconds_ceil(ttr).max(1));
    let body = Bytes::from(message.to_json());
    let job = NewJob {
        priority,
        delay: args.delay.unwrap_or_default(),
        ttr,
        body,
    };
    let tube = &settings.tube;

    let mut ids = Vec::new();
    let mut remaining = args.count;
    while remaining > 0 {
        let n = remaining.min(PUBLISH_BATCH);
        remaining -= n;
        let batch = (0..n).map(|_| job.clone()).collect();
        for result in queue.put_many(tube, batch).await? {
            let id = result?;
            if !json {
                println!("{id}");
            }
            ids.push(id);
        }
    }
    if json {
        show::print_json(&json!({"tube": tube, "ids": ids}));
    }
    Ok(())
}
