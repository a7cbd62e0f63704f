//! One task per connection: it owns the connection's state ([`Conn`]: its own file-queue
//! handle, used tube, watch list, reservations), reads requests with beanstalkd's parsing
//! ([`RequestCodec`]), answers them in order, and on leaving gives back every job it still holds.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use pulpo_beanstalkd::proto::{Command, Reply, Request, RequestCodec};
use pulpo_filequeue::FileQueue;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use super::shared::{Ref, Shared};

/// What every connection is opened with.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) dir: PathBuf,
    pub(crate) queue: pulpo_filequeue::Options,
    pub(crate) max_job_size: usize,
    /// Waits for durable changes (with fsync; without, there are none).
    pub(crate) committer: super::committer::Committer,
}

/// A job this connection holds reserved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    /// When its reservation ends (reserve or touch + TTR).
    pub(crate) deadline: Instant,
    /// Its TTR, for touch.
    pub(crate) ttr: std::time::Duration,
    /// Its priority, kept when it is given back at disconnect.
    pub(crate) pri: u32,
}

/// The state of one connection, owned by its task.
pub(crate) struct Conn {
    pub(crate) queue: FileQueue,
    pub(crate) shared: Arc<Shared>,
    pub(crate) used: String,
    pub(crate) watch: Vec<String>,
    pub(crate) held: HashMap<u64, Held>,
    pub(crate) producer: bool,
    pub(crate) worker: bool,
    pub(crate) shutdown: CancellationToken,
    pub(crate) committer: super::committer::Committer,
}

/// The most input buffered from a client while it waits in a reserve (pipelined commands);
/// past it, the server stops reading until the reserve ends.
pub(crate) const MAX_BUFFERED_WHILE_WAITING: usize = 1 << 16;

/// The most consecutive puts, deletes or reserves answered with one transaction.
const MAX_BATCH: usize = 256;

/// Replies buffered past this size are written before answering more requests.
const MAX_BUFFERED_REPLIES: usize = 1 << 16;

/// Serves one client until it quits, hangs up, or the server stops.
pub(crate) async fn serve<S>(
    mut stream: S,
    settings: &Settings,
    shared: &Arc<Shared>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (dir, opts) = (settings.dir.clone(), settings.queue.clone());
    let queue = match tokio::task::spawn_blocking(move || FileQueue::open(&dir, opts)).await {
        Ok(Ok(queue)) => queue,
        Ok(Err(err)) => {
            tracing::error!(error = %err, "cannot open the file queue for a connection");
            return;
        }
        Err(_) => return,
    };
    let mut conn = Conn {
        queue,
        shared: shared.clone(),
        used: "default".to_owned(),
        watch: vec!["default".to_owned()],
        held: HashMap::new(),
        producer: false,
        worker: false,
        shutdown: shutdown.clone(),
        committer: settings.committer.clone(),
    };
    shared.with(|c| {
        c.connections += 1;
        c.total_connections += 1;
    });
    shared.tube_ref(&[conn.used.clone()], Ref::Using, 1);
    shared.tube_ref(&conn.watch.clone(), Ref::Watching, 1);
    let mut codec = RequestCodec::new(settings.max_job_size);
    let mut input = BytesMut::with_capacity(4096);
    let mut output = BytesMut::with_capacity(4096);
    let mut encoder = RequestCodec::new(0);
    // Requests decoded ahead (while gathering a batch), answered first.
    let mut pending: VecDeque<Request> = VecDeque::new();
    'conn: loop {
        // Answer every whole request already buffered, in order; the replies go out in one
        // write once the input is drained (or before a reserve waits, or when they pile up).
        let mut broken = false;
        loop {
            let request = match next_request(&mut pending, &mut codec, &mut input) {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(()) => {
                    broken = true;
                    break;
                }
            };
            let reply = match request {
                Request::Refused(reply) => {
                    if matches!(reply, Reply::JobTooBig | Reply::ExpectedCrlf) {
                        shared.count("put");
                        if reply == Reply::ExpectedCrlf {
                            conn.set_producer();
                        }
                    }
                    reply
                }
                Request::Command(Command::Quit) => {
                    broken = true;
                    break;
                }
                Request::Command(first) if Batch::of(&first).is_some() => {
                    // Consecutive buffered commands of one kind (a client's pipelined puts,
                    // deletes or reserves) go in one transaction: one fdatasync for puts and
                    // deletes. Their replies, in order, are those of one command at a time.
                    let kind = Batch::of(&first);
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        let next = match next_request(&mut pending, &mut codec, &mut input) {
                            Ok(Some(request)) => request,
                            Ok(None) => break,
                            Err(()) => {
                                broken = true;
                                break;
                            }
                        };
                        match next {
                            Request::Command(cmd) if Batch::of(&cmd) == kind => batch.push(cmd),
                            other => {
                                pending.push_front(other);
                                break;
                            }
                        }
                    }
                    let mut replies = match kind {
                        Some(Batch::Put) => conn.put_batch(batch).await,
                        Some(Batch::Delete) => conn.delete_batch(batch).await,
                        _ => {
                            let mut replies = conn.reserve_ready(&batch).await;
                            if replies.len() < batch.len() {
                                // No job ready for the next reserve: it waits (its replies
                                // before it go out first); the reserves after it come next.
                                let mut rest = batch.split_off(replies.len());
                                let waiting = rest.remove(0);
                                for cmd in rest.into_iter().rev() {
                                    pending.push_front(Request::Command(cmd));
                                }
                                for reply in replies.drain(..) {
                                    if encoder.encode(reply, &mut output).is_err() {
                                        break 'conn;
                                    }
                                }
                                if !output.is_empty() && stream.write_all(&output).await.is_err() {
                                    break 'conn;
                                }
                                output.clear();
                                replies.push(conn.reserve(&waiting, &mut stream, &mut input).await);
                            }
                            replies
                        }
                    };
                    let Some(last) = replies.pop() else { break 'conn };
                    for reply in replies {
                        if encoder.encode(reply, &mut output).is_err() {
                            break 'conn;
                        }
                    }
                    last
                }
                Request::Command(cmd) => conn.run(cmd).await,
            };
            if encoder.encode(reply, &mut output).is_err() {
                break 'conn;
            }
            if broken {
                break;
            }
            if output.len() >= MAX_BUFFERED_REPLIES {
                if stream.write_all(&output).await.is_err() {
                    break 'conn;
                }
                output.clear();
            }
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                break;
            }
            output.clear();
        }
        if broken || shutdown.is_cancelled() {
            break;
        }
        let read = tokio::select! {
            _ = shutdown.cancelled() => break,
            read = stream.read_buf(&mut input) => read,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    conn.close().await;
}

