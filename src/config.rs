//! pulpo's settings: `pulpo.toml` layered as built-in defaults < file <
//! `PULPO_` environment < command-line flags, then validated into typed
//! [`Settings`].
//!
//! Two stages, as in ripgrep and Figment's own guidance:
//!
//! 1. the layers are merged by Figment and extracted into raw serde structs
//!    that deny unknown keys and check every value's type and range as it is
//!    read (so an error knows its key and which layer set it);
//! 2. the raw values are resolved into [`Settings`] (defaults filled in,
//!    per-handler retry overrides laid over the global policy).
//!
//! Every [`ConfigError`] names the key and where the value came from — the
//! file path, the environment variable, or the flag — and says what would be
//! accepted:
//!
//! ```text
//! pulpo.toml: key "retry.max_attempts": expected a whole number ≥ 1, found "abc"
//! environment variable PULPO_CONCURRENCY: key "concurrency": expected a whole number from 1 to 10000, found 0
//! pulpo.toml: unknown key "concurency"; did you mean "concurrency"? (known keys: queue, tube, ...)
//! ```
//!
//! Environment variables are `PULPO_` plus the key, with `__` between nested
//! keys: `PULPO_RETRY__MAX_ATTEMPTS=3`, `PULPO_FILE__PATH=/x`. Values are read
//! as TOML-ish literals (`3`, `true`, `["1s", "5m"]`, or a bare string).
//! Keys from the environment are lowercased, so a handler for a request type
//! with capitals or `__` in its name can only be configured in the file.
//! `PULPO_LOG`, `PULPO_BENCH_*` / `PULPO_TEST_*` and `PULPO_JOB_*` (the job
//! variables of an `exec` handler's child) belong to other parts of pulpo
//! and are not config keys.
//!
//! Relative paths written in the config file (`file.path`, handler
//! directories) are relative to the file's directory, as most tools read
//! theirs ([`Origin::resolve_path`]); paths from flags and `PULPO_`
//! variables are relative to the working directory.

mod error;
mod providers;
mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::Figment;
use serde::Serialize;
use serde_json::{Map, Value};

pub use error::{ConfigError, Origin};
pub use providers::{EnvProvider, FileProvider, defaults};
pub use pulpo_model::{TubeNameError, validate_tube_name};

/// The config file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "pulpo.toml";

/// The prefix of environment variables that set config keys.
pub const ENV_PREFIX: &str = "PULPO_";

/// The largest `concurrency` accepted: more handlers at once than this in
/// one runner is a typo, not a plan.
pub const MAX_CONCURRENCY: usize = 10_000;

/// Defines a config keyword enum: its names, `as_str`, `FromStr`, `Display`,
/// and serde in both directions (the name as a string).
macro_rules! keyword_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every accepted name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name as written in pulpo.toml.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = ParseKeywordError;

            fn from_str(text: &str) -> Result<$name, ParseKeywordError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseKeywordError { expected: $name::NAMES, found: text.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                raw::deserialize_keyword(deserializer, $name::NAMES)
            }
        }
    };
}

keyword_enum! {
    /// Which queue pulpo works on.
    QueueKind {
        /// The embedded, durable directory-backed queue (the default).
        #[default]
        File => "file",
        /// A beanstalkd server.
        Beanstalkd => "beanstalkd",
    }
}

keyword_enum! {
    /// What the runner does after `shutdown_after_number_of_empty_iterations`
    /// empty iterations in a row.
    OnIdle {
        /// Exit 0, for a supervisor to restart it (the default).
        #[default]
        Exit => "exit",
        /// Restart in-process: re-read config, reconnect.
        Restart => "restart",
    }
}

keyword_enum! {
    /// What happens to a job whose `expiration` passed before it ran.
    OnExpired {
        /// Bury it, to be inspected and kicked or deleted (the default).
        #[default]
        Bury => "bury",
        /// Delete it.
        Delete => "delete",
    }
}

