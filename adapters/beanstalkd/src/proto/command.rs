//! Every client command of protocol.txt as a value. The wire form of each is
//! in its doc comment; [`super::ClientCodec`] writes them and
//! [`super::ServerCodec`] reads them.

use bytes::Bytes;

use super::TubeName;

/// One client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Insert a job into the used tube.
    ///
    /// ```text
    /// put <pri> <delay> <ttr> <bytes>\r\n<data>\r\n
    /// ```
    Put {
        /// 0 is most urgent, 2^32-1 least.
        priority: u32,
        /// Seconds the job stays delayed before it is ready.
        delay: u32,
        /// Seconds a worker may hold the job once reserved (0 is taken as 1).
        ttr: u32,
        /// The job body, sent verbatim; may hold any bytes, `\r\n` included.
        body: Bytes,
    },
    /// Choose the tube that later `put`s go to.
    ///
    /// ```text
    /// use <tube>\r\n
    /// ```
    Use {
        /// The tube to use.
        tube: TubeName,
    },
    /// Wait for a ready job in the watched tubes.
    ///
    /// ```text
    /// reserve\r\n
    /// ```
    Reserve,
    /// Wait at most `timeout` seconds for a ready job (0 = poll).
    ///
    /// ```text
    /// reserve-with-timeout <seconds>\r\n
    /// ```
    ReserveWithTimeout {
        /// Seconds to wait.
        timeout: u32,
    },
    /// Reserve a specific job by id.
    ///
    /// ```text
    /// reserve-job <id>\r\n
    /// ```
    ReserveJob {
        /// The job id.
        id: u64,
    },
    /// Remove a job.
    ///
    /// ```text
    /// delete <id>\r\n
    /// ```
    Delete {
        /// The job id.
        id: u64,
    },
    /// Put a reserved job back, ready or delayed.
    ///
    /// ```text
    /// release <id> <pri> <delay>\r\n
    /// ```
    Release {
        /// The job id.
        id: u64,
        /// The job's new priority.
        priority: u32,
        /// Seconds to delay it.
        delay: u32,
    },
    /// Bury a reserved job.
    ///
    /// ```text
    /// bury <id> <pri>\r\n
    /// ```
    Bury {
        /// The job id.
        id: u64,
        /// The job's new priority.
        priority: u32,
    },
    /// Ask for more time on a reserved job (restarts its TTR).
    ///
    /// ```text
    /// touch <id>\r\n
    /// ```
    Touch {
        /// The job id.
        id: u64,
    },
    /// Add a tube to the watch list.
    ///
    /// ```text
    /// watch <tube>\r\n
    /// ```
    Watch {
        /// The tube to watch.
        tube: TubeName,
    },
    /// Remove a tube from the watch list.
    ///
    /// ```text
    /// ignore <tube>\r\n
    /// ```
    Ignore {
        /// The tube to ignore.
        tube: TubeName,
    },
    /// Look at a job by id.
    ///
    /// ```text
    /// peek <id>\r\n
    /// ```
    Peek {
        /// The job id.
        id: u64,
    },
    /// Look at the next ready job of the used tube.
    ///
    /// ```text
    /// peek-ready\r\n
    /// ```
    PeekReady,
    /// Look at the delayed job of the used tube with the shortest delay left.
    ///
    /// ```text
    /// peek-delayed\r\n
    /// ```
    PeekDelayed,
    /// Look at the next buried job of the used tube.
    ///
    /// ```text
    /// peek-buried\r\n
    /// ```
    PeekBuried,
    /// Kick up to `bound` jobs of the used tube: buried ones if any, else
    /// delayed ones.
    ///
    /// ```text
    /// kick <bound>\r\n
    /// ```
    Kick {
        /// The most jobs to kick.
        bound: u64,
    },
    /// Kick one buried or delayed job by id.
    ///
    /// ```text
    /// kick-job <id>\r\n
    /// ```
    KickJob {
        /// The job id.
        id: u64,
    },
    /// Statistics of one job.
    ///
    /// ```text
    /// stats-job <id>\r\n
    /// ```
    StatsJob {
        /// The job id.
        id: u64,
    },
    /// Statistics of one tube.
    ///
    /// ```text
    /// stats-tube <tube>\r\n
    /// ```
    StatsTube {
        /// The tube.
        tube: TubeName,
    },
    /// Statistics of the whole server.
    ///
    /// ```text
    /// stats\r\n
    /// ```
    Stats,
    /// All existing tubes.
    ///
    /// ```text
    /// list-tubes\r\n
    /// ```
    ListTubes,
    /// The tube this connection uses.
    ///
    /// ```text
    /// list-tube-used\r\n
    /// ```
    ListTubeUsed,
    /// The tubes this connection watches.
    ///
    /// ```text
    /// list-tubes-watched\r\n
    /// ```
    ListTubesWatched,
    /// Hold back reservations from a tube for `delay` seconds.
    ///
    /// ```text
    /// pause-tube <tube> <delay>\r\n
    /// ```
    PauseTube {
        /// The tube.
        tube: TubeName,
        /// Seconds to pause.
        delay: u32,
    },
    /// Close the connection.
    ///
    /// ```text
    /// quit\r\n
    /// ```
    Quit,
}

impl Command {
    /// The command's name on the wire (`"put"`, `"reserve-with-timeout"`, ...),
    /// for error messages and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Put { .. } => "put",
            Command::Use { .. } => "use",
            Command::Reserve => "reserve",
            Command::ReserveWithTimeout { .. } => "reserve-with-timeout",
            Command::ReserveJob { .. } => "reserve-job",
            Command::Delete { .. } => "delete",
            Command::Release { .. } => "release",
            Command::Bury { .. } => "bury",
            Command::Touch { .. } => "touch",
            Command::Watch { .. } => "watch",
            Command::Ignore { .. } => "ignore",
            Command::Peek { .. } => "peek",
            Command::PeekReady => "peek-ready",
            Command::PeekDelayed => "peek-delayed",
            Command::PeekBuried => "peek-buried",
            Command::Kick { .. } => "kick",
            Command::KickJob { .. } => "kick-job",
            Command::StatsJob { .. } => "stats-job",
            Command::StatsTube { .. } => "stats-tube",
            Command::Stats => "stats",
            Command::ListTubes => "list-tubes",
            Command::ListTubeUsed => "list-tube-used",
            Command::ListTubesWatched => "list-tubes-watched",
            Command::PauseTube { .. } => "pause-tube",
            Command::Quit => "quit",
        }
    }
}
