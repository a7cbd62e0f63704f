//! The connection: the one type that owns the socket (TCP or Unix) and its
//! buffers. It connects within a timeout, reconnects, writes [`Command`]s
//! and reads [`Reply`]s through the [`ClientCodec`], one at a time or
//! pipelined, and knows when its stream can no longer be trusted. Above it,
//! the [`Client`](super::Client) sees typed commands and replies, never bytes.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures::{Sink, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::codec::Framed;

use super::Address;
use crate::error::{Error, Result};
use crate::proto::{
    ClientCodec, CodecError, Command, DEFAULT_MAX_BODY, DEFAULT_MAX_DOCUMENT, DEFAULT_MAX_LINE, Reply,
};

/// How many commands [`Connection::pipeline`] keeps unanswered. The pipeline
/// reads replies while it writes, so the window is not what prevents a
/// deadlock; it bounds how far the client runs ahead of a server that is
/// falling behind.
const PIPELINE_WINDOW: usize = 256;

/// The limits and timeouts a client connects (and reconnects) with, so that
/// a slow, stopped or hostile server cannot hang it or make it buffer
/// without bound.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long a command may wait for its reply, on top of the wait it asks
    /// for itself (`reserve-with-timeout`'s seconds); a pipeline may wait
    /// this long between two replies. A blocking `reserve` waits without
    /// limit. Past it the call fails with [`Error::CommandTimeout`] and the
    /// connection is broken (a reply is still owed).
    pub command_timeout: Duration,
    /// The longest reply line accepted, CRLF included.
    pub max_line: usize,
    /// The largest job body sent or read. A larger one the server sends
    /// (reserve, peek) is skipped unread: [`Error::JobTooBigToRead`].
    pub max_body: usize,
    /// The largest YAML document (stats, tube lists) accepted.
    pub max_document: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(30),
            max_line: DEFAULT_MAX_LINE,
            max_body: DEFAULT_MAX_BODY,
            max_document: DEFAULT_MAX_DOCUMENT,
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The framed stream: TCP or Unix socket behind one trait object.
type Framing = Framed<Box<dyn Io>, ClientCodec>;

/// How a pipeline stopped early.
enum Stop {
    /// The codec failed: I/O or a corrupt reply.
    Codec(CodecError),
    /// The server closed the stream.
    Closed,
    /// No reply came within the command timeout.
    TimedOut,
}

/// One connection to a server: the socket, the codec's buffers, and whether
/// the stream is still in step with the server.
pub(crate) struct Connection {
    framed: Framing,
    address: Address,
    /// `address` in config form, for error messages.
    label: String,
    options: ConnectOptions,
    /// Set while a command is in flight and left set when it failed or was
    /// cancelled: the stream may hold a stray reply, so it is not reused.
    broken: bool,
}

