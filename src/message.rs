//! The message: a job request as JSON, compatible with pulpo-messaging.
//!
//! ```text
//! {"id": "42",
//!  "header": {"request_type": "send_email", "priority": 100,
//!             "delay": "2026-11-23T10:00:00Z", "expiration": "2026-11-24T00:00:00Z",
//!             "ttr": 60, "attempts": 0, "source": "checkout"},
//!  "body": {"payload": "hello", "to": "a@example.com"}}
//! ```
//!
//! Reading ([`Message::from_json`]) is lenient where pulpo-messaging is loose
//! and strict where a wrong value would change what runs:
//!
//! - `id` may be a JSON string or a whole number; see [`MessageId`]. It is
//!   always written as a string, as pulpo-messaging writes it.
//! - times may be RFC 3339 with any offset, or pulpo-messaging's naive local
//!   `YYYY-MM-DD HH:MM:SS[.ffffff]` (also with a `T`); see [`parse_time`].
//!   They are written as RFC 3339 UTC, with a fraction only when non-zero.
//! - `priority`, `ttr` and `attempts` may be whole numbers or strings of
//!   digits; `null` for an optional field means "not set".
//! - unknown keys at the top level, in `header` and in `body` are kept and
//!   written back unchanged.
//!
//! No input makes the reader panic: every problem is a [`MessageError`] that
//! says what is wrong and shows (a bounded prefix of) the offending value.

use std::fmt;

use chrono::{DateTime, Datelike, Local, LocalResult, NaiveDateTime, Offset, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The header keys pulpo gives a meaning to; every other header key is kept
/// in [`Header::extra`].
const HEADER_KEYS: [&str; 7] = [
    "request_type",
    "priority",
    "delay",
    "expiration",
    "ttr",
    "attempts",
    "source",
];

/// The header key naming the tube that receives a job's result message.
pub const REPLY_TO: &str = "reply_to";

/// How many characters of an offending value an error message shows.
const SHOWN_CHARS: usize = 60;

/// A message's id as written in its JSON.
///
/// On both queues the id is the queue's job id, a `u64`; a stored body may
/// lack it (beanstalkd assigns ids after `put`), and whoever reads a job from
/// a queue should set it from the queue ([`Message::set_job_id`]): the
/// queue's id wins over the body's. pulpo-messaging writes ids as strings,
/// and producers other than pulpo may use non-numeric ids (uuids): those are
/// kept as [`MessageId::Other`] so the message stays readable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageId {
    /// A job id: a JSON whole number, or a string of decimal digits in
    /// canonical form (`"42"`, not `"042"`).
    Job(u64),
    /// Any other string id, kept exactly as written.
    Other(String),
}

impl MessageId {
    /// The job id, when the id is one.
    pub fn job_id(&self) -> Option<u64> {
        match self {
            MessageId::Job(id) => Some(*id),
            MessageId::Other(_) => None,
        }
    }

    /// Reads an id from its string form: canonical decimal digits are a
    /// [`MessageId::Job`], anything else is kept as [`MessageId::Other`].
    pub fn from_text(text: &str) -> MessageId {
        match text.parse::<u64>() {
            Ok(id) if id.to_string() == text => MessageId::Job(id),
            _ => MessageId::Other(text.to_owned()),
        }
    }
}

impl From<u64> for MessageId {
    fn from(id: u64) -> MessageId {
        MessageId::Job(id)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageId::Job(id) => write!(f, "{id}"),
            MessageId::Other(text) => f.write_str(text),
        }
    }
}

