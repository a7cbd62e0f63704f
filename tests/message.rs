//! The message model against every fixture under fixtures/messages: good
//! ones parse and round-trip with unknown keys unchanged, bad ones give the
//! expected error; plus property tests (no bytes make the reader panic;
//! generated messages round-trip).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use proptest::prelude::*;
use pulpo::message::{Message, MessageError, MessageId, parse_time};
use serde_json::{Map, Value, json};

fn fixture_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/messages")
        .join(sub)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

fn good(name: &str) -> (Message, Value) {
    let bytes = read(&fixture_dir("").join(name));
    let message = Message::from_json(&bytes).unwrap_or_else(|err| panic!("{name}: {err}"));
    let original: Value = serde_json::from_slice(&bytes).expect("good fixtures are JSON");
    (message, original)
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test time")
        .with_timezone(&Utc)
}

/// A naive time in the machine's zone, as the reader must interpret it.
fn local(text: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").expect("test time");
    Local
        .from_local_datetime(&naive)
        .earliest()
        .expect("test times avoid DST gaps")
        .with_timezone(&Utc)
}

const HEADER_KEYS: [&str; 7] = [
    "request_type",
    "priority",
    "delay",
    "expiration",
    "ttr",
    "attempts",
    "source",
];

/// Every good fixture parses, and writing it then reading it back gives the
/// same message; unknown keys (top level, header, body) come out unchanged.
#[test]
fn every_good_fixture_round_trips() {
    let mut count = 0;
    for entry in std::fs::read_dir(fixture_dir("")).expect("fixtures/messages") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        count += 1;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        let (message, original) = good(&name);
        let written = message.to_json();
        let again = Message::from_json(&written).unwrap_or_else(|err| panic!("{name} re-read: {err}"));
        assert_eq!(again, message, "{name}");
        assert_eq!(again.to_json(), written, "{name}: writing is stable");

        let out: Value = serde_json::from_slice(&written).expect("to_json writes JSON");
        let (Value::Object(orig), Value::Object(out)) = (&original, &out) else {
            panic!("{name}: objects")
        };
        for (key, value) in orig {
            if !matches!(key.as_str(), "id" | "header" | "body") {
                assert_eq!(out.get(key), Some(value), "{name}: top-level {key}");
            }
        }
        let orig_header = orig["header"].as_object().expect("header");
        for (key, value) in orig_header {
            if !HEADER_KEYS.contains(&key.as_str()) {
                assert_eq!(out["header"].get(key), Some(value), "{name}: header.{key}");
            }
        }
        match &orig.get("body") {
            Some(Value::Object(body)) => assert_eq!(out["body"].as_object(), Some(body), "{name}: body"),
            _ => assert_eq!(
                out["body"],
                json!({}),
                "{name}: a missing or null body is written as {{}}"
            ),
        }
    }
    assert!(count >= 10, "expected the good fixtures, found {count}");
}

#[test]
fn full_message_is_written_back_exactly() {
    let (message, original) = good("full.json");
    assert_eq!(message.id, Some(MessageId::Job(42)));
    assert_eq!(message.job_id(), Some(42));
    assert_eq!(message.request_type(), "send_email");
    assert_eq!(message.header.priority, Some(100));
    assert_eq!(message.header.delay, Some(utc("2026-11-23T10:00:00Z")));
    assert_eq!(message.header.expiration, Some(utc("2026-11-24T00:00:00Z")));
    assert_eq!(message.header.ttr, Some(60));
    assert_eq!(message.header.attempts, Some(0));
    assert_eq!(message.header.source.as_deref(), Some("checkout"));
    assert_eq!(message.payload(), Some(&json!("hello")));
    assert_eq!(message.payload_str(), Some("hello"));
    assert_eq!(message.body["to"], "a@example.com");
    let written: Value = serde_json::from_slice(&message.to_json()).expect("JSON");
    assert_eq!(written, original);
    // Key order too: id, header (known keys first), body.
    assert_eq!(
        String::from_utf8(message.to_json()).expect("utf-8"),
        r#"{"id":"42","header":{"request_type":"send_email","priority":100,"delay":"2026-11-23T10:00:00Z","expiration":"2026-11-24T00:00:00Z","ttr":60,"attempts":0,"source":"checkout"},"body":{"payload":"hello","to":"a@example.com"}}"#
    );
}

/// The zone `naive_dates_are_local_time` runs in: one with daylight saving
/// time, so that a reader that ignored the zone, or used the offset of the
/// wrong season, gives a different instant.
const DST_ZONE: &str = "Europe/Berlin";

