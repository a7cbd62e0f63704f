//! `pulpo-model`: the values that `pulpo` and both queue adapters
//! (`pulpo-filequeue`, `pulpo-beanstalkd`) share, written once so that the
//! three agree: tube names, server addresses, job states, and job and tube
//! statistics. It depends on no adapter and on no part of `pulpo`, so each
//! adapter stays a library of its own.

mod address;
mod job;
mod job_ref;
mod stats;
mod tube;

pub use address::{Address, AddressError};
pub use job::{JobState, JobStats, UnknownJobState};
pub use job_ref::{BadJobRef, JobRef};
pub use stats::TubeStats;
pub use tube::{InvalidTubeName, MAX_TUBE_NAME, TubeName, TubeNameError, validate_tube_name};

/// Serializes a duration as whole seconds (rounded down), as beanstalkd
/// reports every time in its stats and as pulpo's JSON documents show them.
fn whole_seconds<S: serde::Serializer>(
    duration: &std::time::Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_secs())
}