/// A message's header: routing and scheduling fields, plus any other keys a
/// producer set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Header {
    /// Selects the handler (`[handlers.<request_type>]` in pulpo.toml).
    /// Never empty in a message read by [`Message::from_json`].
    pub request_type: String,
    /// The job's priority, 0 most urgent; `None` = the config's default.
    pub priority: Option<u32>,
    /// Not before this time: publish turns it into the queue's delay.
    pub delay: Option<DateTime<Utc>>,
    /// Not after this time: a job that starts later is buried (or deleted).
    pub expiration: Option<DateTime<Utc>>,
    /// Time to run in whole seconds; `None` = the config's default.
    pub ttr: Option<u32>,
    /// Attempts so far as the producer counted them (informational: the
    /// runner counts attempts from the queue).
    pub attempts: Option<u32>,
    /// Who published the message, for logs.
    pub source: Option<String>,
    /// Every other header key, kept and written back unchanged.
    pub extra: Map<String, Value>,
}

/// A job request: which handler, when, and the data it works on. Handlers
/// see the whole message, not just the payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// The queue's job id, when known; see [`MessageId`].
    pub id: Option<MessageId>,
    /// Routing and scheduling fields.
    pub header: Header,
    /// The data: usually `payload` (often a string, but any JSON) plus any
    /// other keys the producer set, all kept.
    pub body: Map<String, Value>,
    /// Top-level keys other than `id`, `header` and `body`, kept and written
    /// back unchanged.
    pub extra: Map<String, Value>,
}

/// Why bytes are not a message. Messages name the field and show the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Zero bytes, or only whitespace.
    #[error("the job body is empty, not a JSON message")]
    Empty,
    /// Not UTF-8, so not JSON.
    #[error("the job body is not UTF-8 text (invalid byte at offset {offset}), not a JSON message")]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// Not valid JSON.
    #[error("the job body is not valid JSON: {reason}")]
    NotJson {
        /// serde_json's reason, with line and column.
        reason: String,
    },
    /// Valid JSON, but not an object.
    #[error("the job body is JSON {found}, not a message object {{\"header\": ..., \"body\": ...}}")]
    NotAnObject {
        /// What it is instead, e.g. "a list".
        found: String,
    },
    /// A required field is absent (or null).
    #[error("the message has no \"{field}\"")]
    Missing {
        /// Dotted path, e.g. `header.request_type`.
        field: &'static str,
    },
    /// A field has the wrong type or an out-of-range value.
    #[error("the message's \"{field}\" must be {expected}, found {found}")]
    InvalidField {
        /// Dotted path, e.g. `header.priority`.
        field: &'static str,
        /// What would be accepted.
        expected: &'static str,
        /// The offending value, shortened.
        found: String,
    },
    /// A time field that is not a date and time in an accepted form.
    #[error("the message's \"{field}\" is not a date and time: {error}")]
    InvalidTime {
        /// Dotted path, e.g. `header.delay`.
        field: &'static str,
        /// What was wrong with it (shown in this error's message, so not
        /// also exposed as its `source()`).
        error: TimeError,
    },
}

/// A time that is not in an accepted form (see [`parse_time`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected RFC 3339 such as \"2026-11-23T10:00:00Z\", or \"YYYY-MM-DD HH:MM:SS[.ffffff]\" in local time, \
     found {found}"
)]
pub struct TimeError {
    /// The offending value, quoted and shortened.
    pub found: String,
}

impl Message {
    /// A message for `request_type`, with no id, no header options and an
    /// empty body.
    pub fn new(request_type: impl Into<String>) -> Message {
        Message {
            header: Header {
                request_type: request_type.into(),
                ..Header::default()
            },
            ..Message::default()
        }
    }

    /// The handler selector, `header.request_type`.
    pub fn request_type(&self) -> &str {
        &self.header.request_type
    }

    /// `body.payload`, if set (usually a string, but any JSON).
    pub fn payload(&self) -> Option<&Value> {
        self.body.get("payload")
    }

    /// `body.payload` when it is a string.
    pub fn payload_str(&self) -> Option<&str> {
        self.payload().and_then(Value::as_str)
    }

    /// The job id, when the message's id is one.
    pub fn job_id(&self) -> Option<u64> {
        self.id.as_ref().and_then(MessageId::job_id)
    }

    /// Sets the id to the queue's job id (the queue's id wins over the body's).
    pub fn set_job_id(&mut self, id: u64) {
        self.id = Some(MessageId::Job(id));
    }

