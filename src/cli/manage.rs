//! The commands that change jobs by id or take them: `delete` and `pop`.

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
                    println!("deleted job {id}");
                }
                deleted.push(id);
            }
            Err(err @ QueueError::JobNotFound { .. }) => {
                if !json && ids.len() > 1 {
                    eprintln!("pulpo: error: {err}");
                }
                failed.push(json!({"id": id, "error": err.to_string()}));
            }
            Err(err) => return Err(err.into()),
        }
    }
    if json {
        show::print_json(&json!({"deleted": deleted, "failed": failed}));
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
    show::job(json, &job, info.as_ref());
    queue.delete(job.id).await?;
    Ok(())
}
