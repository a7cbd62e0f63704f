//! The runner's one policy table (DESIGN.md, "Outcomes") as pure functions:
//! from what happened to a job and the job's facts to its [`Settlement`] and
//! the counter that records it ([`decide`]), and how long a retry waits
//! ([`retry_delay`]). No I/O and no clock here: the worker finds out what
//! happened, this module says what follows, and every row of the table has a
//! unit test that needs no queue.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use super::counters::Counters;
use crate::config::{Backoff, OnExpired, RetrySettings};
use crate::history::End;
use crate::queue::Settlement;

/// What happened to a reserved job: one variant per row of the table.
#[derive(Debug, Clone, PartialEq)]
pub enum Happened {
    /// The body is not a pulpo message (the parse error says why).
    NotAMessage(String),
    /// No handler table for the message's request type.
    NoHandler,
    /// The body is over the limit the queue handle reads, so it was not
    /// read (the queue's reason names the limit and its key).
    TooBig(String),
    /// Its `expiration` (written as RFC 3339) passed before it ran.
    Expired(String),
    /// The queue has handed it out more often than `max_attempts` allows.
    TooManyAttempts,
    /// The handler succeeded and its follow-ups, if any, were published.
    Succeeded,
    /// The handler succeeded, but publishing a follow-up failed: as transient.
    FollowUpFailed(String),
    /// The handler failed in a way worth retrying, after its own delay if
    /// it named one.
    Transient {
        /// Why, from the handler.
        reason: String,
        /// The handler's own retry delay, instead of the back-off's.
        delay: Option<Duration>,
    },
    /// The handler failed for good.
    Fatal(String),
    /// The handler panicked (its message).
    Panicked(String),
    /// The handler ran past its timeout and was cancelled.
    TimedOut(Duration),
    /// Shutdown gave up on the handler after `shutdown_timeout`.
    Abandoned,
    /// The handler's work was stopped from outside (an exec child killed by
    /// a signal, [`crate::handlers::Outcome::Interrupted`]).
    Interrupted {
        /// Why, from the handler.
        reason: String,
        /// Whether the runner was stopping by then: a stop that signals
        /// every process of the service at once (systemd's default
        /// `KillMode`) kills the child as it stops the runner.
        stopping: bool,
    },
}

/// What the table needs to know about the job besides what happened.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The message's request type (for the no-handler reason).
    pub request_type: &'a str,
    /// This attempt's number: the queue's reserve count less the job's
    /// kicks (hand-backs at shutdown, an operator's kicks).
    pub attempt: u32,
    /// The queue's reserve count, this reservation included (for reasons).
    pub reserves: u32,
    /// The job's priority, kept on release and bury.
    pub priority: u32,
    /// The retry policy of the job's handler.
    pub retry: &'a RetrySettings,
    /// What an expired job becomes.
    pub on_expired: OnExpired,
    /// A number in `0.0..1.0` for the back-off's jitter.
    pub random: f64,
}

/// Which counters a decision adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// `succeeded`.
    Succeeded,
    /// `released`.
    Released,
    /// `buried`.
    Buried,
    /// `expired` (the job was deleted).
    ExpiredDeleted,
    /// `expired` and `buried`.
    ExpiredBuried,
    /// `timed_out` and `released`.
    TimedOutReleased,
    /// `timed_out` and `buried`.
    TimedOutBuried,
    /// `released`, as a hand-back at shutdown: released and kicked at once,
    /// so the reservation uses up no attempt (the worker's `hand_back`).
    HandedBack,
}

impl Count {
    /// Adds this decision to `counters`.
    pub fn apply(self, counters: &mut Counters) {
        match self {
            Count::Succeeded => counters.succeeded += 1,
            Count::Released | Count::HandedBack => counters.released += 1,
            Count::Buried => counters.buried += 1,
            Count::ExpiredDeleted => counters.expired += 1,
            Count::ExpiredBuried => {
                counters.expired += 1;
                counters.buried += 1;
            }
            Count::TimedOutReleased => {
                counters.timed_out += 1;
                counters.released += 1;
            }
            Count::TimedOutBuried => {
                counters.timed_out += 1;
                counters.buried += 1;
            }
        }
    }

