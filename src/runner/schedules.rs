//! The runner's scheduler: every runner takes part (unless `schedules =
//! false`); the one that holds the queue's [`Leadership`] fires each
//! schedule's ticks, and the others wait to take over.
//!
//! Each tick is recorded on the queue *before* its job is published, and
//! the job's id after: a leader killed between the two loses that one tick
//! (the next leader logs it), and no tick is ever published twice. The
//! header's schedule name and tick time let a handler check that too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{CatchUp, Overlap, ScheduleSettings, Settings};
use crate::message::{Message, SCHEDULE_MISSED_KEY};
use crate::queue::{Fired, JobState, Leadership, Lease, QueueError, ScheduleState};

/// How often a runner that does not lead tries to take the lead.
pub(crate) const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// The most missed ticks counted after downtime (a per-second schedule
/// down for a year need not be walked tick by tick).
const MAX_COUNTED: usize = 100_000;

/// What a leader does for one schedule now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Due {
    /// Ticks older than `grace`, missed while no runner fired: how many
    /// (up to [`MAX_COUNTED`]), and the latest.
    pub(crate) missed: Option<(usize, DateTime<Utc>)>,
    /// Ticks within `grace` of `now`, oldest first: each is fired.
    pub(crate) on_time: Vec<DateTime<Utc>>,
}

/// The ticks of `schedule` after `last` (the last one fired) up to `now`,
/// split into missed and on-time ones. A pure function of its inputs.
pub(crate) fn due(schedule: &ScheduleSettings, last: DateTime<Utc>, now: DateTime<Utc>) -> Due {
    let grace = chrono::Duration::from_std(schedule.grace).unwrap_or(chrono::Duration::MAX);
    let on_time_from = now - grace;
    let missed_until = on_time_from.max(last);
    let missed = schedule.ticks_between(last, missed_until, MAX_COUNTED);
    let after = missed.last().copied().unwrap_or(last).max(missed_until);
    Due {
        missed: missed.last().map(|latest| (missed.len(), *latest)),
        on_time: schedule.ticks_between(after, now, MAX_COUNTED),
    }
}

/// Starts the scheduler of a run, when `settings` has schedules and may
/// fire them and the queue offers leadership; it ends with `stop`.
pub(crate) async fn start(
    settings: &Arc<Settings>,
    queue: &mut dyn Lease,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if settings.schedules.is_empty() || !settings.fire_schedules {
        return None;
    }
    match queue.leadership().await {
        Ok(Some(lead)) => Some(tokio::spawn(run(settings.clone(), lead, stop))),
        Ok(None) => {
            warn!(queue = %queue.describe(), "schedules: this queue cannot elect a leader; no schedule fires from this runner");
            None
        }
        Err(err) => {
            warn!("schedules: {err}; no schedule fires from this runner");
            None
        }
    }
}

