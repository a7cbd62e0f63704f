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
    show::job(json, &job, info.as_ref())?;
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
    show::emit(json, json!({"tubes": value}), || show::tube_table(&infos))?;
    Ok(())
}

/// A JSON object of one job: id, state, stats and message; a body that is
/// not a message comes as `body` (UTF-8 text) or `body_base64` (any other
/// bytes, standard base64 with padding), never as a lossy copy.
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
            match std::str::from_utf8(&job.body) {
                Ok(text) => doc.insert("body".to_owned(), Value::String(text.to_owned())),
                Err(_) => doc.insert("body_base64".to_owned(), Value::String(base64(&job.body))),
            };
            doc.insert("body_error".to_owned(), Value::String(err.to_string()));
        }
    }
    Value::Object(doc)
}

/// `bytes` in standard base64 (RFC 4648, with `=` padding).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc_4648() {
        // The test vectors of RFC 4648, section 10.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
