//! The config layer: layering order (defaults < file < env < flags) inside
//! `figment::Jail`, every fixture under fixtures/config with its exact error,
//! durations in every form, printing, and the repository's sample pulpo.toml.

// figment::Jail's closures must return figment::Error, which is large; it is
// not ours to box.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Jail;
use pulpo::config::{
    self, Backoff, ConfigError, FileProvider, OnExpired, OnIdle, Origin, Overrides, QueueKind, RetrySettings,
    Settings,
};
use serde_json::json;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Settings from a fixture, read by absolute path (Jail tests change the
/// working directory) but named by its short path in messages; no
/// environment, no flags.
fn fixture(sub: &str, name: &str) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(manifest_dir().join("fixtures/config").join(sub).join(name))
        .unwrap_or_else(|err| panic!("read {sub}/{name}: {err}"));
    config::from_toml_str(&text, &Path::new(sub).join(name))
}

fn good(name: &str) -> Settings {
    fixture("good", name).unwrap_or_else(|err| panic!("good/{name}: {err}"))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Turns a config error into a Jail error so `?` works inside Jail closures.
fn jailed<T>(result: Result<T, ConfigError>) -> figment::error::Result<T> {
    result.map_err(|err| figment::Error::from(err.to_string()))
}

const ROOT_KEYS: &str = "queue, tube, watch, concurrency, sleep_duration, \
    shutdown_after_number_of_empty_iterations, on_idle, shutdown_timeout, on_expired, defaults, retry, file, \
    beanstalkd, serve, history, metrics, handlers, schedules";

const RETRY_KEYS: &str = "max_attempts, backoff, delay, max_delay, jitter";

const DURATION_FORMS: &str =
    "a duration such as \"5s\", \"10m\", \"1h30m\", \"250ms\" or a number of seconds";

/// Each bad fixture and its exact error, after "bad/<name>: ".
fn bad_cases() -> Vec<(&'static str, String)> {
    let long = "x".repeat(201);
    vec![
        (
            "unknown_key.toml",
            format!("unknown key \"concurency\"; did you mean \"concurrency\"? (known keys: {ROOT_KEYS})"),
        ),
        (
            "unknown_nested_key.toml",
            format!(
                "unknown key \"retry.max_attempt\"; did you mean \"retry.max_attempts\"? \
                 (known keys in [retry]: {RETRY_KEYS})"
            ),
        ),
        (
            "unknown_handler_retry_key.toml",
            format!(
                "unknown key \"handlers.resize.retry.delai\"; did you mean \"handlers.resize.retry.delay\"? \
                 (known keys in [handlers.resize.retry]: {RETRY_KEYS})"
            ),
        ),
        ("unknown_table.toml", format!("unknown key \"queues\"; did you mean \"queue\"? (known keys: {ROOT_KEYS})")),
        ("wrong_type.toml", "key \"concurrency\": expected a whole number from 1 to 10000, found \"four\"".into()),
        ("max_attempts_string.toml", "key \"retry.max_attempts\": expected a whole number ≥ 1, found \"abc\"".into()),
        ("zero_concurrency.toml", "key \"concurrency\": expected a whole number from 1 to 10000, found 0".into()),
        ("huge_concurrency.toml", "key \"concurrency\": expected a whole number from 1 to 10000, found 1000000".into()),
        ("fsync_string.toml", "key \"file.fsync\": expected a boolean, found \"yes\"".into()),
        (
            "retry_not_table.toml",
            "key \"retry\": expected a table of retry settings such as { max_attempts = 5, backoff = \"fixed\" }, \
             found 5"
                .into(),
        ),
        ("negative_duration.toml", "key \"sleep_duration\": a duration cannot be negative, found \"-5s\"".into()),
        ("negative_seconds.toml", "key \"shutdown_timeout\": a duration cannot be negative, found -1".into()),
        (
            "absurd_duration.toml",
            "key \"shutdown_timeout\": a duration must be at most 100 years, found \"200years\"".into(),
        ),
        ("nan_duration.toml", "key \"sleep_duration\": a duration must be a finite number of seconds, found NaN".into()),
        ("bad_duration.toml", format!("key \"sleep_duration\": expected {DURATION_FORMS}, found \"soon\"")),
        (
            "fractional_ttr.toml",
            "key \"defaults.ttr\": expected a whole number of seconds, at least 1 (such as \"60s\" or 60), \
             found \"1500ms\""
                .into(),
        ),
        (
            "zero_ttr.toml",
            "key \"defaults.ttr\": expected a whole number of seconds, at least 1 (such as \"60s\" or 60), found 0"
                .into(),
        ),
        (
            "zero_connect_timeout.toml",
            "key \"beanstalkd.connect_timeout\": expected a duration greater than 0, found \"0s\"".into(),
        ),
        (
            "bad_backoff.toml",
            "key \"retry.backoff\": expected \"fixed\", \"exponential\" or a list of durations such as \
             [\"1s\", \"30s\", \"5m\"], found \"linear\""
                .into(),
        ),
        ("bad_backoff_element.toml", format!("key \"retry.backoff[1]\": expected {DURATION_FORMS}, found \"soon\"")),
        (
            "empty_backoff.toml",
            "key \"retry.backoff\": expected at least one duration, or \"fixed\" or \"exponential\", \
             found an empty list"
                .into(),
        ),
        ("bad_tube_name.toml", "key \"tube\": invalid tube name \"-jobs\": a tube name cannot start with '-'".into()),
        (
            "tube_with_space.toml",
            "key \"tube\": invalid tube name \"my jobs\": a tube name cannot contain ' ' \
             (allowed: letters, digits and - + / ; . $ _ ( ))"
                .into(),
        ),
        (
            "tube_too_long.toml",
            format!("key \"watch[1]\": invalid tube name \"{long}\": a tube name is at most 200 bytes, this one is 201"),
        ),
        ("empty_watch.toml", "key \"watch\": expected at least one tube name, found an empty list".into()),
        ("unknown_queue_kind.toml", "key \"queue\": expected \"file\" or \"beanstalkd\", found \"redis\"".into()),
        ("bad_on_idle.toml", "key \"on_idle\": expected \"exit\" or \"restart\", found \"sleep\"".into()),
        ("bad_on_expired.toml", "key \"on_expired\": expected \"bury\" or \"delete\", found \"Bury\"".into()),
        (
            "serve_bad_listen.toml",
            "key \"serve.listen[1]\": expected HOST:PORT (e.g. \"127.0.0.1:11300\") or unix:/path/to/socket, \
             found \"nowhere\""
                .into(),
        ),
        (
            "serve_zero_connections.toml",
            "key \"serve.max_connections\": expected a whole number from 1 to 100000, found 0".into(),
        ),
        (
            "bad_address.toml",
            "key \"beanstalkd.address\": expected HOST:PORT (e.g. \"127.0.0.1:11300\") or unix:/path/to/socket, \
             found \"localhost\""
                .into(),
        ),
        (
            "handler_without_kind.toml",
            "key \"handlers.echo.kind\" is missing: every handler needs one, e.g. kind = \"exec\"".into(),
        ),
        ("handler_empty_kind.toml", "key \"handlers.echo.kind\": expected a non-empty string, found \"\"".into()),
        (
            "handler_zero_attempts.toml",
            "key \"handlers.transient.retry.max_attempts\": expected a whole number ≥ 1, found 0".into(),
        ),
        (
            "empty_request_type.toml",
            "key \"handlers.\\\"\\\"\": a request type cannot be empty: name the table [handlers.<request_type>]"
                .into(),
        ),
        (
            "handler_not_table.toml",
            "key \"handlers.echo\": expected a table of handler settings such as { kind = \"echo\" }, found \"echo\""
                .into(),
        ),
        (
            "priority_too_big.toml",
            "key \"defaults.priority\": expected a whole number from 0 to 4294967295, found 4294967296".into(),
        ),
        ("duplicate_key.toml", "line 2, column 1: not valid TOML: duplicate key `queue` in document root".into()),
        ("syntax_error.toml", "line 1, column 7: not valid TOML: invalid table header; expected `.`, `]`".into()),
    ]
}

#[test]
fn every_bad_fixture_gives_its_exact_error() {
    let cases = bad_cases();
    let mut on_disk: Vec<String> = std::fs::read_dir(manifest_dir().join("fixtures/config/bad"))
        .expect("fixtures/config/bad")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name != "not_utf8.toml")
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = cases.iter().map(|(name, _)| (*name).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "every bad fixture has an expected error here");

    for (name, expected) in cases {
        let err = fixture("bad", name).expect_err(name);
        assert_eq!(err.to_string(), format!("bad/{name}: {expected}"), "{name}");
    }
}

