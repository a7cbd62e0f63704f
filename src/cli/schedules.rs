//! `pulpo schedules` (each schedule's next fire times and the last tick
//! fired, as the queue keeps it) and the `--at TIME` of `pulpo publish`.

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::{Failure, show};
use crate::config::{Settings, local_time};
use crate::message::{format_time, parse_time};
use crate::queue::Queue;

/// How many next fire times `pulpo schedules` shows.
const NEXT: usize = 3;

/// Reads `--at`: RFC 3339, or a local `YYYY-MM-DD HH:MM[:SS]`.
pub(super) fn parse_at(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = parse_time(text) {
        return Ok(at);
    }
    NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M")
        .ok()
        .and_then(|naive| Local.from_local_datetime(&naive).earliest())
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| {
            format!(
                "{text:?} is not a time: write RFC 3339 (2026-12-24T18:00:00+01:00) or a local time \
                 (2026-12-24 18:00)"
            )
        })
}

/// Refuses an `--at` time that has passed: publishing it "now" would hide a
/// typo in the date.
pub(super) fn check_at(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<DateTime<Utc>, Failure> {
    if at < now - chrono::Duration::seconds(1) {
        return Err(Failure::usage(format!(
            "--at {}: that time has passed (it is now {}); give a time ahead, or leave --at out to publish now",
            format_time(at),
            format_time(now)
        )));
    }
    Ok(at)
}

/// `pulpo schedules`: every schedule with its next fire times and the last
/// tick fired.
pub(super) async fn list(queue: &mut dyn Queue, settings: &Settings, json: bool) -> Result<(), Failure> {
    let state = match queue.leadership().await? {
        Some(mut lead) => Some(lead.load().await?),
        None => None,
    };
    let now = Utc::now();
    let mut documents = Vec::new();
    let mut lines = Vec::new();
    for schedule in &settings.schedules {
        let next = schedule.ticks_between(now, now + chrono::Duration::days(3660), NEXT);
        let last = state.as_ref().and_then(|s| s.fired.get(&schedule.name));
        documents.push(json!({
            "name": schedule.name,
            "cron": schedule.cron,
            "timezone": schedule.timezone.name(),
            "request_type": schedule.request_type,
            "next": next.iter().map(|t| format_time(*t)).collect::<Vec<_>>(),
            "last_fired": last.map_or(Value::Null, |f| json!({"tick": format_time(f.tick), "job": f.job})),
        }));
        let next_text = match next.first() {
            Some(at) => local_time(schedule.timezone, *at),
            None => "never".to_owned(),
        };
        let last_text = match last {
            Some(fired) => match fired.job {
                Some(job) => format!("{} (job {job})", local_time(schedule.timezone, fired.tick)),
                None => format!("{} (no job)", local_time(schedule.timezone, fired.tick)),
            },
            None => "never".to_owned(),
        };
        lines.push(format!(
            "{}  {:?} {}  next {next_text}  last fired {last_text}",
            schedule.name,
            schedule.cron,
            schedule.timezone.name()
        ));
    }
    if lines.is_empty() {
        lines.push(if settings.fire_schedules {
            "no schedules: add [[schedules]] tables to pulpo.toml".to_owned()
        } else {
            "no schedules: schedules = false is set (PULPO_SCHEDULES or the config file)".to_owned()
        });
    }
    show::emit(json, json!({ "schedules": documents }), || lines.join("\n"))?;
    Ok(())
}