keyword_enum! {
    /// Whether a schedule fires while its previous tick's job is still
    /// queued or running.
    Overlap {
        /// Fire every tick regardless (the default).
        #[default]
        Allow => "allow",
        /// Skip a tick while the previous tick's job is ready, delayed or reserved.
        Skip => "skip",
    }
}

keyword_enum! {
    /// What a schedule fires for ticks missed while no runner was up.
    CatchUp {
        /// One message for all the missed ticks (the default).
        #[default]
        Once => "once",
        /// Nothing: missed ticks are dropped.
        None => "none",
    }
}

mod schedules;
pub use schedules::{DEFAULT_GRACE, ScheduleSettings, local_time, parse_cron};

/// A keyword that is not one of the accepted names (from [`FromStr`] on
/// [`QueueKind`], [`OnIdle`], [`OnExpired`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseKeywordError {
    /// The accepted names.
    pub expected: &'static [&'static str],
    /// What was given.
    pub found: String,
}

impl fmt::Display for ParseKeywordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {}, found {:?}",
            raw::one_of(self.expected),
            self.found
        )
    }
}

impl std::error::Error for ParseKeywordError {}

/// How the delay before a retry grows with the attempt number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backoff {
    /// Always `retry.delay`.
    Fixed,
    /// `retry.delay`, doubled after every attempt, at most `retry.max_delay`.
    #[default]
    Exponential,
    /// The n-th retry waits the n-th duration; later ones wait the last.
    List(Vec<Duration>),
}

impl Serialize for Backoff {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Backoff::Fixed => serializer.serialize_str("fixed"),
            Backoff::Exponential => serializer.serialize_str("exponential"),
            Backoff::List(delays) => {
                serializer.collect_seq(delays.iter().map(|d| crate::duration::HumanDuration(*d)))
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Backoff {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Backoff, D::Error> {
        deserializer.deserialize_any(raw::BackoffVisitor)
    }
}

/// The retry policy for transient failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetrySettings {
    /// Attempts in all, the first included; a job that fails transiently on
    /// its last attempt is buried. At least 1.
    pub max_attempts: u32,
    /// How the delay grows; see [`RetrySettings::backoff_delay`].
    pub backoff: Backoff,
    /// The first retry's delay (and every retry's with `fixed`).
    #[serde(with = "crate::duration::human")]
    pub delay: Duration,
    /// Caps `fixed` and `exponential` delays (not an explicit list).
    #[serde(with = "crate::duration::human")]
    pub max_delay: Duration,
    /// Whether the runner randomizes each delay (so failed jobs do not all
    /// come back at once). Applied by the runner, not by `backoff_delay`.
    pub jitter: bool,
}

impl Default for RetrySettings {
    fn default() -> RetrySettings {
        RetrySettings {
            max_attempts: 5,
            backoff: Backoff::Exponential,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(600),
            jitter: true,
        }
    }
}

impl RetrySettings {
    /// The delay before retrying after attempt `attempt` (1 = the first run)
    /// failed transiently, before jitter.
    pub fn backoff_delay(&self, attempt: u32) -> Duration {
        let index = attempt.saturating_sub(1);
        match &self.backoff {
            Backoff::Fixed => self.delay.min(self.max_delay),
            Backoff::Exponential => {
                let factor = 2u32.checked_pow(index).unwrap_or(u32::MAX);
                self.delay
                    .checked_mul(factor)
                    .unwrap_or(Duration::MAX)
                    .min(self.max_delay)
            }
            Backoff::List(delays) => {
                let at = usize::try_from(index)
                    .unwrap_or(usize::MAX)
                    .min(delays.len().saturating_sub(1));
                delays.get(at).copied().unwrap_or(self.delay)
            }
        }
    }
}

/// Defaults for published messages that set none, and for handlers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefaultsSettings {
    /// Priority, 0 most urgent.
    pub priority: u32,
    /// Time to run: whole seconds, at least 1s.
    #[serde(with = "crate::duration::human")]
    pub ttr: Duration,
    /// How long a handler may run before it is cancelled and the job
    /// retried as a transient failure; `None` = no limit (the TTR lease is
    /// kept alive while the handler runs).
    #[serde(
        with = "crate::duration::human_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
}