    /// Whether the message's expiration has passed at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.header.expiration.is_some_and(|expiration| expiration <= now)
    }

    /// Sets the id to a job id.
    pub fn with_id(mut self, id: u64) -> Message {
        self.set_job_id(id);
        self
    }

    /// Sets `body.payload`.
    pub fn with_payload(mut self, payload: impl Into<Value>) -> Message {
        self.body.insert("payload".to_owned(), payload.into());
        self
    }

    /// Sets one body key (other than or including `payload`).
    pub fn with_body_field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Message {
        self.body.insert(key.into(), value.into());
        self
    }

    /// Sets `header.priority`.
    pub fn with_priority(mut self, priority: u32) -> Message {
        self.header.priority = Some(priority);
        self
    }

    /// Sets `header.delay`, the earliest time the job may run.
    pub fn with_delay(mut self, not_before: DateTime<Utc>) -> Message {
        self.header.delay = Some(not_before);
        self
    }

    /// Sets `header.expiration`, the latest time the job may start.
    pub fn with_expiration(mut self, not_after: DateTime<Utc>) -> Message {
        self.header.expiration = Some(not_after);
        self
    }

    /// Sets `header.ttr` in whole seconds.
    pub fn with_ttr(mut self, seconds: u32) -> Message {
        self.header.ttr = Some(seconds);
        self
    }

    /// Sets `header.source`.
    pub fn with_source(mut self, source: impl Into<String>) -> Message {
        self.header.source = Some(source.into());
        self
    }

    /// The tube that receives the result message when the job ends (the
    /// `reply_to` header key), if the producer named one.
    pub fn reply_to(&self) -> Option<&str> {
        self.header.extra.get(REPLY_TO).and_then(Value::as_str)
    }

    /// Names the tube that receives the result message when the job ends.
    pub fn with_reply_to(self, tube: impl Into<String>) -> Message {
        self.with_header(REPLY_TO, tube.into())
    }

    /// Sets a header key pulpo does not interpret (kept in [`Header::extra`]).
    /// Known keys (`priority`, `delay`, ...) have their own setters; setting
    /// one here would be ignored on the next read, so it is refused.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Value>) -> Message {
        let key = key.into();
        if !HEADER_KEYS.contains(&key.as_str()) {
            self.header.extra.insert(key, value.into());
        }
        self
    }

    /// Marks the message as fired by schedule `name` for the tick at `tick`:
    /// the header keys [`SCHEDULE_KEY`] and [`SCHEDULE_TICK_KEY`], which
    /// together name the tick, so a handler can deduplicate on them.
    pub fn with_schedule(self, name: &str, tick: DateTime<Utc>) -> Message {
        self.with_header(SCHEDULE_KEY, name)
            .with_header(SCHEDULE_TICK_KEY, format_time(tick))
    }

    /// The schedule and tick that fired this message, if a schedule did.
    pub fn schedule(&self) -> Option<(&str, DateTime<Utc>)> {
        let name = self.header.extra.get(SCHEDULE_KEY)?.as_str()?;
        let tick = self.header.extra.get(SCHEDULE_TICK_KEY)?.as_str()?;
        Some((name, parse_time_in(tick, &Utc).ok()?))
    }

    /// Reads a message from a job body. Never panics; see the module docs
    /// for what is accepted.
    pub fn from_json(bytes: &[u8]) -> Result<Message, MessageError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(MessageError::Empty);
        }
        if let Err(err) = std::str::from_utf8(bytes) {
            return Err(MessageError::NotUtf8 {
                offset: err.valid_up_to(),
            });
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|err| MessageError::NotJson {
            reason: err.to_string(),
        })?;
        Message::from_json_value(value)
    }

    /// Reads a message from an already parsed JSON value.
    pub fn from_json_value(value: Value) -> Result<Message, MessageError> {
        let Value::Object(mut top) = value else {
            return Err(MessageError::NotAnObject {
                found: describe(&value),
            });
        };
        let id = match top.shift_remove("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(MessageId::from_text(&text)),
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().map(MessageId::Job),
            Some(other) => {
                return Err(invalid("id", "a string or a whole number ≥ 0", &other));
            }
        };
        let mut header = match top.shift_remove("header") {
            None | Some(Value::Null) => return Err(MessageError::Missing { field: "header" }),
            Some(Value::Object(header)) => header,
            Some(other) => return Err(invalid("header", "a JSON object", &other)),
        };
        let body = match top.shift_remove("body") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(body)) => body,
            Some(other) => return Err(invalid("body", "a JSON object", &other)),
        };
        let request_type = match header.shift_remove("request_type") {
            None | Some(Value::Null) => {
                return Err(MessageError::Missing {
                    field: "header.request_type",
                });
            }
            Some(Value::String(text)) if !text.is_empty() => text,
            Some(other) => return Err(invalid("header.request_type", "a non-empty string", &other)),
        };
        let header = Header {
            request_type,
            priority: take_u32(&mut header, "priority", "header.priority")?,
            delay: take_time(&mut header, "delay", "header.delay")?,
            expiration: take_time(&mut header, "expiration", "header.expiration")?,
            ttr: take_u32(&mut header, "ttr", "header.ttr")?,
            attempts: take_u32(&mut header, "attempts", "header.attempts")?,
            source: match header.shift_remove("source") {
                None | Some(Value::Null) => None,
                Some(Value::String(text)) => Some(text),
                Some(other) => return Err(invalid("header.source", "a string", &other)),
            },
            extra: header,
        };
        Ok(Message {
            id,
            header,
            body,
            extra: top,
        })
    }

    /// The message as JSON bytes: `id` (as a string, when set), `header`
    /// (set fields only, times as RFC 3339 UTC, then the extra keys), `body`,
    /// then any extra top-level keys.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a `Value` built from strings, numbers and maps cannot fail.
        serde_json::to_vec(&self.to_json_value()).unwrap_or_default()
    }

    /// The message as a JSON value (see [`Message::to_json`]).
    pub fn to_json_value(&self) -> Value {
        let mut top = Map::new();
        if let Some(id) = &self.id {
            top.insert("id".to_owned(), Value::String(id.to_string()));
        }
        let h = &self.header;
        let mut header = Map::new();
        header.insert("request_type".to_owned(), Value::String(h.request_type.clone()));
        if let Some(priority) = h.priority {
            header.insert("priority".to_owned(), priority.into());
        }
        if let Some(delay) = h.delay {
            header.insert("delay".to_owned(), Value::String(format_time(delay)));
        }
        if let Some(expiration) = h.expiration {
            header.insert("expiration".to_owned(), Value::String(format_time(expiration)));
        }
        if let Some(ttr) = h.ttr {
            header.insert("ttr".to_owned(), ttr.into());
        }
        if let Some(attempts) = h.attempts {
            header.insert("attempts".to_owned(), attempts.into());
        }
        if let Some(source) = &h.source {
            header.insert("source".to_owned(), Value::String(source.clone()));
        }
        for (key, value) in &h.extra {
            if !HEADER_KEYS.contains(&key.as_str()) {
                header.insert(key.clone(), value.clone());
            }
        }
        top.insert("header".to_owned(), Value::Object(header));
        top.insert("body".to_owned(), Value::Object(self.body.clone()));
        for (key, value) in &self.extra {
            if !matches!(key.as_str(), "id" | "header" | "body") {
                top.insert(key.clone(), value.clone());
            }
        }
        Value::Object(top)
    }
}

