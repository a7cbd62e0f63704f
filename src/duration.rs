//! Durations as people write them in config files, flags and environment
//! variables: `"5s"`, `"10m"`, `"1h30m"`, `"250ms"` (humantime units) or a
//! plain number of seconds (`30`, `1.5`, `"30"`), and printed back in the
//! compact humantime form (`"1h30m"`).
//!
//! Negative, NaN, infinite and absurd values (more than [`MAX_DURATION`], about
//! 100 years) are rejected with a message that shows the offending value.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The longest duration pulpo accepts: 100 years of 365.25 days. Anything
/// longer is a typo (a missing unit, an extra zero), not an intent.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// What the accepted forms look like, for error messages.
const FORMS: &str = "a duration such as \"5s\", \"10m\", \"1h30m\", \"250ms\" or a number of seconds";

/// Why a value is not an acceptable duration. Every message shows the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not in any accepted form.
    #[error("expected {FORMS}, found {found}")]
    Invalid {
        /// The offending value as written (strings quoted).
        found: String,
    },
    /// Below zero.
    #[error("a duration cannot be negative, found {found}")]
    Negative {
        /// The offending value as written (strings quoted).
        found: String,
    },
    /// NaN or infinite.
    #[error("a duration must be a finite number of seconds, found {found}")]
    NotFinite {
        /// The offending value as written (strings quoted).
        found: String,
    },
    /// Longer than [`MAX_DURATION`].
    #[error("a duration must be at most 100 years, found {found}")]
    TooLong {
        /// The offending value as written (strings quoted).
        found: String,
    },
}

/// Parses a duration written as humantime (`"5s"`, `"1h30m"`, `"250ms"`,
/// `"1h 30m"`) or as a plain number of seconds (`"30"`, `"1.5"`).
/// Surrounding whitespace is ignored.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let found = || format!("{text:?}");
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(DurationError::Negative { found: found() });
    }
    let looks_numeric = trimmed.chars().all(|c| c.is_ascii_digit() || c == '.');
    let lower = trimmed.to_ascii_lowercase();
    if looks_numeric && !trimmed.is_empty() {
        let secs: f64 = trimmed
            .parse()
            .map_err(|_| DurationError::Invalid { found: found() })?;
        return checked_from_secs_f64(secs, found);
    }
    if matches!(lower.trim_start_matches('+'), "nan" | "inf" | "infinity") {
        return Err(DurationError::NotFinite { found: found() });
    }
    match humantime::parse_duration(trimmed) {
        Ok(duration) if duration > MAX_DURATION => Err(DurationError::TooLong { found: found() }),
        Ok(duration) => Ok(duration),
        Err(humantime::DurationError::NumberOverflow) => Err(DurationError::TooLong { found: found() }),
        Err(_) => Err(DurationError::Invalid { found: found() }),
    }
}

/// A duration from a number of seconds, as TOML floats and integers give it.
pub fn duration_from_secs_f64(secs: f64) -> Result<Duration, DurationError> {
    checked_from_secs_f64(secs, || secs.to_string())
}

/// A duration from a whole number of seconds, as TOML integers give it.
pub fn duration_from_secs_i64(secs: i64) -> Result<Duration, DurationError> {
    let Ok(secs) = u64::try_from(secs) else {
        return Err(DurationError::Negative {
            found: secs.to_string(),
        });
    };
    checked(Duration::from_secs(secs), || secs.to_string())
}

fn checked_from_secs_f64(secs: f64, found: impl Fn() -> String) -> Result<Duration, DurationError> {
    if secs.is_nan() || secs.is_infinite() {
        return Err(DurationError::NotFinite { found: found() });
    }
    if secs < 0.0 {
        return Err(DurationError::Negative { found: found() });
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(DurationError::TooLong { found: found() });
    }
    let duration =
        Duration::try_from_secs_f64(secs).map_err(|_| DurationError::Invalid { found: found() })?;
    checked(duration, found)
}

fn checked(duration: Duration, found: impl Fn() -> String) -> Result<Duration, DurationError> {
    if duration > MAX_DURATION {
        Err(DurationError::TooLong { found: found() })
    } else {
        Ok(duration)
    }
}

