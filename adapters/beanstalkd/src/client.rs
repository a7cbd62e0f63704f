//! The async client: one connection (TCP or Unix socket) framed by the
//! [`ClientCodec`], with every command as a method that sends it, reads the
//! reply, and turns the replies it does not expect into typed errors.
//!
//! A connection whose state is unknown — closed, failed, a corrupt reply, or
//! a call cancelled while its command was in flight — is marked broken and
//! refuses further commands until [`Client::reconnect`], which also restores
//! the used tube and the watch list. So wrap a blocking `reserve` in a timeout
//! only if you mean to reconnect afterwards; `reserve_with_timeout` is the
//! way to wait a bounded time and keep the connection.

use std::fmt;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::codec::Framed;

pub use pulpo_model::Address;

use crate::error::{Error, Result, ServerError, invalid_address};
use crate::proto::{
    ClientCodec, CodecError, Command, DEFAULT_MAX_BODY, DEFAULT_MAX_DOCUMENT, DEFAULT_MAX_LINE, JobStats,
    Reply, ServerStats, StatsDocument, TubeName, TubeStats, parse_tube_list,
};

/// How many commands [`Client::pipeline`] keeps unanswered. The pipeline reads
/// replies while it writes, so the window is not what prevents a deadlock; it
/// bounds how far the client runs ahead of a server that is falling behind.
const PIPELINE_WINDOW: usize = 256;

/// Connection options.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// The longest reply line accepted, CRLF included.
    pub max_line: usize,
    /// The largest job body sent or accepted.
    pub max_body: usize,
    /// The largest YAML document (stats, tube lists) accepted.
    pub max_document: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            max_line: DEFAULT_MAX_LINE,
            max_body: DEFAULT_MAX_BODY,
            max_document: DEFAULT_MAX_DOCUMENT,
        }
    }
}

/// A job as reserve and peek return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The job id.
    pub id: u64,
    /// The body, verbatim.
    pub body: Bytes,
}

/// One job of a [`Client::put_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutJob {
    /// 0 is most urgent.
    pub priority: u32,
    /// Seconds before the job is ready.
    pub delay: u32,
    /// Seconds a worker may hold it.
    pub ttr: u32,
    /// The body.
    pub body: Bytes,
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The framed connection: TCP or Unix socket behind one trait object.
type Conn = Framed<Box<dyn Io>, ClientCodec>;

/// A connection to beanstalkd.
///
/// One command at a time (or one [`Client::pipeline`] of them): every method
/// takes `&mut self`. For concurrency, open one client per task.
pub struct Client {
    conn: Conn,
    address: Address,
    /// `address` in config form, for error messages.
    label: String,
    options: ConnectOptions,
    /// The tube `put` goes to, as the server last confirmed it.
    used: TubeName,
    /// The watch list, as the server last confirmed it.
    watched: Vec<TubeName>,
    /// Set while a command is in flight and left set when it failed or was
    /// cancelled: the stream may hold a stray reply, so it is not reused.
    broken: bool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.label)
            .field("used", &self.used)
            .field("watched", &self.watched)
            .field("broken", &self.broken)
            .finish()
    }
}

/// Connects to `address` within the connect timeout and frames the stream.
async fn open(address: &Address, options: &ConnectOptions) -> Result<Conn> {
    let label = address.to_string();
    let connect = async {
        let io: Box<dyn Io> = match address {
            Address::Tcp(addr) => {
                let stream = TcpStream::connect(addr.as_str()).await?;
                // Commands are small and each waits for its reply.
                stream.set_nodelay(true)?;
                Box::new(stream)
            }
            Address::Unix(path) => Box::new(UnixStream::connect(path).await?),
        };
        Ok::<_, std::io::Error>(io)
    };
    let io = match tokio::time::timeout(options.connect_timeout, connect).await {
        Err(_) => {
            return Err(Error::ConnectTimeout {
                address: label,
                timeout: options.connect_timeout,
            });
        }
        Ok(Err(source)) => {
            return Err(Error::Connect {
                address: label,
                source,
            });
        }
        Ok(Ok(io)) => io,
    };
    let codec = ClientCodec::new(options.max_line, options.max_body).with_max_document(options.max_document);
    Ok(Framed::new(io, codec))
}

