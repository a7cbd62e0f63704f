//! [`JobRef`]: how a job is named in the CLI's output, the HTTP API and job
//! records, in one type, so that naming a job `server:id` later changes here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A reference to one job: today its queue's `u64` id. Written and read as
/// the id's decimal digits (`42`); JSON shows it as a string, so a later
/// `server:id` form needs no change of type in documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobRef {
    /// The queue's job id.
    pub id: u64,
}

impl JobRef {
    /// The job with the queue's id `id`.
    pub fn new(id: u64) -> JobRef {
        JobRef { id }
    }
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)
    }
}

/// Why text is not a job reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a job id: {0:?} (expected a whole number such as 42)")]
pub struct BadJobRef(pub String);

impl FromStr for JobRef {
    type Err = BadJobRef;

    fn from_str(text: &str) -> Result<JobRef, BadJobRef> {
        text.trim()
            .parse()
            .map(JobRef::new)
            .map_err(|_| BadJobRef(text.to_owned()))
    }
}

impl Serialize for JobRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JobRef, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_ref_reads_back_what_it_writes() {
        let job: JobRef = "42".parse().unwrap();
        assert_eq!(job, JobRef::new(42));
        assert_eq!(job.to_string(), "42");
        assert!("b:x".parse::<JobRef>().is_err());
    }
}
