//! The runner's Prometheus metrics, recorded through the `metrics` facade: jobs by request type
//! and outcome, handler duration and queue wait, jobs in flight, lease touches and losses,
//! queue errors. Recorded only once [`enable`] was called (`[metrics] listen` is set), so a
//! runner without a listener pays one relaxed atomic load per event.
//!
//! A worker keeps its histogram samples in a buffer of its own and hands them to the exporter
//! in bursts ([`flush`], which `/metrics` calls before it renders, so a scrape sees every sample
//! taken before it): the exporter's histograms cost about half a microsecond a sample when
//! several workers record at once, several percent of a fast runner's time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
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

/// A worker's buffer holds at most this many samples; the worker then flushes it.
const FLUSH_AT: usize = 256;

/// Every live worker's buffer, for [`flush`].
static BUFFERS: Mutex<Vec<Weak<Mutex<Samples>>>> = Mutex::new(Vec::new());

/// Histogram samples one worker took and the exporter has not yet seen.
#[derive(Default)]
struct Samples {
    /// The histograms the samples go to, by their place here.
    histograms: Vec<Histogram>,
    /// (histogram, seconds).
    pending: Vec<(usize, f64)>,
}

impl Samples {
    fn flush(&mut self) {
        for (at, value) in self.pending.drain(..) {
            self.histograms[at].record(value);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands every worker's buffered histogram samples to the exporter (called before `/metrics`
/// renders).
pub fn flush() {
    let buffers: Vec<Arc<Mutex<Samples>>> = {
        let mut all = lock(&BUFFERS);
        all.retain(|b| b.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    for buffer in buffers {
        lock(&buffer).flush();
    }
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
pub(super) struct Meters {
    in_flight: Option<Gauge>,
    types: HashMap<String, PerType>,
    samples: Arc<Mutex<Samples>>,
}

impl Default for Meters {
    fn default() -> Meters {
        let samples = Arc::new(Mutex::new(Samples::default()));
        lock(&BUFFERS).push(Arc::downgrade(&samples));
        Meters {
            in_flight: None,
            types: HashMap::new(),
            samples,
        }
    }
}

impl Drop for Meters {
    fn drop(&mut self) {
        lock(&self.samples).flush();
    }
}

/// The handles of one request type (its histograms by their place in the worker's
/// [`Samples`]).
struct PerType {
    jobs: [Option<Counter>; OUTCOMES],
    handler_duration: usize,
    queue_wait: usize,
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
            let mut samples = lock(&self.samples);
            let at = samples.histograms.len();
            samples.histograms.push(metrics::histogram!(
                "pulpo_handler_duration_seconds", "request_type" => owned.clone()
            ));
            samples
                .histograms
                .push(metrics::histogram!("pulpo_queue_wait_seconds", "request_type" => owned.clone()));
            drop(samples);
            let per_type = PerType {
                jobs: Default::default(),
                handler_duration: at,
                queue_wait: at + 1,
            };
            self.types.insert(owned, per_type);
        }
        self.types.get_mut(request_type).expect("just inserted")
    }

    /// Buffers a sample of histogram `at`.
    fn sample(&self, at: usize, value: Duration) {
        let mut samples = lock(&self.samples);
        samples.pending.push((at, value.as_secs_f64()));
        if samples.pending.len() >= FLUSH_AT {
            samples.flush();
        }
    }

    /// A job starts: how long it waited in the queue since it was published.
    pub(super) fn job_started(&mut self, request_type: &str, waited: Option<Duration>) {
        if !on() {
            return;
        }
        self.in_flight().increment(1.0);
        if let Some(waited) = waited {
            let at = self.of(request_type).queue_wait;
            self.sample(at, waited);
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
        let at = per_type.handler_duration;
        self.sample(at, took);
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
