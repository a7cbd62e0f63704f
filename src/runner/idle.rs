//! The idle rule (pulpo-messaging's): one empty iteration is
//! `sleep_duration` with no job reserved or running and every worker
//! reaching the queue (an outage is not idleness); after
//! `shutdown_after_number_of_empty_iterations` of them in a row (0 = never)
//! the runner stops, and `on_idle` decides what follows.

/// Counts empty iterations in a row against the limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdleRule {
    /// Empty iterations in a row that stop the runner; 0 = never.
    limit: u32,
    /// Empty iterations in a row so far.
    empty: u32,
}

impl IdleRule {
    /// A rule that stops after `limit` empty iterations in a row (0 = never).
    pub(super) fn new(limit: u32) -> IdleRule {
        IdleRule { limit, empty: 0 }
    }

    /// Ends one iteration, in which a job was reserved or running
    /// (`active`) or not; true when the runner should stop as idle.
    pub(super) fn iteration(&mut self, active: bool) -> bool {
        if active {
            self.empty = 0;
            return false;
        }
        self.empty = self.empty.saturating_add(1);
        tracing::debug!(
            empty_iterations = self.empty,
            limit = self.limit,
            "empty iteration"
        );
        self.limit > 0 && self.empty >= self.limit
    }

    /// Empty iterations in a row so far.
    pub(super) fn empty_iterations(&self) -> u32 {
        self.empty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_the_limit_of_empty_iterations_in_a_row() {
        let mut rule = IdleRule::new(3);
        assert!(!rule.iteration(false));
        assert!(!rule.iteration(false));
        assert!(!rule.iteration(true), "a job resets the count");
        assert!(!rule.iteration(false));
        assert!(!rule.iteration(false));
        assert!(rule.iteration(false));
        assert_eq!(rule.empty_iterations(), 3);
    }

    #[test]
    fn a_limit_of_zero_never_stops() {
        let mut rule = IdleRule::new(0);
        assert!((0..1000).all(|_| !rule.iteration(false)));
    }
}