impl fmt::Display for Message {
    /// The message's JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json_value())
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Message, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Message::from_json_value(value).map_err(serde::de::Error::custom)
    }
}

/// The header key naming the schedule that fired a message.
pub const SCHEDULE_KEY: &str = "schedule";

/// The header key holding the time (RFC 3339 UTC) of the schedule's tick
/// that fired a message; with [`SCHEDULE_KEY`], a key to deduplicate on.
pub const SCHEDULE_TICK_KEY: &str = "schedule_tick";

/// The header key, on a message fired to catch up after downtime, holding
/// how many ticks were missed (the message stands for all of them).
pub const SCHEDULE_MISSED_KEY: &str = "schedule_missed";

/// Formats a time as RFC 3339 UTC with a `Z`, with a fraction of a second
/// (3, 6 or 9 digits) only when it is non-zero: `2026-11-23T10:00:00Z`.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses a time in any accepted form, in the machine's local time zone for
/// the naive forms:
///
/// - RFC 3339 with any offset (`2026-11-23T10:00:00Z`,
///   `2026-11-23T11:00:00.5+01:00`), converted to UTC;
/// - pulpo-messaging's naive local `YYYY-MM-DD HH:MM:SS[.ffffff]`, or the
///   same with a `T` (`YYYY-MM-DDTHH:MM:SS[.ffffff]`).
///
/// A naive time that happens twice (the hour repeated when clocks go back)
/// is read as the earlier of the two; a naive time that never happens (the
/// hour skipped when clocks go forward) is read with the offset in force
/// just before the skip, so 02:30 in a 02:00→03:00 jump is the instant
/// shown as 03:30 afterwards. Both match Python's `fold=0`, i.e. what
/// pulpo-messaging's `datetime.timestamp()` does.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, TimeError> {
    parse_time_in(text, &Local)
}