#[test]
fn files_that_cannot_be_read() {
    let path = manifest_dir().join("fixtures/config/bad/not_utf8.toml");
    let err = FileProvider::read(&path).expect_err("not UTF-8");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not UTF-8 text (invalid byte at offset 11); save it as UTF-8",
            path.display()
        )
    );

    let missing = Path::new("/nonexistent/pulpo.toml");
    let err = config::load(Some(missing), &Overrides::default()).expect_err("missing");
    assert_eq!(
        err.to_string(),
        "config file /nonexistent/pulpo.toml does not exist; check the --config path"
    );
}

#[test]
fn an_empty_file_is_all_defaults() {
    let settings = good("minimal.toml");
    assert_eq!(
        settings,
        Settings {
            source_file: Some(PathBuf::from("good/minimal.toml")),
            ..Settings::default()
        }
    );
    let d = Settings::default();
    assert_eq!(
        (d.queue, d.tube.as_str(), d.watch.clone()),
        (QueueKind::File, "default", vec!["default".to_owned()])
    );
    assert_eq!(
        (
            d.concurrency,
            d.sleep_duration,
            d.shutdown_after_number_of_empty_iterations
        ),
        (4, secs(5), 5)
    );
    assert_eq!(
        (d.on_idle, d.shutdown_timeout, d.on_expired),
        (OnIdle::Exit, secs(30), OnExpired::Bury)
    );
    assert_eq!(
        (d.defaults.priority, d.defaults.ttr, d.defaults.timeout),
        (1024, secs(60), None)
    );
    assert_eq!(
        d.retry,
        RetrySettings {
            max_attempts: 5,
            backoff: Backoff::Exponential,
            delay: secs(1),
            max_delay: secs(600),
            jitter: true
        }
    );
    assert_eq!(
        (d.file.path, d.file.fsync, d.file.max_job_size),
        (PathBuf::from("./pulpo-data"), true, 65_535)
    );
    assert_eq!(
        (d.beanstalkd.address.as_str(), d.beanstalkd.connect_timeout),
        ("127.0.0.1:11300", secs(5))
    );
}

