//! A custom kind's options read into its own serde type with
//! `HandlerSettings::options_as`: durations in every form, defaults, and
//! errors that name the file, the handler table and the key.

use std::path::Path;
use std::time::Duration;

use pulpo::config::{self, ConfigError, HandlerSettings};
use serde::Deserialize;

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    output_directory: String,
    #[serde(default)]
    notify: Option<String>,
    #[serde(default = "five_seconds", with = "pulpo::duration::human")]
    io_retry_delay: Duration,
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

/// The `word_count` table of a config whose table holds `options`.
fn handler(options: &str) -> HandlerSettings {
    let text = format!("[handlers.word_count]\nkind = \"word_count\"\n{options}\n");
    let settings = config::from_toml_str(&text, Path::new("pulpo.toml")).unwrap();
    settings.handlers["word_count"].clone()
}

fn error(options: &str) -> String {
    let err: ConfigError = handler(options).options_as::<Options>().unwrap_err();
    err.to_string()
}

#[test]
fn options_deserialise_into_the_kinds_type() {
    let options: Options = handler("output_directory = \"out\"\nio_retry_delay = \"250ms\"")
        .options_as()
        .unwrap();
    assert_eq!(
        options,
        Options {
            output_directory: "out".into(),
            notify: None,
            io_retry_delay: Duration::from_millis(250),
        }
    );
    let seconds: Options = handler("output_directory = \"out\"\nio_retry_delay = 2\nnotify = \"done\"")
        .options_as()
        .unwrap();
    assert_eq!(seconds.io_retry_delay, Duration::from_secs(2));
    assert_eq!(seconds.notify.as_deref(), Some("done"));
    // retry, timeout, ttr and priority are pulpo's, never the kind's.
    let shared: Options =
        handler("output_directory = \"out\"\nretry = { max_attempts = 3 }\ntimeout = \"5s\"")
            .options_as()
            .unwrap();
    assert_eq!(shared.io_retry_delay, Duration::from_secs(5));
}

#[test]
fn option_errors_name_the_file_the_table_and_the_key() {
    assert_eq!(
        error("output_directory = \"out\"\nnotfy = \"done\""),
        "pulpo.toml: unknown key \"handlers.word_count.notfy\"; did you mean \"handlers.word_count.notify\"? \
         (known keys in [handlers.word_count]: output_directory, notify, io_retry_delay)"
    );
    assert_eq!(
        error("notify = \"done\""),
        "pulpo.toml: key \"handlers.word_count.output_directory\" is missing: add output_directory = ..."
    );
    let wrong_type = error("output_directory = 5");
    assert!(
        wrong_type.starts_with("pulpo.toml: key \"handlers.word_count.output_directory\": ")
            && wrong_type.contains("string"),
        "{wrong_type}"
    );
    let bad_duration = error("output_directory = \"out\"\nio_retry_delay = \"soon\"");
    assert!(
        bad_duration.starts_with("pulpo.toml: key \"handlers.word_count.io_retry_delay\": ")
            && bad_duration.contains("\"soon\""),
        "{bad_duration}"
    );
}
