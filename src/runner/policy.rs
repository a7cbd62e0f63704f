//! The runner's one policy table (DESIGN.md, "Outcomes") as pure functions:
//! what a transient failure turns into at a given attempt, and how long a
//! retry waits. No I/O here, so every row is unit-tested.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::config::{Backoff, RetrySettings};
use crate::queue::Settlement;

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
pub fn after_transient(
    retry: &RetrySettings,
    attempt: u32,
    priority: u32,
    reason: &str,
    delay: Option<Duration>,
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
    let delay = delay.unwrap_or_else(|| retry_delay(retry, attempt, random_fraction()));
    Settlement::Release {
        priority,
        delay,
        reason: Some(format!("{reason} (attempt {attempt} of {})", retry.max_attempts)),
    }
}

/// A job reserved more often than `max_attempts` allows (its earlier
/// workers died or lost their lease mid-job) is buried without running.
pub fn too_many_attempts(retry: &RetrySettings, attempt: u32) -> Option<String> {
    (attempt > retry.max_attempts).then(|| {
        format!(
            "reserved {attempt} times, more than max_attempts = {}: earlier workers died or lost the \
             job's lease while running it",
            retry.max_attempts
        )
    })
}

/// A number in `0.0..1.0`, random enough for jitter.
pub fn random_fraction() -> f64 {
    let bits = RandomState::new().build_hasher().finish() >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn transient_releases_until_the_last_attempt_then_buries() {
        let retry = policy(Backoff::Fixed, false);
        assert_eq!(
            after_transient(&retry, 1, 7, "busy", None),
            Settlement::Release {
                priority: 7,
                delay: Duration::from_secs(2),
                reason: Some("busy (attempt 1 of 4)".into())
            }
        );
        let explicit = after_transient(&retry, 3, 7, "busy", Some(Duration::from_millis(1500)));
        assert!(
            matches!(explicit, Settlement::Release { delay, .. } if delay == Duration::from_millis(1500))
        );
        let last = after_transient(&retry, 4, 7, "busy", Some(Duration::from_secs(1)));
        assert_eq!(
            last,
            Settlement::Bury {
                priority: 7,
                reason: Some("busy (attempt 4 of 4: no attempts left)".into())
            }
        );
    }

    #[test]
    fn a_job_past_max_attempts_is_not_run() {
        let retry = policy(Backoff::Fixed, false);
        assert!(too_many_attempts(&retry, 4).is_none());
        assert!(too_many_attempts(&retry, 5).unwrap().contains("reserved 5 times"));
    }
}