    /// How the job ended, as its record says, or `None` when it will run
    /// again (released, handed back).
    pub fn end(self) -> Option<End> {
        match self {
            Count::Succeeded => Some(End::Succeeded),
            Count::Buried | Count::TimedOutBuried => Some(End::Buried),
            Count::ExpiredDeleted | Count::ExpiredBuried => Some(End::Expired),
            Count::Released | Count::TimedOutReleased | Count::HandedBack => None,
        }
    }
}

/// The table: what to do with the job, and which counter says so.
pub fn decide(happened: Happened, facts: &Facts<'_>) -> (Settlement, Count) {
    let bury = |reason: String| {
        (
            Settlement::Bury {
                priority: facts.priority,
                reason: Some(reason),
            },
            Count::Buried,
        )
    };
    let transient = |reason: &str, delay: Option<Duration>| {
        let settlement = after_transient(
            facts.retry,
            facts.attempt,
            facts.priority,
            reason,
            delay,
            facts.random,
        );
        let count = match settlement {
            Settlement::Release { .. } => Count::Released,
            _ => Count::Buried,
        };
        (settlement, count)
    };
    let hand_back = |reason: String| {
        (
            Settlement::Release {
                priority: facts.priority,
                delay: Duration::ZERO,
                reason: Some(reason),
            },
            Count::HandedBack,
        )
    };
    match happened {
        Happened::NotAMessage(error) => bury(format!("the job body is not a pulpo message: {error}")),
        Happened::TooBig(reason) => bury(format!("the job is too big to run: {reason}")),
        Happened::NoHandler => {
            let request_type = facts.request_type;
            bury(format!(
                "no handler for request type {request_type:?}: add a [handlers.{request_type}] table to the config"
            ))
        }
        Happened::Expired(at) => match facts.on_expired {
            OnExpired::Bury => (
                bury(format!("expired at {at} before it ran")).0,
                Count::ExpiredBuried,
            ),
            OnExpired::Delete => (Settlement::Delete, Count::ExpiredDeleted),
        },
        Happened::TooManyAttempts => bury(format!(
            "attempt {} is more than max_attempts = {}: the queue reserved it {} times, less {} \
             kicked back (each kick gives back one attempt: hand-backs at shutdown, an operator's \
             kicks); reservations no runner settled ended with their worker dying or losing the \
             job's lease, or were another client's (pulpo pop), or max_attempts was lowered \
             since; `pulpo retry <id>` runs it again with a fresh set of attempts",
            facts.attempt,
            facts.retry.max_attempts,
            facts.reserves,
            facts.reserves.saturating_sub(facts.attempt)
        )),
        Happened::Succeeded => (Settlement::Delete, Count::Succeeded),
        Happened::FollowUpFailed(reason) => transient(&reason, None),
        Happened::Transient { reason, delay } => transient(&reason, delay),
        Happened::Fatal(reason) => bury(reason),
        Happened::Panicked(what) => bury(format!("the handler panicked: {what}")),
        Happened::TimedOut(limit) => {
            let reason = format!("timed out after {}", super::took::took(limit));
            match transient(&reason, None) {
                (s @ Settlement::Release { .. }, _) => (s, Count::TimedOutReleased),
                (s, _) => (s, Count::TimedOutBuried),
            }
        }
        Happened::Abandoned => hand_back(
            "shutdown: the handler did not finish within shutdown_timeout; handed back, not \
             counted as an attempt"
                .to_owned(),
        ),
        Happened::Interrupted {
            reason,
            stopping: true,
        } => hand_back(format!(
            "shutdown: {reason} as the runner was stopping (a stop that signals every process, \
             as systemd's default KillMode does); handed back, not counted as an attempt"
        )),
        Happened::Interrupted {
            reason,
            stopping: false,
        } => bury(reason),
    }
}

/// Whether the job may run at all: a job reserved more often than
/// `max_attempts` allows (its earlier workers died or lost their lease
/// mid-job) is buried without running.
pub fn too_many_attempts(retry: &RetrySettings, attempt: u32) -> bool {
    attempt > retry.max_attempts
}