/// Runs until `stop`: takes the lead when it can, and while it leads,
/// fires every tick that comes due. Gives the lead up on the way out.
pub(crate) async fn run(settings: Arc<Settings>, mut lead: Box<dyn Leadership>, stop: CancellationToken) {
    let mut leader = Leader {
        settings,
        state: None,
        seen: BTreeMap::new(),
    };
    loop {
        let wait = match leader.round(lead.as_mut()).await {
            Ok(wait) => wait,
            Err(err) => {
                warn!("schedules: {err}; trying again");
                leader.state = None;
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if leader.state.is_some()
        && let Err(err) = lead.resign().await
    {
        warn!("schedules: could not give up the lead: {err}");
    }
}

struct Leader {
    settings: Arc<Settings>,
    /// The queue's state, while this runner leads.
    state: Option<ScheduleState>,
    /// When this runner first saw each schedule that has never fired:
    /// its ticks start after that.
    seen: BTreeMap<String, DateTime<Utc>>,
}

impl Leader {
    /// One look: lead if possible, fire what is due; returns how long to
    /// wait before the next look.
    async fn round(&mut self, lead: &mut dyn Leadership) -> Result<Duration, QueueError> {
        if !lead.try_lead().await? {
            if self.state.take().is_some() {
                warn!("schedules: lost the lead to another runner");
            }
            return Ok(FOLLOW_POLL);
        }
        if self.state.is_none() {
            let state = lead.load().await?;
            info!(queue_state = ?state.fired, "schedules: this runner leads");
            for (name, fired) in &state.fired {
                if fired.job.is_none() {
                    warn!(
                        schedule = %name,
                        tick = %fired.tick,
                        "schedules: the last leader stopped between recording this tick and publishing \
                         its job, which may be lost"
                    );
                }
            }
            self.state = Some(state);
        }
        let settings = self.settings.clone();
        for schedule in &settings.schedules {
            let now = Utc::now();
            let last = self.last(&schedule.name, now);
            let due = due(schedule, last, now);
            if let Some((count, latest)) = due.missed {
                match schedule.catch_up {
                    CatchUp::Once => {
                        info!(schedule = %schedule.name, missed = count, "schedules: catching up once for missed ticks");
                        self.fire(lead, schedule, latest, Some(count)).await?;
                    }
                    CatchUp::None => {
                        info!(schedule = %schedule.name, missed = count, "schedules: dropping missed ticks (catch_up = \"none\")");
                        self.record(lead, schedule, latest, None).await?;
                    }
                }
            }
            for tick in due.on_time {
                self.fire(lead, schedule, tick, None).await?;
            }
        }
        let now = Utc::now();
        let next = settings
            .schedules
            .iter()
            .filter_map(|s| s.next_after(now))
            .min()
            .and_then(|at| (at - now).to_std().ok())
            .unwrap_or(Duration::from_secs(60));
        Ok(next.min(lead.hold() / 3).max(Duration::from_millis(5)))
    }

    /// The last tick fired (or, for a schedule never fired, when this
    /// runner first saw it).
    fn last(&mut self, name: &str, now: DateTime<Utc>) -> DateTime<Utc> {
        match self.state.as_ref().and_then(|s| s.fired.get(name)) {
            Some(fired) => fired.tick,
            None => *self.seen.entry(name.to_owned()).or_insert(now),
        }
    }

    /// Stores `tick` as the last of `schedule`, with its job.
    async fn record(
        &mut self,
        lead: &mut dyn Leadership,
        schedule: &ScheduleSettings,
        tick: DateTime<Utc>,
        job: Option<u64>,
    ) -> Result<(), QueueError> {
        let Some(state) = self.state.as_mut() else {
            return Err(QueueError::Refused("not leading".to_owned()));
        };
        if !lead.keep().await? {
            self.state = None;
            return Err(QueueError::Refused("lost the lead".to_owned()));
        }
        state.seq += 1;
        state.fired.insert(schedule.name.clone(), Fired { tick, job });
        lead.store(state).await
    }

    /// Fires `tick` of `schedule`, unless `overlap = "skip"` and the
    /// previous tick's job is still queued or running.
    async fn fire(
        &mut self,
        lead: &mut dyn Leadership,
        schedule: &ScheduleSettings,
        tick: DateTime<Utc>,
        missed: Option<usize>,
    ) -> Result<(), QueueError> {
        let previous = self
            .state
            .as_ref()
            .and_then(|s| s.fired.get(&schedule.name))
            .and_then(|f| f.job);
        if schedule.overlap == Overlap::Skip
            && let Some(job) = previous
            && matches!(
                lead.job_state(job).await?,
                Some(JobState::Ready | JobState::Delayed | JobState::Reserved)
            )
        {
            info!(schedule = %schedule.name, %tick, previous = job, "schedules: skipped: the previous job is still queued or running");
            return self.record(lead, schedule, tick, Some(job)).await;
        }
        // Recorded first: a crash from here to the second record loses
        // this tick rather than firing it twice.
        self.record(lead, schedule, tick, None).await?;
        let mut message = message(schedule, tick, missed);
        let tube = schedule
            .tube
            .clone()
            .unwrap_or_else(|| self.settings.tube.clone());
        let job = crate::publish::prepare(&mut message, &self.settings, Utc::now());
        let id = lead.put(&tube, job).await?;
        info!(schedule = %schedule.name, %tick, job = id, tube = %tube, "schedules: fired");
        self.record(lead, schedule, tick, Some(id)).await
    }
}

/// The message `schedule` fires for `tick`.
pub(crate) fn message(schedule: &ScheduleSettings, tick: DateTime<Utc>, missed: Option<usize>) -> Message {
    let mut message = Message::new(schedule.request_type.clone()).with_schedule(&schedule.name, tick);
    if let Some(payload) = &schedule.payload {
        message = message.with_payload(payload.clone());
    }
    for (key, value) in &schedule.body {
        message = message.with_body_field(key.clone(), value.clone());
    }
    for (key, value) in &schedule.header {
        message = message.with_header(key.clone(), value.clone());
    }
    if let Some(count) = missed {
        message = message.with_header(SCHEDULE_MISSED_KEY, count);
    }
    if let Some(priority) = schedule.priority {
        message = message.with_priority(priority);
    }
    if let Some(ttr) = schedule.ttr {
        message = message.with_ttr(u32::try_from(ttr.as_secs()).unwrap_or(u32::MAX));
    }
    if let Some(jitter) = schedule.jitter {
        let delay = jitter.mul_f64(super::outcome::random_fraction());
        message = message.with_delay(tick + chrono::Duration::from_std(delay).unwrap_or_default());
    }
    message
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeZone;

    use super::*;

    fn schedule(extra: &str) -> ScheduleSettings {
        let text = format!("[[schedules]]\nname = \"s\"\nrequest_type = \"r\"\n{extra}\n");
        crate::config::from_toml_str(&text, Path::new("pulpo.toml"))
            .unwrap()
            .schedules[0]
            .clone()
    }

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 29, h, m, s).unwrap()
    }

    #[test]
    fn every_tick_within_grace_is_on_time() {
        let s = schedule("cron = \"* * * * * *\"\ngrace = \"10s\"");
        let d = due(&s, at(10, 0, 0), at(10, 0, 3));
        assert_eq!(d.missed, None);
        assert_eq!(d.on_time, vec![at(10, 0, 1), at(10, 0, 2), at(10, 0, 3)]);
        assert!(due(&s, at(10, 0, 3), at(10, 0, 3)).on_time.is_empty());
    }

    #[test]
    fn ticks_older_than_grace_are_missed() {
        let s = schedule("cron = \"* * * * * *\"\ngrace = \"2s\"");
        let d = due(&s, at(10, 0, 0), at(10, 0, 10));
        assert_eq!(d.missed, Some((8, at(10, 0, 8))));
        assert_eq!(d.on_time, vec![at(10, 0, 9), at(10, 0, 10)]);
        // An hourly schedule down for a day and a half: 36 missed, none on time.
        let h = schedule("cron = \"@hourly\"");
        let d = due(
            &h,
            at(0, 0, 0),
            at(0, 0, 0) + chrono::Duration::hours(36) + chrono::Duration::minutes(5),
        );
        assert_eq!(d.missed.map(|m| m.0), Some(36));
        assert!(d.on_time.is_empty());
    }

    #[test]
    fn the_dst_gap_and_fold_in_berlin_with_a_fixed_clock() {
        // 01:30 local every day; Berlin moves 02:00 -> 03:00 on 2026-03-29.
        let s = schedule("cron = \"30 1 * * *\"\ntimezone = \"Europe/Berlin\"\ngrace = \"1h\"");
        // 01:30 CET = 00:30 UTC on the day of the change.
        let d = due(&s, at(0, 0, 0), at(0, 31, 0));
        assert_eq!(d.on_time, vec![at(0, 30, 0)]);
        // The next is 01:30 CEST = 23:30 UTC the same day.
        assert_eq!(s.next_after(at(0, 30, 0)), Some(at(23, 30, 0)));
    }

    #[test]
    fn a_fired_message_names_its_schedule_and_tick() {
        let s = schedule(
            "cron = \"@daily\"\npayload = \"daily\"\njitter = \"30s\"\nheader = { source = \"cron\" }",
        );
        let m = message(&s, at(3, 0, 0), Some(4));
        assert_eq!(m.schedule(), Some(("s", at(3, 0, 0))));
        assert_eq!(m.payload_str(), Some("daily"));
        assert_eq!(m.header.extra[SCHEDULE_MISSED_KEY], 4);
        let delay = m.header.delay.unwrap();
        assert!(delay >= at(3, 0, 0) && delay <= at(3, 0, 30), "{delay}");
    }
}