#[test]
fn every_key_is_read() {
    let s = good("full.toml");
    assert_eq!(s.queue, QueueKind::Beanstalkd);
    assert_eq!(s.tube, "emails");
    assert_eq!(s.watch, ["emails", "reports"], "duplicates dropped, order kept");
    assert_eq!(s.concurrency, 16);
    assert_eq!(s.sleep_duration, Duration::from_millis(250));
    assert_eq!(s.shutdown_after_number_of_empty_iterations, 0);
    assert_eq!(s.on_idle, OnIdle::Restart);
    assert_eq!(s.shutdown_timeout, secs(90));
    assert_eq!(s.on_expired, OnExpired::Delete);
    assert_eq!(
        (s.defaults.priority, s.defaults.ttr, s.defaults.timeout),
        (10, secs(120), Some(secs(600)))
    );
    assert_eq!(
        s.retry,
        RetrySettings {
            max_attempts: 7,
            backoff: Backoff::List(vec![secs(1), secs(30), secs(300)]),
            delay: secs(2),
            max_delay: secs(3600),
            jitter: false
        }
    );
    assert_eq!(
        (s.file.path.as_path(), s.file.fsync, s.file.max_job_size),
        (Path::new("/var/lib/pulpo"), false, 1 << 20)
    );
    assert_eq!(s.beanstalkd.address, "unix:/run/beanstalkd.sock");
    assert_eq!(s.beanstalkd.connect_timeout, Duration::from_millis(1500));

    let echo = s.handler("echo").expect("echo");
    assert_eq!(echo.kind, "echo");
    assert_eq!(echo.request_type, "echo");
    assert_eq!(echo.timeout, Some(secs(600)), "defaults.timeout applies");
    assert_eq!((echo.ttr, echo.priority), (None, None));
    assert_eq!(echo.retry, s.retry, "no retry table: the global policy");
    assert_eq!(echo.options["destination_directory"], "/tmp/pulpo/echo");

    let resize = s.handler("resize_image").expect("resize_image");
    assert_eq!(resize.kind, "exec");
    assert_eq!(
        (resize.timeout, resize.ttr, resize.priority),
        (Some(secs(300)), Some(secs(30)), Some(5))
    );
    assert_eq!(
        resize.retry,
        RetrySettings {
            max_attempts: 3,
            backoff: Backoff::Fixed,
            delay: secs(10),
            ..s.retry.clone()
        },
        "the handler's retry table over the global one"
    );
    assert_eq!(resize.options.len(), 2);
    assert_eq!(resize.options["command"], json!(["./bin/resize", "--fast"]));
    assert_eq!(resize.options["env"], json!({"MODE": "fast", "LEVEL": 3}));
    assert_eq!(
        resize.option_origin("command"),
        &Origin::File(PathBuf::from("good/full.toml"))
    );
    assert_eq!(
        resize
            .option_error("command", "the program does not exist")
            .to_string(),
        "good/full.toml: key \"handlers.resize_image.command\": the program does not exist"
    );

    let notify = s.handler("app.notify").expect("dotted request types");
    assert_eq!(notify.options["command"], json!(["notify-send"]));
}

