//! The HTTP side of `pulpo serve` (`[serve] http`): a JSON API under `/api`, a web dashboard,
//! `/metrics`, `/healthz` and `/readyz`, over whichever queue the settings name (the library's
//! [`Queue`], so the file queue and a beanstalkd server alike). `api.rs` holds the JSON routes,
//! `dashboard.rs` the HTML pages, `metrics.rs` the Prometheus side (also the runner's
//! listener), `auth.rs` the token, login cookie and cross-site checks.

mod api;
mod auth;
mod dashboard;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::{ServeSettings, Settings};
use crate::queue::{self, Queue, QueueError, TubeStats};

/// Why the HTTP side could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A non-loopback address without a token.
    #[error(
        "[serve] token: required because [serve] http = {address:?} is not a loopback address; \
         set a token, or listen on 127.0.0.1"
    )]
    TokenRequired {
        /// The address as configured.
        address: String,
    },
    /// Listening failed (address in use, no permission, a bad host).
    #[error("cannot listen on {address}: {source}; choose another address")]
    Listen {
        /// The address.
        address: String,
        /// The system's error.
        source: std::io::Error,
    },
}

/// Refuses an HTTP address other than loopback without a token: the API can delete every job.
pub fn check_exposure(serve: &ServeSettings) -> Result<(), HttpError> {
    let Some(address) = &serve.http else {
        return Ok(());
    };
    if serve.token.is_some() || is_loopback(address) {
        return Ok(());
    }
    Err(HttpError::TokenRequired {
        address: address.clone(),
    })
}

/// Whether `HOST:PORT` names only this machine: `localhost` or a loopback IP.
fn is_loopback(address: &str) -> bool {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// What every request shares: the settings, one queue handle (reopened after an outage), the
/// token and CSRF secret, and the last tube sample the rates come from.
pub(crate) struct App {
    pub(crate) settings: Settings,
    queue: Mutex<Option<Box<dyn Queue>>>,
    pub(crate) token: Option<String>,
    pub(crate) csrf: String,
    samples: std::sync::Mutex<std::collections::HashMap<String, Sample>>,
}

/// One tube's counters at one moment, for its rates.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    total_jobs: u64,
    deletes: u64,
    put_rate: f64,
    delete_rate: f64,
}

impl App {
    /// The queue handle, opened first if needed; hand every result to [`Held::done`].
    pub(crate) async fn queue(&self) -> Result<Held<'_>, ApiError> {
        let mut guard = self.queue.lock().await;
        if guard.is_none() {
            *guard = Some(queue::open(&self.settings).await?);
        }
        Ok(Held(guard))
    }

    /// Every tube's stats (tubes that vanish between the two calls are left out).
    pub(crate) async fn tube_stats(&self) -> Result<Vec<TubeStats>, ApiError> {
        let mut held = self.queue().await?;
        let names = held.q().list_tubes().await;
        let names = held.done(names)?;
        let mut infos = Vec::new();
        for name in names {
            match held.q().stats_tube(&name).await {
                Ok(info) => infos.push(info),
                Err(QueueError::TubeNotFound { .. }) => {}
                Err(err) => return held.done(Err(err)),
            }
        }
        Ok(infos)
    }

    /// Jobs put and deleted per second in `tube` since the last look at least a second ago.
    pub(crate) fn rates(&self, info: &TubeStats) -> (f64, f64) {
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = Sample {
            at: now,
            total_jobs: info.total_jobs,
            deletes: info.cmd_delete,
            put_rate: 0.0,
            delete_rate: 0.0,
        };
        let sample = samples.entry(info.name.clone()).or_insert(fresh);
        let elapsed = now.duration_since(sample.at).as_secs_f64();
        if elapsed >= 1.0 {
            sample.put_rate = info.total_jobs.saturating_sub(sample.total_jobs) as f64 / elapsed;
            sample.delete_rate = info.cmd_delete.saturating_sub(sample.deletes) as f64 / elapsed;
            sample.at = now;
            sample.total_jobs = info.total_jobs;
            sample.deletes = info.cmd_delete;
        }
        (sample.put_rate, sample.delete_rate)
    }
}

/// The queue handle while one request uses it.
pub(crate) struct Held<'a>(tokio::sync::MutexGuard<'a, Option<Box<dyn Queue>>>);

impl Held<'_> {
    /// The queue.
    pub(crate) fn q(&mut self) -> &mut dyn Queue {
        self.0.as_mut().expect("opened by App::queue").as_mut()
    }

    /// `result` as the API reports it; a handle that found the queue unavailable is dropped,
    /// so the next request connects anew.
    pub(crate) fn done<T>(&mut self, result: queue::Result<T>) -> Result<T, ApiError> {
        if matches!(result, Err(QueueError::Unavailable(_))) {
            *self.0 = None;
        }
        result.map_err(ApiError::from)
    }
}

/// A queue error as an HTTP reply: a status by cause and `{"error": message}`.
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> ApiError {
        let status = match &err {
            QueueError::JobNotFound { .. } | QueueError::TubeNotFound { .. } => StatusCode::NOT_FOUND,
            QueueError::JobTooBig { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            QueueError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            QueueError::Refused(_) => StatusCode::CONFLICT,
            QueueError::Unavailable(_) | QueueError::Unusable(_) => StatusCode::SERVICE_UNAVAILABLE,
            QueueError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

/// Binds `[serve] http` and returns the bound address with a future that serves until
/// `shutdown` is cancelled.
pub async fn bind(
    settings: &Settings,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, impl std::future::Future<Output = ()> + use<>), HttpError> {
    check_exposure(&settings.serve)?;
    let address = settings
        .serve
        .http
        .clone()
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listener = TcpListener::bind(&address)
        .await
        .map_err(|source| HttpError::Listen {
            address: address.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| HttpError::Listen {
        address: address.clone(),
        source,
    })?;
    let app = Arc::new(App {
        settings: settings.clone(),
        queue: Mutex::new(None),
        token: settings.serve.token.clone(),
        csrf: auth::random_secret(),
        samples: Default::default(),
    });
    Ok((local, serve_until(listener, router(app), shutdown, "HTTP")))
}

/// Serves `router` on `listener` until `shutdown` is cancelled; logs why if it stops sooner.
pub(super) async fn serve_until(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    what: &'static str,
) {
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(err) = served {
        tracing::error!(error = %err, "the {what} server stopped");
    }
}

fn router(app: Arc<App>) -> Router {
    let protected = Router::new()
        .merge(api::routes())
        .merge(dashboard::routes())
        .route("/metrics", axum::routing::get(metrics::serve_metrics))
        .layer(axum::middleware::from_fn_with_state(app.clone(), auth::guard));
    Router::new()
        .merge(protected)
        .merge(auth::routes())
        .route("/healthz", axum::routing::get(metrics::healthz))
        .route("/readyz", axum::routing::get(metrics::readyz))
        .with_state(app)
}