/// Set in the child process that runs the test under [`DST_ZONE`].
const IN_DST_ZONE: &str = "PULPO_TEST_IN_DST_ZONE";

#[test]
fn naive_dates_are_local_time() {
    if std::env::var_os(IN_DST_ZONE).is_none() {
        // The machine's own zone is often UTC, where local time proves
        // nothing: run this test again in a child whose TZ has DST.
        let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", "naive_dates_are_local_time", "--test-threads", "1"])
            .env("TZ", DST_ZONE)
            .env(IN_DST_ZONE, "1")
            .output()
            .expect("run the test under TZ");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "under TZ={DST_ZONE}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    // Summer: CEST, UTC+2.
    let (message, _) = good("naive_dates.json");
    assert_eq!(message.id, Some(MessageId::Job(7)));
    assert_eq!(message.header.delay, Some(utc("2026-06-15T08:30:00Z")));
    assert_eq!(
        message.header.expiration,
        Some(utc("2026-06-16T06:00:00.123456Z"))
    );
    assert_eq!(message.header.delay, Some(local("2026-06-15 10:30:00")));
    let written: Value = serde_json::from_slice(&message.to_json()).expect("JSON");
    assert_eq!(written["header"]["delay"], "2026-06-15T08:30:00Z");
    assert_eq!(written["header"]["expiration"], "2026-06-16T06:00:00.123456Z");

    // Winter: CET, UTC+1.
    let (message, _) = good("naive_t_dates.json");
    assert_eq!(message.id, None);
    assert_eq!(message.header.delay, Some(utc("2026-01-10T11:00:00Z")));
    assert_eq!(message.header.expiration, Some(utc("2026-01-11T11:00:00.5Z")));
}

#[test]
fn offsets_become_utc_with_fractions_only_when_set() {
    let (message, _) = good("offset_dates.json");
    assert_eq!(message.header.delay, Some(utc("2026-11-23T10:00:00Z")));
    assert_eq!(message.header.expiration, Some(utc("2026-11-23T10:00:00.250Z")));
    let written: Value = serde_json::from_slice(&message.to_json()).expect("JSON");
    assert_eq!(written["header"]["delay"], "2026-11-23T10:00:00Z");
    assert_eq!(written["header"]["expiration"], "2026-11-23T10:00:00.250Z");
}

#[test]
fn ids_in_every_form() {
    let (message, _) = good("numeric_id.json");
    assert_eq!(message.id, Some(MessageId::Job(u64::MAX)));
    let written: Value = serde_json::from_slice(&message.to_json()).expect("JSON");
    assert_eq!(
        written["id"], "18446744073709551615",
        "ids are written as strings, as pulpo-messaging does"
    );

    let (message, original) = good("uuid_id.json");
    assert_eq!(
        message.id,
        Some(MessageId::Other(
            "5f0c2a8e-9b1d-4c3e-8f7a-2d6b1e0c9a4f".to_owned()
        ))
    );
    assert_eq!(message.job_id(), None);
    let written: Value = serde_json::from_slice(&message.to_json()).expect("JSON");
    assert_eq!(written["id"], original["id"]);

    let (message, _) = good("leading_zero_id.json");
    assert_eq!(
        message.id,
        Some(MessageId::Other("0042".to_owned())),
        "kept exactly as written"
    );

    // The queue's id wins over the body's.
    let (mut message, _) = good("uuid_id.json");
    message.set_job_id(17);
    assert_eq!(message.job_id(), Some(17));
}

#[test]
fn nulls_mean_unset_and_strings_of_digits_are_numbers() {
    let (message, _) = good("nulls.json");
    assert_eq!(message, Message::new("send_email"));
    assert_eq!(
        message.to_json(),
        br#"{"header":{"request_type":"send_email"},"body":{}}"#
    );

    let (message, _) = good("string_numbers.json");
    assert_eq!(
        (
            message.header.priority,
            message.header.ttr,
            message.header.attempts
        ),
        (Some(100), Some(60), Some(2))
    );

    let (message, _) = good("minimal.json");
    assert_eq!(message, Message::new("ping"));
    assert_eq!(message.payload(), None);
}

#[test]
fn unknown_and_nested_keys_are_kept() {
    let (message, _) = good("unknown_keys.json");
    assert_eq!(message.header.extra["retries_hint"], 3);
    assert_eq!(
        message.header.extra["routing"],
        json!({"region": "eu", "shards": [1, 2]})
    );
    assert_eq!(
        message.header.extra["flag"],
        Value::Null,
        "null in an unknown key is kept"
    );
    assert_eq!(message.extra["trace_id"], "abc-123");
    assert_eq!(message.body["meta"], json!({"x": 1.5, "y": true, "z": null}));

    let (message, original) = good("nested_body.json");
    assert_eq!(message.payload(), Some(&original["body"]["payload"]));
    assert_eq!(message.body["nested"]["unicode"], "héllo ☃ 🐙");

    let (message, _) = good("payload_kinds.json");
    assert_eq!(message.payload(), Some(&json!(12345)));
    assert_eq!(message.payload_str(), None);
}

/// Each bad fixture and the exact error it gives.
const BAD: &[(&str, &str)] = &[
    ("empty.json", "the job body is empty, not a JSON message"),
    ("whitespace.json", "the job body is empty, not a JSON message"),
    (
        "not_json.txt",
        "the job body is not valid JSON: expected value at line 1 column 1",
    ),
    (
        "trailing.json",
        "the job body is not valid JSON: trailing characters at line 1 column 47",
    ),
    (
        "truncated.json",
        "the job body is not valid JSON: EOF while parsing a string at line 1 column 60",
    ),
    (
        "too_deep.json",
        "the job body is not valid JSON: recursion limit exceeded at line 1 column 180",
    ),
    (
        "non_utf8.bin",
        "the job body is not UTF-8 text (invalid byte at offset 58), not a JSON message",
    ),
    (
        "array.json",
        "the job body is JSON a list, not a message object {\"header\": ..., \"body\": ...}",
    ),
    (
        "string.json",
        "the job body is JSON \"just a string\", not a message object {\"header\": ..., \"body\": ...}",
    ),
    ("missing_header.json", "the message has no \"header\""),
    (
        "missing_request_type.json",
        "the message has no \"header.request_type\"",
    ),
    (
        "header_not_object.json",
        "the message's \"header\" must be a JSON object, found \"send_email\"",
    ),
    (
        "request_type_number.json",
        "the message's \"header.request_type\" must be a non-empty string, found 5",
    ),
    (
        "request_type_empty.json",
        "the message's \"header.request_type\" must be a non-empty string, found \"\"",
    ),
    (
        "negative_priority.json",
        "the message's \"header.priority\" must be a whole number from 0 to 4294967295, found -1",
    ),
    (
        "ttr_too_big.json",
        "the message's \"header.ttr\" must be a whole number from 0 to 4294967295, found 4294967296",
    ),
    (
        "fractional_attempts.json",
        "the message's \"header.attempts\" must be a whole number from 0 to 4294967295, found 1.5",
    ),
    (
        "body_string.json",
        "the message's \"body\" must be a JSON object, found \"payload\"",
    ),
    (
        "id_list.json",
        "the message's \"id\" must be a string or a whole number ≥ 0, found a list",
    ),
    (
        "id_negative.json",
        "the message's \"id\" must be a string or a whole number ≥ 0, found -3",
    ),
    (
        "bad_date.json",
        "the message's \"header.delay\" is not a date and time: expected RFC 3339 such as \
         \"2026-11-23T10:00:00Z\", or \"YYYY-MM-DD HH:MM:SS[.ffffff]\" in local time, found \"next tuesday\"",
    ),
    (
        "impossible_date.json",
        "the message's \"header.expiration\" is not a date and time: expected RFC 3339 such as \
         \"2026-11-23T10:00:00Z\", or \"YYYY-MM-DD HH:MM:SS[.ffffff]\" in local time, found \"2026-02-30 10:00:00\"",
    ),
    (
        "numeric_date.json",
        "the message's \"header.delay\" is not a date and time: expected RFC 3339 such as \
         \"2026-11-23T10:00:00Z\", or \"YYYY-MM-DD HH:MM:SS[.ffffff]\" in local time, found 1732356000",
    ),
];

#[test]
fn every_bad_fixture_gives_its_error() {
    let dir = fixture_dir("bad");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures/messages/bad")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = BAD.iter().map(|(name, _)| (*name).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "every bad fixture has an expected error here");

    for (name, expected) in BAD {
        let bytes = read(&dir.join(name));
        match Message::from_json(&bytes) {
            Ok(message) => panic!("{name}: parsed as {message}"),
            Err(err) => assert_eq!(err.to_string(), *expected, "{name}"),
        }
    }
}

#[test]
fn error_variants_carry_the_details() {
    let err = Message::from_json(&read(&fixture_dir("bad").join("bad_date.json"))).unwrap_err();
    let MessageError::InvalidTime { field, error } = err else {
        panic!("{err:?}")
    };
    assert_eq!(field, "header.delay");
    assert_eq!(error.found, "\"next tuesday\"");

    let huge = format!(
        r#"{{"header": {{"request_type": "x", "delay": "{}"}}}}"#,
        "9".repeat(100_000)
    );
    let err = Message::from_json(huge.as_bytes()).unwrap_err().to_string();
    assert!(
        err.len() < 300,
        "offending values are shortened: {} bytes",
        err.len()
    );
}

#[test]
fn builder_and_serde() {
    let message = Message::new("send_email")
        .with_id(5)
        .with_payload("hi")
        .with_body_field("to", "a@example.com")
        .with_priority(3)
        .with_ttr(30)
        .with_delay(utc("2026-11-23T10:00:00Z"))
        .with_expiration(utc("2026-11-23T10:00:00.5Z"))
        .with_source("tests")
        .with_header("trace", json!({"id": 1}))
        .with_header("priority", 9);
    assert_eq!(
        message.header.priority,
        Some(3),
        "known header keys are not set through with_header"
    );
    assert!(message.is_expired(utc("2026-11-23T10:00:01Z")));
    assert!(!message.is_expired(utc("2026-11-23T10:00:00Z")));
    let value = serde_json::to_value(&message).expect("serialize");
    assert_eq!(value["header"]["expiration"], "2026-11-23T10:00:00.500Z");
    let back: Message = serde_json::from_value(value).expect("deserialize");
    assert_eq!(back, message);
    assert!(serde_json::from_value::<Message>(json!([1])).is_err());
}

#[test]
fn parse_time_accepts_every_form() {
    assert_eq!(
        parse_time("2026-11-23T10:00:00Z"),
        Ok(utc("2026-11-23T10:00:00Z"))
    );
    assert_eq!(
        parse_time("2026-11-23T11:00:00+01:00"),
        Ok(utc("2026-11-23T10:00:00Z"))
    );
    assert_eq!(
        parse_time(" 2026-11-23T10:00:00.000001Z "),
        Ok(utc("2026-11-23T10:00:00.000001Z"))
    );
    assert_eq!(
        parse_time("2026-06-15 10:30:00"),
        Ok(local("2026-06-15 10:30:00"))
    );
    assert_eq!(
        parse_time("2026-06-15T10:30:00.25"),
        Ok(local("2026-06-15 10:30:00.25"))
    );
    assert!(parse_time("2026-06-15").is_err());
    assert!(parse_time("").is_err());
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn json_map(prefix: &'static str) -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec(("[a-z_]{1,8}", json_value()), 0..4).prop_map(move |pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v))
            .collect()
    })
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    // 1970 to 9999, with any nanoseconds.
    (0i64..253_402_300_799, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| Utc.timestamp_opt(secs, nanos).single().unwrap_or_default())
}