impl Default for DefaultsSettings {
    fn default() -> DefaultsSettings {
        DefaultsSettings {
            priority: 1024,
            ttr: Duration::from_secs(60),
            timeout: None,
        }
    }
}

/// The file queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSettings {
    /// The queue's directory (created if missing).
    pub path: PathBuf,
    /// Whether every write is fsynced (with its directory) before it is
    /// acknowledged. Turning it off trades durability for speed.
    pub fsync: bool,
    /// The largest job body accepted, in bytes (beanstalkd's default).
    pub max_job_size: u32,
    /// Share the queue with the directory's group (`[file] group = true`):
    /// directory 2770 with setgid, files 0660, never writable by others, so
    /// a producer and a runner under two accounts of one group can both use
    /// it. Off (the default): the queue is its owner's alone (0700, 0600).
    pub group: bool,
}

impl Default for FileSettings {
    fn default() -> FileSettings {
        FileSettings {
            path: PathBuf::from("./pulpo-data"),
            fsync: true,
            max_job_size: 65_535,
            group: false,
        }
    }
}

/// The beanstalkd queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BeanstalkdSettings {
    /// `HOST:PORT` or `unix:/path/to/socket`.
    pub address: String,
    /// How long connecting may take before the queue counts as unreachable.
    #[serde(with = "crate::duration::human")]
    pub connect_timeout: Duration,
    /// How long a command may wait for the server's reply (on top of the
    /// wait a reserve asks for) before the connection counts as lost.
    #[serde(with = "crate::duration::human")]
    pub command_timeout: Duration,
    /// The largest job body this client reads, in bytes; a reserved job
    /// over it is buried unread.
    pub max_job_size: u32,
}

/// The highest `[beanstalkd] max_job_size`: beanstalkd's own ceiling on `-z`.
pub const MAX_BEANSTALKD_JOB_SIZE: u32 = 1 << 30;

impl Default for BeanstalkdSettings {
    fn default() -> BeanstalkdSettings {
        BeanstalkdSettings {
            address: "127.0.0.1:11300".to_owned(),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(30),
            max_job_size: 65_535,
        }
    }
}

/// `[history]`: job records (see [`crate::history`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistorySettings {
    /// Whether the runner keeps a record of every job (off by default:
    /// records cost a write per job and disk).
    pub enabled: bool,
    /// How long a record is kept after its last change.
    #[serde(with = "crate::duration::human")]
    pub keep: Duration,
    /// The most records kept; the oldest go first.
    pub max_jobs: u64,
    /// The directory of the records' file, instead of the queue's directory
    /// (file queue) or the state directory (beanstalkd).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl Default for HistorySettings {
    fn default() -> HistorySettings {
        HistorySettings {
            enabled: false,
            keep: Duration::from_secs(7 * 24 * 3600),
            max_jobs: 1_000_000,
            path: None,
        }
    }
}

/// A handler's `on_buried`: the message published when one of its jobs
/// ends buried (to alert someone, or to compensate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnBuried {
    /// The follow-up's request type.
    pub request_type: String,
}

/// `pulpo serve`: beanstalkd's protocol over the file queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServeSettings {
    /// Where to listen: `HOST:PORT` and `unix:/path` addresses.
    pub listen: Vec<String>,
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: u32,
    /// The largest job body a put may carry (beanstalkd's `-z`).
    pub max_job_size: u32,
    /// Where the HTTP side listens (JSON API, dashboard, `/metrics`,
    /// `/healthz`, `/readyz`), `HOST:PORT`; none: no HTTP.
    pub http: Option<String>,
    /// The bearer token the HTTP side asks for; required when `http` is not
    /// a loopback address. Never printed.
    #[serde(serialize_with = "redact")]
    pub token: Option<String>,
}

