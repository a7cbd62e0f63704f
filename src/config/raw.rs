//! Stage one: the raw config as extracted from the merged layers. Every
//! table denies unknown keys; every value is checked for type and range as
//! it is read, so that Figment attaches the key and the layer to the error.
//! [`RawConfig::resolve`] is stage two: defaults filled in, handlers'
//! overrides laid over the globals.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::value::magic::Tagged;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde_json::Map;

use super::error::Origin;
use super::{
    Backoff, BeanstalkdSettings, ConfigError, DefaultsSettings, FileSettings, HandlerSettings,
    HistorySettings, MAX_BEANSTALKD_JOB_SIZE, MAX_CONCURRENCY, MAX_SERVE_JOB_SIZE, MetricsSettings, OnBuried,
    OnExpired, OnIdle, QueueKind, RetrySettings, ServeSettings, Settings, validate_address,
    validate_tube_name,
};
use crate::duration::{self, DurationError};

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
pub(crate) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    match quoted.split_last() {
        None => "nothing".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Reads one of `names` (exactly, lowercase).
pub(crate) fn deserialize_keyword<'de, D, T>(
    deserializer: D,
    names: &'static [&'static str],
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
{
    struct KeywordVisitor(&'static [&'static str]);

    impl Visitor<'_> for KeywordVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&one_of(self.0))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
            if self.0.contains(&text) {
                Ok(text.to_owned())
            } else {
                Err(E::invalid_value(Unexpected::Str(text), &self))
            }
        }
    }

    let text = deserializer.deserialize_any(KeywordVisitor(names))?;
    text.parse()
        .map_err(|_| de::Error::custom(format!("expected {}, found {text:?}", one_of(names))))
}

/// A whole number from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounded<const MIN: u64, const MAX: u64>(pub u64);

/// `u32::MAX` as a bound.
const U32: u64 = u32::MAX as u64;

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    fn range() -> String {
        if MAX >= U32 {
            format!("a whole number ≥ {MIN}")
        } else {
            format!("a whole number from {MIN} to {MAX}")
        }
    }

    fn full_range() -> String {
        format!("a whole number from {MIN} to {MAX}")
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoundedVisitor<const MIN: u64, const MAX: u64>;

        impl<const MIN: u64, const MAX: u64> Visitor<'_> for BoundedVisitor<MIN, MAX> {
            type Value = Bounded<MIN, MAX>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&Bounded::<MIN, MAX>::range())
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                if n < MIN {
                    Err(E::invalid_value(Unexpected::Unsigned(n), &self))
                } else if n > MAX {
                    Err(E::invalid_value(
                        Unexpected::Unsigned(n),
                        &Bounded::<MIN, MAX>::full_range().as_str(),
                    ))
                } else {
                    Ok(Bounded(n))
                }
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::invalid_value(Unexpected::Signed(n), &self)),
                }
            }
        }

        deserializer.deserialize_any(BoundedVisitor::<MIN, MAX>)
    }
}

/// Text, also from a bare number or boolean (an environment variable
/// `PULPO_TUBE=2024` reads as a number).
#[derive(Debug, Clone)]
pub(super) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        struct TextVisitor;

        impl Visitor<'_> for TextVisitor {
            type Value = Text;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Text, E> {
                Ok(Text(text.to_owned()))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }

            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Text, E> {
                Ok(Text(x.to_string()))
            }

            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Text, E> {
                Ok(Text(b.to_string()))
            }
        }

        deserializer.deserialize_any(TextVisitor)
    }
}

/// Non-empty text (handler kinds, paths).
#[derive(Debug, Clone)]
pub(super) struct NonEmpty(pub String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NonEmpty, D::Error> {
        let Text(text) = Text::deserialize(deserializer)?;
        if text.trim().is_empty() {
            return Err(de::Error::custom(format!(
                "expected a non-empty string, found {text:?}"
            )));
        }
        Ok(NonEmpty(text))
    }
}

/// A tube name beanstalkd accepts.
#[derive(Debug, Clone)]
pub(super) struct TubeName(pub String);

