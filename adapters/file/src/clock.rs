//! The clock every transaction decides by (delays, TTRs, pauses): the system's wall clock, or,
//! for tests, one that moves only when told, so that expiry can be tested without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The time source of [`crate::Options::clock`]. Public only for the tests that move time by
/// hand (the model test); a queue user keeps the default, the system clock.
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// A clock that starts at the system's time now and moves only by [`Clock::advance`]; its
    /// clones (and the handles opened with them) share it.
    pub fn manual() -> Clock {
        Clock(Some(Arc::new(AtomicU64::new(system_ms()))))
    }

    /// Moves a manual clock on by `by`. Panics on the system clock, which cannot be moved.
    pub fn advance(&self, by: Duration) {
        let at = self.0.as_ref().expect("only a manual clock can be advanced");
        at.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Which clock this is: 0 for the system clock, else one number per manual clock (shared by
    /// its clones). Handles share an index only when they read the same clock (see `shared.rs`).
    pub(crate) fn identity(&self) -> usize {
        self.0.as_ref().map_or(0, |at| Arc::as_ptr(at) as usize)
    }

    /// Milliseconds since the Unix epoch (what records carry).
    pub(crate) fn now_ms(&self) -> u64 {
        match &self.0 {
            Some(at) => at.load(Ordering::SeqCst),
            None => system_ms(),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(at) => write!(f, "Clock::manual(at {} ms)", at.load(Ordering::SeqCst)),
            None => f.write_str("Clock::system"),
        }
    }
}

/// The system's wall clock, in milliseconds since the Unix epoch.
fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
