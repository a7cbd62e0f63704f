//! `pulpo publish`: a message from the flags, put `--count` times in
//! batches, with the new ids printed as each batch is stored.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;

use super::{Failure, parse_duration_arg, parse_time_arg, show};
use crate::config::Settings;
use crate::message::Message;
use crate::queue::{self, NewJob, Queue, QueueError};

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
    /// Hold the job back until this time: RFC 3339, or local YYYY-MM-DD HH:MM[:SS].
    #[arg(long, value_parser = super::schedules::parse_at, value_name = "TIME", conflicts_with = "delay")]
    at: Option<DateTime<Utc>>,
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
    #[arg(long, default_value_t = 1, value_name = "N", conflicts_with = "wait")]
    count: u64,
    /// Wait for the job's result through a fresh reply tube and print it;
    /// exit 0 when it succeeded, 1 when buried or expired, 124 on --timeout.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this long [default: wait for ever].
    #[arg(long, value_parser = parse_duration_arg, value_name = "D", requires = "wait")]
    timeout: Option<Duration>,
}

/// Builds the message `publish` stores, from its flags and the defaults.
fn build_message(args: &PublishArgs, now: DateTime<Utc>) -> Result<Message, Failure> {
    check_request_type(&args.request_type)?;
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
        let instead = match key {
            "request_type" => Some("it is the first argument of pulpo publish"),
            "priority" => Some("use --priority"),
            "delay" => Some("use --delay"),
            "expiration" => Some("use --expires-in or --expiration"),
            "ttr" => Some("use --ttr"),
            "attempts" => {
                Some("the queue counts attempts (each reservation is one); a new job has made none")
            }
            _ => None,
        };
        if let Some(instead) = instead {
            return Err(Failure::usage(format!("--header {key}=...: {instead}")));
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
    if let Some(at) = args.at {
        message.header.delay = Some(super::schedules::check_at(at, now)?);
    }
    if let Some(ttr) = args.ttr {
        message.header.ttr = Some(queue::whole_seconds_ceil(ttr).max(1));
    }
    message.header.expiration = match (args.expires_in, args.expiration) {
        (Some(expires_in), _) => Some(now + chrono_duration(expires_in)?),
        (None, expiration) => expiration,
    };
    check_expiration(args, &message, now)?;
    Ok(message)
}

/// Refuses a request type no `[handlers.<request_type>]` table could be
/// meant by, which the runner would only bury: empty, or with whitespace or
/// control characters (which also garble logs and terminals).
fn check_request_type(request_type: &str) -> Result<(), Failure> {
    let problem = if request_type.is_empty() {
        "is empty"
    } else if request_type.chars().any(char::is_control) {
        "contains a control character"
    } else if request_type.chars().any(char::is_whitespace) {
        "contains whitespace"
    } else {
        return Ok(());
    };
    Err(Failure::usage(format!(
        "request type {request_type:?} {problem}: give the name of a [handlers.<request_type>] table, e.g. send_email"
    )))
}

/// Refuses an expiration that comes before the job could run: in the past,
/// now (`--expires-in 0`), or before its `--delay` ends. Such a job would
/// only be buried (or deleted) unrun.
fn check_expiration(args: &PublishArgs, message: &Message, now: DateTime<Utc>) -> Result<(), Failure> {
    let Some(expiration) = message.header.expiration else {
        return Ok(());
    };
    let flag = if args.expires_in.is_some() {
        "--expires-in"
    } else {
        "--expiration"
    };
    if expiration <= now {
        return Err(Failure::usage(format!(
            "{flag}: the job would expire at {}, which is not in the future (it is now {}); give a later time",
            rfc3339(expiration),
            rfc3339(now)
        )));
    }
    if let Some(ready) = message.header.delay
        && expiration <= ready
    {
        return Err(Failure::usage(format!(
            "{flag}: the job would expire at {}, before --delay makes it ready at {}; expire it later or delay it less",
            rfc3339(expiration),
            rfc3339(ready)
        )));
    }
    Ok(())
}

/// A time for an error message, to the second.
fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
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
        delay: args
            .delay
            .or_else(|| args.at.and_then(|at| (at - now).to_std().ok()))
            .unwrap_or_default(),
        ttr,
        body,
    };
    let tube = &settings.tube;
    if args.wait {
        return publish_and_wait(queue, settings, message, job, args.timeout, json).await;
    }

    let mut out = IdStream::new(json);
    let mut stored = 0u64;
    let stop = put_all(queue, tube, &job, args.count, &mut out, &mut stored).await;
    let so_far = format!(
        "stopped after storing {stored} of {} jobs in tube {tube}",
        args.count
    );
    match stop {
        None => Ok(out.end(None)?),
        Some(Stop::Queue(err)) => {
            let failure = Failure::from(err);
            // The document says what was stored; if stdout fails now too,
            // the error line below still does.
            let _ = out.end(Some(&failure.message));
            Err(Failure {
                code: failure.code,
                message: if args.count > 1 {
                    format!("{so_far}: {}", failure.message)
                } else {
                    failure.message
                },
            })
        }
        Some(Stop::Stdout(err, unprinted)) => {
            let unprinted = match (unprinted.first(), unprinted.last()) {
                (Some(first), Some(last)) => {
                    format!(
                        " (the ids of the last {}, {first} to {last}, were not printed)",
                        unprinted.len()
                    )
                }
                _ => String::new(),
            };
            Err(Failure {
                code: err.exit_code(),
                message: format!("{err}: {so_far}{unprinted}"),
            })
        }
    }
}