/// Connects to `address` within the connect timeout and frames the stream.
async fn open(address: &Address, options: &ConnectOptions) -> Result<Framing> {
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

impl Connection {
    /// Connects to `address` with `options`; fails with
    /// [`Error::ConnectTimeout`] after the connect timeout, with
    /// [`Error::Connect`] if refused.
    pub(crate) async fn open(address: Address, options: ConnectOptions) -> Result<Connection> {
        let framed = open(&address, &options).await?;
        Ok(Connection {
            framed,
            label: address.to_string(),
            address,
            options,
            broken: false,
        })
    }

    /// Replaces the stream with a new one to the same address, with the same
    /// options. On failure the connection stays broken.
    pub(crate) async fn reopen(&mut self) -> Result<()> {
        self.broken = true;
        self.framed = open(&self.address, &self.options).await?;
        self.broken = false;
        Ok(())
    }

    pub(crate) fn address(&self) -> &Address {
        &self.address
    }

    /// `address` in config form, for error messages.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn options(&self) -> &ConnectOptions {
        &self.options
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Marks the stream as out of step with the server (or the session as
    /// not what the caller asked for), so that it is not reused until
    /// [`Connection::reopen`].
    pub(crate) fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// The error for a stream that is closed, or refused because it is broken.
    pub(crate) fn closed(&self) -> Error {
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

    /// How long `cmds` may wait for a reply: the command timeout plus the
    /// waits they ask for; `None` (no limit) when one is a blocking reserve.
    fn reply_limit(&self, cmds: &[Command]) -> Option<Duration> {
        let mut limit = self.options.command_timeout;
        for cmd in cmds {
            match cmd {
                Command::Reserve => return None,
                Command::ReserveWithTimeout { timeout } => {
                    limit = limit.saturating_add(Duration::from_secs(u64::from(*timeout)))
                }
                _ => {}
            }
        }
        Some(limit)
    }

    /// The error for a reply that did not come within `timeout`.
    fn timed_out(&self, cmd: &Command, timeout: Duration) -> Error {
        Error::CommandTimeout {
            address: self.label.clone(),
            command: cmd.name(),
            timeout,
        }
    }

    /// Writes one command and reads its reply, whatever it is.
    pub(crate) async fn send(&mut self, cmd: &Command) -> Result<Reply> {
        if self.broken {
            return Err(self.closed());
        }
        self.check(cmd)?;
        // Cleared only once the reply is in: an error, a timeout or a
        // cancellation in between leaves the stream's state unknown.
        self.broken = true;
        let limit = self.reply_limit(std::slice::from_ref(cmd));
        let (framed, label) = (&mut self.framed, &self.label);
        let exchange = async move {
            framed
                .send(cmd)
                .await
                .map_err(|err| Error::from_codec(err, label))?;
            match framed.next().await {
                Some(Ok(reply)) => Ok(reply),
                Some(Err(err)) => Err(Error::from_codec(err, label)),
                None => Err(Error::Closed {
                    address: label.clone(),
                }),
            }
        };
        let reply = match limit {
            None => exchange.await?,
            Some(limit) => match tokio::time::timeout(limit, exchange).await {
                Ok(reply) => reply?,
                Err(_) => return Err(self.timed_out(cmd, limit)),
            },
        };
        self.broken = false;
        Ok(reply)
    }

    /// Writes many commands with up to a window of them in flight, reading
    /// replies while it writes; returns every reply, in order.
    pub(crate) async fn pipeline(&mut self, cmds: &[Command]) -> Result<Vec<Reply>> {
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
        let limit = self.reply_limit(cmds);
        // Restarted at every reply: a long pipeline may take long in all,
        // but not long between two replies.
        let mut timer = limit.map(|limit| Box::pin(tokio::time::sleep(limit)));
        let mut replies = Vec::with_capacity(cmds.len());
        let framed = &mut self.framed;
        let mut sent = 0;
        let mut unflushed = false;
        // One task drives both directions: beanstalkd stops reading commands
        // while it cannot write replies, so writing a whole batch before
        // reading could fill both socket buffers and deadlock.
        let outcome = std::future::poll_fn(|cx| {
            loop {
                let mut progress = false;
                while sent < cmds.len() && sent - replies.len() < PIPELINE_WINDOW {
                    match Sink::<&Command>::poll_ready(Pin::new(&mut *framed), cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(err)) => return Poll::Ready(Err(Stop::Codec(err))),
                        Poll::Pending => break,
                    }
                    if let Err(err) = Sink::<&Command>::start_send(Pin::new(&mut *framed), &cmds[sent]) {
                        return Poll::Ready(Err(Stop::Codec(err)));
                    }
                    sent += 1;
                    unflushed = true;
                    progress = true;
                }
                if unflushed {
                    match Sink::<&Command>::poll_flush(Pin::new(&mut *framed), cx) {
                        Poll::Ready(Ok(())) => unflushed = false,
                        Poll::Ready(Err(err)) => return Poll::Ready(Err(Stop::Codec(err))),
                        Poll::Pending => {}
                    }
                }
                // Read only while a reply is owed, so that a server sending
                // more replies than commands cannot run the count past `sent`.
                if replies.len() < sent {
                    match framed.poll_next_unpin(cx) {
                        Poll::Ready(Some(Ok(reply))) => {
                            replies.push(reply);
                            if replies.len() == cmds.len() {
                                return Poll::Ready(Ok(()));
                            }
                            if let (Some(timer), Some(limit)) = (&mut timer, limit) {
                                timer.as_mut().reset(tokio::time::Instant::now() + limit);
                            }
                            progress = true;
                        }
                        Poll::Ready(Some(Err(err))) => return Poll::Ready(Err(Stop::Codec(err))),
                        Poll::Ready(None) => return Poll::Ready(Err(Stop::Closed)),
                        Poll::Pending => {}
                    }
                }
                // Every direction that made no progress registered a wakeup,
                // and so does the timer.
                if !progress {
                    if let Some(timer) = &mut timer
                        && timer.as_mut().poll(cx).is_ready()
                    {
                        return Poll::Ready(Err(Stop::TimedOut));
                    }
                    return Poll::Pending;
                }
            }
        })
        .await;
        match outcome {
            Ok(()) => {}
            Err(Stop::Codec(err)) => return Err(self.codec_error(err)),
            Err(Stop::Closed) => return Err(self.closed()),
            Err(Stop::TimedOut) => {
                let waited = limit.unwrap_or_default();
                return Err(self.timed_out(&cmds[replies.len().min(cmds.len() - 1)], waited));
            }
        }
        self.broken = false;
        Ok(replies)
    }

    /// Writes `quit` (which has no reply); a broken connection is just
    /// dropped.
    pub(crate) async fn quit(mut self) -> Result<()> {
        if self.broken {
            return Ok(());
        }
        self.framed
            .send(&Command::Quit)
            .await
            .map_err(|err| Error::from_codec(err, &self.label))?;
        Ok(())
    }
}