/// A secret as `pulpo config` shows it: whether one is set, never its value.
fn redact<S: serde::Serializer>(secret: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_str("(set)"),
        None => serializer.serialize_none(),
    }
}

/// `[metrics]`: the runner's own HTTP listener.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetricsSettings {
    /// Where `pulpo run` serves `/metrics`, `/healthz` and `/readyz`,
    /// `HOST:PORT`; none: no listener, and no metrics are recorded.
    pub listen: Option<String>,
}

/// The highest `[serve] max_connections` (each waiting reserve holds a blocking thread).
pub const MAX_SERVE_CONNECTIONS: u32 = 100_000;

/// The highest `[serve] max_job_size`: the file queue's own limit.
pub const MAX_SERVE_JOB_SIZE: u32 = 1 << 27;

impl Default for ServeSettings {
    fn default() -> ServeSettings {
        ServeSettings {
            listen: vec!["127.0.0.1:11300".to_owned()],
            max_connections: 1024,
            max_job_size: 65_535,
            http: None,
            token: None,
        }
    }
}

/// One `[handlers.<request_type>]` table: the handler kind, the common
/// per-handler overrides (typed), and the kind's own options (raw, for the
/// kind to interpret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandlerSettings {
    /// The request type this handler serves (the table's name).
    #[serde(skip)]
    pub request_type: String,
    /// Which handler implementation runs: `echo`, `exec`, or a kind a
    /// program registered; see [`Settings::check_handler_kinds`].
    pub kind: String,
    /// The handler's time limit: its own `timeout`, else `defaults.timeout`;
    /// `None` = no limit.
    #[serde(
        with = "crate::duration::human_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// TTR for this request type's jobs, overriding `defaults.ttr` and the
    /// message's own.
    #[serde(
        with = "crate::duration::human_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttr: Option<Duration>,
    /// Priority overriding `defaults.priority` for messages this handler
    /// publishes and for its releases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// The resolved retry policy: the handler's `retry` table laid over the
    /// global `[retry]`.
    pub retry: RetrySettings,
    /// The message published when a job of this type ends buried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_buried: Option<OnBuried>,
    /// Every other key of the table (e.g. `destination_directory`,
    /// `command`), as JSON for the kind to interpret.
    #[serde(flatten)]
    pub options: Map<String, Value>,
    /// Where `kind` was set.
    #[serde(skip)]
    kind_origin: Origin,
    /// Where each option was set.
    #[serde(skip)]
    option_origins: BTreeMap<String, Origin>,
}

impl HandlerSettings {
    /// A handler of `kind` for `request_type` with the global retry policy
    /// and no options, for programs that build settings in code.
    pub fn new(
        request_type: impl Into<String>,
        kind: impl Into<String>,
        retry: RetrySettings,
    ) -> HandlerSettings {
        HandlerSettings {
            request_type: request_type.into(),
            kind: kind.into(),
            timeout: None,
            ttr: None,
            priority: None,
            retry,
            on_buried: None,
            options: Map::new(),
            kind_origin: Origin::Code,
            option_origins: BTreeMap::new(),
        }
    }

    /// Where this handler's `kind` was set.
    pub fn kind_origin(&self) -> &Origin {
        &self.kind_origin
    }

    /// Where the option `key` was set (the `kind`'s origin if unknown).
    pub fn option_origin(&self, key: &str) -> &Origin {
        self.option_origins.get(key).unwrap_or(&self.kind_origin)
    }

    /// The path option `key`'s value `path` as its origin means it: relative
    /// to the config file's directory when written there, else as is
    /// ([`Origin::resolve_path`]).
    pub fn option_path(&self, key: &str, path: &Path) -> PathBuf {
        self.option_origin(key).resolve_path(path)
    }

