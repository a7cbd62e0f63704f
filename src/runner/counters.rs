//! Per-request-type counters: what the runner did with the jobs it
//! reserved. Logged periodically and returned (and printed) when it stops.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// The key under which jobs whose body is not a message are counted.
pub const NOT_A_MESSAGE: &str = "(not a message)";

/// What happened to one request type's jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Jobs reserved.
    pub reserved: u64,
    /// Jobs whose handler succeeded (then deleted).
    pub succeeded: u64,
    /// Jobs released for a retry (transient failures, timeouts, shutdown).
    pub released: u64,
    /// Jobs buried (fatal failures, attempts used up, unknown or bad jobs).
    pub buried: u64,
    /// Handler runs cancelled at their timeout.
    pub timed_out: u64,
    /// Jobs not run because their expiration had passed, buried (also
    /// counted in `buried`) or deleted (`on_expired`).
    pub expired: u64,
    /// Settlements the queue refused or lost (the job comes back by itself).
    pub settle_failed: u64,
}

impl Counters {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counters) {
        self.reserved += other.reserved;
        self.succeeded += other.succeeded;
        self.released += other.released;
        self.buried += other.buried;
        self.timed_out += other.timed_out;
        self.expired += other.expired;
        self.settle_failed += other.settle_failed;
    }
}

/// Counters by request type, shared by a runner's workers.
#[derive(Debug, Default)]
pub struct Tally {
    by_type: Mutex<BTreeMap<String, Counters>>,
}

impl Tally {
    /// Changes the counters of `request_type`.
    pub fn update(&self, request_type: &str, change: impl FnOnce(&mut Counters)) {
        let mut by_type = self
            .by_type
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match by_type.get_mut(request_type) {
            Some(counters) => change(counters),
            None => change(by_type.entry(request_type.to_owned()).or_default()),
        }
    }

    /// A copy of every request type's counters.
    pub fn snapshot(&self) -> BTreeMap<String, Counters> {
        self.by_type
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The counters of all request types together.
pub fn total(by_type: &BTreeMap<String, Counters>) -> Counters {
    let mut sum = Counters::default();
    for counters in by_type.values() {
        sum.add(counters);
    }
    sum
}

/// One line per request type and a total, for logs and the exit summary.
pub fn render(by_type: &BTreeMap<String, Counters>) -> String {
    let mut out = format!(
        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>13}\n",
        "request type",
        "reserved",
        "succeeded",
        "released",
        "buried",
        "timed out",
        "expired",
        "settle failed"
    );
    let mut line = |name: &str, c: &Counters| {
        out.push_str(&format!(
            "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>13}\n",
            name, c.reserved, c.succeeded, c.released, c.buried, c.timed_out, c.expired, c.settle_failed
        ));
    };
    for (name, counters) in by_type {
        line(name, counters);
    }
    line("total", &total(by_type));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_by_type_and_totals() {
        let tally = Tally::default();
        tally.update("email", |c| c.reserved += 2);
        tally.update("email", |c| c.succeeded += 1);
        tally.update("resize", |c| {
            c.reserved += 1;
            c.buried += 1
        });
        let snapshot = tally.snapshot();
        assert_eq!(snapshot["email"].reserved, 2);
        let sum = total(&snapshot);
        assert_eq!((sum.reserved, sum.succeeded, sum.buried), (3, 1, 1));
        let text = render(&snapshot);
        assert!(
            text.lines().any(|l| l.starts_with("total") && l.contains(" 3 ")),
            "{text}"
        );
    }
}