/// [`parse_time`] with naive times read in `zone` instead of the local one.
///
/// Only instants in the years 0000 to 9999 (UTC) are accepted: those are what RFC 3339 can
/// write, so every time read here is written back by [`format_time`] in a form it reads.
pub fn parse_time_in<Tz: TimeZone>(text: &str, zone: &Tz) -> Result<DateTime<Utc>, TimeError> {
    let time = parse_any_year(text, zone)?;
    if (0..=9999).contains(&time.year()) {
        Ok(time)
    } else {
        Err(TimeError { found: quote(text) })
    }
}

/// [`parse_time_in`] without the year range.
fn parse_any_year<Tz: TimeZone>(text: &str, zone: &Tz) -> Result<DateTime<Utc>, TimeError> {
    let trimmed = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(time.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f"))
        .map_err(|_| TimeError { found: quote(text) })?;
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(time) => Ok(time.with_timezone(&Utc)),
        LocalResult::Ambiguous(earliest, _) => Ok(earliest.with_timezone(&Utc)),
        LocalResult::None => {
            // In a gap: use the offset in force a day before (gaps are
            // months apart), as Python's fold=0 does.
            let before = naive
                .checked_sub_signed(chrono::TimeDelta::days(1))
                .unwrap_or(naive);
            let offset = match zone.offset_from_local_datetime(&before) {
                LocalResult::Single(offset) | LocalResult::Ambiguous(offset, _) => offset.fix(),
                LocalResult::None => return Err(TimeError { found: quote(text) }),
            };
            offset
                .from_local_datetime(&naive)
                .single()
                .map(|time| time.with_timezone(&Utc))
                .ok_or_else(|| TimeError { found: quote(text) })
        }
    }
}

fn take_u32(
    header: &mut Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<u32>, MessageError> {
    const EXPECTED: &str = "a whole number from 0 to 4294967295";
    match header.shift_remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(invalid(field, EXPECTED, &Value::Number(n))),
        },
        Some(Value::String(text)) => match text.parse::<u32>() {
            Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
            _ => Err(invalid(field, EXPECTED, &Value::String(text))),
        },
        Some(other) => Err(invalid(field, EXPECTED, &other)),
    }
}

fn take_time(
    header: &mut Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<DateTime<Utc>>, MessageError> {
    match header.shift_remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_time(&text)
            .map(Some)
            .map_err(|error| MessageError::InvalidTime { field, error }),
        Some(other) => Err(MessageError::InvalidTime {
            field,
            error: TimeError {
                found: describe(&other),
            },
        }),
    }
}