/// `publish --wait`: the message with a fresh `reply_to` tube, then its
/// result, read from that tube and deleted.
async fn publish_and_wait(
    queue: &mut dyn Queue,
    settings: &Settings,
    message: Message,
    mut job: NewJob,
    timeout: Option<Duration>,
    json: bool,
) -> Result<(), Failure> {
    let reply_tube = crate::producer::fresh_reply_tube();
    job.body = Bytes::from(message.with_reply_to(reply_tube.clone()).to_json());
    let id = queue.put(&settings.tube, job).await?;
    if !json {
        show::line(&id.to_string())?;
    }
    match crate::producer::wait_for_reply(queue, &reply_tube, timeout).await? {
        Some(reply) => super::history::reply(json, &settings.tube, id, &reply),
        None => Err(super::history::timed_out(
            json,
            &settings.tube,
            id,
            timeout.unwrap_or_default(),
        )),
    }
}

/// Puts `count` copies of `job` into `tube` in batches, writing each batch's
/// ids to `out` once stored and counting them in `stored`; says why it
/// stopped early, if it did.
async fn put_all(
    queue: &mut dyn Queue,
    tube: &str,
    job: &NewJob,
    count: u64,
    out: &mut IdStream,
    stored: &mut u64,
) -> Option<Stop> {
    // The document's opening goes first: a stdout that cannot take it gets
    // nothing stored.
    if let Err(err) = out.open(tube) {
        return Some(Stop::Stdout(err, Vec::new()));
    }
    let mut remaining = count;
    while remaining > 0 {
        // Once nobody reads stdout, stored jobs' ids would be lost: stop.
        if let Err(err) = show::check_reader() {
            return Some(Stop::Stdout(err, Vec::new()));
        }
        let n = remaining.min(PUBLISH_BATCH);
        remaining -= n;
        let batch = (0..n).map(|_| job.clone()).collect();
        let results = match queue.put_many(tube, batch).await {
            Ok(results) => results,
            Err(err) => return Some(Stop::Queue(err)),
        };
        let mut refused = None;
        let mut ids = Vec::with_capacity(results.len());
        for result in results {
            match result {
                Ok(id) => ids.push(id),
                Err(err) => {
                    refused.get_or_insert(err);
                }
            }
        }
        *stored += ids.len() as u64;
        if let Err(err) = out.ids(&ids) {
            return Some(Stop::Stdout(err, ids));
        }
        if let Some(err) = refused {
            return Some(Stop::Queue(err));
        }
    }
    None
}

/// Why a publish stopped before its last batch.
enum Stop {
    /// The queue failed or refused a job.
    Queue(QueueError),
    /// Stdout failed; the ids of the batch stored last, not printed.
    Stdout(show::StdoutError, Vec<u64>),
}

/// The ids as they are stored, on stdout: one per line, or with `--json` one
/// document `{"tube": ..., "ids": [...]}` whose array is written batch by
/// batch, so no count of jobs is held in memory, and which ends with an
/// `"error"` when the publish stopped early.
struct IdStream {
    json: bool,
    /// Ids already written into the JSON array.
    any: bool,
}

impl IdStream {
    fn new(json: bool) -> IdStream {
        IdStream { json, any: false }
    }

    /// Opens the JSON document, before anything is stored.
    fn open(&mut self, tube: &str) -> Result<(), show::StdoutError> {
        if !self.json {
            return Ok(());
        }
        show::write(format!("{{\"tube\":{},\"ids\":[", Value::from(tube)).as_bytes())
    }

    fn ids(&mut self, ids: &[u64]) -> Result<(), show::StdoutError> {
        let mut text = String::new();
        for id in ids {
            if self.json {
                if self.any {
                    text.push(',');
                }
                self.any = true;
                text.push_str(&id.to_string());
            } else {
                text.push_str(&format!("{id}\n"));
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        show::write(text.as_bytes())
    }

    /// Closes the document, with the reason the publish stopped early.
    fn end(&mut self, error: Option<&str>) -> Result<(), show::StdoutError> {
        if !self.json {
            return Ok(());
        }
        match error {
            Some(error) => show::line(&format!("],\"error\":{}}}", Value::from(error))),
            None => show::line("]}"),
        }
    }
}
