//! The commands that change jobs by id or take them: `delete`, `retry`
//! (a buried job replaced by a copy with a fresh set of attempts) and `pop`
//! (which deletes only a job it has printed).

use std::time::Duration;

use serde_json::json;

use super::{Failure, show};
use crate::queue::retry::{self, Retried};
use crate::queue::{Queue, QueueError};

pub(super) async fn delete(
    queue: &mut dyn Queue,
    settings: &crate::config::Settings,
    ids: &[u64],
    json: bool,
) -> Result<(), Failure> {
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for &id in ids {
        match crate::jobs::delete(queue, settings, id).await {
            Ok(unrecorded) => {
                if let Some(err) = unrecorded {
                    return Err(Failure {
                        code: 1,
                        message: crate::jobs::unrecorded_text(id, &err),
                    });
                }
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

/// Which buried jobs `retry` takes: by id, all of the tube's, or those filters match.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").args(["ids", "all"])))]
pub(super) struct RetryArgs {
    /// The buried jobs' ids.
    #[arg(value_name = "ID")]
    ids: Vec<u64>,
    /// Every job buried in the tube.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    bulk: super::jobs::BulkArgs,
}

pub(super) async fn retry(
    queue: &mut dyn Queue,
    settings: &crate::config::Settings,
    tube: &str,
    args: RetryArgs,
    json: bool,
) -> Result<(), Failure> {
    if args.bulk.filter_mode("retry", !args.ids.is_empty() || args.all)? {
        return super::jobs::bulk(queue, settings, tube, crate::jobs::Action::Retry, args.bulk, json).await;
    }
    if args.ids.is_empty() && !args.all {
        return Err(Failure::usage(
            "retry needs job ids, --all, or filters (e.g. --type T, --grep TEXT)",
        ));
    }
    let show_one = |done: &Retried| show::line(&format!("retried job {} as job {}", done.id, done.new_id));
    let mut retried = Vec::new();
    let mut failed = Vec::new();
    let mut stopped = None;
    if args.all {
        let (done, result) = retry::retry_buried(queue, tube).await;
        retried = done;
        stopped = result.err();
        if !json {
            for done in &retried {
                show_one(done)?;
            }
            if retried.is_empty() && stopped.is_none() {
                show::line(&format!("no buried job in tube {tube}"))?;
            }
        }
    } else {
        for &id in &args.ids {
            match retry::retry(queue, id).await {
                Ok(done) => {
                    if !json {
                        show_one(&done)?;
                    }
                    retried.push(done);
                }
                Err(
                    err @ (QueueError::JobNotFound { .. }
                    | QueueError::InvalidArgument(_)
                    | QueueError::Refused(_)),
                ) => {
                    if !json && args.ids.len() > 1 {
                        show::error(&err.to_string());
                    }
                    failed.push((id, err));
                }
                Err(err) => {
                    stopped = Some(err);
                    break;
                }
            }
        }
    }
    if json {
        let retried: Vec<_> = retried
            .iter()
            .map(|done| json!({"id": done.id, "new_id": done.new_id}))
            .collect();
        let failed: Vec<_> = failed
            .iter()
            .map(|(id, err)| json!({"id": id, "error": err.to_string()}))
            .collect();
        let mut document = json!({"tube": tube, "retried": retried, "failed": failed});
        if let Some(err) = &stopped {
            document["error"] = json!(err.to_string());
        }
        show::print_json(&document)?;
    }
    if let Some(err) = stopped {
        return Err(err.into());
    }
    match (failed.as_slice(), args.ids.len()) {
        ([], _) => Ok(()),
        ([(_, err)], 1) => Err(Failure {
            code: 1,
            message: err.to_string(),
        }),
        (failed, n) => Err(Failure {
            code: 1,
            message: format!("{} of {n} jobs not retried", failed.len()),
        }),
    }
}