impl<'de> Deserialize<'de> for TubeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TubeName, D::Error> {
        let Text(name) = Text::deserialize(deserializer)?;
        validate_tube_name(&name)
            .map_err(|err| de::Error::custom(format!("invalid tube name {name:?}: {err}")))?;
        Ok(TubeName(name))
    }
}

/// One tube name or a non-empty list of them; duplicates dropped.
#[derive(Debug, Clone)]
pub(super) struct TubeList(pub Vec<String>);

impl<'de> Deserialize<'de> for TubeList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TubeList, D::Error> {
        struct TubeListVisitor;

        impl<'de> Visitor<'de> for TubeListVisitor {
            type Value = TubeList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tube name or a list of tube names such as [\"default\", \"emails\"]")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<TubeList, E> {
                let TubeName(name) = TubeName::deserialize(de::value::StrDeserializer::<E>::new(text))?;
                Ok(TubeList(vec![name]))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<TubeList, E> {
                self.visit_str(&n.to_string())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TubeList, A::Error> {
                let mut names: Vec<String> = Vec::new();
                while let Some(TubeName(name)) = seq.next_element()? {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                if names.is_empty() {
                    return Err(de::Error::invalid_length(0, &"at least one tube name"));
                }
                Ok(TubeList(names))
            }
        }

        deserializer.deserialize_any(TubeListVisitor)
    }
}

/// A beanstalkd address.
#[derive(Debug, Clone)]
pub(super) struct Address(pub String);

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Address, D::Error> {
        let Text(address) = Text::deserialize(deserializer)?;
        validate_address(&address).map_err(de::Error::custom)?;
        Ok(Address(address))
    }
}

/// One listen address or a non-empty list of them (`[serve] listen`).
#[derive(Debug, Clone)]
pub(super) struct AddressList(pub Vec<String>);

impl<'de> Deserialize<'de> for AddressList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AddressList, D::Error> {
        struct ListVisitor;

