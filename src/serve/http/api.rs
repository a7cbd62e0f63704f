//! The JSON API under `/api`: tubes with counts and rates; a tube's jobs by state and filter,
//! paged; a job's detail (with its record, `[history]`); publish; retry, kick and delete a job, or every job a filter
//! matches (with a dry run); pause and resume a tube. Handlers are thin: they call the same
//! library functions the CLI calls (the [`crate::queue::Queue`] verbs, [`retry::retry`],
//! [`crate::publish::prepare`]), and every error is `{"error": "..."}` with a status by cause.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::{ApiError, App};
use crate::history::{self, HistoryError, JobRef};
use crate::jobs::{self, Cursor, JobQuery, JobState, Order};
use crate::message::Message;
use crate::queue::retry;
use crate::queue::{QueueError, TubeStats};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/tubes", get(tubes))
        .route("/api/tubes/{tube}", get(tube))
        .route("/api/tubes/{tube}/jobs", get(list).post(publish))
        .route("/api/tubes/{tube}/bulk", post(bulk))
        .route("/api/tubes/{tube}/pause", post(pause))
        .route("/api/tubes/{tube}/resume", post(resume))
        .route("/api/jobs/{id}", get(job).delete(delete))
        .route("/api/jobs/{id}/retry", post(retry_job))
        .route("/api/jobs/{id}/kick", post(kick))
        .route("/api/jobs/{id}/delete", post(delete))
}

/// A JSON request body whose rejections (no JSON content type, bad JSON, a missing field) are
/// answered as JSON errors like every other.
pub(super) struct Body<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Body<T>, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError(
                rejection.status(),
                format!("bad request body: {}", rejection.body_text()),
            )),
        }
    }
}

/// A tube as the API and the dashboard show it: its counts and its rates.
pub(super) fn tube_document(app: &App, info: &TubeStats) -> Value {
    let (put_rate, delete_rate) = app.rates(info);
    json!({
        "name": info.name,
        "ready": info.current_jobs_ready,
        "reserved": info.current_jobs_reserved,
        "delayed": info.current_jobs_delayed,
        "buried": info.current_jobs_buried,
        "urgent": info.current_jobs_urgent,
        "waiting": info.current_waiting,
        "total_jobs": info.total_jobs,
        "deletes": info.cmd_delete,
        "paused": !info.pause_time_left.is_zero(),
        "pause_time_left": info.pause_time_left.as_secs_f64(),
        "put_per_second": (put_rate * 100.0).round() / 100.0,
        "delete_per_second": (delete_rate * 100.0).round() / 100.0,
    })
}

async fn tubes(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let infos = app.tube_stats().await?;
    let tubes: Vec<Value> = infos.iter().map(|info| tube_document(&app, info)).collect();
    Ok(Json(json!({"tubes": tubes})))
}

async fn tube(State(app): State<Arc<App>>, Path(tube): Path<String>) -> Result<Json<Value>, ApiError> {
    let mut held = app.queue().await?;
    let info = held.q().stats_tube(&tube).await;
    let info = held.done(info)?;
    drop(held);
    Ok(Json(tube_document(&app, &info)))
}

/// A job by id: its state, stats (with the reason of its last release or bury where the
/// queue keeps one) and message; with `[history]` on, its `record` too (attempts with their
/// errors, events, result, outcome), and a job that has left the queue is answered from its
/// record alone (`state` is then how it ended).
pub(super) async fn job_value(app: &App, id: u64) -> Result<Value, ApiError> {
    let mut held = app.queue().await?;
    let live = match held.q().peek(id).await {
        Ok(job) => {
            let info = held.q().stats_job(id).await;
            Ok(crate::cli::job_document(&job, Some(&held.done(info)?)))
        }
        Err(err @ QueueError::JobNotFound { .. }) => Err(err),
        Err(err) => return held.done(Err(err)),
    };
    drop(held);
    let record = match history::lookup(&app.settings, JobRef::new(id)) {
        Ok(record) => record,
        Err(HistoryError::Disabled) => None,
        Err(err) => {
            return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, err.to_string()));
        }
    };
    match (live, record) {
        (Ok(mut doc), record) => {
            if let Some(record) = record {
                doc["record"] = serde_json::to_value(record).unwrap_or(Value::Null);
            }
            Ok(doc)
        }
        (Err(_), Some(record)) => Ok(json!({
            "id": id,
            "state": record.outcome.map_or("unknown", |end| end.name()),
            "request_type": record.request_type,
            "record": record,
        })),
        (Err(not_found), None) => Err(not_found.into()),
    }
}

async fn job(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(job_value(&app, parse_id(&id)?).await?))
}

/// A job id from a path: a whole number.
pub(super) fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("job id {text:?} is not a whole number: name a job by its id, e.g. /api/jobs/42"),
        )
    })
}

