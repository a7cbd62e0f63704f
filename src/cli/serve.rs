//! `pulpo serve`: beanstalkd's protocol over the file queue of `[file]`, on the addresses of
//! `[serve] listen` (or `--listen`), until SIGTERM or SIGINT; SIGUSR1 starts draining.

use std::sync::Arc;

use serde_json::json;

use super::{Failure, show};
use crate::config::{Settings, validate_address};
use crate::serve::{ServeOptions, Shared, bind};

/// Serves until a stop signal; prints where it listens once it does.
pub(super) async fn serve(settings: &Settings, listen: Vec<String>, json: bool) -> Result<(), Failure> {
    for address in &listen {
        validate_address(address).map_err(|err| Failure::usage(format!("--listen: {err}")))?;
    }
    let listen = if listen.is_empty() {
        settings.serve.listen.clone()
    } else {
        listen
    };
    let opts = ServeOptions {
        listen,
        max_connections: settings.serve.max_connections as usize,
        max_job_size: settings.serve.max_job_size as usize,
        path: settings.file.path.clone(),
        fsync: settings.file.fsync,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let shared = Arc::new(Shared::new(opts.max_job_size));
    let (bound, server) = bind(opts, shutdown.clone(), shared.clone())
        .await
        .map_err(|err| Failure {
            code: 1,
            message: err.to_string(),
        })?;
    watch_signals(shutdown, shared)?;
    show::emit(json, json!({"listening": bound}), || {
        format!("listening on {}", bound.join(", "))
    })?;
    server.await;
    // How many puts one fdatasync covered is group commit's measure (benches/serve.rs reads it).
    let fdatasyncs = pulpo_filequeue::sync_count(pulpo_filequeue::SyncPoint::GroupCommit);
    tracing::info!(fdatasyncs, "stopped");
    Ok(())
}

/// SIGTERM and SIGINT stop the server gracefully; SIGUSR1 puts it in draining mode.
fn watch_signals(shutdown: tokio_util::sync::CancellationToken, shared: Arc<Shared>) -> Result<(), Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let setup = |kind| {
        signal(kind).map_err(|err| Failure {
            code: 1,
            message: format!("cannot listen for signals: {err}"),
        })
    };
    let (mut term, mut int, mut usr1) = (
        setup(SignalKind::terminate())?,
        setup(SignalKind::interrupt())?,
        setup(SignalKind::user_defined1())?,
    );
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = usr1.recv() => {
                    tracing::info!("SIGUSR1: draining, puts are refused from now on");
                    shared.drain();
                }
            }
        }
        tracing::info!("stopping: connections finish their command and give back their jobs");
        shutdown.cancel();
    });
    Ok(())
}