        impl<'de> Visitor<'de> for ListVisitor {
            type Value = AddressList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address or a list of addresses such as [\"127.0.0.1:11300\", \"unix:/run/pulpo.sock\"]")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<AddressList, E> {
                validate_address(text).map_err(E::custom)?;
                Ok(AddressList(vec![text.to_owned()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AddressList, A::Error> {
                let mut list: Vec<String> = Vec::new();
                while let Some(Address(address)) = seq.next_element()? {
                    if !list.contains(&address) {
                        list.push(address);
                    }
                }
                // Empty: no protocol listener (`pulpo serve` with `[serve] http` alone).
                Ok(AddressList(list))
            }
        }

        deserializer.deserialize_any(ListVisitor)
    }
}

/// A duration as written: kept so that a range error can show it.
enum Written {
    Text(String),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl Written {
    fn parse(&self) -> Result<Duration, DurationError> {
        match self {
            Written::Text(text) => duration::parse_duration(text),
            Written::Unsigned(n) => duration::duration_from_secs_i64(i64::try_from(*n).unwrap_or(i64::MAX)),
            Written::Signed(n) => duration::duration_from_secs_i64(*n),
            Written::Float(x) => duration::duration_from_secs_f64(*x),
        }
    }
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Written::Text(text) => write!(f, "{text:?}"),
            Written::Unsigned(n) => write!(f, "{n}"),
            Written::Signed(n) => write!(f, "{n}"),
            Written::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// Reads a duration, then applies `check`, which returns what would have
/// been accepted when the value is out of range.
fn duration_with<'de, D: Deserializer<'de>>(
    deserializer: D,
    check: fn(Duration) -> Option<&'static str>,
) -> Result<Duration, D::Error> {
    struct WrittenVisitor;

    impl Visitor<'_> for WrittenVisitor {
        type Value = Written;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"5s\", \"10m\", \"1h30m\", \"250ms\" or a number of seconds")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Written, E> {
            Ok(Written::Text(text.to_owned()))
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Written, E> {
            Ok(Written::Unsigned(n))
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Written, E> {
            Ok(Written::Signed(n))
        }

        fn visit_f64<E: de::Error>(self, x: f64) -> Result<Written, E> {
            Ok(Written::Float(x))
        }
    }

    let written = deserializer.deserialize_any(WrittenVisitor)?;
    let duration = written.parse().map_err(de::Error::custom)?;
    match check(duration) {
        Some(expected) => Err(de::Error::custom(format!("expected {expected}, found {written}"))),
        None => Ok(duration),
    }
}

/// Any duration from 0 to 100 years.
#[derive(Debug, Clone, Copy)]
pub(super) struct AnyDuration(pub Duration);

impl<'de> Deserialize<'de> for AnyDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AnyDuration, D::Error> {
        duration_with(deserializer, |_| None).map(AnyDuration)
    }
}

/// A duration above zero.
#[derive(Debug, Clone, Copy)]
pub(super) struct PositiveDuration(pub Duration);

impl<'de> Deserialize<'de> for PositiveDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PositiveDuration, D::Error> {
        duration_with(deserializer, |d| {
            d.is_zero().then_some("a duration greater than 0")
        })
        .map(PositiveDuration)
    }
}

/// A TTR: whole seconds, at least one (beanstalkd counts TTR in seconds;
/// 100 years is below `u32::MAX` seconds).
#[derive(Debug, Clone, Copy)]
pub(super) struct Ttr(pub Duration);

impl<'de> Deserialize<'de> for Ttr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Ttr, D::Error> {
        duration_with(deserializer, |d| {
            (d < Duration::from_secs(1) || d.subsec_nanos() != 0)
                .then_some("a whole number of seconds, at least 1 (such as \"60s\" or 60)")
        })
        .map(Ttr)
    }
}

/// Reads [`Backoff`]: `"fixed"`, `"exponential"` or a non-empty list of
/// durations.
pub(crate) struct BackoffVisitor;

impl<'de> Visitor<'de> for BackoffVisitor {
    type Value = Backoff;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"fixed\", \"exponential\" or a list of durations such as [\"1s\", \"30s\", \"5m\"]")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Backoff, E> {
        match text {
            "fixed" => Ok(Backoff::Fixed),
            "exponential" => Ok(Backoff::Exponential),
            _ => Err(E::invalid_value(Unexpected::Str(text), &self)),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Backoff, A::Error> {
        let mut delays = Vec::new();
        while let Some(AnyDuration(delay)) = seq.next_element()? {
            delays.push(delay);
        }
        if delays.is_empty() {
            return Err(de::Error::invalid_length(
                0,
                &"at least one duration, or \"fixed\" or \"exponential\"",
            ));
        }
        Ok(Backoff::List(delays))
    }
}

/// The top level of pulpo.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of pulpo settings")]
pub(super) struct RawConfig {
    queue: Option<QueueKind>,
    tube: Option<TubeName>,
    watch: Option<TubeList>,
    concurrency: Option<Bounded<1, { MAX_CONCURRENCY as u64 }>>,
    sleep_duration: Option<AnyDuration>,
    shutdown_after_number_of_empty_iterations: Option<Bounded<0, U32>>,
    on_idle: Option<OnIdle>,
    shutdown_timeout: Option<AnyDuration>,
    on_expired: Option<OnExpired>,
    defaults: Option<RawDefaults>,
    retry: Option<RawRetry>,
    file: Option<RawFile>,
    beanstalkd: Option<RawBeanstalkd>,
    serve: Option<RawServe>,
    history: Option<RawHistory>,
    metrics: Option<RawMetrics>,
    handlers: Option<RawHandlers>,
    schedules: Option<super::schedules::RawSchedules>,
}

/// `[history]`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of job record settings such as { enabled = true, keep = \"7d\" }"
)]
struct RawHistory {
    enabled: Option<bool>,
    keep: Option<PositiveDuration>,
    max_jobs: Option<Bounded<1, { u64::MAX }>>,
    path: Option<NonEmpty>,
}

/// A handler's `on_buried` table.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table naming the follow-up, such as { request_type = \"notify_failure\" }"
)]
struct RawOnBuried {
    request_type: RequestType,
}

/// `[defaults]`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of defaults such as { priority = 1024, ttr = \"60s\" }"
)]
struct RawDefaults {
    priority: Option<Bounded<0, U32>>,
    ttr: Option<Ttr>,
    timeout: Option<PositiveDuration>,
}