/// The delay before retrying after attempt `attempt` failed transiently:
/// the policy's [`RetrySettings::backoff_delay`], and with `jitter` on an
/// exponential back-off, shortened by up to a quarter at random (`random`
/// in `0.0..1.0`) so jobs that failed together do not all come back
/// together. Never longer than the policy's delay; fixed delays and
/// explicit lists are kept exactly.
pub fn retry_delay(retry: &RetrySettings, attempt: u32, random: f64) -> Duration {
    let delay = retry.backoff_delay(attempt);
    if retry.jitter && retry.backoff == Backoff::Exponential {
        delay.mul_f64(1.0 - 0.25 * random.clamp(0.0, 1.0))
    } else {
        delay
    }
}

/// What a transient failure on attempt `attempt` becomes: a release with
/// back-off (or the handler's own `delay`) while attempts are left, else a
/// bury. Both keep `priority`.
fn after_transient(
    retry: &RetrySettings,
    attempt: u32,
    priority: u32,
    reason: &str,
    delay: Option<Duration>,
    random: f64,
) -> Settlement {
    if attempt >= retry.max_attempts {
        return Settlement::Bury {
            priority,
            reason: Some(format!(
                "{reason} (attempt {attempt} of {}: no attempts left)",
                retry.max_attempts
            )),
        };
    }
    let delay = delay.unwrap_or_else(|| retry_delay(retry, attempt, random));
    Settlement::Release {
        priority,
        delay,
        reason: Some(format!("{reason} (attempt {attempt} of {})", retry.max_attempts)),
    }
}

