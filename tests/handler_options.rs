//! A custom kind's options read into its own serde type with
//! `HandlerSettings::options_as`: durations in every form, defaults, and
//! errors that name the file, the handler table and the key.

use std::path::Path;
use std::time::Duration;

use pulpo::config::{self, ConfigError, HandlerSettings};
use serde::Deserialize;

/// A kind's options: a duration first (in any of pulpo's forms), a list
/// with a default, and one required key.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default = "five_seconds", with = "pulpo::duration::human")]
    pause: Duration,
    #[serde(default)]
    labels: Vec<String>,
    destination: String,
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
    let options: Options = handler("destination = \"out\"\npause = \"250ms\"")
        .options_as()
        .unwrap();
    assert_eq!(
        options,
        Options {
            pause: Duration::from_millis(250),
            labels: vec![],
            destination: "out".into(),
        }
    );
    let seconds: Options = handler("destination = \"out\"\npause = 2\nlabels = [\"done\"]")
        .options_as()
        .unwrap();
    assert_eq!(seconds.pause, Duration::from_secs(2));
    assert_eq!(seconds.labels, ["done"]);
    // retry, timeout, ttr and priority are pulpo's, never the kind's.
    let shared: Options = handler("destination = \"out\"\nretry = { max_attempts = 3 }\ntimeout = \"5s\"")
        .options_as()
        .unwrap();
    assert_eq!(shared.pause, Duration::from_secs(5));
}

#[test]
fn option_errors_name_the_file_the_table_and_the_key() {
    assert_eq!(
        error("destination = \"out\"\nlabls = [\"done\"]"),
        "pulpo.toml: unknown key \"handlers.word_count.labls\"; did you mean \"handlers.word_count.labels\"? \
         (known keys in [handlers.word_count]: pause, labels, destination)"
    );
    assert_eq!(
        error("labels = [\"done\"]"),
        "pulpo.toml: key \"handlers.word_count.destination\" is missing: add destination = ..."
    );
    let wrong_type = error("destination = 5");
    assert!(
        wrong_type.starts_with("pulpo.toml: key \"handlers.word_count.destination\": ")
            && wrong_type.contains("string"),
        "{wrong_type}"
    );
    let bad_duration = error("destination = \"out\"\npause = \"soon\"");
    assert!(
        bad_duration.starts_with("pulpo.toml: key \"handlers.word_count.pause\": ")
            && bad_duration.contains("\"soon\""),
        "{bad_duration}"
    );
}