/// `[retry]`, and a handler's `retry` table.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of retry settings such as { max_attempts = 5, backoff = \"fixed\" }"
)]
struct RawRetry {
    max_attempts: Option<Bounded<1, U32>>,
    backoff: Option<Backoff>,
    delay: Option<AnyDuration>,
    max_delay: Option<AnyDuration>,
    jitter: Option<bool>,
}

impl RawRetry {
    /// These settings laid over `base`.
    fn over(&self, base: &RetrySettings) -> RetrySettings {
        RetrySettings {
            max_attempts: self
                .max_attempts
                .map_or(base.max_attempts, |n| u32::try_from(n.0).unwrap_or(u32::MAX)),
            backoff: self.backoff.clone().unwrap_or_else(|| base.backoff.clone()),
            delay: self.delay.map_or(base.delay, |d| d.0),
            max_delay: self.max_delay.map_or(base.max_delay, |d| d.0),
            jitter: self.jitter.unwrap_or(base.jitter),
        }
    }
}

/// `[file]`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of file queue settings such as { path = \"./pulpo-data\" }"
)]
struct RawFile {
    path: Option<NonEmpty>,
    fsync: Option<bool>,
    max_job_size: Option<Bounded<1, U32>>,
    group: Option<bool>,
}

/// `[beanstalkd]`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of beanstalkd settings such as { address = \"127.0.0.1:11300\" }"
)]
struct RawBeanstalkd {
    address: Option<Address>,
    connect_timeout: Option<PositiveDuration>,
    command_timeout: Option<PositiveDuration>,
    max_job_size: Option<Bounded<1, { MAX_BEANSTALKD_JOB_SIZE as u64 }>>,
}

/// `[serve]`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of server settings such as { listen = [\"127.0.0.1:11300\"] }"
)]
struct RawServe {
    listen: Option<AddressList>,
    max_connections: Option<Bounded<1, { crate::config::MAX_SERVE_CONNECTIONS as u64 }>>,
    max_job_size: Option<Bounded<1, { MAX_SERVE_JOB_SIZE as u64 }>>,
    http: Option<TcpAddress>,
    token: Option<NonEmpty>,
}

/// `[metrics]`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of metrics settings such as { listen = \"127.0.0.1:9187\" }"
)]
struct RawMetrics {
    listen: Option<TcpAddress>,
}

/// A `HOST:PORT` address to listen on over TCP (`[serve] http`, `[metrics] listen`).
#[derive(Debug)]
struct TcpAddress(String);

impl<'de> Deserialize<'de> for TcpAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TcpAddress, D::Error> {
        let Text(address) = Text::deserialize(deserializer)?;
        match pulpo_model::Address::parse(&address) {
            Ok(pulpo_model::Address::Tcp(_)) => Ok(TcpAddress(address)),
            _ => Err(de::Error::custom(format!(
                "expected HOST:PORT over TCP (e.g. \"127.0.0.1:8080\"), found {address:?}"
            ))),
        }
    }
}

/// `[handlers]`: request type → handler table.
#[derive(Debug, Default)]
struct RawHandlers(BTreeMap<String, RawHandler>);

/// A request type name: not empty.
#[derive(Debug)]
struct RequestType(String);

impl<'de> Deserialize<'de> for RequestType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RequestType, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name.is_empty() {
            return Err(de::Error::custom(
                "a request type cannot be empty: name the table [handlers.<request_type>]",
            ));
        }
        Ok(RequestType(name))
    }
}

impl<'de> Deserialize<'de> for RawHandlers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawHandlers, D::Error> {
        struct HandlersVisitor;

        impl<'de> Visitor<'de> for HandlersVisitor {
            type Value = RawHandlers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of handlers, one [handlers.<request_type>] table each")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHandlers, A::Error> {
                let mut handlers = BTreeMap::new();
                while let Some(RequestType(name)) = map.next_key()? {
                    let handler: RawHandler = map.next_value()?;
                    handlers.insert(name, handler);
                }
                Ok(RawHandlers(handlers))
            }
        }

        deserializer.deserialize_map(HandlersVisitor)
    }
}