/// Prints a duration in compact humantime form: `"5s"`, `"1h30m"`,
/// `"1s500ms"`, `"0s"`. [`parse_duration`] reads it back exactly.
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string().replace(' ', "")
}

/// A [`Duration`] that deserializes from any accepted form (string or number
/// of seconds) and serializes in compact humantime form (`"5s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl From<Duration> for HumanDuration {
    fn from(duration: Duration) -> HumanDuration {
        HumanDuration(duration)
    }
}

impl From<HumanDuration> for Duration {
    fn from(duration: HumanDuration) -> Duration {
        duration.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<HumanDuration, DurationError> {
        parse_duration(text).map(HumanDuration)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<HumanDuration, D::Error> {
        deserializer.deserialize_any(DurationVisitor).map(HumanDuration)
    }
}

/// Accepts a string in any form [`parse_duration`] reads, or a number of
/// seconds; every error message is a [`DurationError`]'s.
struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(FORMS)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse_duration(text).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
        checked(Duration::from_secs(secs), || secs.to_string()).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
        duration_from_secs_i64(secs).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Duration, E> {
        duration_from_secs_f64(secs).map_err(E::custom)
    }
}

/// `#[serde(with = "pulpo::duration::human")]` for a plain [`Duration`] field.
pub mod human {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::HumanDuration;

    /// Writes the duration as a compact humantime string (`"5s"`).
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        HumanDuration(*duration).serialize(serializer)
    }

    /// Reads a duration in any accepted form.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        HumanDuration::deserialize(deserializer).map(|d| d.0)
    }
}

/// `#[serde(with = "pulpo::duration::human_option", default)]` for an
/// `Option<Duration>` field.
pub mod human_option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::HumanDuration;

    /// Writes `Some` as a compact humantime string and `None` as none.
    pub fn serialize<S: Serializer>(duration: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        duration.map(HumanDuration).serialize(serializer)
    }

    /// Reads an optional duration in any accepted form.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        Option::<HumanDuration>::deserialize(deserializer).map(|d| d.map(|d| d.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let cases = [
            ("5s", Duration::from_secs(5)),
            ("10m", Duration::from_secs(600)),
            ("1h30m", Duration::from_secs(5400)),
            ("1h 30m", Duration::from_secs(5400)),
            ("250ms", Duration::from_millis(250)),
            ("30", Duration::from_secs(30)),
            (" 30 ", Duration::from_secs(30)),
            ("1.5", Duration::from_millis(1500)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_with_the_value() {
        assert_eq!(
            parse_duration("-5s").unwrap_err().to_string(),
            "a duration cannot be negative, found \"-5s\""
        );
        assert_eq!(
            parse_duration("abc").unwrap_err().to_string(),
            "expected a duration such as \"5s\", \"10m\", \"1h30m\", \"250ms\" or a number of seconds, \
             found \"abc\""
        );
        assert_eq!(
            parse_duration("NaN").unwrap_err().to_string(),
            "a duration must be a finite number of seconds, found \"NaN\""
        );
        assert_eq!(
            parse_duration("101years").unwrap_err().to_string(),
            "a duration must be at most 100 years, found \"101years\""
        );
        assert!(matches!(parse_duration(""), Err(DurationError::Invalid { .. })));
        assert!(matches!(
            parse_duration("1.2.3"),
            Err(DurationError::Invalid { .. })
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999s"),
            Err(DurationError::TooLong { .. })
        ));
        assert!(matches!(
            duration_from_secs_f64(f64::NAN),
            Err(DurationError::NotFinite { .. })
        ));
        assert!(matches!(
            duration_from_secs_f64(-0.5),
            Err(DurationError::Negative { .. })
        ));
        assert!(matches!(
            duration_from_secs_f64(1e300),
            Err(DurationError::TooLong { .. })
        ));
        assert!(matches!(
            duration_from_secs_i64(-1),
            Err(DurationError::Negative { .. })
        ));
        assert_eq!(parse_duration("100years"), Ok(MAX_DURATION));
    }

    #[test]
    fn prints_compactly() {
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_is_exact(secs in 0..=MAX_DURATION.as_secs(), nanos in 0u32..1_000_000_000) {
            let duration = Duration::new(secs, nanos).min(MAX_DURATION);
            proptest::prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = parse_duration(&text);
        }
    }
}
