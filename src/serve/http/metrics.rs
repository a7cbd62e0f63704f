//! Prometheus metrics through the `metrics` facade and its Prometheus exporter: the recorder
//! (installed once per process, only where something serves `/metrics`), the tube gauges
//! `pulpo serve` samples at each scrape, the runner's own listener (`[metrics] listen`), and
//! `/healthz` (the process answers) and `/readyz` (the queue answers) for both.
//!
//! Names follow Prometheus conventions: `pulpo_` first, counters end in `_total`, durations
//! are `_seconds`. Without a recorder the runner's `metrics::` calls do nothing.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::App;
use crate::config::Settings;
use crate::queue;

/// Histogram buckets for durations, in seconds: 1 ms to 10 minutes.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and returns its handle; `None` when
/// another recorder was installed first (a program embedding pulpo with its own).
pub fn recorder() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .expect("the buckets are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(_) => None,
            }
        })
        .as_ref()
}

/// The help texts of every metric pulpo records.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "pulpo_tube_jobs",
        "Jobs in a tube by state (ready, reserved, delayed, buried, urgent)."
    );
    describe_gauge!(
        "pulpo_tube_waiting_clients",
        "Clients waiting in a reserve on a tube."
    );
    describe_gauge!("pulpo_tube_paused", "1 while a tube is paused.");
    describe_counter!(
        "pulpo_tube_jobs_put_total",
        "Jobs ever put into a tube (since the queue started)."
    );
    describe_counter!(
        "pulpo_tube_jobs_deleted_total",
        "Deletes in a tube (since the queue started)."
    );
    describe_gauge!("pulpo_tubes", "Tubes that exist.");
    describe_counter!(
        "pulpo_jobs_total",
        "Jobs the runner settled, by request type and outcome."
    );
    describe_histogram!(
        "pulpo_handler_duration_seconds",
        "How long handlers ran, by request type."
    );
    describe_histogram!(
        "pulpo_queue_wait_seconds",
        "From publish to the start of the run, by request type."
    );
    describe_gauge!("pulpo_jobs_in_flight", "Jobs whose handlers run now.");
    describe_counter!(
        "pulpo_lease_touches_total",
        "Touches that renewed a running job's lease."
    );
    describe_counter!(
        "pulpo_leases_lost_total",
        "Running jobs whose lease could not be renewed."
    );
    describe_counter!(
        "pulpo_queue_errors_total",
        "Queue operations of the runner that failed."
    );
}

/// `/metrics` on `pulpo serve`: the tube gauges sampled now, then everything recorded.
pub(super) async fn serve_metrics(State(app): State<Arc<App>>) -> Response {
    let Some(handle) = recorder() else {
        return (
            StatusCode::NOT_FOUND,
            "another metrics recorder is installed in this process\n",
        )
            .into_response();
    };
    match app.tube_stats().await {
        Ok(infos) => {
            metrics::gauge!("pulpo_tubes").set(infos.len() as f64);
            for info in &infos {
                let tube = info.name.clone();
                for (state, n) in [
                    ("ready", info.current_jobs_ready),
                    ("reserved", info.current_jobs_reserved),
                    ("delayed", info.current_jobs_delayed),
                    ("buried", info.current_jobs_buried),
                    ("urgent", info.current_jobs_urgent),
                ] {
                    metrics::gauge!("pulpo_tube_jobs", "tube" => tube.clone(), "state" => state)
                        .set(n as f64);
                }
                metrics::gauge!("pulpo_tube_waiting_clients", "tube" => tube.clone())
                    .set(info.current_waiting as f64);
                metrics::gauge!("pulpo_tube_paused", "tube" => tube.clone())
                    .set(if info.pause_time_left.is_zero() { 0.0 } else { 1.0 });
                metrics::counter!("pulpo_tube_jobs_put_total", "tube" => tube.clone())
                    .absolute(info.total_jobs);
                metrics::counter!("pulpo_tube_jobs_deleted_total", "tube" => tube).absolute(info.cmd_delete);
            }
        }
        Err(err) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the queue: {}\n", err.1),
            )
                .into_response();
        }
    }
    exposition(handle)
}

fn exposition(handle: &PrometheusHandle) -> Response {
    // The runner's workers buffer their histogram samples: the page shows every one taken.
    crate::runner::metered::flush();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
        .into_response()
}

/// `/healthz`: the process is up and answers.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// `/readyz` on serve: the queue answers.
pub(super) async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.tube_stats().await {
        Ok(_) => "ready\n".into_response(),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", err.1)).into_response(),
    }
}

/// Whether the queue the settings name answers, opened afresh.
async fn queue_answers(settings: &Settings) -> Result<(), String> {
    let mut queue = queue::open(settings).await.map_err(|e| e.to_string())?;
    queue.list_tubes().await.map(drop).map_err(|e| e.to_string())
}

/// Serves the runner's `/metrics`, `/healthz` and `/readyz` on `[metrics] listen` until
/// `shutdown`; installs the recorder, so the runner's metrics are recorded from now on.
/// Returns the bound address and the server's future.
pub async fn bind_runner(
    settings: &Settings,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, impl std::future::Future<Output = ()> + use<>), super::HttpError> {
    let address = settings
        .metrics
        .listen
        .clone()
        .unwrap_or_else(|| "127.0.0.1:9187".to_owned());
    let listen_err = |source| super::HttpError::Listen {
        address: address.clone(),
        source,
    };
    let listener = TcpListener::bind(&address).await.map_err(listen_err)?;
    let local = listener.local_addr().map_err(listen_err)?;
    let settings = Arc::new(settings.clone());
    recorder();
    let router = Router::new()
        .route(
            "/metrics",
            axum::routing::get(|| async {
                match recorder() {
                    Some(handle) => exposition(handle),
                    None => {
                        (StatusCode::NOT_FOUND, "another metrics recorder is installed\n").into_response()
                    }
                }
            }),
        )
        .route("/healthz", axum::routing::get(healthz))
        .route(
            "/readyz",
            axum::routing::get(|State(settings): State<Arc<Settings>>| async move {
                match queue_answers(&settings).await {
                    Ok(()) => "ready\n".into_response(),
                    Err(err) => {
                        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {err}\n")).into_response()
                    }
                }
            }),
        )
        .with_state(settings);
    let upkeep = upkeep(shutdown.clone());
    let server = super::serve_until(listener, router, shutdown, "metrics");
    Ok((local, async move {
        tokio::join!(server, upkeep);
    }))
}

/// How often the runner's histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds the histogram samples the exporter holds into their buckets every [`UPKEEP_EVERY`]
/// until `shutdown`: the exporter keeps every sample until a scrape or an upkeep, so a runner
/// nobody scrapes would otherwise hold one per job.
async fn upkeep(shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(UPKEEP_EVERY) => {}
        }
        if let Some(handle) = recorder() {
            handle.run_upkeep();
        }
    }
}