/// The error for a reply that does not answer `command` as expected: an error
/// reply becomes [`Error::Server`], any other reply [`Error::Unexpected`].
fn unexpected(command: &'static str, reply: Reply) -> Error {
    let server = |error| Error::Server { command, error };
    match reply {
        Reply::NotFound => server(ServerError::NotFound),
        Reply::Buried { id: Some(id) } => server(ServerError::Buried { id }),
        Reply::JobTooBig => server(ServerError::JobTooBig),
        Reply::Draining => server(ServerError::Draining),
        Reply::DeadlineSoon => server(ServerError::DeadlineSoon),
        Reply::TimedOut => server(ServerError::TimedOut),
        Reply::NotIgnored => server(ServerError::NotIgnored),
        Reply::ExpectedCrlf => server(ServerError::ExpectedCrlf),
        Reply::BadFormat => server(ServerError::BadFormat),
        Reply::UnknownCommand => server(ServerError::UnknownCommand),
        Reply::OutOfMemory => server(ServerError::OutOfMemory),
        Reply::InternalError => server(ServerError::InternalError),
        other => Error::Unexpected {
            command,
            reply: format!("{other:?}"),
        },
    }
}

/// The result of a `put`'s reply.
fn inserted(reply: Reply) -> Result<u64> {
    match reply {
        Reply::Inserted { id } => Ok(id),
        other => Err(unexpected("put", other)),
    }
}

/// How a pipeline stopped early.
enum Stop {
    /// The codec failed: I/O or a corrupt reply.
    Codec(CodecError),
    /// The server closed the stream.
    Closed,
}

impl Client {
    /// Connects to `address` (`HOST:PORT` or `unix:/path`) with default options.
    pub async fn connect(address: &str) -> Result<Client> {
        Client::connect_with(address, ConnectOptions::default()).await
    }