    /// The kind's options read into its own type `T`, a `serde`
    /// `Deserialize` (with `#[serde(deny_unknown_fields)]` to refuse typos,
    /// `#[serde(default)]` for optional keys, and
    /// `#[serde(with = "pulpo::duration::human")]` for durations written
    /// `"5s"` or as seconds). The table's shared keys (`kind`, `retry`,
    /// `timeout`, `ttr`, `priority`) are pulpo's and never part of it. An
    /// error names the file, the table and the key, as pulpo's own do:
    /// `pulpo.toml: key "handlers.<request_type>.<key>" is missing: ...`.
    ///
    /// ```
    /// # use std::path::Path;
    /// #[derive(serde::Deserialize)]
    /// #[serde(deny_unknown_fields)]
    /// struct Options {
    ///     output_directory: String,
    /// }
    /// let text = "[handlers.count]\nkind = \"count\"\noutput_directry = \"out\"\n";
    /// let settings = pulpo::config::from_toml_str(text, Path::new("pulpo.toml"))?;
    /// let err = settings.handlers["count"].options_as::<Options>().err().unwrap();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "pulpo.toml: unknown key \"handlers.count.output_directry\"; did you mean \
    ///      \"handlers.count.output_directory\"? (known keys in [handlers.count]: output_directory)"
    /// );
    /// # Ok::<(), pulpo::ConfigError>(())
    /// ```
    pub fn options_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let options = Figment::from(figment::providers::Serialized::defaults(&self.options));
        options.extract::<T>().map_err(|mut err| {
            // Figment names the key inside the options; the error names the
            // whole key, and where the option (or its table) was set.
            let origin = match err.path.first() {
                Some(key) if self.options.contains_key(key) => self.option_origin(key).clone(),
                _ => self.kind_origin.clone(),
            };
            err.path
                .splice(0..0, ["handlers".to_owned(), self.request_type.clone()]);
            match ConfigError::from_figment(err) {
                ConfigError::UnknownKey {
                    key,
                    section,
                    known,
                    suggestion,
                    ..
                } => ConfigError::UnknownKey {
                    origin,
                    key,
                    section,
                    known,
                    suggestion,
                },
                ConfigError::MissingKey { key, hint, .. } => ConfigError::MissingKey { origin, key, hint },
                ConfigError::InvalidValue { key, problem, .. } => {
                    ConfigError::InvalidValue { origin, key, problem }
                }
                ConfigError::Other { message, .. } => ConfigError::Other { origin, message },
                other => other,
            }
        })
    }

    /// An error about the option `key`, for the kind that interprets the
    /// options: `pulpo.toml: key "handlers.<request_type>.<key>": <problem>`.
    pub fn option_error(&self, key: &str, problem: impl fmt::Display) -> ConfigError {
        ConfigError::InvalidValue {
            origin: self.option_origin(key).clone(),
            key: error::format_key(&["handlers", &self.request_type, key]),
            problem: problem.to_string(),
        }
    }
}

/// Every setting, resolved and validated: what the runner and the CLI use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Which queue.
    pub queue: QueueKind,
    /// The tube `publish` uses (and the CLI inspects).
    pub tube: String,
    /// The tubes `run` reserves from (at least one, no duplicates).
    pub watch: Vec<String>,
    /// Handlers running at once in one runner, 1 to [`MAX_CONCURRENCY`].
    pub concurrency: usize,
    /// How long one empty iteration waits for a job.
    #[serde(with = "crate::duration::human")]
    pub sleep_duration: Duration,
    /// Empty iterations in a row before `on_idle` applies; 0 = never.
    pub shutdown_after_number_of_empty_iterations: u32,
    /// Exit or restart after that many empty iterations.
    pub on_idle: OnIdle,
    /// Grace for in-flight handlers on SIGINT/SIGTERM.
    #[serde(with = "crate::duration::human")]
    pub shutdown_timeout: Duration,
    /// Bury or delete a job whose expiration passed.
    pub on_expired: OnExpired,
    /// Defaults for published messages and handlers.
    pub defaults: DefaultsSettings,
    /// The global retry policy.
    pub retry: RetrySettings,
    /// The file queue.
    pub file: FileSettings,
    /// The beanstalkd queue.
    pub beanstalkd: BeanstalkdSettings,
    /// `pulpo serve`.
    pub serve: ServeSettings,
    /// `[history]`: job records.
    pub history: HistorySettings,
    /// The runner's metrics listener.
    pub metrics: MetricsSettings,
    /// Handlers by request type.
    pub handlers: BTreeMap<String, HandlerSettings>,
    /// `[[schedules]]`: cron schedules the runners fire.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<ScheduleSettings>,
    /// False with `schedules = false`: this process fires no schedule.
    #[serde(skip)]
    pub fire_schedules: bool,
    /// The config file the settings were read from, if any.
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            queue: QueueKind::File,
            tube: "default".to_owned(),
            watch: vec!["default".to_owned()],
            concurrency: 4,
            sleep_duration: Duration::from_secs(5),
            shutdown_after_number_of_empty_iterations: 5,
            on_idle: OnIdle::Exit,
            shutdown_timeout: Duration::from_secs(30),
            on_expired: OnExpired::Bury,
            defaults: DefaultsSettings::default(),
            retry: RetrySettings::default(),
            file: FileSettings::default(),
            beanstalkd: BeanstalkdSettings::default(),
            serve: ServeSettings::default(),
            history: HistorySettings::default(),
            metrics: MetricsSettings::default(),
            handlers: BTreeMap::new(),
            schedules: Vec::new(),
            fire_schedules: true,
            source_file: None,
        }
    }
}

