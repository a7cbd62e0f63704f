//! Retrying a buried job with a fresh set of attempts: a copy of it (same
//! tube, priority, TTR and body) is put, ready, and then the original is
//! deleted. A queue counts attempts per job id (its reserves less its
//! kicks), so only a new job starts counting again; `kick` gives back one
//! attempt. Works through the [`Queue`] verbs alone, so on every queue.
//!
//! The copy is stored before the original is deleted: a process that dies
//! in between leaves both (a duplicate to delete by hand), never neither.

use std::collections::HashSet;
use std::time::Duration;

use super::{JobState, NewJob, PeekState, Queue, QueueError, Result};

/// A buried job retried as a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retried {
    /// The buried job's id (deleted now).
    pub id: u64,
    /// The copy's id: the job that runs from now on, with no attempts used.
    pub new_id: u64,
}

/// Retries the buried job `id`: puts a copy, ready, in its tube with its
/// priority, TTR and body, then deletes it. A job in another state is
/// refused before anything is stored (a reserved one may be running).
///
/// If the original changes between the two steps (kicked and reserved, or
/// deleted by another client), the copy is deleted again and the error
/// says so; if the queue fails between them, both jobs remain and the error
/// names the copy.
pub async fn retry(queue: &mut dyn Queue, id: u64) -> Result<Retried> {
    let stats = queue.stats_job(id).await?;
    if stats.state != JobState::Buried {
        return Err(QueueError::InvalidArgument(format!(
            "job {id} is {}, not buried: retry takes buried jobs (kick-job moves a delayed one)",
            stats.state.as_str()
        )));
    }
    let job = queue.peek(id).await?;
    let copy = NewJob {
        priority: stats.pri,
        delay: Duration::ZERO,
        ttr: stats.ttr.max(Duration::from_secs(1)),
        body: job.body,
    };
    let new_id = queue.put(&stats.tube, copy).await?;
    match queue.delete(id).await {
        Ok(()) => Ok(Retried { id, new_id }),
        Err(QueueError::JobNotFound { .. }) => {
            // Someone else took the original meanwhile (a kick and a
            // reserve, a delete, another retry): the copy would run it twice.
            let undone = match queue.delete(new_id).await {
                Ok(()) => "its copy was deleted again".to_owned(),
                Err(err) => format!("its copy, job {new_id}, remains: delete one of them ({err})"),
            };
            Err(QueueError::Refused(format!(
                "job {id} changed while it was retried (kicked, reserved or deleted by another \
                 client); {undone}"
            )))
        }
        Err(err) => Err(QueueError::Refused(format!(
            "job {id} was copied to job {new_id} but not deleted ({err}): both remain; delete \
             job {id} once the queue is back"
        ))),
    }
}

/// Retries every job buried in `tube` when it is called, in the order a
/// kick would revive them. Copies buried again meanwhile (a runner at work)
/// are left alone. Stops at the first error, with what was retried so far.
pub async fn retry_buried(queue: &mut dyn Queue, tube: &str) -> (Vec<Retried>, Result<()>) {
    let mut retried = Vec::new();
    let buried = match queue.stats_tube(tube).await {
        Ok(stats) => stats.current_jobs_buried,
        Err(QueueError::TubeNotFound { .. }) => return (retried, Ok(())),
        Err(err) => return (retried, Err(err)),
    };
    let mut copies = HashSet::new();
    while (retried.len() as u64) < buried {
        let next = match queue.peek_state(tube, PeekState::Buried).await {
            Ok(Some(job)) if !copies.contains(&job.id) => job.id,
            Ok(_) => break,
            Err(err) => return (retried, Err(err)),
        };
        match retry(queue, next).await {
            Ok(done) => {
                copies.insert(done.new_id);
                retried.push(done);
            }
            Err(err) => return (retried, Err(err)),
        }
    }
    (retried, Ok(()))
}