    /// Connects with `options`; fails with [`Error::ConnectTimeout`] after
    /// `options.connect_timeout`, with [`Error::Connect`] if refused.
    pub async fn connect_with(address: &str, options: ConnectOptions) -> Result<Client> {
        let address = Address::parse(address).map_err(|err| invalid_address(address, err))?;
        let conn = open(&address, &options).await?;
        Ok(Client {
            conn,
            label: address.to_string(),
            address,
            options,
            used: TubeName::default_tube(),
            watched: vec![TubeName::default_tube()],
            broken: false,
        })
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The options this client connected with (and reconnects with).
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// The tube `put` goes to (as the server confirmed it).
    pub fn used_tube(&self) -> &TubeName {
        &self.used
    }

    /// The tubes reserve watches (as the server confirmed them).
    pub fn watched(&self) -> &[TubeName] {
        &self.watched
    }

    /// Whether the connection is unusable until [`Client::reconnect`]: it
    /// was closed or failed, a reply was corrupt, or a call was cancelled
    /// while its command was in flight. Every command then fails at once
    /// with [`Error::Closed`].
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn closed(&self) -> Error {
        Error::Closed {
            address: self.label.clone(),
        }
    }

    fn codec_error(&self, err: CodecError) -> Error {
        Error::from_codec(err, &self.label)
    }

    /// Refuses a put body over the client's `max_body` before anything is
    /// sent, so the connection stays usable.
    fn check(&self, cmd: &Command) -> Result<()> {
        match cmd {
            Command::Put { body, .. } if body.len() > self.options.max_body => Err(Error::BodyTooLarge {
                len: body.len(),
                limit: self.options.max_body,
            }),
            _ => Ok(()),
        }
    }

    /// Keeps the used tube and the watch list in step with what the server
    /// confirmed, whichever method sent the command.
    fn track(&mut self, cmd: &Command, reply: &Reply) {
        match (cmd, reply) {
            (Command::Use { .. }, Reply::Using { tube }) => self.used = tube.clone(),
            (Command::Watch { tube }, Reply::Watching { .. }) if !self.watched.contains(tube) => {
                self.watched.push(tube.clone())
            }
            (Command::Ignore { tube }, Reply::Watching { .. }) => self.watched.retain(|t| t != tube),
            _ => {}
        }
    }

    async fn read_reply(&mut self) -> Result<Reply> {
        match self.conn.next().await {
            Some(Ok(reply)) => Ok(reply),
            Some(Err(err)) => Err(self.codec_error(err)),
            None => Err(self.closed()),
        }
    }

    /// Sends one command and reads its reply, whatever it is: error replies
    /// come back as `Ok(Reply::NotFound)` and so on, not as [`Error::Server`].
    /// A confirmed `use`, `watch` or `ignore` updates [`Client::used_tube`]
    /// and [`Client::watched`]. (To end the connection, use [`Client::quit`]:
    /// `quit` has no reply.)
    ///
    /// ```text
    /// <command>\r\n[<data>\r\n]  ->  <reply>\r\n[<data>\r\n]
    /// ```
    pub async fn send(&mut self, cmd: &Command) -> Result<Reply> {
        if self.broken {
            return Err(self.closed());
        }
        self.check(cmd)?;
        // Cleared only once the reply is in: an error or a cancellation in
        // between leaves the stream's state unknown.
        self.broken = true;
        if let Err(err) = self.conn.send(cmd).await {
            return Err(self.codec_error(err));
        }
        let reply = self.read_reply().await?;
        self.broken = false;
        self.track(cmd, &reply);
        Ok(reply)
    }

    /// Sends many commands with up to a window of them in flight, reading
    /// replies while it writes; returns every reply, in order. Error replies
    /// come back as replies, as with [`Client::send`]. On an `Err` the
    /// connection is lost and some of the commands may have taken effect.
    ///
    /// ```text
    /// <command 1>\r\n<command 2>\r\n...  ->  <reply 1>\r\n<reply 2>\r\n...
    /// ```
    pub async fn pipeline(&mut self, cmds: &[Command]) -> Result<Vec<Reply>> {
        if self.broken {
            return Err(self.closed());
        }
        for cmd in cmds {
            self.check(cmd)?;
        }
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        self.broken = true;
        let mut replies = Vec::with_capacity(cmds.len());
        let conn = &mut self.conn;
        let mut sent = 0;
        let mut unflushed = false;
        // One task drives both directions: beanstalkd stops reading commands
        // while it cannot write replies, so writing a whole batch before
        // reading could fill both socket buffers and deadlock.
        let outcome = std::future::poll_fn(|cx| {
            loop {
                let mut progress = false;
                while sent < cmds.len() && sent - replies.len() < PIPELINE_WINDOW {
                    match Sink::<&Command>::poll_ready(Pin::new(&mut *conn), cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(err)) => return Poll::Ready(Err(Stop::Codec(err))),
                        Poll::Pending => break,
                    }
                    if let Err(err) = Sink::<&Command>::start_send(Pin::new(&mut *conn), &cmds[sent]) {
                        return Poll::Ready(Err(Stop::Codec(err)));
                    }
                    sent += 1;
                    unflushed = true;
                    progress = true;
                }
                if unflushed {
                    match Sink::<&Command>::poll_flush(Pin::new(&mut *conn), cx) {
                        Poll::Ready(Ok(())) => unflushed = false,
                        Poll::Ready(Err(err)) => return Poll::Ready(Err(Stop::Codec(err))),
                        Poll::Pending => {}
                    }
                }
                // Read only while a reply is owed, so that a server sending
                // more replies than commands cannot run the count past `sent`.
                if replies.len() < sent {
                    match conn.poll_next_unpin(cx) {
                        Poll::Ready(Some(Ok(reply))) => {
                            replies.push(reply);
                            if replies.len() == cmds.len() {
                                return Poll::Ready(Ok(()));
                            }
                            progress = true;
                        }
                        Poll::Ready(Some(Err(err))) => return Poll::Ready(Err(Stop::Codec(err))),
                        Poll::Ready(None) => return Poll::Ready(Err(Stop::Closed)),
                        Poll::Pending => {}
                    }
                }
                // Every direction that made no progress registered a wakeup.
                if !progress {
                    return Poll::Pending;
                }
            }
        })
        .await;
        match outcome {
            Ok(()) => {}
            Err(Stop::Codec(err)) => return Err(self.codec_error(err)),
            Err(Stop::Closed) => return Err(self.closed()),
        }
        self.broken = false;
        for (cmd, reply) in cmds.iter().zip(&replies) {
            self.track(cmd, reply);
        }
        Ok(replies)
    }