impl Settings {
    /// Checks that every handler's kind is one of `known` (the built-in
    /// kinds and those a program registered), naming the first that is not:
    /// `pulpo.toml: key "handlers.resize.kind": unknown handler kind "foo" (known kinds: echo, exec)`.
    pub fn check_handler_kinds(&self, known: &[&str]) -> Result<(), ConfigError> {
        for (request_type, handler) in &self.handlers {
            if !known.contains(&handler.kind.as_str()) {
                return Err(ConfigError::UnknownHandlerKind {
                    origin: handler.kind_origin.clone(),
                    key: error::format_key(&["handlers", request_type, "kind"]),
                    kind: handler.kind.clone(),
                    known: known.iter().map(|k| (*k).to_owned()).collect(),
                });
            }
        }
        Ok(())
    }

    /// The handler for `request_type`, if one is configured.
    pub fn handler(&self, request_type: &str) -> Option<&HandlerSettings> {
        self.handlers.get(request_type)
    }

    /// The settings as JSON, in pulpo.toml's shape (durations as `"5s"`).
    pub fn to_json_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The settings as pulpo.toml text, preceded by a comment naming the
    /// config file they were read from. Feeding it back, as a file in the
    /// working directory (its paths are resolved), gives the same settings.
    pub fn to_toml_string(&self) -> String {
        let source = match &self.source_file {
            Some(path) => format!(
                "# resolved from {} (and PULPO_ variables and flags)\n",
                path.display()
            ),
            None => "# resolved from built-in defaults (and PULPO_ variables and flags)\n".to_owned(),
        };
        let body = toml::to_string(&TomlSafe(&self.to_json_value())).unwrap_or_else(|err| {
            format!(
                "# cannot be shown as TOML ({err}); as JSON:\n# {}\n",
                self.to_json_value()
            )
        });
        source + &body
    }
}

impl fmt::Display for Settings {
    /// The settings as pulpo.toml text ([`Settings::to_toml_string`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml_string())
    }
}

/// A JSON value serialized for TOML: nulls (which TOML cannot express) are
/// left out of tables and lists.
struct TomlSafe<'a>(&'a Value);

impl Serialize for TomlSafe<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => serializer.collect_map(
                map.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, TomlSafe(v))),
            ),
            Value::Array(items) => {
                serializer.collect_seq(items.iter().filter(|v| !v.is_null()).map(TomlSafe))
            }
            other => other.serialize(serializer),
        }
    }
}

/// Command-line flags that override config keys; merged last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--queue`: overrides `queue`.
    pub queue: Option<QueueKind>,
    /// `--path`: overrides `file.path`.
    pub path: Option<PathBuf>,
    /// `--address`: overrides `beanstalkd.address`.
    pub address: Option<String>,
    /// `--tube`: overrides `tube`.
    pub tube: Option<String>,
}