#[test]
fn durations_in_every_form() {
    let s = good("durations.toml");
    assert_eq!(s.sleep_duration, secs(30));
    assert_eq!(s.shutdown_timeout, Duration::from_millis(1500));
    assert_eq!(s.defaults.ttr, secs(90));
    assert_eq!(s.retry.delay, secs(5400));
    assert_eq!(s.retry.max_delay, secs(5415));
    assert_eq!(
        s.retry.backoff,
        Backoff::List(vec![
            Duration::from_millis(250),
            secs(2),
            Duration::from_millis(500),
            secs(60)
        ])
    );
    assert_eq!(s.beanstalkd.connect_timeout, Duration::from_millis(100));
    let json = s.to_json_value();
    assert_eq!(json["sleep_duration"], "30s");
    assert_eq!(json["shutdown_timeout"], "1s500ms");
    assert_eq!(json["retry"]["delay"], "1h30m");
    assert_eq!(json["retry"]["backoff"], json!(["250ms", "2s", "500ms", "1m"]));
}

#[test]
fn printed_settings_read_back_the_same() {
    for name in ["full.toml", "durations.toml", "minimal.toml"] {
        let settings = good(name);
        let text = settings.to_toml_string();
        assert!(
            text.starts_with(&format!("# resolved from good/{name}")),
            "{text}"
        );
        // Printed paths are resolved (against the working directory), so the
        // printed file is read back from there.
        let again = config::from_toml_str(&text, Path::new(name))
            .unwrap_or_else(|err| panic!("{name}: {err}\n{text}"));
        // Origins differ (the printed file, not the fixture); the values do not.
        assert_eq!(again.to_json_value(), settings.to_json_value(), "{name}");
        assert_eq!(settings.to_string(), text);
    }
    let json = good("full.toml").to_json_value();
    assert_eq!(
        json["handlers"]["resize_image"]["command"],
        json!(["./bin/resize", "--fast"])
    );
    assert_eq!(json["handlers"]["resize_image"]["retry"]["backoff"], "fixed");
    assert_eq!(json["defaults"]["timeout"], "10m");
    assert!(json.get("source_file").is_none());
}

#[test]
fn the_sample_pulpo_toml_loads() {
    let text = std::fs::read_to_string(manifest_dir().join("pulpo.toml")).expect("pulpo.toml");
    let settings =
        config::from_toml_str(&text, Path::new("pulpo.toml")).unwrap_or_else(|err| panic!("{err}"));
    let defaults = Settings {
        handlers: settings.handlers.clone(),
        source_file: settings.source_file.clone(),
        ..Settings::default()
    };
    assert_eq!(settings, defaults, "the sample's global values are the defaults");
    let kinds: Vec<&str> = settings.handlers.values().map(|h| h.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "echo",
            "fail",
            "fifty_fifty",
            "lower",
            "success",
            "transient",
            "upper"
        ]
    );
    for (name, handler) in &settings.handlers {
        assert_eq!(&handler.kind, name);
    }
    assert_eq!(
        settings.handlers["upper"].options["destination_directory"],
        "./pulpo-output/upper"
    );
    assert_eq!(settings.handlers["transient"].retry.max_attempts, 3);
    let sample_kinds = [
        "echo",
        "upper",
        "lower",
        "success",
        "fail",
        "transient",
        "fifty_fifty",
        "exec",
    ];
    settings.check_handler_kinds(&sample_kinds).expect("sample kinds");
    let err = settings
        .check_handler_kinds(&["echo", "exec"])
        .expect_err("fail is not known");
    assert_eq!(
        err.to_string(),
        "pulpo.toml: key \"handlers.fail.kind\": unknown handler kind \"fail\" (known kinds: echo, exec)"
    );
}