    /// Opens a new connection to the same address with the same options,
    /// then restores the used tube and the watch list (in one pipelined
    /// round trip: `use`, a `watch` per tube, `ignore default` if `default`
    /// is not in the list). Jobs this connection had reserved are not
    /// restored: the server released them when the old connection closed.
    ///
    /// On failure the client stays broken and keeps the tubes to restore,
    /// so calling `reconnect` again is the way to retry.
    ///
    /// ```text
    /// use <tube>\r\n         ->  USING <tube>\r\n
    /// watch <tube>\r\n ...   ->  WATCHING <count>\r\n ...
    /// ignore default\r\n     ->  WATCHING <count>\r\n
    /// ```
    pub async fn reconnect(&mut self) -> Result<()> {
        self.broken = true;
        self.conn = open(&self.address, &self.options).await?;
        self.broken = false;
        let want_used = self.used.clone();
        let want_watched = self.watched.clone();
        // What a fresh connection has; `track` moves it toward the wanted
        // state as the server confirms each command.
        self.used = TubeName::default_tube();
        self.watched = vec![TubeName::default_tube()];
        let default = TubeName::default_tube();
        let mut cmds = Vec::new();
        if want_used != default {
            cmds.push(Command::Use {
                tube: want_used.clone(),
            });
        }
        for tube in want_watched.iter().filter(|t| **t != default) {
            cmds.push(Command::Watch { tube: tube.clone() });
        }
        if !want_watched.contains(&default) {
            cmds.push(Command::Ignore { tube: default });
        }
        let restored = match self.pipeline(&cmds).await {
            Ok(replies) => cmds
                .iter()
                .zip(replies)
                .try_for_each(|(cmd, reply)| match (cmd, reply) {
                    (Command::Use { .. }, Reply::Using { .. })
                    | (Command::Watch { .. } | Command::Ignore { .. }, Reply::Watching { .. }) => Ok(()),
                    (cmd, reply) => Err(unexpected(cmd.name(), reply)),
                }),
            Err(err) => Err(err),
        };
        if let Err(err) = restored {
            self.used = want_used;
            self.watched = want_watched;
            self.broken = true;
            return Err(err);
        }
        Ok(())
    }

    /// Puts a job into the used tube; returns its id.
    ///
    /// ```text
    /// put <pri> <delay> <ttr> <bytes>\r\n<data>\r\n  ->  INSERTED <id>\r\n
    ///                                  | BURIED <id>\r\n | JOB_TOO_BIG\r\n | DRAINING\r\n
    /// ```
    pub async fn put(&mut self, priority: u32, delay: u32, ttr: u32, body: impl Into<Bytes>) -> Result<u64> {
        let cmd = Command::Put {
            priority,
            delay,
            ttr,
            body: body.into(),
        };
        inserted(self.send(&cmd).await?)
    }

