//! The runner's Prometheus metrics, recorded through the `metrics` facade: jobs by request type
//! and outcome, handler duration and queue wait, jobs in flight, lease touches and losses,
//! queue errors. Recorded only once [`enable`] was called (`[metrics] listen` is set), so a
//! runner without a listener pays one relaxed atomic load per event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::outcome::Count;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Starts (or stops) recording; a recorder must be installed for it to go anywhere
/// ([`crate::serve::http::metrics::recorder`]).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

fn on() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The outcome label of a decision.
fn outcome(count: Count) -> &'static str {
    match count {
        Count::Succeeded => "succeeded",
        Count::Released => "released",
        Count::Buried => "buried",
        Count::ExpiredDeleted => "expired_deleted",
        Count::ExpiredBuried => "expired_buried",
        Count::TimedOutReleased => "timed_out_released",
        Count::TimedOutBuried => "timed_out_buried",
        Count::HandedBack => "handed_back",
    }
}

/// A job settled: its outcome and how long its handler (and the checks before it) took.
pub(super) fn job_done(request_type: &str, count: Count, took: Duration) {
    if !on() {
        return;
    }
    let request_type = request_type.to_owned();
    metrics::counter!("pulpo_jobs_total", "request_type" => request_type.clone(), "outcome" => outcome(count))
        .increment(1);
    metrics::histogram!("pulpo_handler_duration_seconds", "request_type" => request_type).record(took);
}

/// A job starts: how long it waited in the queue since it was published.
pub(super) fn job_started(request_type: &str, waited: Option<Duration>) {
    if !on() {
        return;
    }
    metrics::gauge!("pulpo_jobs_in_flight").increment(1.0);
    if let Some(waited) = waited {
        metrics::histogram!("pulpo_queue_wait_seconds", "request_type" => request_type.to_owned())
            .record(waited);
    }
}

/// A job's handler finished (whatever its outcome).
pub(super) fn job_finished() {
    if on() {
        metrics::gauge!("pulpo_jobs_in_flight").decrement(1.0);
    }
}

/// A running job's lease was renewed, or could not be.
pub(super) fn touched(renewed: bool) {
    if !on() {
        return;
    }
    if renewed {
        metrics::counter!("pulpo_lease_touches_total").increment(1);
    } else {
        metrics::counter!("pulpo_leases_lost_total").increment(1);
    }
}

/// A queue operation of the runner failed (`operation`: reserve, settle).
pub(super) fn queue_error(operation: &'static str) {
    if on() {
        metrics::counter!("pulpo_queue_errors_total", "operation" => operation).increment(1);
    }
}
