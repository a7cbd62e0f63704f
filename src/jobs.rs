//! Listing jobs and acting on many at once: the one library the CLI (`pulpo jobs`, and
//! `retry`, `kick` and `delete` with filters) and the HTTP API both call.
//!
//! [`list`] gives one page of a tube's jobs in one state, by id, oldest or newest first,
//! filtered by request type, a substring of the body and the release or bury reason, with a
//! [`Cursor`] for the next page and the [`Coverage`] of what was looked at. Each queue lists in
//! its own way ([`Queue::list_jobs`]: the file queue from its index, beanstalkd by a bounded
//! sweep over the ids); this module only builds the filter and checks the query.
//!
//! [`bulk`] retries, kicks or deletes every job a query matches (up to a cap), or with a dry run
//! only counts them.
//!
//! [`delete`] deletes one job and records its end (`[history]`): every delete goes through it.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::Settings;
use crate::history::{self, End, HistoryError, JobRef};
use crate::message::Message;
use crate::queue::retry;
pub use crate::queue::{Coverage, JobState, JobStats, Order};
use crate::queue::{Job, Matcher, Queue, QueueError, Result, Scan};

/// The most jobs one page holds.
pub const MAX_PAGE: usize = 1000;

/// The most jobs one bulk action touches; a caller asks for fewer with its `cap`.
pub const MAX_BULK: usize = 10_000;

/// How many ids a listing looks at, at most, before it gives back a short page (a sweep on
/// beanstalkd looks at every id; the file queue only at the tube's jobs in the state).
pub const DEFAULT_BUDGET: usize = 20_000;

/// The most a caller may raise [`JobQuery::budget`] to.
pub const MAX_BUDGET: usize = 1_000_000;

/// Where a page starts: the `next` of the page before, as text. Opaque to callers (today it is
/// the last id looked at).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor(u64);

impl Cursor {
    /// The cursor that starts after job `id`.
    pub fn after(id: u64) -> Cursor {
        Cursor(id)
    }