    /// Puts many jobs into the used tube, pipelined; one result per job, in
    /// order. An inner error is that job's own: the server's refusal
    /// (`JOB_TOO_BIG`, `BURIED <id>`, `DRAINING`, ...) or
    /// [`Error::BodyTooLarge`] for a body over the client's `max_body`, which
    /// is not sent. The outer error means the connection was lost: jobs
    /// before it may be stored.
    ///
    /// ```text
    /// put <pri> <delay> <ttr> <bytes>\r\n<data>\r\n ...  ->  INSERTED <id>\r\n ...
    /// ```
    pub async fn put_batch(&mut self, jobs: &[PutJob]) -> Result<Vec<Result<u64>>> {
        let limit = self.options.max_body;
        let cmds: Vec<Command> = jobs
            .iter()
            .filter(|job| job.body.len() <= limit)
            .map(|job| Command::Put {
                priority: job.priority,
                delay: job.delay,
                ttr: job.ttr,
                body: job.body.clone(),
            })
            .collect();
        let mut replies = self.pipeline(&cmds).await?.into_iter();
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            if job.body.len() > limit {
                results.push(Err(Error::BodyTooLarge {
                    len: job.body.len(),
                    limit,
                }));
                continue;
            }
            // `pipeline` returns exactly one reply per command.
            let result = match replies.next() {
                Some(reply) => inserted(reply),
                None => Err(self.closed()),
            };
            results.push(result);
        }
        Ok(results)
    }

    /// Chooses the tube later puts go to.
    ///
    /// ```text
    /// use <tube>\r\n  ->  USING <tube>\r\n
    /// ```
    pub async fn use_tube(&mut self, tube: &str) -> Result<TubeName> {
        let tube = TubeName::new(tube)?;
        match self.send(&Command::Use { tube }).await? {
            Reply::Using { tube } => Ok(tube),
            other => Err(unexpected("use", other)),
        }
    }

    async fn reserve_reply(&mut self, command: &'static str, cmd: Command) -> Result<Job> {
        match self.send(&cmd).await? {
            Reply::Reserved { id, body } => Ok(Job { id, body }),
            other => Err(unexpected(command, other)),
        }
    }

    /// Waits for a job from the watched tubes.
    ///
    /// ```text
    /// reserve\r\n  ->  RESERVED <id> <bytes>\r\n<data>\r\n | DEADLINE_SOON\r\n
    /// ```
    pub async fn reserve(&mut self) -> Result<Job> {
        self.reserve_reply("reserve", Command::Reserve).await
    }

    /// Waits up to `timeout_secs` (0 = poll) for a job.
    ///
    /// ```text
    /// reserve-with-timeout <secs>\r\n  ->  RESERVED ... | TIMED_OUT\r\n | DEADLINE_SOON\r\n
    /// ```
    pub async fn reserve_with_timeout(&mut self, timeout_secs: u32) -> Result<Job> {
        self.reserve_reply(
            "reserve-with-timeout",
            Command::ReserveWithTimeout {
                timeout: timeout_secs,
            },
        )
        .await
    }

    /// Reserves a job by id.
    ///
    /// ```text
    /// reserve-job <id>\r\n  ->  RESERVED ... | NOT_FOUND\r\n
    /// ```
    pub async fn reserve_job(&mut self, id: u64) -> Result<Job> {
        self.reserve_reply("reserve-job", Command::ReserveJob { id })
            .await
    }

    async fn expect(&mut self, command: &'static str, cmd: Command, want: Reply) -> Result<()> {
        match self.send(&cmd).await? {
            reply if reply == want => Ok(()),
            other => Err(unexpected(command, other)),
        }
    }

    /// Deletes a job.
    ///
    /// ```text
    /// delete <id>\r\n  ->  DELETED\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn delete(&mut self, id: u64) -> Result<()> {
        self.expect("delete", Command::Delete { id }, Reply::Deleted)
            .await
    }

    /// Releases a reserved job.
    ///
    /// ```text
    /// release <id> <pri> <delay>\r\n  ->  RELEASED\r\n | BURIED\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn release(&mut self, id: u64, priority: u32, delay: u32) -> Result<()> {
        match self.send(&Command::Release { id, priority, delay }).await? {
            Reply::Released => Ok(()),
            Reply::Buried { id: None } => Err(Error::Server {
                command: "release",
                error: ServerError::Buried { id },
            }),
            other => Err(unexpected("release", other)),
        }
    }

    /// Buries a reserved job.
    ///
    /// ```text
    /// bury <id> <pri>\r\n  ->  BURIED\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn bury(&mut self, id: u64, priority: u32) -> Result<()> {
        self.expect("bury", Command::Bury { id, priority }, Reply::Buried { id: None })
            .await
    }

    /// Restarts a reserved job's TTR.
    ///
    /// ```text
    /// touch <id>\r\n  ->  TOUCHED\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn touch(&mut self, id: u64) -> Result<()> {
        self.expect("touch", Command::Touch { id }, Reply::Touched).await
    }

    /// Adds a tube to the watch list; returns the list's length.
    ///
    /// ```text
    /// watch <tube>\r\n  ->  WATCHING <count>\r\n
    /// ```
    pub async fn watch(&mut self, tube: &str) -> Result<u64> {
        let tube = TubeName::new(tube)?;
        match self.send(&Command::Watch { tube }).await? {
            Reply::Watching { count } => Ok(count),
            other => Err(unexpected("watch", other)),
        }
    }

    /// Removes a tube from the watch list; returns the list's length.
    ///
    /// ```text
    /// ignore <tube>\r\n  ->  WATCHING <count>\r\n | NOT_IGNORED\r\n
    /// ```
    pub async fn ignore(&mut self, tube: &str) -> Result<u64> {
        let tube = TubeName::new(tube)?;
        match self.send(&Command::Ignore { tube }).await? {
            Reply::Watching { count } => Ok(count),
            other => Err(unexpected("ignore", other)),
        }
    }

    async fn peek_reply(&mut self, command: &'static str, cmd: Command) -> Result<Job> {
        match self.send(&cmd).await? {
            Reply::Found { id, body } => Ok(Job { id, body }),
            other => Err(unexpected(command, other)),
        }
    }

    /// Looks at a job by id.
    ///
    /// ```text
    /// peek <id>\r\n  ->  FOUND <id> <bytes>\r\n<data>\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn peek(&mut self, id: u64) -> Result<Job> {
        self.peek_reply("peek", Command::Peek { id }).await
    }

    /// Looks at the next ready job of the used tube.
    ///
    /// ```text
    /// peek-ready\r\n  ->  FOUND ... | NOT_FOUND\r\n
    /// ```
    pub async fn peek_ready(&mut self) -> Result<Job> {
        self.peek_reply("peek-ready", Command::PeekReady).await
    }

    /// Looks at the delayed job of the used tube with the least delay left.
    ///
    /// ```text
    /// peek-delayed\r\n  ->  FOUND ... | NOT_FOUND\r\n
    /// ```
    pub async fn peek_delayed(&mut self) -> Result<Job> {
        self.peek_reply("peek-delayed", Command::PeekDelayed).await
    }

    /// Looks at the next buried job of the used tube.
    ///
    /// ```text
    /// peek-buried\r\n  ->  FOUND ... | NOT_FOUND\r\n
    /// ```
    pub async fn peek_buried(&mut self) -> Result<Job> {
        self.peek_reply("peek-buried", Command::PeekBuried).await
    }

    /// Kicks up to `bound` buried (else delayed) jobs of the used tube.
    ///
    /// ```text
    /// kick <bound>\r\n  ->  KICKED <count>\r\n
    /// ```
    pub async fn kick(&mut self, bound: u64) -> Result<u64> {
        match self.send(&Command::Kick { bound }).await? {
            Reply::Kicked { count: Some(count) } => Ok(count),
            other => Err(unexpected("kick", other)),
        }
    }

    /// Kicks one buried or delayed job.
    ///
    /// ```text
    /// kick-job <id>\r\n  ->  KICKED\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn kick_job(&mut self, id: u64) -> Result<()> {
        self.expect("kick-job", Command::KickJob { id }, Reply::Kicked { count: None })
            .await
    }

    async fn document(&mut self, command: &'static str, cmd: Command) -> Result<Bytes> {
        match self.send(&cmd).await? {
            Reply::Ok { data } => Ok(data),
            other => Err(unexpected(command, other)),
        }
    }

    /// A job's statistics.
    ///
    /// ```text
    /// stats-job <id>\r\n  ->  OK <bytes>\r\n<yaml>\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn stats_job(&mut self, id: u64) -> Result<JobStats> {
        Ok(JobStats::parse(
            &self.document("stats-job", Command::StatsJob { id }).await?,
        )?)
    }

    /// A tube's statistics.
    ///
    /// ```text
    /// stats-tube <tube>\r\n  ->  OK <bytes>\r\n<yaml>\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn stats_tube(&mut self, tube: &str) -> Result<TubeStats> {
        let tube = TubeName::new(tube)?;
        Ok(TubeStats::parse(
            &self.document("stats-tube", Command::StatsTube { tube }).await?,
        )?)
    }

    /// The server's statistics.
    ///
    /// ```text
    /// stats\r\n  ->  OK <bytes>\r\n<yaml>\r\n
    /// ```
    pub async fn stats(&mut self) -> Result<ServerStats> {
        Ok(ServerStats::parse(
            &self.document("stats", Command::Stats).await?,
        )?)
    }

    /// All existing tubes.
    ///
    /// ```text
    /// list-tubes\r\n  ->  OK <bytes>\r\n<yaml list>\r\n
    /// ```
    pub async fn list_tubes(&mut self) -> Result<Vec<TubeName>> {
        Ok(parse_tube_list(
            &self.document("list-tubes", Command::ListTubes).await?,
        )?)
    }

    /// The tube this connection uses.
    ///
    /// ```text
    /// list-tube-used\r\n  ->  USING <tube>\r\n
    /// ```
    pub async fn list_tube_used(&mut self) -> Result<TubeName> {
        match self.send(&Command::ListTubeUsed).await? {
            Reply::Using { tube } => Ok(tube),
            other => Err(unexpected("list-tube-used", other)),
        }
    }

    /// The tubes this connection watches.
    ///
    /// ```text
    /// list-tubes-watched\r\n  ->  OK <bytes>\r\n<yaml list>\r\n
    /// ```
    pub async fn list_tubes_watched(&mut self) -> Result<Vec<TubeName>> {
        Ok(parse_tube_list(
            &self
                .document("list-tubes-watched", Command::ListTubesWatched)
                .await?,
        )?)
    }

    /// Holds back reservations from a tube for `delay_secs`.
    ///
    /// ```text
    /// pause-tube <tube> <delay>\r\n  ->  PAUSED\r\n | NOT_FOUND\r\n
    /// ```
    pub async fn pause_tube(&mut self, tube: &str, delay_secs: u32) -> Result<()> {
        let tube = TubeName::new(tube)?;
        self.expect(
            "pause-tube",
            Command::PauseTube {
                tube,
                delay: delay_secs,
            },
            Reply::Paused,
        )
        .await
    }

    /// Closes the connection politely (a broken connection is just dropped).
    ///
    /// ```text
    /// quit\r\n
    /// ```
    pub async fn quit(mut self) -> Result<()> {
        if self.broken {
            return Ok(());
        }
        self.conn
            .send(&Command::Quit)
            .await
            .map_err(|err| Error::from_codec(err, &self.label))?;
        Ok(())
    }
}
