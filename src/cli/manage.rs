//! The commands that change jobs by id or take them: `delete` and `pop`
//! (which deletes only a job it has printed).

use std::time::Duration;

use serde_json::json;

use super::{Failure, show};
use crate::queue::{Queue, QueueError};

pub(super) async fn delete(queue: &mut dyn Queue, ids: &[u64], json: bool) -> Result<(), Failure> {
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for &id in ids {
        match queue.delete(id).await {
            Ok(()) => {
                if !json {
                    show::line(&format!("deleted job {id}"))?;
                }
                deleted.push(id);
            }
            Err(err @ QueueError::JobNotFound { .. }) => {
                if !json && ids.len() > 1 {
                    show::error(&err.to_string());
                }
                failed.push(json!({"id": id, "error": err.to_string()}));
            }
            Err(err) => return Err(err.into()),
        }
    }
    if json {
        show::print_json(&json!({"deleted": deleted, "failed": failed}))?;
    }
    match (failed.len(), ids) {
        (0, _) => Ok(()),
        (_, [id]) => Err(Failure {
            code: 1,
            message: format!("job {id} not found (or reserved by another worker)"),
        }),
        (n, _) => Err(Failure {
            code: 1,
            message: format!("{n} of {} jobs not deleted", ids.len()),
        }),
    }
}

pub(super) async fn pop(queue: &mut dyn Queue, watch: &[String], json: bool) -> Result<(), Failure> {
    let Some(job) = queue.reserve(watch, Duration::ZERO).await? else {
        return Err(Failure {
            code: 1,
            message: format!("no ready job in {}", watch.join(", ")),
        });
    };
    let info = queue.stats_job(job.id).await.ok();
    // Only a job that was shown is deleted: one that could not be printed
    // goes back, ready at once.
    if let Err(err) = show::job(json, &job, info.as_ref()) {
        if let Some(info) = &info {
            let reason = "pulpo pop could not print it";
            if let Err(release) = queue
                .release(job.id, info.pri, Duration::ZERO, Some(reason))
                .await
            {
                tracing::warn!(
                    "job {}: cannot release it after a failed print: {release}",
                    job.id
                );
            }
        }
        return Err(err.into());
    }
    queue.delete(job.id).await?;
    Ok(())
}
