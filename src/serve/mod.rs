//! `pulpo serve`: beanstalkd's protocol over the file queue. This file holds the listeners, the
//! connection cap and shutdown; `connection.rs` runs one task per connection (its state: used
//! tube, watch list, reservations, each connection with its own file-queue handle);
//! `commands.rs` answers each command; `committer.rs` waits for every connection's durable
//! changes (with fsync) on one thread; `shared.rs` is the one handle on what connections share
//! (counters, tube references, draining).

mod commands;
mod committer;
mod connection;
pub mod http;
mod shared;

use std::path::PathBuf;
use std::sync::Arc;

use pulpo_model::Address;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use shared::Shared;

/// What `pulpo serve` needs to run: where to listen, its limits, and the queue to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Addresses to listen on: `HOST:PORT` or `unix:/path`.
    pub listen: Vec<String>,
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// The largest job body a put may carry (beanstalkd's `-z`).
    pub max_job_size: usize,
    /// The file queue's directory.
    pub path: PathBuf,
    /// Whether the file queue fsyncs its writes.
    pub fsync: bool,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An address that is not `HOST:PORT` or `unix:/path`.
    #[error("[serve] listen: {address:?} is not HOST:PORT or unix:/path/to/socket")]
    BadAddress {
        /// The address as written.
        address: String,
    },
    /// Listening failed (address in use, no permission).
    #[error("cannot listen on {address}: {source}; choose another [serve] listen address")]
    Listen {
        /// The address.
        address: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// The queue directory cannot be opened.
    #[error("cannot open the file queue in {path:?}: {source}")]
    Queue {
        /// The directory.
        path: PathBuf,
        /// The queue's error.
        source: pulpo_filequeue::Error,
    },
}

/// A listener of either kind.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// Binds every address of `opts.listen`, checks the queue opens, and returns the bound
/// addresses (a port 0 resolved) with a future that serves until `shutdown` is cancelled.
pub async fn bind(
    opts: ServeOptions,
    shutdown: CancellationToken,
    shared: Arc<Shared>,
) -> Result<(Vec<String>, impl std::future::Future<Output = ()>), ServeError> {
    let probe_opts = queue_options(&opts);
    let path = opts.path.clone();
    let probe = tokio::task::spawn_blocking(move || pulpo_filequeue::FileQueue::open(&path, probe_opts))
        .await
        .expect("opening the queue does not panic");
    let probe = probe.map_err(|source| ServeError::Queue {
        path: opts.path.clone(),
        source,
    })?;
    let committer = committer::Committer::start(probe).map_err(|err| ServeError::Queue {
        path: opts.path.clone(),
        source: pulpo_filequeue::Error::InvalidOptions(format!("cannot start the commit thread: {err}")),
    })?;
    let mut listeners = Vec::new();
    let mut bound = Vec::new();
    for address in &opts.listen {
        let parsed = Address::parse(address).map_err(|_| ServeError::BadAddress {
            address: address.clone(),
        })?;
        let listen_err = |source| ServeError::Listen {
            address: address.clone(),
            source,
        };
        match parsed {
            Address::Tcp(addr) => {
                let listener = TcpListener::bind(&addr).await.map_err(listen_err)?;
                let local = listener.local_addr().map_err(listen_err)?;
                bound.push(local.to_string());
                listeners.push(Listener::Tcp(listener));
            }
            Address::Unix(path) => {
                // A socket file left by a server that died is replaced; one a live server
                // listens on, or anything that is not a socket, is not.
                if std::fs::symlink_metadata(&path)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                        return Err(listen_err(std::io::Error::new(
                            std::io::ErrorKind::AddrInUse,
                            "a server is listening on this socket",
                        )));
                    }
                    let _ = std::fs::remove_file(&path);
                }
                let listener = UnixListener::bind(&path).map_err(listen_err)?;
                bound.push(format!("unix:{}", path.display()));
                listeners.push(Listener::Unix(listener, path));
            }
        }
    }
    Ok((bound, run(listeners, opts, committer, shutdown, shared)))
}

fn queue_options(opts: &ServeOptions) -> pulpo_filequeue::Options {
    pulpo_filequeue::Options {
        fsync: opts.fsync,
        max_job_size: opts.max_job_size,
        ..pulpo_filequeue::Options::default()
    }
}

/// Accepts on every listener until shutdown, then waits for every connection to finish its
/// command and give back its reservations.
async fn run(
    listeners: Vec<Listener>,
    opts: ServeOptions,
    committer: committer::Committer,
    shutdown: CancellationToken,
    shared: Arc<Shared>,
) {
    // Every task holds a sender; when all are gone, every connection has finished.
    let (tracker, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    let settings = Arc::new(connection::Settings {
        dir: opts.path.clone(),
        queue: queue_options(&opts),
        max_job_size: opts.max_job_size,
        committer,
    });
    let mut sockets = Vec::new();
    for listener in listeners {
        let (tracker2, slots, settings, shared, shutdown) = (
            tracker.clone(),
            slots.clone(),
            settings.clone(),
            shared.clone(),
            shutdown.clone(),
        );
        let held = tracker.clone();
        if let Listener::Unix(_, path) = &listener {
            sockets.push(path.clone());
        }
        tokio::spawn(async move {
            let _held = held;
            loop {
                let accepted = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = accept(&listener) => accepted,
                };
                let stream = match accepted {
                    Ok(stream) => stream,
                    Err(err) => {
                        // Out of file descriptors and the like: wait a little, don't spin.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!("connection refused: max_connections reached");
                    drop(stream);
                    continue;
                };
                let (settings, shared, shutdown) = (settings.clone(), shared.clone(), shutdown.clone());
                let held = tracker2.clone();
                tokio::spawn(async move {
                    let _held = held;
                    match stream {
                        Stream::Tcp(s) => connection::serve(s, &settings, &shared, shutdown).await,
                        Stream::Unix(s) => connection::serve(s, &settings, &shared, shutdown).await,
                    }
                    drop(permit);
                });
            }
        });
    }
    drop(tracker);
    let _ = all_done.recv().await;
    for path in sockets {
        let _ = std::fs::remove_file(path);
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Stream> {
    match listener {
        Listener::Tcp(l) => {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok(Stream::Tcp(s))
        }
        Listener::Unix(l, _) => Ok(Stream::Unix(l.accept().await?.0)),
    }
}