#[test]
fn the_exact_messages_of_the_design() {
    let err =
        config::from_toml_str("[retry]\nmax_attempts = \"abc\"\n", Path::new("pulpo.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pulpo.toml: key \"retry.max_attempts\": expected a whole number ≥ 1, found \"abc\""
    );
    let settings =
        config::from_toml_str("[handlers.resize]\nkind = \"foo\"\n", Path::new("pulpo.toml")).unwrap();
    let err = settings.check_handler_kinds(&["echo", "exec"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pulpo.toml: key \"handlers.resize.kind\": unknown handler kind \"foo\" (known kinds: echo, exec)"
    );
}

#[test]
fn layers_apply_in_order_defaults_file_env_flags() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "pulpo.toml",
            "concurrency = 2\ntube = \"from-file\"\nsleep_duration = \"7s\"\n\
             [retry]\nmax_attempts = 3\nbackoff = \"fixed\"\n\
             [beanstalkd]\naddress = \"10.0.0.1:11300\"\n\
             [handlers.echo]\nkind = \"echo\"\ndestination_directory = \"/from/file\"\n",
        )?;
        jail.set_env("PULPO_CONCURRENCY", 8);
        jail.set_env("PULPO_RETRY__MAX_ATTEMPTS", 4);
        jail.set_env("PULPO_TUBE", "from-env");
        jail.set_env("PULPO_HANDLERS__ECHO__DESTINATION_DIRECTORY", "/from/env");
        jail.set_env("PULPO_LOG", "debug");
        jail.set_env("PULPO_BENCH_QUICK", 1);
        let overrides = Overrides {
            queue: Some(QueueKind::Beanstalkd),
            tube: Some("from-flag".to_owned()),
            address: Some("10.0.0.2:11300".to_owned()),
            path: Some(PathBuf::from("/from/flag")),
        };
        let s = jailed(config::load(None, &overrides))?;
        assert_eq!(
            s.source_file,
            Some(PathBuf::from("pulpo.toml")),
            "./pulpo.toml read when present"
        );
        assert_eq!(s.concurrency, 8, "env over file");
        assert_eq!(s.retry.max_attempts, 4, "nested env over file");
        assert_eq!(s.retry.backoff, Backoff::Fixed, "file over defaults");
        assert_eq!(s.retry.delay, secs(1), "defaults where nothing is set");
        assert_eq!(s.sleep_duration, secs(7), "file over defaults");
        assert_eq!(s.tube, "from-flag", "flag over env over file");
        assert_eq!(s.queue, QueueKind::Beanstalkd);
        assert_eq!(s.beanstalkd.address, "10.0.0.2:11300", "flag over file");
        assert_eq!(s.file.path, PathBuf::from("/from/flag"));
        let echo = &s.handlers["echo"];
        assert_eq!(echo.options["destination_directory"], "/from/env");
        assert_eq!(
            echo.option_origin("destination_directory"),
            &Origin::Env("PULPO_HANDLERS__ECHO__DESTINATION_DIRECTORY".into())
        );
        assert_eq!(echo.kind_origin(), &Origin::File(PathBuf::from("pulpo.toml")));

        // Without flags, env wins over the file.
        let s = jailed(config::load(None, &Overrides::default()))?;
        assert_eq!((s.tube.as_str(), s.queue), ("from-env", QueueKind::File));
        Ok(())
    });
}