/// A number in `0.0..1.0`, random enough for jitter.
pub fn random_fraction() -> f64 {
    let bits = RandomState::new().build_hasher().finish() >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_count_names_the_end_its_record_shows() {
        assert_eq!(Count::Succeeded.end(), Some(End::Succeeded));
        assert_eq!(Count::Buried.end(), Some(End::Buried));
        assert_eq!(Count::TimedOutBuried.end(), Some(End::Buried));
        assert_eq!(Count::ExpiredDeleted.end(), Some(End::Expired));
        assert_eq!(Count::ExpiredBuried.end(), Some(End::Expired));
        assert_eq!(Count::Released.end(), None);
        assert_eq!(Count::TimedOutReleased.end(), None);
        assert_eq!(Count::HandedBack.end(), None);
    }

    use super::*;

    fn policy(backoff: Backoff, jitter: bool) -> RetrySettings {
        RetrySettings {
            max_attempts: 4,
            backoff,
            delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(10),
            jitter,
        }
    }

    #[test]
    fn exponential_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let retry = policy(Backoff::Exponential, false);
        let delays: Vec<u64> = (1..=5).map(|a| retry_delay(&retry, a, 0.5).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 10, 10]);
        let jittered = policy(Backoff::Exponential, true);
        assert_eq!(retry_delay(&jittered, 2, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(&jittered, 2, 1.0), Duration::from_secs(3));
        for _ in 0..100 {
            let d = retry_delay(&jittered, 3, random_fraction());
            assert!(
                d >= Duration::from_secs(6) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }

    #[test]
    fn fixed_and_lists_are_exact() {
        let fixed = policy(Backoff::Fixed, true);
        assert_eq!(retry_delay(&fixed, 3, 0.9), Duration::from_secs(2));
        let list = policy(
            Backoff::List(vec![Duration::from_secs(1), Duration::from_secs(30)]),
            true,
        );
        let delays: Vec<u64> = (1..=3).map(|a| retry_delay(&list, a, 0.9).as_secs()).collect();
        assert_eq!(delays, [1, 30, 30]);
    }

    /// The facts of attempt `attempt` of a job of priority 7 under `retry`.
    fn facts(retry: &RetrySettings, attempt: u32) -> Facts<'_> {
        Facts {
            request_type: "work",
            attempt,
            reserves: attempt,
            priority: 7,
            retry,
            on_expired: OnExpired::Bury,
            random: 0.5,
        }
    }

    fn transient(reason: &str, delay: Option<Duration>) -> Happened {
        Happened::Transient {
            reason: reason.to_owned(),
            delay,
        }
    }

    fn buried(reason: &str) -> (Settlement, Count) {
        let reason = Some(reason.to_owned());
        (Settlement::Bury { priority: 7, reason }, Count::Buried)
    }

    #[test]
    fn transient_releases_until_the_last_attempt_then_buries() {
        let retry = policy(Backoff::Fixed, false);
        assert_eq!(
            decide(transient("busy", None), &facts(&retry, 1)),
            (
                Settlement::Release {
                    priority: 7,
                    delay: Duration::from_secs(2),
                    reason: Some("busy (attempt 1 of 4)".into())
                },
                Count::Released
            )
        );
        let (explicit, _) = decide(
            transient("busy", Some(Duration::from_millis(1500))),
            &facts(&retry, 3),
        );
        assert!(
            matches!(explicit, Settlement::Release { delay, .. } if delay == Duration::from_millis(1500))
        );
        let last = decide(transient("busy", Some(Duration::from_secs(1))), &facts(&retry, 4));
        assert_eq!(last, buried("busy (attempt 4 of 4: no attempts left)"));
    }

    #[test]
    fn a_job_past_max_attempts_is_not_run() {
        let retry = policy(Backoff::Fixed, false);
        assert!(!too_many_attempts(&retry, 4));
        assert!(too_many_attempts(&retry, 5));
        let (settlement, count) = decide(Happened::TooManyAttempts, &facts(&retry, 5));
        let Settlement::Bury {
            reason: Some(reason), ..
        } = settlement
        else {
            panic!("{settlement:?}")
        };
        assert!(
            reason.contains("attempt 5 is more than max_attempts = 4")
                && reason.contains("reserved it 5 times, less 0 kicked back"),
            "{reason}"
        );
        // What a user can do about it, and what a kick does (one attempt).
        assert!(
            reason.contains("each kick gives back one attempt")
                && reason.contains("`pulpo retry <id>` runs it again with a fresh set of attempts"),
            "{reason}"
        );
        assert_eq!(count, Count::Buried);
    }

    #[test]
    fn success_deletes() {
        let retry = policy(Backoff::Fixed, false);
        assert_eq!(
            decide(Happened::Succeeded, &facts(&retry, 1)),
            (Settlement::Delete, Count::Succeeded)
        );
    }

    #[test]
    fn a_failed_follow_up_is_a_transient_failure() {
        let retry = policy(Backoff::Fixed, false);
        let (settlement, count) = decide(Happened::FollowUpFailed("no queue".into()), &facts(&retry, 2));
        assert_eq!(
            settlement,
            Settlement::Release {
                priority: 7,
                delay: Duration::from_secs(2),
                reason: Some("no queue (attempt 2 of 4)".into())
            }
        );
        assert_eq!(count, Count::Released);
        let last = decide(Happened::FollowUpFailed("no queue".into()), &facts(&retry, 4));
        assert_eq!(last, buried("no queue (attempt 4 of 4: no attempts left)"));
    }

    #[test]
    fn fatal_failures_and_panics_bury() {
        let retry = policy(Backoff::Fixed, false);
        assert_eq!(
            decide(Happened::Fatal("bad input".into()), &facts(&retry, 1)),
            buried("bad input")
        );
        assert_eq!(
            decide(Happened::Panicked("oops".into()), &facts(&retry, 1)),
            buried("the handler panicked: oops")
        );
    }

    #[test]
    fn a_timeout_is_transient_and_counted() {
        let retry = policy(Backoff::Fixed, false);
        let (settlement, count) = decide(Happened::TimedOut(Duration::from_secs(5)), &facts(&retry, 1));
        assert_eq!(
            settlement,
            Settlement::Release {
                priority: 7,
                delay: Duration::from_secs(2),
                reason: Some("timed out after 5s (attempt 1 of 4)".into())
            }
        );
        assert_eq!(count, Count::TimedOutReleased);
        let (_, count) = decide(Happened::TimedOut(Duration::from_secs(5)), &facts(&retry, 4));
        assert_eq!(count, Count::TimedOutBuried);
        let mut counters = Counters::default();
        Count::TimedOutBuried.apply(&mut counters);
        assert_eq!((counters.timed_out, counters.buried), (1, 1));
    }

    #[test]
    fn unknown_types_and_bodies_that_are_not_messages_bury() {
        let retry = policy(Backoff::Fixed, false);
        assert_eq!(
            decide(Happened::NoHandler, &facts(&retry, 1)),
            buried("no handler for request type \"work\": add a [handlers.work] table to the config")
        );
        assert_eq!(
            decide(Happened::NotAMessage("expected value".into()), &facts(&retry, 1)),
            buried("the job body is not a pulpo message: expected value")
        );
    }

    #[test]
    fn a_job_too_big_to_read_is_buried_on_its_first_attempt() {
        let retry = policy(Backoff::Fixed, false);
        assert_eq!(
            decide(Happened::TooBig("over max_job_size".into()), &facts(&retry, 1)),
            buried("the job is too big to run: over max_job_size")
        );
    }

    #[test]
    fn an_expired_job_is_buried_or_deleted_as_configured() {
        let retry = policy(Backoff::Fixed, false);
        let at = || Happened::Expired("2026-01-01T00:00:00Z".into());
        let reason = Some("expired at 2026-01-01T00:00:00Z before it ran".to_owned());
        assert_eq!(
            decide(at(), &facts(&retry, 1)),
            (Settlement::Bury { priority: 7, reason }, Count::ExpiredBuried)
        );
        let deleting = Facts {
            on_expired: OnExpired::Delete,
            ..facts(&retry, 1)
        };
        assert_eq!(
            decide(at(), &deleting),
            (Settlement::Delete, Count::ExpiredDeleted)
        );
        // `expired` counts both ways; the bury counts as buried too.
        let mut counters = Counters::default();
        Count::ExpiredBuried.apply(&mut counters);
        Count::ExpiredDeleted.apply(&mut counters);
        assert_eq!((counters.expired, counters.buried), (2, 1));
    }

    #[test]
    fn shutdown_releases_at_once() {
        let retry = policy(Backoff::Fixed, false);
        assert_eq!(
            decide(Happened::Abandoned, &facts(&retry, 4)),
            (
                Settlement::Release {
                    priority: 7,
                    delay: Duration::ZERO,
                    reason: Some(
                        "shutdown: the handler did not finish within shutdown_timeout; handed back, \
                         not counted as an attempt"
                            .into()
                    )
                },
                Count::HandedBack
            )
        );
    }

    #[test]
    fn an_interrupted_handler_is_buried_while_running_and_handed_back_at_shutdown() {
        let retry = policy(Backoff::Fixed, false);
        let interrupted = |stopping| Happened::Interrupted {
            reason: "sleep was killed by signal 15 (SIGTERM)".into(),
            stopping,
        };
        assert_eq!(
            decide(interrupted(false), &facts(&retry, 1)),
            buried("sleep was killed by signal 15 (SIGTERM)")
        );
        let (settlement, count) = decide(interrupted(true), &facts(&retry, 4));
        let Settlement::Release {
            priority: 7,
            delay: Duration::ZERO,
            reason: Some(reason),
        } = settlement
        else {
            panic!("{settlement:?}")
        };
        assert!(
            reason
                .starts_with("shutdown: sleep was killed by signal 15 (SIGTERM) as the runner was stopping")
                && reason.ends_with("handed back, not counted as an attempt"),
            "{reason}"
        );
        assert_eq!(count, Count::HandedBack);
        let mut counters = Counters::default();
        Count::HandedBack.apply(&mut counters);
        assert_eq!((counters.released, counters.buried), (1, 0));
    }

    #[test]
    fn jitter_comes_from_the_facts() {
        let retry = policy(Backoff::Exponential, true);
        let at = |random| Facts {
            random,
            ..facts(&retry, 2)
        };
        let delay = |random| match decide(transient("busy", None), &at(random)).0 {
            Settlement::Release { delay, .. } => delay,
            other => panic!("{other:?}"),
        };
        assert_eq!(delay(0.0), Duration::from_secs(4));
        assert_eq!(delay(1.0), Duration::from_secs(3));
    }
}