prop_compose! {
    fn message()(
        request_type in "[a-z_.]{1,16}",
        id in prop::option::of(prop_oneof![
            any::<u64>().prop_map(MessageId::Job),
            "m-[a-z0-9-]{0,12}".prop_map(MessageId::Other),
        ]),
        priority in prop::option::of(any::<u32>()),
        delay in prop::option::of(time()),
        expiration in prop::option::of(time()),
        ttr in prop::option::of(any::<u32>()),
        attempts in prop::option::of(any::<u32>()),
        source in prop::option::of("\\PC{0,10}"),
        header_extra in json_map("x_"),
        body in json_map(""),
        top_extra in json_map("top_"),
    ) -> Message {
        let mut message = Message::new(request_type);
        message.id = id;
        message.header.priority = priority;
        message.header.delay = delay;
        message.header.expiration = expiration;
        message.header.ttr = ttr;
        message.header.attempts = attempts;
        message.header.source = source;
        message.header.extra = header_extra;
        message.body = body;
        message.extra = top_extra;
        message
    }
}

proptest! {
    #[test]
    fn from_json_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::from_json(&bytes);
    }

    #[test]
    fn from_json_never_panics_on_near_messages(
        header in json_map(""),
        body in json_value(),
        id in json_value(),
    ) {
        let value = json!({"id": id, "header": header, "body": body});
        let _ = Message::from_json(value.to_string().as_bytes());
    }

    #[test]
    fn generated_messages_round_trip(message in message()) {
        let written = message.to_json();
        let back = Message::from_json(&written);
        prop_assert_eq!(back, Ok(message));
    }
}
