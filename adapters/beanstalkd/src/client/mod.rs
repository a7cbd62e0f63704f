//! The async client: a [`Client`] holds one connection (TCP or Unix socket,
//! framed by the [`ClientCodec`](crate::proto::ClientCodec); `connection.rs`
//! owns it and its buffers) and the session the server confirmed (used tube,
//! watch list), and gives every command as a method that sends it, reads the
//! reply, and turns the replies it does not expect into typed errors.
//!
//! The methods sit in one file per group of commands: `producer.rs` (`put`,
//! `use`), `worker.rs` (`reserve`, `delete`, `release`, `bury`, `touch`,
//! `watch`, `ignore`), `inspect.rs` (`peek`, the stats, the tube lists) and
//! `admin.rs` (`kick`, `kick-job`, `pause-tube`).
//!
//! A connection whose state is unknown — closed, failed, a corrupt reply, a
//! reply that did not come within [`ConnectOptions::command_timeout`], or a
//! call cancelled while its command was in flight — is marked broken and
//! refuses further commands until [`Client::reconnect`], which also restores
//! the used tube and the watch list. So wrap a blocking `reserve` in a timeout
//! only if you mean to reconnect afterwards; `reserve_with_timeout` is the
//! way to wait a bounded time and keep the connection.

mod admin;
mod connection;
mod inspect;
mod producer;
mod worker;

use std::fmt;

use bytes::Bytes;

pub use connection::ConnectOptions;
use connection::Connection;
pub use producer::PutJob;
pub use pulpo_model::Address;

use crate::error::{Error, Result, invalid_address};
use crate::proto::{Command, Reply, TubeName};

/// A job as reserve and peek return it: what a worker needs to run it and
/// settle it by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The job id.
    pub id: u64,
    /// The body, verbatim.
    pub body: Bytes,
}

/// A connection to beanstalkd.
///
/// One command at a time (or one [`Client::pipeline`] of them): every method
/// takes `&mut self`. For concurrency, open one client per task.
pub struct Client {
    conn: Connection,
    /// The tube `put` goes to, as the server last confirmed it.
    used: TubeName,
    /// The watch list, as the server last confirmed it.
    watched: Vec<TubeName>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.conn.label())
            .field("used", &self.used)
            .field("watched", &self.watched)
            .field("broken", &self.conn.is_broken())
            .finish()
    }
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
        Ok(Client {
            conn: Connection::open(address, options).await?,
            used: TubeName::default_tube(),
            watched: vec![TubeName::default_tube()],
        })
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        self.conn.address()
    }

    /// The options this client connected with (and reconnects with).
    pub fn options(&self) -> &ConnectOptions {
        self.conn.options()
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
        self.conn.is_broken()
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
        let reply = self.conn.send(cmd).await?;
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
        let replies = self.conn.pipeline(cmds).await?;
        for (cmd, reply) in cmds.iter().zip(&replies) {
            self.track(cmd, reply);
        }
        Ok(replies)
    }

    /// Sends `cmd` and hands its reply to `expected`, which takes the
    /// variants the command may answer with and gives any other reply back;
    /// that one becomes a typed error (see [`Error::unexpected`]).
    async fn request<T>(
        &mut self,
        cmd: Command,
        expected: impl FnOnce(Reply) -> Result<T, Reply>,
    ) -> Result<T> {
        let reply = self.send(&cmd).await?;
        expected(reply).map_err(|other| Error::unexpected(cmd.name(), other))
    }

    /// Sends `cmd`, whose one successful reply is `want`.
    async fn expect(&mut self, cmd: Command, want: Reply) -> Result<()> {
        self.request(cmd, |reply| if reply == want { Ok(()) } else { Err(reply) })
            .await
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
        self.conn.reopen().await?;
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
                    (cmd, reply) => Err(Error::unexpected(cmd.name(), reply)),
                }),
            Err(err) => Err(err),
        };
        if let Err(err) = restored {
            self.used = want_used;
            self.watched = want_watched;
            self.conn.mark_broken();
            return Err(err);
        }
        Ok(())
    }

    /// Closes the connection politely (a broken connection is just dropped).
    ///
    /// ```text
    /// quit\r\n
    /// ```
    pub async fn quit(self) -> Result<()> {
        self.conn.quit().await
    }
}
