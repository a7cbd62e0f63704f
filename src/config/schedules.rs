//! `[[schedules]]`: cron schedules whose ticks the runners fire, read and
//! validated here (expression, time zone, keywords) so that a bad one is a
//! config error naming the schedule before anything runs.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use figment::Figment;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{Origin, format_key};
use super::raw::{AnyDuration, Bounded, NonEmpty, PositiveDuration, Text, Ttr, TubeName};
use super::{CatchUp, ConfigError, Overlap};

/// How late a tick may be fired and still count as on time, by default:
/// later ticks were missed (downtime), and `catch_up` decides.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// What to write instead of a bad cron expression.
const CRON_HELP: &str = "write 5 fields (minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\"), \
     6 with seconds first (e.g. \"*/10 * * * * *\"), or @hourly, @daily, @weekly, @monthly, @yearly";

/// One `[[schedules]]` table, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleSettings {
    /// Names the schedule in logs, `pulpo schedules`, and the header of
    /// every message it fires.
    pub name: String,
    /// The cron expression as written.
    pub cron: String,
    /// The time zone the expression is read in.
    #[serde(serialize_with = "zone_name")]
    pub timezone: chrono_tz::Tz,
    /// The fired message's `request_type`.
    pub request_type: String,
    /// The fired message's `body.payload`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Other body keys of the fired message.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub body: Map<String, Value>,
    /// Other header keys of the fired message.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub header: Map<String, Value>,
    /// The fired job's priority; `None` = `defaults.priority`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// The fired job's TTR; `None` = `defaults.ttr`.
    #[serde(
        with = "crate::duration::human_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttr: Option<Duration>,
    /// The tube it is fired into; `None` = `tube`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tube: Option<String>,
    /// Fire while the previous tick's job is still queued or running?
    pub overlap: Overlap,
    /// What to fire for ticks missed while no runner was up.
    pub catch_up: CatchUp,
    /// A random delay of up to this much added to each fired job.
    #[serde(
        with = "crate::duration::human_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub jitter: Option<Duration>,
    /// How late a tick may be fired and count as on time.
    #[serde(with = "crate::duration::human")]
    pub grace: Duration,
}

fn zone_name<S: serde::Serializer>(zone: &chrono_tz::Tz, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(zone.name())
}

/// Parses a cron expression the way `[[schedules]]` reads it: 5 fields,
/// 6 with seconds, or an `@` nickname.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|err| format!("invalid cron expression {expression:?} ({err}); {CRON_HELP}"))
}

impl ScheduleSettings {
    /// The parsed expression (validated when the config was read).
    fn pattern(&self) -> Option<Cron> {
        parse_cron(&self.cron).ok()
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone);
        let next = self.pattern()?.find_next_occurrence(&local, false).ok()?;
        Some(next.with_timezone(&Utc))
    }

    /// The ticks strictly after `after` and at or before `until`, oldest
    /// first, at most `limit` of them.
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut ticks = Vec::new();
        let mut at = after;
        while ticks.len() < limit {
            match self.next_after(at) {
                Some(tick) if tick <= until => {
                    ticks.push(tick);
                    at = tick;
                }
                _ => break,
            }
        }
        ticks
    }

    /// The latest tick at or before `now`.
    pub fn latest_at_or_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.timezone);
        let previous = self.pattern()?.find_previous_occurrence(&local, true).ok()?;
        Some(previous.with_timezone(&Utc))
    }
}

/// `schedules`: a list of `[[schedules]]` tables, or `false` (this
/// process fires none: `PULPO_SCHEDULES=false` for one runner).
#[derive(Debug, Default)]
pub(super) struct RawSchedules(pub(super) Option<Vec<RawSchedule>>);

impl<'de> Deserialize<'de> for RawSchedules {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawSchedules, D::Error> {
        struct SchedulesVisitor;

        impl<'de> Visitor<'de> for SchedulesVisitor {
            type Value = RawSchedules;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("[[schedules]] tables, or false for a runner that fires none")
            }

            fn visit_bool<E: de::Error>(self, on: bool) -> Result<RawSchedules, E> {
                if on {
                    return Err(E::custom(
                        "schedules = true means nothing: write [[schedules]] tables, or schedules = false \
                         for a runner that fires none",
                    ));
                }
                Ok(RawSchedules(None))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawSchedules, A::Error> {
                let mut list = Vec::new();
                while let Some(schedule) = seq.next_element()? {
                    list.push(schedule);
                }
                Ok(RawSchedules(Some(list)))
            }
        }

        deserializer.deserialize_any(SchedulesVisitor)
    }
}