#[test]
fn the_default_file_is_optional_an_explicit_one_is_not() {
    Jail::expect_with(|jail| {
        let s = jailed(config::load(None, &Overrides::default()))?;
        assert_eq!(s, Settings::default(), "no ./pulpo.toml: defaults");

        let err = config::load(Some(Path::new("other.toml")), &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config file other.toml does not exist; check the --config path"
        );

        jail.create_file("other.toml", "concurrency = 3\n")?;
        jail.create_file("pulpo.toml", "concurrency = 9\n")?;
        let s = jailed(config::load(Some(Path::new("other.toml")), &Overrides::default()))?;
        assert_eq!(
            (s.concurrency, s.source_file),
            (3, Some(PathBuf::from("other.toml"))),
            "--config wins"
        );

        // Relative paths are not searched for in parent directories.
        jail.create_dir("sub")?;
        jail.change_dir("sub")?;
        let s = jailed(config::load(None, &Overrides::default()))?;
        assert_eq!(s.source_file, None);
        Ok(())
    });
}

#[test]
fn environment_errors_name_the_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("PULPO_CONCURRENCY", "abc");
        let err = config::load(None, &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable PULPO_CONCURRENCY: key \"concurrency\": expected a whole number from 1 to 10000, \
             found \"abc\""
        );
        jail.clear_env();

        jail.set_env("PULPO_CONCURENCY", 3);
        let err = config::load(None, &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "environment variable PULPO_CONCURENCY: unknown key \"concurency\"; did you mean \"concurrency\"? \
                 (known keys: {ROOT_KEYS})"
            )
        );
        jail.clear_env();

        jail.set_env("PULPO_RETRY__MAX_ATTEMPTS", 0);
        let err = config::load(None, &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable PULPO_RETRY__MAX_ATTEMPTS: key \"retry.max_attempts\": expected a whole number ≥ 1, \
             found 0"
        );
        jail.clear_env();

        jail.set_env("PULPO_WATCH", "[\"a\", \"b c\"]");
        let err = config::load(None, &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable PULPO_WATCH: key \"watch[1]\": invalid tube name \"b c\": a tube name cannot \
             contain ' ' (allowed: letters, digits and - + / ; . $ _ ( ))"
        );
        jail.clear_env();

        jail.set_env("PULPO_FILE__PATHH", "/x");
        let err = config::load(None, &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable PULPO_FILE__PATHH: unknown key \"file.pathh\"; did you mean \"file.path\"? \
             (known keys in [file]: path, fsync, max_job_size, group)"
        );
        Ok(())
    });
}

#[test]
fn environment_values_in_every_form() {
    Jail::expect_with(|jail| {
        jail.set_env("PULPO_WATCH", "emails");
        jail.set_env("PULPO_TUBE", 2024);
        jail.set_env("PULPO_SLEEP_DURATION", "250ms");
        jail.set_env("PULPO_SHUTDOWN_TIMEOUT", 45);
        jail.set_env("PULPO_FILE__PATH", "/x");
        jail.set_env("PULPO_FILE__FSYNC", false);
        jail.set_env("PULPO_RETRY__BACKOFF", "[\"1s\", \"5m\"]");
        jail.set_env("PULPO_ON_IDLE", "restart");
        jail.set_env("pulpo_concurrency", 2);
        let s = jailed(config::load(None, &Overrides::default()))?;
        assert_eq!(s.watch, ["emails"]);
        assert_eq!(s.tube, "2024");
        assert_eq!(s.sleep_duration, Duration::from_millis(250));
        assert_eq!(s.shutdown_timeout, secs(45));
        assert_eq!((s.file.path.as_path(), s.file.fsync), (Path::new("/x"), false));
        assert_eq!(s.retry.backoff, Backoff::List(vec![secs(1), secs(300)]));
        assert_eq!(s.on_idle, OnIdle::Restart);
        assert_eq!(s.concurrency, 2, "names match case-insensitively");
        Ok(())
    });
}

#[test]
fn flag_errors_name_the_flag() {
    Jail::expect_with(|_| {
        let overrides = Overrides {
            tube: Some("-bad".to_owned()),
            ..Overrides::default()
        };
        let err = config::load(None, &overrides).unwrap_err();
        assert_eq!(
            err.to_string(),
            "command-line flag --tube: key \"tube\": invalid tube name \"-bad\": a tube name cannot start with '-'"
        );
        let overrides = Overrides {
            address: Some("nohost".to_owned()),
            ..Overrides::default()
        };
        let err = config::load(None, &overrides).unwrap_err();
        assert_eq!(
            err.to_string(),
            "command-line flag --address: key \"beanstalkd.address\": expected HOST:PORT (e.g. \"127.0.0.1:11300\") \
             or unix:/path/to/socket, found \"nohost\""
        );
        Ok(())
    });
}