/// Loads the settings: defaults < `config_file` (or `./pulpo.toml` when it
/// exists; an explicitly given file that is missing is an error) < the
/// process's `PULPO_` environment < `overrides`.
pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> Result<Settings, ConfigError> {
    let default = Path::new(DEFAULT_CONFIG_FILE);
    let file = config_file.or_else(|| default.is_file().then_some(default));
    load_file(file, overrides)
}

/// The config file [`load`] reads for `config_file`: that file, else
/// `./pulpo.toml` as an absolute path when it exists, else none. A process
/// that loads its config again later (`on_idle = "restart"`) resolves it
/// once at start and calls [`load_file`], so it keeps its source even when
/// `./pulpo.toml` goes away or appears.
pub fn config_file_to_read(config_file: Option<&Path>) -> Option<PathBuf> {
    match config_file {
        Some(path) => Some(path.to_path_buf()),
        None => {
            let default = Path::new(DEFAULT_CONFIG_FILE);
            let absolute = std::env::current_dir()
                .map(|dir| dir.join(default))
                .unwrap_or_else(|_| default.to_path_buf());
            default.is_file().then_some(absolute)
        }
    }
}

/// Loads the settings from exactly `file` (none: no file, whatever is in
/// the working directory): defaults < `file` < the process's `PULPO_`
/// environment < `overrides`. A missing `file` is an error.
pub fn load_file(file: Option<&Path>, overrides: &Overrides) -> Result<Settings, ConfigError> {
    let file = match file {
        Some(path) => Some(FileProvider::read(path)?),
        None => None,
    };
    let source_file = file.as_ref().map(|file| file.path().to_path_buf());
    let figment = layered(file, Some(EnvProvider::from_process()), overrides);
    let mut settings = from_figment(&figment, source_file)?;
    if let Some(path) = &overrides.path {
        // The flag's path exactly, even when it is not UTF-8 (the figment
        // layer only carries text).
        settings.file.path = path.clone();
    }
    Ok(settings)
}

/// The layered figment, with no I/O: [`defaults`] < `file` < `env` <
/// `overrides`. Tests pass literals; [`load`] passes the real file and
/// environment.
pub fn layered(file: Option<FileProvider>, env: Option<EnvProvider>, overrides: &Overrides) -> Figment {
    let mut figment = Figment::from(defaults());
    if let Some(file) = file {
        figment = figment.merge(file);
    }
    if let Some(env) = env {
        figment = figment.merge(env);
    }
    figment.merge(overrides.clone())
}

/// Extracts and validates settings from a figment built by [`layered`] (or
/// any figment; keys it lacks take their built-in defaults).
pub fn from_figment(figment: &Figment, source_file: Option<PathBuf>) -> Result<Settings, ConfigError> {
    let raw: raw::RawConfig = figment.extract().map_err(ConfigError::from_figment)?;
    raw.resolve(figment, source_file)
}

/// Settings from TOML text alone, as if read from the file `path` (which is
/// not opened): defaults < `text`. For tests and tools.
pub fn from_toml_str(text: &str, path: &Path) -> Result<Settings, ConfigError> {
    let file = FileProvider::from_text(path, text.to_owned())?;
    from_figment(
        &layered(Some(file), None, &Overrides::default()),
        Some(path.to_path_buf()),
    )
}

/// Checks a beanstalkd address: `HOST:PORT` (port 1 to 65535; IPv6 hosts in
/// brackets) or `unix:/path/to/socket`, by the rules the client connects by
/// ([`pulpo_model::Address::parse`]).
pub fn validate_address(address: &str) -> Result<(), String> {
    pulpo_model::Address::parse(address).map(drop).map_err(|_| {
        format!("expected HOST:PORT (e.g. \"127.0.0.1:11300\") or unix:/path/to/socket, found {address:?}")
    })
}