/// The next request: one decoded ahead, else the next whole one buffered (`None`: none yet).
/// `Err` when the input cannot be read as requests: the connection is dropped (logged).
fn next_request(
    pending: &mut VecDeque<Request>,
    codec: &mut RequestCodec,
    input: &mut BytesMut,
) -> Result<Option<Request>, ()> {
    if let Some(request) = pending.pop_front() {
        return Ok(Some(request));
    }
    codec.decode(input).map_err(|err| {
        tracing::debug!(error = %err, "dropping a connection");
    })
}

/// The kinds of command answered in batches.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Batch {
    Put,
    Delete,
    Reserve,
}

impl Batch {
    fn of(cmd: &Command) -> Option<Batch> {
        match cmd {
            Command::Put { .. } => Some(Batch::Put),
            Command::Delete { .. } => Some(Batch::Delete),
            Command::Reserve | Command::ReserveWithTimeout { .. } => Some(Batch::Reserve),
            _ => None,
        }
    }
}

impl Conn {
    pub(crate) fn set_producer(&mut self) {
        if !self.producer {
            self.producer = true;
            self.shared.with(|c| c.producers += 1);
        }
    }

    pub(crate) fn set_worker(&mut self) {
        if !self.worker {
            self.worker = true;
            self.shared.with(|c| c.workers += 1);
        }
    }

    /// Gives back every job this connection holds (as beanstalkd does when a connection
    /// closes) and takes its references off the shared counts.
    async fn close(mut self) {
        let now = Instant::now();
        self.held.retain(|_, h| h.deadline > now);
        let held: Vec<(u64, u32)> = self.held.iter().map(|(&id, h)| (id, h.pri)).collect();
        let queue = self.queue.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for (id, pri) in held {
                if let Err(err) = queue.release(id, pri, std::time::Duration::ZERO, None) {
                    tracing::debug!(id, error = %err, "giving back a job at disconnect");
                }
            }
        })
        .await;
        let shared = self.shared.clone();
        shared.tube_ref(&[self.used.clone()], Ref::Using, -1);
        shared.tube_ref(&self.watch, Ref::Watching, -1);
        shared.with(|c| {
            c.connections -= 1;
            c.producers -= u64::from(self.producer);
            c.workers -= u64::from(self.worker);
        });
    }
}