/// What `POST /api/tubes/{tube}/jobs` takes: a request type and what `pulpo publish` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Publish {
    /// The handler to run.
    pub(super) request_type: String,
    /// `body.payload`: any JSON value.
    #[serde(default)]
    pub(super) payload: Option<Value>,
    /// Further body fields.
    #[serde(default)]
    pub(super) body: Map<String, Value>,
    /// Further header fields.
    #[serde(default)]
    pub(super) header: Map<String, Value>,
    /// 0 most urgent.
    #[serde(default)]
    pub(super) priority: Option<u32>,
    /// How long the job waits before it is ready (`"30s"` or seconds).
    #[serde(default, with = "crate::duration::human_option")]
    pub(super) delay: Option<Duration>,
    /// Its time to run (`"60s"` or seconds).
    #[serde(default, with = "crate::duration::human_option")]
    pub(super) ttr: Option<Duration>,
}

/// Stores a published message in `tube`; returns the new job's id.
pub(super) async fn publish_message(app: &App, tube: &str, form: Publish) -> Result<u64, ApiError> {
    let bad = |message: String| ApiError(StatusCode::BAD_REQUEST, message);
    if form.request_type.trim().is_empty() {
        return Err(bad(
            "request_type is empty: name the handler that should run the job".to_owned(),
        ));
    }
    pulpo_model::TubeName::check(tube).map_err(|err| bad(format!("{err}")))?;
    let now = chrono::Utc::now();
    let mut message = Message::new(form.request_type);
    if let Some(payload) = form.payload {
        message = message.with_payload(payload);
    }
    for (key, value) in form.body {
        message = message.with_body_field(key, value);
    }
    for (key, value) in form.header {
        message = message.with_header(key, value);
    }
    if let Some(priority) = form.priority {
        message = message.with_priority(priority);
    }
    if let Some(delay) = form.delay {
        let delay = chrono::Duration::from_std(delay).map_err(|_| bad("delay is too long".to_owned()))?;
        message = message.with_delay(now + delay);
    }
    if let Some(ttr) = form.ttr {
        message = message.with_ttr(crate::queue::whole_seconds_ceil(ttr).max(1));
    }
    // The message as a stored one is read back: header fields given as JSON must make sense.
    let message =
        Message::from_json(&message.to_json()).map_err(|err| bad(format!("not a valid message: {err}")))?;
    let mut message = message;
    let job = crate::publish::prepare(&mut message, &app.settings, now);
    let mut held = app.queue().await?;
    let id = held.q().put(tube, job).await;
    held.done(id)
}

async fn publish(
    State(app): State<Arc<App>>,
    Path(tube): Path<String>,
    Body(form): Body<Publish>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = publish_message(&app, &tube, form).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id, "tube": tube}))))
}

/// An action on one job, as the API and the dashboard's buttons do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// A buried job replaced by a copy with a fresh set of attempts.
    Retry,
    /// A buried or delayed job made ready.
    Kick,
    /// Gone.
    Delete,
}

/// Does `action` on job `id`; returns the API's answer.
pub(super) async fn act(app: &App, id: u64, action: Action) -> Result<Value, ApiError> {
    let mut held = app.queue().await?;
    match action {
        Action::Retry => {
            let done = retry::retry(held.q(), id).await;
            let done = held.done(done)?;
            Ok(json!({"id": done.id, "retried": true, "new_id": done.new_id}))
        }
        Action::Kick => {
            let done = held.q().kick_job(id).await;
            held.done(done)?;
            Ok(json!({"id": id, "kicked": true}))
        }
        Action::Delete => {
            let done = jobs::delete(held.q(), &app.settings, id).await;
            match held.done(done)? {
                None => Ok(json!({"id": id, "deleted": true})),
                Some(err) => Ok(json!({"id": id, "deleted": true, "error": jobs::unrecorded_text(id, &err)})),
            }
        }
    }
}

async fn retry_job(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(act(&app, parse_id(&id)?, Action::Retry).await?))
}

async fn kick(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(act(&app, parse_id(&id)?, Action::Kick).await?))
}

async fn delete(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(act(&app, parse_id(&id)?, Action::Delete).await?))
}

/// What `POST /api/tubes/{tube}/pause` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pause {
    /// How long (`"10m"` or seconds).
    #[serde(rename = "for", with = "crate::duration::human")]
    duration: Duration,
}

/// Pauses `tube` for `duration` (zero resumes it); returns what the queue applied.
pub(super) async fn pause_tube(app: &App, tube: &str, duration: Duration) -> Result<Value, ApiError> {
    let mut held = app.queue().await?;
    let done = held.q().pause_tube(tube, duration).await;
    held.done(done)?;
    let applied = held.q().applied_pause(duration);
    Ok(json!({"tube": tube, "paused_for": applied.as_secs_f64()}))
}

async fn pause(
    State(app): State<Arc<App>>,
    Path(tube): Path<String>,
    Body(pause): Body<Pause>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(pause_tube(&app, &tube, pause.duration).await?))
}

