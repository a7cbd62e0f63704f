//! The runner's Prometheus metrics, recorded through the `metrics` facade: jobs by request type
//! and outcome, handler duration and queue wait, jobs in flight, lease touches and losses,
//! queue errors. Recorded only once [`enable`] was called (`[metrics] listen` is set), so a
//! runner without a listener pays one relaxed atomic load per event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use super::outcome::Count;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Starts (or stops) recording; a recorder must be installed for it to go anywhere
/// ([`crate::serve::http::metrics::recorder`]), and installed first: the runner's workers keep
/// the handles they get once recording is on.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

fn on() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The outcome label of a decision, and its place in [`PerType`]'s counters.
fn outcome(count: Count) -> (usize, &'static str) {
    match count {
        Count::Succeeded => (0, "succeeded"),
        Count::Released => (1, "released"),
        Count::Buried => (2, "buried"),
        Count::ExpiredDeleted => (3, "expired_deleted"),
        Count::ExpiredBuried => (4, "expired_buried"),
        Count::TimedOutReleased => (5, "timed_out_released"),
        Count::TimedOutBuried => (6, "timed_out_buried"),
        Count::HandedBack => (7, "handed_back"),
    }
}

/// One worker's metric handles, looked up in the recorder once per request type (and outcome)
/// instead of once per job: a labelled lookup builds the key, hashes it and takes the
/// registry's lock, which costs more than the no-op handler it measures.
#[derive(Default)]
pub(super) struct Meters {
    in_flight: Option<Gauge>,
    types: HashMap<String, PerType>,
}

/// The handles of one request type.
struct PerType {
    jobs: [Option<Counter>; OUTCOMES],
    handler_duration: Histogram,
    queue_wait: Histogram,
}

const OUTCOMES: usize = 8;

impl Meters {
    fn in_flight(&mut self) -> &Gauge {
        self.in_flight
            .get_or_insert_with(|| metrics::gauge!("pulpo_jobs_in_flight"))
    }

    fn of(&mut self, request_type: &str) -> &mut PerType {
        if !self.types.contains_key(request_type) {
            let owned = request_type.to_owned();
            let per_type = PerType {
                jobs: Default::default(),
                handler_duration: metrics::histogram!(
                    "pulpo_handler_duration_seconds", "request_type" => owned.clone()
                ),
                queue_wait: metrics::histogram!("pulpo_queue_wait_seconds", "request_type" => owned.clone()),
            };
            self.types.insert(owned, per_type);
        }
        self.types.get_mut(request_type).expect("just inserted")
    }

    /// A job starts: how long it waited in the queue since it was published.
    pub(super) fn job_started(&mut self, request_type: &str, waited: Option<Duration>) {
        if !on() {
            return;
        }
        self.in_flight().increment(1.0);
        if let Some(waited) = waited {
            self.of(request_type).queue_wait.record(waited);
        }
    }

    /// A job's handler finished: its outcome and how long its handler (and the checks before
    /// it) took.
    pub(super) fn job_done(&mut self, request_type: &str, count: Count, took: Duration) {
        if !on() {
            return;
        }
        self.in_flight().decrement(1.0);
        let (index, label) = outcome(count);
        let per_type = self.of(request_type);
        per_type.jobs[index]
            .get_or_insert_with(|| {
                metrics::counter!(
                    "pulpo_jobs_total", "request_type" => request_type.to_owned(), "outcome" => label
                )
            })
            .increment(1);
        per_type.handler_duration.record(took);
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
