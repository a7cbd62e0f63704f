//! `pulpo serve`: beanstalkd's protocol over the file queue of `[file]`, on the addresses of
//! `[serve] listen` (or `--listen`), and the HTTP API, dashboard and `/metrics` on `[serve]
//! http` (or `--http`) over the configured queue, until SIGTERM or SIGINT; SIGUSR1 starts
//! draining.

use std::sync::Arc;

use serde_json::json;

use super::{Failure, show};
use crate::config::{QueueKind, Settings, validate_address};
use crate::serve::{ServeOptions, Shared, bind};

/// Serves until a stop signal; prints where it listens once it does.
pub(super) async fn serve(
    settings: &Settings,
    listen: Vec<String>,
    http: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    for address in &listen {
        validate_address(address).map_err(|err| Failure::usage(format!("--listen: {err}")))?;
    }
    let mut settings = settings.clone();
    if let Some(http) = http {
        validate_address(&http).map_err(|err| Failure::usage(format!("--http: {err}")))?;
        settings.serve.http = Some(http);
    }
    // Refused before anything listens: the key to set is named.
    crate::serve::http::check_exposure(&settings.serve).map_err(|err| Failure::usage(err.to_string()))?;
    let mut listen = if listen.is_empty() {
        settings.serve.listen.clone()
    } else {
        listen
    };
    if settings.queue != QueueKind::File && !listen.is_empty() {
        // The protocol listener serves the file queue only; a beanstalkd server speaks it itself.
        tracing::info!("queue = \"beanstalkd\": no protocol listener, the server speaks it itself");
        listen.clear();
    }
    if listen.is_empty() && settings.serve.http.is_none() {
        return Err(Failure::usage(
            "nothing to serve: set [serve] listen (the file queue over beanstalkd's protocol) or \
             [serve] http (the API and dashboard)",
        ));
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let shared = Arc::new(Shared::new(settings.serve.max_job_size as usize));
    let mut bound = Vec::new();
    let mut servers: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> = Vec::new();
    if !listen.is_empty() {
        let opts = ServeOptions {
            listen,
            max_connections: settings.serve.max_connections as usize,
            max_job_size: settings.serve.max_job_size as usize,
            path: settings.file.path.clone(),
            fsync: settings.file.fsync,
        };
        let (addresses, server) = bind(opts, shutdown.clone(), shared.clone())
            .await
            .map_err(|err| Failure {
                code: 1,
                message: err.to_string(),
            })?;
        bound = addresses;
        servers.push(Box::pin(server));
    }
    let mut http_bound = None;
    if settings.serve.http.is_some() {
        let (address, server) = crate::serve::http::bind(&settings, shutdown.clone())
            .await
            .map_err(|err| Failure {
                code: 1,
                message: err.to_string(),
            })?;
        http_bound = Some(address.to_string());
        servers.push(Box::pin(server));
    }
    watch_signals(shutdown, shared)?;
    show::emit(json, json!({"listening": bound, "http": http_bound}), || {
        let mut parts = bound.clone();
        if let Some(http) = &http_bound {
            parts.push(format!("http://{http}"));
        }
        format!("listening on {}", parts.join(", "))
    })?;
    futures::future::join_all(servers).await;
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