async fn resume(State(app): State<Arc<App>>, Path(tube): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(pause_tube(&app, &tube, Duration::ZERO).await?))
}

/// A listing's query string (`GET /api/tubes/{tube}/jobs`, the dashboard's `/jobs`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListParams {
    /// `ready`, `delayed`, `reserved` or `buried` (default: buried).
    #[serde(default)]
    pub(super) state: Option<String>,
    /// `oldest` (default) or `newest`.
    #[serde(default)]
    pub(super) order: Option<String>,
    /// Only this request type.
    #[serde(default, rename = "type")]
    pub(super) request_type: Option<String>,
    /// Only bodies that contain this text.
    #[serde(default)]
    pub(super) grep: Option<String>,
    /// Only jobs whose last release or bury reason contains this text.
    #[serde(default)]
    pub(super) reason: Option<String>,
    /// Jobs per page (default 50, at most [`jobs::MAX_PAGE`]).
    #[serde(default)]
    pub(super) limit: Option<String>,
    /// The previous page's `next`.
    #[serde(default)]
    pub(super) cursor: Option<String>,
}

/// Text a form left empty counts as not given.
fn given(text: &Option<String>) -> Option<String> {
    text.as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

impl ListParams {
    /// The library's query for `tube`, or a 400 naming the parameter.
    pub(super) fn query(&self, tube: &str) -> Result<JobQuery, ApiError> {
        let bad = |message: String| ApiError(StatusCode::BAD_REQUEST, message);
        let state: JobState = match given(&self.state) {
            Some(text) => text.parse().map_err(|_| {
                bad(format!(
                    "state {text:?} is not one of ready, delayed, reserved, buried"
                ))
            })?,
            None => JobState::Buried,
        };
        let mut query = JobQuery::new(tube, state);
        query.order = match given(&self.order).as_deref() {
            None | Some("oldest") => Order::Oldest,
            Some("newest") => Order::Newest,
            Some(other) => return Err(bad(format!("order {other:?} is not oldest or newest"))),
        };
        query.request_type = given(&self.request_type);
        query.grep = given(&self.grep);
        query.reason = given(&self.reason);
        if let Some(limit) = given(&self.limit) {
            query.limit = limit.parse().map_err(|_| {
                bad(format!(
                    "limit {limit:?} is not a whole number of 1 to {}",
                    jobs::MAX_PAGE
                ))
            })?;
        }
        if let Some(cursor) = given(&self.cursor) {
            query.cursor = Some(cursor.parse::<Cursor>().map_err(ApiError::from)?);
        }
        Ok(query)
    }
}

/// One page of `query`.
pub(super) async fn list_page(app: &App, query: &JobQuery) -> Result<jobs::JobPage, ApiError> {
    let mut held = app.queue().await?;
    let page = jobs::list(held.q(), query).await;
    held.done(page)
}

async fn list(
    State(app): State<Arc<App>>,
    Path(tube): Path<String>,
    axum::extract::Query(params): axum::extract::Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let query = params.query(&tube)?;
    Ok(Json(list_page(&app, &query).await?.to_json()))
}

/// What `POST /api/tubes/{tube}/bulk` takes: an action, the listing's filters, a dry run and
/// a cap.
#[derive(Debug, Deserialize)]
pub(super) struct BulkRequest {
    /// `retry`, `kick` or `delete`.
    pub(super) action: String,
    /// Which jobs (as a listing's query string takes them).
    #[serde(flatten)]
    pub(super) filters: ListParams,
    /// Only count the matching jobs.
    #[serde(default)]
    pub(super) dry_run: bool,
    /// The most jobs to act on (default and most: [`jobs::MAX_BULK`]).
    #[serde(default)]
    pub(super) cap: Option<usize>,
}

/// Carries out a bulk request on `tube`.
pub(super) async fn bulk_action(
    app: &App,
    tube: &str,
    request: &BulkRequest,
) -> Result<jobs::BulkReport, ApiError> {
    let action = match request.action.as_str() {
        "retry" => jobs::Action::Retry,
        "kick" => jobs::Action::Kick,
        "delete" => jobs::Action::Delete,
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("action {other:?} is not retry, kick or delete"),
            ));
        }
    };
    let query = request.filters.query(tube)?;
    let cap = request.cap.unwrap_or(jobs::MAX_BULK);
    let mut held = app.queue().await?;
    let report = jobs::bulk(held.q(), &app.settings, action, &query, request.dry_run, cap).await;
    held.done(report)
}

async fn bulk(
    State(app): State<Arc<App>>,
    Path(tube): Path<String>,
    Body(request): Body<BulkRequest>,
) -> Result<Json<Value>, ApiError> {
    let report = bulk_action(&app, &tube, &request).await?;
    Ok(Json(serde_json::to_value(&report).unwrap_or(Value::Null)))
}