/// One `[handlers.<request_type>]` table: typed common keys, the rest kept
/// with their tags (so their origin is known) for the kind to interpret.
#[derive(Debug)]
struct RawHandler {
    kind: Tagged<NonEmpty>,
    timeout: Option<PositiveDuration>,
    ttr: Option<Ttr>,
    priority: Option<Bounded<0, U32>>,
    retry: Option<RawRetry>,
    on_buried: Option<RawOnBuried>,
    options: Vec<(String, figment::value::Value)>,
}

impl<'de> Deserialize<'de> for RawHandler {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawHandler, D::Error> {
        struct HandlerVisitor;

        fn once<'de, A: MapAccess<'de>, T: DeserializeOwned>(
            slot: &mut Option<T>,
            map: &mut A,
        ) -> Result<(), A::Error> {
            *slot = Some(map.next_value()?);
            Ok(())
        }

        impl<'de> Visitor<'de> for HandlerVisitor {
            type Value = RawHandler;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of handler settings such as { kind = \"echo\" }")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHandler, A::Error> {
                let (mut kind, mut timeout, mut ttr, mut priority, mut retry, mut on_buried) =
                    (None, None, None, None, None, None);
                let mut options = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "kind" => once(&mut kind, &mut map)?,
                        "timeout" => once(&mut timeout, &mut map)?,
                        "ttr" => once(&mut ttr, &mut map)?,
                        "priority" => once(&mut priority, &mut map)?,
                        "retry" => once(&mut retry, &mut map)?,
                        "on_buried" => once(&mut on_buried, &mut map)?,
                        _ => options.push((key, map.next_value()?)),
                    }
                }
                let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
                Ok(RawHandler {
                    kind,
                    timeout,
                    ttr,
                    priority,
                    retry,
                    on_buried,
                    options,
                })
            }
        }

        deserializer.deserialize_map(HandlerVisitor)
    }
}