fn invalid(field: &'static str, expected: &'static str, found: &Value) -> MessageError {
    MessageError::InvalidField {
        field,
        expected,
        found: describe(found),
    }
}

/// A short description of a JSON value for an error message: scalars as
/// written (long strings cut), containers by kind.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(text) => quote(text),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// Quotes `text` as a JSON-ish literal, cut after [`SHOWN_CHARS`] characters.
fn quote(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{FixedOffset, NaiveDate};

    use super::*;

    /// A zone at +01:00 that moves to +02:00 at 2026-03-29 01:00 UTC and back
    /// at 2026-10-25 01:00 UTC (central Europe in 2026).
    #[derive(Clone, Copy, Debug)]
    struct Cet;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, min, 0))
            .expect("valid test date")
    }

    fn summer(at_utc: &NaiveDateTime) -> bool {
        *at_utc >= utc(2026, 3, 29, 1, 0) && *at_utc < utc(2026, 10, 25, 1, 0)
    }

    fn offset(hours: i32) -> FixedOffset {
        FixedOffset::east_opt(hours * 3600).expect("valid offset")
    }

    impl TimeZone for Cet {
        type Offset = FixedOffset;

        fn from_offset(_: &FixedOffset) -> Cet {
            Cet
        }

        fn offset_from_local_date(&self, _: &chrono::NaiveDate) -> LocalResult<FixedOffset> {
            LocalResult::None
        }

        fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<FixedOffset> {
            let as_winter = *local - chrono::TimeDelta::hours(1);
            let as_summer = *local - chrono::TimeDelta::hours(2);
            match (!summer(&as_winter), summer(&as_summer)) {
                (true, true) => LocalResult::Ambiguous(offset(2), offset(1)),
                (true, false) => LocalResult::Single(offset(1)),
                (false, true) => LocalResult::Single(offset(2)),
                (false, false) => LocalResult::None,
            }
        }

        fn offset_from_utc_date(&self, _: &chrono::NaiveDate) -> FixedOffset {
            offset(1)
        }

        fn offset_from_utc_datetime(&self, at: &NaiveDateTime) -> FixedOffset {
            if summer(at) { offset(2) } else { offset(1) }
        }
    }

    #[test]
    fn naive_times_follow_the_zone_and_python_fold_zero() {
        let parse = |text| parse_time_in(text, &Cet).map(|t| t.naive_utc());
        assert_eq!(parse("2026-01-10 12:00:00"), Ok(utc(2026, 1, 10, 11, 0)));
        assert_eq!(parse("2026-07-10T12:00:00"), Ok(utc(2026, 7, 10, 10, 0)));
        // 02:30 on 2026-10-25 happens twice: the earlier (summer time) wins.
        assert_eq!(parse("2026-10-25 02:30:00"), Ok(utc(2026, 10, 25, 0, 30)));
        // 02:30 on 2026-03-29 never happens: read with winter's +01:00.
        assert_eq!(parse("2026-03-29 02:30:00"), Ok(utc(2026, 3, 29, 1, 30)));
    }

    #[test]
    fn rfc3339_any_offset_and_fractions() {
        let t = parse_time("2026-11-23T11:00:00.250+01:00").expect("valid");
        assert_eq!(format_time(t), "2026-11-23T10:00:00.250Z");
        let t = parse_time("2026-11-23T10:00:00Z").expect("valid");
        assert_eq!(format_time(t), "2026-11-23T10:00:00Z");
        let t = parse_time_in("2026-11-23 10:00:00.123456", &Utc).expect("valid");
        assert_eq!(format_time(t), "2026-11-23T10:00:00.123456Z");
        assert!(parse_time("tomorrow").is_err());
        assert!(parse_time("2026-13-01 00:00:00").is_err());
    }

    #[test]
    fn long_values_are_cut_in_errors() {
        let long = "x".repeat(1000);
        let err = parse_time(&long).unwrap_err();
        assert!(err.found.len() < 80, "{}", err.found);
    }
}
