//! Hostile text for the message and config readers, in the normal test suite: bounded property
//! runs of what `fuzz/` (`message_json`, `config_toml`) does at length.
//!
//! `tests/message.rs` already feeds random bytes and generated messages. Here the inputs are the
//! fixtures, good and bad, damaged by flipped, inserted and deleted bytes, and odd but plausible
//! times. Whatever the reader accepts must survive its own writer: a message read back from
//! `to_json` is the same message, settings read back from `to_toml_string` are the same settings.
//! Whatever it refuses is an error whose message formats.
//!
//! Most fixtures of `config/` are bad on purpose, and most damage makes a good one bad, so the
//! inputs are weighted towards good fixtures with little damage, and each test counts how many
//! cases reached the round trip: a test whose round trip rarely runs fails.

use pulpo_testkit::mutation::{edits, mutate};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use pulpo::config;
use pulpo::message::Message;

fn files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(dir);
    let mut found = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    assert!(!found.is_empty(), "no fixtures in {dir}");
    found
}

/// Every fixture under `dir`, sub-folders included.
fn contents(dir: &str) -> Vec<Vec<u8>> {
    files(dir)
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

/// The good fixtures of `dir`: those in `good/`, or directly in `dir` (bad ones sit in `bad/`).
fn good_contents(dir: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(dir);
    let good = root.join("good");
    files(dir)
        .iter()
        .filter(|path| {
            path.parent()
                .is_some_and(|parent| parent == root || parent == good)
        })
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

/// A fixture: half the time a good one of `dir` as is, a quarter of the time a good one with
/// one edit, and a quarter of the time any one under `dir`, bad ones included, with up to four.
fn damaged(dir: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let one = prop::collection::vec((any::<u8>(), any::<prop::sample::Index>(), any::<u8>()), 1..2);
    prop_oneof![
        2 => prop::sample::select(good_contents(dir)),
        1 => (prop::sample::select(good_contents(dir)), one).prop_map(|(bytes, edits)| mutate(&bytes, &edits)),
        1 => (prop::sample::select(contents(dir)), edits()).prop_map(|(bytes, edits)| mutate(&bytes, &edits)),
    ]
}

/// Runs `check` on `cases` inputs from `strategy`, and requires that at least
/// `min_share` of them reached the round trip (`check` returns true there).
fn run_counted<S: Strategy>(
    cases: u32,
    min_share: f64,
    strategy: S,
    check: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) {
    let round_trips = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config::with_cases(cases));
    let result = runner.run(&strategy, |value| {
        if check(value)? {
            round_trips.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    let share = round_trips.load(Ordering::Relaxed) as f64 / f64::from(cases);
    assert!(
        share >= min_share,
        "only {:.0}% of the cases reached the round trip (want {:.0}%): weight valid inputs",
        share * 100.0,
        min_share * 100.0
    );
}

/// The message contract on `bytes`; true when it was read and round-tripped.
fn check_message(bytes: &[u8]) -> Result<bool, TestCaseError> {
    match Message::from_json(bytes) {
        Ok(message) => {
            let written = message.to_json();
            prop_assert_eq!(
                Message::from_json(&written),
                Ok(message),
                "{}",
                String::from_utf8_lossy(&written)
            );
            Ok(true)
        }
        Err(err) => {
            drop(err.to_string());
            Ok(false)
        }
    }
}

/// The config contract on `text`; true when it loaded and round-tripped.
fn check_config(text: &str) -> Result<bool, TestCaseError> {
    // In the working directory: relative paths in the file resolve against
    // the file's directory, so only there does the printed config mean the same.
    let path = Path::new("pulpo.toml");
    match config::from_toml_str(text, path) {
        Ok(settings) => {
            let printed = settings.to_toml_string();
            let again = config::from_toml_str(&printed, path).map(|s| s.to_json_value());
            prop_assert_eq!(
                again.map_err(|e| e.to_string()),
                Ok(settings.to_json_value()),
                "{}",
                printed
            );
            Ok(true)
        }
        Err(err) => {
            drop(err.to_string());
            Ok(false)
        }
    }
}

/// Times as producers write them, and a few no producer should.
fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{4}-[01][0-9]-[0-3][0-9][ T][0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,12})?",
        "[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,9})?(Z|[+-][0-2][0-9]:[0-5][0-9])",
        "[+-]?[0-9]{1,6}-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]",
        Just("0000-01-01 00:00:00".to_owned()),
        Just("9999-12-31T23:59:59.999999999+00:00".to_owned()),
        Just("9999-12-31 23:59:59.999999".to_owned()),
        Just("0000-01-01T00:00:00-23:59".to_owned()),
        Just("1990-12-31T23:59:60Z".to_owned()),
    ]
}

#[test]
fn damaged_message_fixtures_read_or_fail_cleanly() {
    run_counted(400, 0.3, damaged("messages"), |bytes| check_message(&bytes));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn odd_times_read_back_as_the_same_instant(delay in time_text(), expiration in time_text()) {
        let json = serde_json::json!({
            "header": {"request_type": "t", "delay": delay, "expiration": expiration},
            "body": {},
        });
        check_message(json.to_string().as_bytes())?;
    }
}

#[test]
fn damaged_config_fixtures_load_or_fail_cleanly() {
    run_counted(150, 0.3, damaged("config"), |bytes| {
        check_config(&String::from_utf8_lossy(&bytes))
    });
}

/// Found by `odd_times_read_back_as_the_same_instant`: a naive time in year -1 was read, then
/// written as `-0001-01-01T00:00:00Z`, which is not RFC 3339, so the message written back could
/// not be read. Times outside the years 0000 to 9999 (UTC) are now refused when read.
#[test]
fn times_outside_what_rfc_3339_can_write_are_refused() {
    for time in [
        "-1-01-01 00:00:00",
        "+10000-01-01 00:00:00",
        "0000-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ] {
        let json = format!(r#"{{"header": {{"request_type": "t", "delay": "{time}"}}, "body": {{}}}}"#);
        let err = Message::from_json(json.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("header.delay"), "{time}: {err}");
    }
    for time in ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z"] {
        let json = format!(r#"{{"header": {{"request_type": "t", "expiration": "{time}"}}, "body": {{}}}}"#);
        let message = Message::from_json(json.as_bytes()).unwrap();
        assert_eq!(Message::from_json(&message.to_json()).unwrap(), message, "{time}");
    }
}