    /// The id a page starting here goes on after.
    pub fn id(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Cursor {
    type Err = QueueError;
    fn from_str(text: &str) -> Result<Cursor> {
        text.trim().parse::<u64>().map(Cursor).map_err(|_| {
            QueueError::InvalidArgument(format!(
                "cursor {text:?} is not one pulpo gave: pass the `next` of the previous page"
            ))
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Which jobs to list or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQuery {
    /// The tube.
    pub tube: String,
    /// The state the jobs are in.
    pub state: JobState,
    /// Oldest (lowest id) or newest first.
    pub order: Order,
    /// Where to start: the previous page's `next`.
    pub cursor: Option<Cursor>,
    /// The most jobs in a page, 1 to [`MAX_PAGE`].
    pub limit: usize,
    /// Only jobs whose message has this request type (a body that is not a pulpo message has
    /// none, and never matches).
    pub request_type: Option<String>,
    /// Only jobs whose body contains these bytes.
    pub grep: Option<String>,
    /// Only jobs whose last release or bury reason contains this text (needs a queue that
    /// keeps reasons: [`crate::Capabilities::keeps_reasons`]).
    pub reason: Option<String>,
    /// The most ids one page looks at, 1 to [`MAX_BUDGET`] ([`DEFAULT_BUDGET`] by default).
    pub budget: usize,
}

impl JobQuery {
    /// The first page of 50 jobs of `tube` in `state`, oldest first, unfiltered.
    pub fn new(tube: impl Into<String>, state: JobState) -> JobQuery {
        JobQuery {
            tube: tube.into(),
            state,
            order: Order::Oldest,
            cursor: None,
            limit: 50,
            request_type: None,
            grep: None,
            reason: None,
            budget: DEFAULT_BUDGET,
        }
    }

    /// Whether a job's stats and body pass the filters.
    pub fn matches(&self, stats: &JobStats, body: &[u8]) -> bool {
        filter(self.request_type.clone(), self.grep.clone(), self.reason.clone())(stats, body)
    }

    /// Refuses what no queue could answer, naming the input and what to do.
    fn check(&self, queue: &dyn Queue) -> Result<()> {
        let bad = |message: String| Err(QueueError::InvalidArgument(message));
        if self.limit == 0 || self.limit > MAX_PAGE {
            return bad(format!(
                "limit {} is out of range: a page holds 1 to {MAX_PAGE} jobs; page on with the cursor",
                self.limit
            ));
        }
        if self.budget == 0 || self.budget > MAX_BUDGET {
            return bad(format!(
                "budget {} is out of range: a page looks at 1 to {MAX_BUDGET} ids",
                self.budget
            ));
        }
        for (name, value) in [
            ("type", &self.request_type),
            ("grep", &self.grep),
            ("reason", &self.reason),
        ] {
            if value.as_deref() == Some("") {
                return bad(format!(
                    "the {name} filter is empty: give some text, or leave it out"
                ));
            }
        }
        if self.reason.is_some() && !queue.capabilities().keeps_reasons {
            return bad(format!(
                "{} keeps no release or bury reasons, so the reason filter cannot match: filter by \
                 type or grep instead",
                queue.describe()
            ));
        }
        Ok(())
    }
}

/// The filter of a query, for the queue to apply as it walks.
fn filter(request_type: Option<String>, grep: Option<String>, reason: Option<String>) -> Matcher {
    Arc::new(move |stats: &JobStats, body: &[u8]| {
        if let Some(reason) = &reason
            && !stats
                .reason
                .as_deref()
                .is_some_and(|r| r.contains(reason.as_str()))
        {
            return false;
        }
        if let Some(grep) = &grep
            && !contains(body, grep.as_bytes())
        {
            return false;
        }
        if let Some(request_type) = &request_type {
            return Message::from_json(body).is_ok_and(|m| m.request_type() == request_type);
        }
        true
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A listed job: its id, state, stats (with the reason where the queue keeps one) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedJob {
    /// The job id.
    pub id: u64,
    /// Its state.
    pub state: JobState,
    /// Its statistics.
    pub stats: JobStats,
    /// Its body as stored.
    pub body: Bytes,
}

impl ListedJob {
    /// The reason of its last release or bury, where the queue keeps one.
    pub fn reason(&self) -> Option<&str> {
        self.stats.reason.as_deref()
    }

    /// Its decoded message, when the body is one.
    pub fn message(&self) -> Option<Message> {
        Message::from_json(&self.body).ok()
    }

    /// The job as a JSON object, as `pulpo peek --json` shows one (id, state, stats, and
    /// `message`, or `body`/`body_base64` for a foreign body), plus `reason`.
    pub fn to_json(&self) -> Value {
        let job = Job {
            id: self.id,
            body: self.body.clone(),
        };
        let mut doc = crate::cli::job_document(&job, Some(&self.stats));
        doc["reason"] = json!(self.reason());
        doc
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPage {
    /// The matching jobs, in the query's order.
    pub jobs: Vec<ListedJob>,
    /// The cursor of the next page; `None` when nothing is left to look at.
    pub next: Option<Cursor>,
    /// How far the listing looked.
    pub looked: Coverage,
}

impl JobPage {
    /// The page as a JSON object: `jobs`, `next` and `looked`.
    pub fn to_json(&self) -> Value {
        json!({
            "jobs": self.jobs.iter().map(ListedJob::to_json).collect::<Vec<_>>(),
            "next": self.next,
            "looked": self.looked,
        })
    }
}

/// One page of the jobs `query` selects.
pub async fn list(queue: &mut dyn Queue, query: &JobQuery) -> Result<JobPage> {
    query.check(queue)?;
    let scan = Scan {
        tube: query.tube.clone(),
        state: query.state,
        order: query.order,
        after: query.cursor.map(Cursor::id),
        limit: query.limit,
        budget: query.budget,
    };
    let matches = filter(
        query.request_type.clone(),
        query.grep.clone(),
        query.reason.clone(),
    );
    let scanned = queue.list_jobs(&scan, matches).await?;
    Ok(JobPage {
        jobs: scanned
            .jobs
            .into_iter()
            .map(|(stats, body)| ListedJob {
                id: stats.id,
                state: stats.state,
                stats,
                body,
            })
            .collect(),
        next: scanned.next.map(Cursor),
        looked: scanned.looked,
    })
}

/// What a bulk action does to each job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A fresh set of attempts: a copy is put, ready, and the buried job deleted
    /// ([`retry::retry`]). Buried jobs only.
    Retry,
    /// Back to ready, with one more attempt. Buried or delayed jobs.
    Kick,
    /// Removed. A job reserved by a worker cannot be deleted (it fails, the rest go on).
    Delete,
}

impl Action {
    /// The action's name: `retry`, `kick` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Kick => "kick",
            Action::Delete => "delete",
        }
    }

    /// Refuses a state the action cannot take.
    fn check(self, state: JobState) -> Result<()> {
        let fits = match self {
            Action::Retry => state == JobState::Buried,
            Action::Kick => matches!(state, JobState::Buried | JobState::Delayed),
            Action::Delete => true,
        };
        if fits {
            return Ok(());
        }
        let takes = match self {
            Action::Retry => "buried jobs",
            _ => "buried or delayed jobs",
        };
        Err(QueueError::InvalidArgument(format!(
            "{} takes {takes}, not {state} ones",
            self.as_str()
        )))
    }
}

/// One job a bulk action carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Done {
    /// The job id.
    pub id: u64,
    /// The copy's id, for a retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_id: Option<u64>,
}

/// One job a bulk action could not carry out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failed {
    /// The job id.
    pub id: u64,
    /// Why, as one line.
    pub error: String,
}

/// What a bulk action did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkReport {
    /// The action.
    pub action: Action,
    /// True when nothing was changed: only counted.
    pub dry_run: bool,
    /// Jobs the query matched (up to the cap).
    pub matched: u64,
    /// Jobs acted on.
    pub done: Vec<Done>,
    /// Jobs the action failed on (changed by someone else meanwhile, or reserved).
    pub failed: Vec<Failed>,
    /// True when the cap stopped the action before every matching job was taken.
    pub capped: bool,
    /// The ids looked at, over all pages.
    pub looked: Coverage,
    /// Why the action stopped partway (the queue was lost), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Carries out `action` on every job `query` matches, from its cursor on, up to `cap` jobs (1
/// to [`MAX_BULK`]), paging through the whole tube (the query's `limit` is not used: it pages
/// by [`MAX_PAGE`]).
/// With `dry_run` only counts them. Jobs are gathered first, then acted on, so jobs the action
/// creates (a retry's copies) are not taken again.
pub async fn bulk(
    queue: &mut dyn Queue,
    settings: &Settings,
    action: Action,
    query: &JobQuery,
    dry_run: bool,
    cap: usize,
) -> Result<BulkReport> {
    if cap == 0 || cap > MAX_BULK {
        return Err(QueueError::InvalidArgument(format!(
            "cap {cap} is out of range: a bulk action takes 1 to {MAX_BULK} jobs; run it again for more"
        )));
    }
    action.check(query.state)?;
    let mut page_query = query.clone();
    let mut ids = Vec::new();
    let mut looked: Option<Coverage> = None;
    let mut capped = false;
    loop {
        // One more than the cap still allows, to tell whether the cap stopped it.
        page_query.limit = (cap - ids.len() + 1).min(MAX_PAGE);
        let page = list(queue, &page_query).await?;
        looked = Some(match looked {
            Some(before) => before.then(page.looked),
            None => page.looked,
        });
        for job in page.jobs {
            if ids.len() == cap {
                capped = true;
                break;
            }
            ids.push(job.id);
        }
        match page.next {
            Some(next) if !capped => page_query.cursor = Some(next),
            _ => break,
        }
    }
    let mut report = BulkReport {
        action,
        dry_run,
        matched: ids.len() as u64,
        done: Vec::new(),
        failed: Vec::new(),
        capped,
        looked: looked.unwrap_or_default(),
        error: None,
    };
    if dry_run {
        return Ok(report);
    }
    for id in ids {
        let result = match action {
            Action::Retry => retry::retry(queue, id).await.map(|r| Some(r.new_id)),
            Action::Kick => queue.kick_job(id).await.map(|()| None),
            Action::Delete => delete(queue, settings, id).await.map(|unrecorded| {
                if let Some(err) = unrecorded {
                    report.error.get_or_insert_with(|| unrecorded_text(id, &err));
                }
                None
            }),
        };
        match result {
            Ok(new_id) => report.done.push(Done { id, new_id }),
            Err(err @ (QueueError::Unavailable(_) | QueueError::Unusable(_) | QueueError::Internal(_))) => {
                report.error = Some(err.to_string());
                break;
            }
            Err(err) => report.failed.push(Failed {
                id,
                error: err.to_string(),
            }),
        }
    }
    Ok(report)
}

/// Deletes job `id` and, when `[history]` keeps records, records how it ended: cancelled when
/// it was waiting (ready or delayed), deleted when it was reserved or buried. Every delete by
/// an operator (`pulpo delete`, a bulk delete, the HTTP API's) goes through here, so the rule
/// is kept once. `Ok(Some(err))`: the job is gone but its record could not be written.
pub async fn delete(queue: &mut dyn Queue, settings: &Settings, id: u64) -> Result<Option<HistoryError>> {
    let before = before_delete(queue, settings, id).await;
    queue.delete(id).await?;
    Ok(before.and_then(|(end, request_type)| {
        history::record_end(settings, JobRef::new(id), &request_type, end).err()
    }))
}

/// What [`delete`] learns of a job before deleting it, for its record: how it ends and its
/// request type (empty when its body is not a message).
async fn before_delete(queue: &mut dyn Queue, settings: &Settings, id: u64) -> Option<(End, String)> {
    if !settings.history.enabled {
        return None;
    }
    let state = queue.stats_job(id).await.ok()?.state;
    let end = match state {
        JobState::Ready | JobState::Delayed => End::Cancelled,
        JobState::Reserved | JobState::Buried => End::Deleted,
    };
    let request_type = match queue.peek(id).await {
        Ok(job) => Message::from_json(&job.body)
            .map(|m| m.request_type().to_owned())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    Some((end, request_type))
}

/// The one line for a job [`delete`] deleted without its record.
pub fn unrecorded_text(id: u64, err: &HistoryError) -> String {
    format!("job {id} was deleted, but its record could not be written: {err}")
}