fn to_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl RawConfig {
    /// Stage two: fills in defaults and resolves handlers.
    pub(super) fn resolve(
        self,
        figment: &Figment,
        source_file: Option<PathBuf>,
    ) -> Result<Settings, ConfigError> {
        let base = Settings::default();
        let defaults = match self.defaults {
            Some(raw) => DefaultsSettings {
                priority: raw.priority.map_or(base.defaults.priority, |n| to_u32(n.0)),
                ttr: raw.ttr.map_or(base.defaults.ttr, |d| d.0),
                timeout: raw.timeout.map(|d| d.0).or(base.defaults.timeout),
            },
            None => base.defaults,
        };
        let retry = match &self.retry {
            Some(raw) => raw.over(&base.retry),
            None => base.retry,
        };
        let file = match self.file {
            Some(raw) => FileSettings {
                path: raw.path.map_or(base.file.path, |p| {
                    let origin = Origin::from_metadata(
                        figment.find_metadata("file.path"),
                        figment.profile(),
                        &["file", "path"],
                    );
                    origin.resolve_path(Path::new(&p.0))
                }),
                fsync: raw.fsync.unwrap_or(base.file.fsync),
                max_job_size: raw.max_job_size.map_or(base.file.max_job_size, |n| to_u32(n.0)),
                group: raw.group.unwrap_or(base.file.group),
            },
            None => base.file,
        };
        let beanstalkd = match self.beanstalkd {
            Some(raw) => BeanstalkdSettings {
                address: raw.address.map_or(base.beanstalkd.address, |a| a.0),
                connect_timeout: raw
                    .connect_timeout
                    .map_or(base.beanstalkd.connect_timeout, |d| d.0),
                command_timeout: raw
                    .command_timeout
                    .map_or(base.beanstalkd.command_timeout, |d| d.0),
                max_job_size: raw
                    .max_job_size
                    .map_or(base.beanstalkd.max_job_size, |n| to_u32(n.0)),
            },
            None => base.beanstalkd,
        };
        let serve = match self.serve {
            Some(raw) => ServeSettings {
                listen: raw.listen.map_or(base.serve.listen, |l| l.0),
                max_connections: raw
                    .max_connections
                    .map_or(base.serve.max_connections, |n| to_u32(n.0)),
                max_job_size: raw.max_job_size.map_or(base.serve.max_job_size, |n| to_u32(n.0)),
                http: raw.http.map(|a| a.0).or(base.serve.http),
                token: raw.token.map(|t| t.0).or(base.serve.token),
            },
            None => base.serve,
        };
        let history = match self.history {
            Some(raw) => HistorySettings {
                enabled: raw.enabled.unwrap_or(base.history.enabled),
                keep: raw.keep.map_or(base.history.keep, |d| d.0),
                max_jobs: raw.max_jobs.map_or(base.history.max_jobs, |n| n.0),
                path: raw.path.map(|p| {
                    let origin = Origin::from_metadata(
                        figment.find_metadata("history.path"),
                        figment.profile(),
                        &["history", "path"],
                    );
                    origin.resolve_path(Path::new(&p.0))
                }),
            },
            None => base.history,
        };
        let metrics = match self.metrics {
            Some(raw) => MetricsSettings {
                listen: raw.listen.map(|a| a.0).or(base.metrics.listen),
            },
            None => base.metrics,
        };
        let mut handlers = BTreeMap::new();
        for (request_type, raw) in self.handlers.unwrap_or_default().0 {
            let handler = raw.resolve(&request_type, figment, &defaults, &retry)?;
            handlers.insert(request_type, handler);
        }
        let (schedules, fire_schedules) = super::schedules::resolve(self.schedules, figment)?;
        Ok(Settings {
            queue: self.queue.unwrap_or(base.queue),
            tube: self.tube.map_or(base.tube, |t| t.0),
            watch: self.watch.map_or(base.watch, |w| w.0),
            concurrency: self.concurrency.map_or(base.concurrency, |n| {
                usize::try_from(n.0).unwrap_or(MAX_CONCURRENCY)
            }),
            sleep_duration: self.sleep_duration.map_or(base.sleep_duration, |d| d.0),
            shutdown_after_number_of_empty_iterations: self
                .shutdown_after_number_of_empty_iterations
                .map_or(base.shutdown_after_number_of_empty_iterations, |n| to_u32(n.0)),
            on_idle: self.on_idle.unwrap_or(base.on_idle),
            shutdown_timeout: self.shutdown_timeout.map_or(base.shutdown_timeout, |d| d.0),
            on_expired: self.on_expired.unwrap_or(base.on_expired),
            defaults,
            retry,
            file,
            beanstalkd,
            serve,
            history,
            metrics,
            handlers,
            schedules,
            fire_schedules,
            source_file,
        })
    }
}

impl RawHandler {
    fn resolve(
        self,
        request_type: &str,
        figment: &Figment,
        defaults: &DefaultsSettings,
        retry: &RetrySettings,
    ) -> Result<HandlerSettings, ConfigError> {
        let origin_at = |tag, key: &str| {
            Origin::from_metadata(
                figment.get_metadata(tag),
                figment.profile(),
                &["handlers", request_type, key],
            )
        };
        let kind_origin = origin_at(self.kind.tag(), "kind");
        let mut options = Map::new();
        let mut option_origins = BTreeMap::new();
        for (key, value) in self.options {
            let origin = origin_at(value.tag(), &key);
            let json = serde_json::to_value(&value).map_err(|err| ConfigError::InvalidValue {
                origin: origin.clone(),
                key: super::error::format_key(&["handlers", request_type, &key]),
                problem: format!("cannot be represented as JSON: {err}"),
            })?;
            options.insert(key.clone(), json);
            option_origins.insert(key, origin);
        }
        let NonEmpty(kind) = self.kind.into_inner();
        Ok(HandlerSettings {
            request_type: request_type.to_owned(),
            kind,
            timeout: self.timeout.map(|d| d.0).or(defaults.timeout),
            ttr: self.ttr.map(|d| d.0),
            priority: self.priority.map(|n| to_u32(n.0)),
            retry: self.retry.map_or_else(|| retry.clone(), |raw| raw.over(retry)),
            on_buried: self.on_buried.map(|raw| OnBuried {
                request_type: raw.request_type.0,
            }),
            options,
            kind_origin,
            option_origins,
        })
    }
}
