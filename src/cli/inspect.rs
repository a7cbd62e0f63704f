//! The commands that look at jobs and tubes without changing them: `peek`,
//! `tubes`, and how one job is shown as a JSON document.

use clap::Args;
use serde_json::{Map, Value, json};

use super::{Failure, show};
use crate::message::Message;
use crate::queue::{self, PeekState, Queue, QueueError};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "ready", "delayed", "buried"])))]
pub(super) struct PeekArgs {
    /// The job id.
    id: Option<u64>,
    /// The next ready job of the tube.
    #[arg(long)]
    ready: bool,
    /// The delayed job of the tube with the least delay left.
    #[arg(long)]
    delayed: bool,
    /// The next buried job of the tube.
    #[arg(long)]
    buried: bool,
}

pub(super) async fn peek(
    queue: &mut dyn Queue,
    tube: &str,
    args: PeekArgs,
    json: bool,
) -> Result<(), Failure> {
    let job = match args.id {
        Some(id) => queue.peek(id).await?,
        None => {
            let (state, name) = if args.ready {
                (PeekState::Ready, "ready")
            } else if args.delayed {
                (PeekState::Delayed, "delayed")
            } else {
                (PeekState::Buried, "buried")
            };
            match queue.peek_state(tube, state).await? {
                Some(job) => job,
                None => {
                    return Err(Failure {
                        code: 1,
                        message: format!("no {name} job in tube {tube}"),
                    });
                }
            }
        }
    };
    let info = match queue.stats_job(job.id).await {
        Ok(info) => Some(info),
        // Deleted between the two calls: show what we have.
        Err(QueueError::JobNotFound { .. }) => None,
        Err(err) => return Err(err.into()),
    };
    show::job(json, &job, info.as_ref());
    Ok(())
}

pub(super) async fn tubes(queue: &mut dyn Queue, json: bool) -> Result<(), Failure> {
    let mut infos = Vec::new();
    for name in queue.list_tubes().await? {
        match queue.stats_tube(&name).await {
            Ok(info) => infos.push(info),
            // A tube can vanish between the two calls once it is empty.
            Err(QueueError::TubeNotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let value = serde_json::to_value(&infos).unwrap_or(Value::Null);
    show::emit(json, json!({"tubes": value}), || show::tube_table(&infos));
    Ok(())
}

/// A JSON object of one job: id, state, stats and message (or the raw body).
pub(crate) fn job_document(job: &queue::Job, info: Option<&queue::JobStats>) -> Value {
    let mut doc = Map::new();
    doc.insert("id".to_owned(), json!(job.id));
    if let Some(info) = info {
        doc.insert("state".to_owned(), json!(info.state));
        doc.insert(
            "stats".to_owned(),
            serde_json::to_value(info).unwrap_or(Value::Null),
        );
    }
    match Message::from_json(&job.body) {
        Ok(message) => {
            let value = serde_json::from_slice(&message.to_json()).unwrap_or(Value::Null);
            doc.insert("message".to_owned(), value);
        }
        Err(err) => {
            doc.insert(
                "body".to_owned(),
                Value::String(String::from_utf8_lossy(&job.body).into_owned()),
            );
            doc.insert("body_error".to_owned(), Value::String(err.to_string()));
        }
    }
    Value::Object(doc)
}