/// One `[[schedules]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a schedule table such as { name = \"nightly\", cron = \"0 3 * * *\", request_type = \"report\" }"
)]
pub(super) struct RawSchedule {
    name: NonEmpty,
    cron: Text,
    timezone: Option<Text>,
    request_type: NonEmpty,
    payload: Option<Value>,
    body: Option<Map<String, Value>>,
    header: Option<Map<String, Value>>,
    priority: Option<Bounded<0, { u32::MAX as u64 }>>,
    ttr: Option<Ttr>,
    tube: Option<TubeName>,
    overlap: Option<Overlap>,
    catch_up: Option<CatchUp>,
    jitter: Option<AnyDuration>,
    grace: Option<PositiveDuration>,
}

/// Resolves the `[[schedules]]` tables: `(schedules, fire)`, where `fire`
/// is false when `schedules = false`.
pub(super) fn resolve(
    raw: Option<RawSchedules>,
    figment: &Figment,
) -> Result<(Vec<ScheduleSettings>, bool), ConfigError> {
    let Some(RawSchedules(list)) = raw else {
        return Ok((Vec::new(), true));
    };
    let Some(list) = list else {
        return Ok((Vec::new(), false));
    };
    let origin = Origin::from_metadata(
        figment.find_metadata("schedules"),
        figment.profile(),
        &["schedules"],
    );
    let mut schedules: Vec<ScheduleSettings> = Vec::with_capacity(list.len());
    for (index, raw) in list.into_iter().enumerate() {
        let index = index.to_string();
        let name = raw.name.0;
        let error = |key: &str, problem: String| ConfigError::InvalidValue {
            origin: origin.clone(),
            key: format_key(&["schedules", index.as_str(), key]),
            problem: format!("schedule {name:?}: {problem}"),
        };
        if schedules.iter().any(|s| s.name == name) {
            return Err(error(
                "name",
                "another schedule has this name; give each a name of its own".to_owned(),
            ));
        }
        parse_cron(&raw.cron.0).map_err(|problem| error("cron", problem))?;
        let timezone = match raw.timezone {
            None => chrono_tz::Tz::UTC,
            Some(Text(zone)) => zone.parse::<chrono_tz::Tz>().map_err(|_| {
                error(
                    "timezone",
                    format!(
                        "unknown time zone {zone:?}; write an IANA name such as \"UTC\", \"Europe/Berlin\" or \
                         \"America/New_York\""
                    ),
                )
            })?,
        };
        let jitter = raw.jitter.map(|d| d.0).filter(|d| !d.is_zero());
        schedules.push(ScheduleSettings {
            name: name.clone(),
            cron: raw.cron.0,
            timezone,
            request_type: raw.request_type.0,
            payload: raw.payload,
            body: raw.body.unwrap_or_default(),
            header: raw.header.unwrap_or_default(),
            priority: raw.priority.map(|n| u32::try_from(n.0).unwrap_or(u32::MAX)),
            ttr: raw.ttr.map(|d| d.0),
            tube: raw.tube.map(|t| t.0),
            overlap: raw.overlap.unwrap_or_default(),
            catch_up: raw.catch_up.unwrap_or_default(),
            jitter,
            grace: raw.grace.map_or(DEFAULT_GRACE, |d| d.0),
        });
    }
    Ok((schedules, true))
}

