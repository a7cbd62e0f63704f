//! `pulpo run`: the runner, with the config re-read on each in-process
//! restart, stopped by SIGINT or SIGTERM.

use std::path::PathBuf;

use super::{Failure, show};
use crate::config::{self, Overrides, Settings};
use crate::handlers::Registry;
use crate::runner;

/// Runs the runner until it stops, after checking every handler table of
/// `settings`; each in-process restart re-reads the config file it started
/// with (or keeps the running config if that fails). Prints the counters.
pub(super) async fn run(
    registry: &Registry,
    settings: &Settings,
    config_file: Option<PathBuf>,
    overrides: Overrides,
    only_tube: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    // Handler tables are checked before anything runs.
    registry.build_all(settings)?;
    // Every restart reads the file this run started with: an implicit
    // ./pulpo.toml is resolved to its path now, and never swapped for
    // defaults if a deploy removes it.
    let config_file = config::config_file_to_read(config_file.as_deref());
    // `--tube` narrows what run reserves from to that tube, as for pop.
    let load = move || {
        let mut settings = config::load_file(config_file.as_deref(), &overrides)?;
        if let Some(tube) = &only_tube {
            settings.watch = vec![tube.clone()];
        }
        Ok(settings)
    };
    // `[metrics] listen`: /metrics, /healthz and /readyz beside the runner, for as long as it
    // runs (its restarts included); metrics are recorded only then.
    let metrics_stop = tokio_util::sync::CancellationToken::new();
    let _stop_metrics = metrics_stop.clone().drop_guard();
    if settings.metrics.listen.is_some() {
        let (address, server) = crate::serve::http::metrics::bind_runner(settings, metrics_stop)
            .await
            .map_err(|err| Failure {
                code: 1,
                message: format!("[metrics] listen: {err}"),
            })?;
        runner::metered::enable(true);
        tracing::info!("metrics on http://{address}/metrics");
        tokio::spawn(server);
    }
    let report = runner::run_until_stopped(load, registry, shutdown_on_signals())
        .await
        .map_err(|err| match err {
            runner::RunError::Config(err) => Failure::from(err),
            other => Failure {
                code: 1,
                message: other.to_string(),
            },
        })?;
    show::run_report(json, &report)?;
    Ok(())
}

/// A token cancelled by the first SIGINT or SIGTERM; a second one exits the
/// process at once (128 + the signal's number), leaving reserved jobs to
/// come back by themselves.
fn shutdown_on_signals() -> tokio_util::sync::CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        tracing::warn!("cannot listen for SIGINT/SIGTERM; stop the runner with SIGKILL");
        return token;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("signal received: stopping (send another to exit at once)");
        cancel.cancel();
        let code = tokio::select! {
            _ = interrupt.recv() => 130,
            _ = terminate.recv() => 143,
        };
        tracing::warn!("second signal: exiting at once; jobs still reserved come back after their TTR");
        std::process::exit(code);
    });
    token
}