#[test]
fn backoff_delays() {
    let retry = RetrySettings {
        delay: secs(1),
        max_delay: secs(10),
        ..RetrySettings::default()
    };
    let delays: Vec<u64> = (1..=6).map(|n| retry.backoff_delay(n).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 10, 10], "exponential, capped by max_delay");
    assert_eq!(retry.backoff_delay(u32::MAX), secs(10), "no overflow");
    let fixed = RetrySettings {
        backoff: Backoff::Fixed,
        ..retry.clone()
    };
    assert_eq!(fixed.backoff_delay(5), secs(1));
    let list = RetrySettings {
        backoff: Backoff::List(vec![secs(1), secs(30), secs(300)]),
        ..retry
    };
    let delays: Vec<u64> = (1..=5).map(|n| list.backoff_delay(n).as_secs()).collect();
    assert_eq!(
        delays,
        [1, 30, 300, 300, 300],
        "a list is used as given, its last entry repeated"
    );
}

#[test]
fn validators_and_keywords() {
    for ok in ["default", "a", "x-y", "A+b/c;d.e$f_g(h)", "0", &"t".repeat(200)] {
        assert_eq!(config::validate_tube_name(ok), Ok(()), "{ok}");
    }
    for bad in ["", "-x", "a b", "é", &"t".repeat(201), "a\n"] {
        assert!(config::validate_tube_name(bad).is_err(), "{bad:?}");
    }
    for ok in [
        "127.0.0.1:11300",
        "localhost:1",
        "[::1]:11300",
        "unix:/run/b.sock",
        "beanstalk.example.com:65535",
    ] {
        assert_eq!(config::validate_address(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "localhost",
        ":11300",
        "host:",
        "host:0",
        "host:65536",
        "host:x1",
        "::1:11300",
        "unix:",
    ] {
        assert!(config::validate_address(bad).is_err(), "{bad:?}");
    }
    assert_eq!("beanstalkd".parse::<QueueKind>(), Ok(QueueKind::Beanstalkd));
    let err = "redis".parse::<QueueKind>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected \"file\" or \"beanstalkd\", found \"redis\""
    );
    assert_eq!(QueueKind::NAMES, ["file", "beanstalkd"]);
    assert_eq!(OnExpired::Delete.to_string(), "delete");
}

/// Relative paths written in a config file are relative to its directory;
/// from a variable or a flag, to the working directory (issue 13, item 3).
#[test]
fn relative_paths_follow_where_they_were_written() {
    Jail::expect_with(|jail| {
        jail.create_dir("app")?;
        jail.create_file(
            "app/pulpo.toml",
            "[file]\npath = \"jobs\"\n[handlers.echo]\nkind = \"echo\"\ndestination_directory = \"out\"\n",
        )?;
        let file = Path::new("app/pulpo.toml");
        let destination = |s: &Settings, path: &str| {
            s.handlers["echo"].option_path("destination_directory", Path::new(path))
        };
        let s = jailed(config::load(Some(file), &Overrides::default()))?;
        assert_eq!(s.file.path, PathBuf::from("app/jobs"));
        assert_eq!(destination(&s, "out"), PathBuf::from("app/out"));
        assert_eq!(destination(&s, "/abs"), PathBuf::from("/abs"));

        jail.set_env("PULPO_FILE__PATH", "env-jobs");
        jail.set_env("PULPO_HANDLERS__ECHO__DESTINATION_DIRECTORY", "env-out");
        let s = jailed(config::load(Some(file), &Overrides::default()))?;
        assert_eq!(s.file.path, PathBuf::from("env-jobs"));
        assert_eq!(destination(&s, "env-out"), PathBuf::from("env-out"));
        let flagged = Overrides {
            path: Some(PathBuf::from("flag-jobs")),
            ..Overrides::default()
        };
        assert_eq!(
            jailed(config::load(Some(file), &flagged))?.file.path,
            PathBuf::from("flag-jobs")
        );
        Ok(())
    });
}