/// A time zone's local wall time at `at`, for display.
pub fn local_time(zone: chrono_tz::Tz, at: DateTime<Utc>) -> String {
    zone.from_utc_datetime(&at.naive_utc()).to_rfc3339()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeZone;

    use super::*;

    fn schedule(cron: &str, timezone: &str) -> ScheduleSettings {
        let text = format!(
            "[[schedules]]\nname = \"s\"\ncron = \"{cron}\"\ntimezone = \"{timezone}\"\nrequest_type = \"r\"\n"
        );
        let settings = crate::config::from_toml_str(&text, Path::new("pulpo.toml")).unwrap();
        settings.schedules[0].clone()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn a_daily_time_follows_the_zone_across_dst() {
        let s = schedule("0 3 * * *", "Europe/Berlin");
        // Winter: 03:00 CET is 02:00 UTC; summer: 03:00 CEST is 01:00 UTC.
        for (after, next) in [
            (utc(2026, 3, 27, 12, 0, 0), utc(2026, 3, 28, 2, 0, 0)),
            (utc(2026, 3, 28, 12, 0, 0), utc(2026, 3, 29, 1, 0, 0)),
            (utc(2026, 10, 25, 12, 0, 0), utc(2026, 10, 26, 2, 0, 0)),
        ] {
            assert_eq!(s.next_after(after), Some(next), "after {after}");
        }
    }

    #[test]
    fn a_time_in_the_skipped_hour_fires_once_and_the_repeated_hour_once() {
        let s = schedule("30 2 * * *", "Europe/Berlin");
        // 2026-03-29 02:30 does not exist in Berlin (02:00 -> 03:00).
        let spring = s.ticks_between(utc(2026, 3, 28, 12, 0, 0), utc(2026, 3, 30, 12, 0, 0), 10);
        assert_eq!(spring.len(), 2, "{spring:?}");
        assert_eq!(spring[1], utc(2026, 3, 30, 0, 30, 0));
        // 2026-10-25 02:30 happens twice (03:00 -> 02:00): one tick that day.
        let autumn = s.ticks_between(utc(2026, 10, 24, 12, 0, 0), utc(2026, 10, 25, 12, 0, 0), 10);
        assert_eq!(autumn.len(), 1, "{autumn:?}");
    }

    #[test]
    fn seconds_and_nicknames_and_utc_by_default() {
        let text = "[[schedules]]\nname = \"s\"\ncron = \"*/10 * * * * *\"\nrequest_type = \"r\"\n\
                    [[schedules]]\nname = \"h\"\ncron = \"@hourly\"\nrequest_type = \"r\"\n";
        let settings = crate::config::from_toml_str(text, Path::new("pulpo.toml")).unwrap();
        let (s, h) = (&settings.schedules[0], &settings.schedules[1]);
        assert_eq!(s.timezone, chrono_tz::Tz::UTC);
        let at = utc(2026, 1, 1, 0, 0, 5);
        assert_eq!(s.next_after(at), Some(utc(2026, 1, 1, 0, 0, 10)));
        assert_eq!(h.next_after(at), Some(utc(2026, 1, 1, 1, 0, 0)));
        assert_eq!(
            s.latest_at_or_before(at + chrono::Duration::seconds(10)),
            Some(utc(2026, 1, 1, 0, 0, 10))
        );
        assert!(settings.fire_schedules);
    }

    fn error(table: &str) -> String {
        let text = format!("[[schedules]]\nname = \"nightly\"\nrequest_type = \"r\"\n{table}");
        crate::config::from_toml_str(&text, Path::new("pulpo.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_expressions_zones_and_keywords_name_the_schedule() {
        let bad_cron = error("cron = \"61 * * * *\"");
        assert!(bad_cron.starts_with("pulpo.toml: key \"schedules[0].cron\": schedule \"nightly\": invalid cron expression \"61 * * * *\""), "{bad_cron}");
        assert!(bad_cron.contains("write 5 fields"), "{bad_cron}");
        let with_year = error("cron = \"0 0 3 * * * 2027\"");
        assert!(with_year.contains("invalid cron expression"), "{with_year}");
        let too_few = error("cron = \"* * *\"");
        assert!(
            too_few.contains("schedule \"nightly\": invalid cron expression"),
            "{too_few}"
        );
        let zone = error("cron = \"@daily\"\ntimezone = \"Mars/Olympus\"");
        assert!(
            zone.contains(
                "key \"schedules[0].timezone\": schedule \"nightly\": unknown time zone \"Mars/Olympus\""
            ),
            "{zone}"
        );
        let overlap = error("cron = \"@daily\"\noverlap = \"sometimes\"");
        assert!(
            overlap.contains("schedules[0].overlap") && overlap.contains("\"allow\" or \"skip\""),
            "{overlap}"
        );
        let catch_up = error("cron = \"@daily\"\ncatch_up = \"all\"");
        assert!(
            catch_up.contains("schedules[0].catch_up") && catch_up.contains("\"once\" or \"none\""),
            "{catch_up}"
        );
        let missing = error("");
        assert!(missing.contains("cron"), "{missing}");
        let twice = crate::config::from_toml_str(
            "[[schedules]]\nname = \"a\"\ncron = \"@daily\"\nrequest_type = \"r\"\n\
             [[schedules]]\nname = \"a\"\ncron = \"@daily\"\nrequest_type = \"r\"\n",
            Path::new("pulpo.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            twice.contains("schedules[1].name") && twice.contains("another schedule has this name"),
            "{twice}"
        );
    }

    #[test]
    fn the_resolved_config_reads_back_the_same() {
        let text = "[[schedules]]\nname = \"all\"\ncron = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\n\
                    request_type = \"report\"\npayload = \"daily\"\nbody = { to = \"ops\" }\n\
                    header = { source = \"cron\" }\npriority = 5\nttr = \"2m\"\ntube = \"reports\"\n\
                    overlap = \"skip\"\ncatch_up = \"none\"\njitter = \"30s\"\ngrace = \"1m\"\n";
        let settings = crate::config::from_toml_str(text, Path::new("pulpo.toml")).unwrap();
        let again =
            crate::config::from_toml_str(&settings.to_toml_string(), Path::new("pulpo.toml")).unwrap();
        assert_eq!(again.schedules, settings.schedules);
    }

    #[test]
    fn schedules_false_fires_none() {
        let settings = crate::config::from_toml_str("schedules = false\n", Path::new("pulpo.toml")).unwrap();
        assert!(!settings.fire_schedules);
        assert!(settings.schedules.is_empty());
    }
}
