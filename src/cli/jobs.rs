//! `pulpo jobs` (a page of a tube's jobs by state and filter) and the filter mode of `retry`,
//! `kick` and `delete` (every matching job, or with `--dry-run` their count), over
//! [`crate::jobs`].

use clap::Args;
use serde_json::{Value, json};

use super::{Failure, show};
use crate::config::Settings;
use crate::jobs::{self, Action, BulkReport, Cursor, JobPage, JobQuery, JobState, Order};
use crate::queue::Queue;

/// Which jobs: a state and filters, shared by `jobs`, `retry`, `kick` and `delete`.
#[derive(Debug, Default, Args)]
#[command(group(clap::ArgGroup::new("state").args(["ready", "delayed", "reserved", "buried"])))]
pub(super) struct Filters {
    /// Ready jobs.
    #[arg(long)]
    ready: bool,
    /// Delayed jobs.
    #[arg(long)]
    delayed: bool,
    /// Reserved jobs.
    #[arg(long)]
    reserved: bool,
    /// Buried jobs.
    #[arg(long)]
    buried: bool,
    /// Only jobs whose message has this request type.
    #[arg(long = "type", value_name = "TYPE")]
    request_type: Option<String>,
    /// Only jobs whose body contains this text.
    #[arg(long, value_name = "TEXT")]
    grep: Option<String>,
    /// Only jobs whose last release or bury reason contains this text (file queue).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Newest (highest id) first.
    #[arg(long)]
    newest: bool,
    /// Start after this cursor (the `next` of the previous page).
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
    /// The most ids one page looks at (a beanstalkd sweep looks at every id).
    #[arg(long, value_name = "N", default_value_t = jobs::DEFAULT_BUDGET)]
    budget: usize,
}

impl Filters {
    fn state(&self) -> Option<JobState> {
        [
            (self.ready, JobState::Ready),
            (self.delayed, JobState::Delayed),
            (self.reserved, JobState::Reserved),
            (self.buried, JobState::Buried),
        ]
        .into_iter()
        .find_map(|(set, state)| set.then_some(state))
    }

    /// Whether any state or filter was given: the filter mode of `retry`, `kick`, `delete`.
    pub(super) fn given(&self) -> bool {
        self.state().is_some()
            || self.request_type.is_some()
            || self.grep.is_some()
            || self.reason.is_some()
            || self.cursor.is_some()
    }

    fn query(&self, tube: &str, state: JobState, limit: usize) -> Result<JobQuery, Failure> {
        let cursor = match &self.cursor {
            Some(text) => Some(
                text.parse::<Cursor>()
                    .map_err(|err| Failure::usage(err.to_string()))?,
            ),
            None => None,
        };
        Ok(JobQuery {
            tube: tube.to_owned(),
            state,
            order: if self.newest { Order::Newest } else { Order::Oldest },
            cursor,
            limit,
            request_type: self.request_type.clone(),
            grep: self.grep.clone(),
            reason: self.reason.clone(),
            budget: self.budget,
        })
    }
}

/// `pulpo jobs`: the filters and the page size.
#[derive(Debug, Args)]
pub(super) struct ListArgs {
    #[command(flatten)]
    filters: Filters,
    /// The most jobs to show.
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
}

/// The filter mode of `retry`, `kick` and `delete`.
#[derive(Debug, Default, Args)]
pub(super) struct BulkArgs {
    #[command(flatten)]
    pub(super) filters: Filters,
    /// Only count the matching jobs; change nothing.
    #[arg(long)]
    pub(super) dry_run: bool,
    /// The most jobs to act on.
    #[arg(long, value_name = "N", default_value_t = jobs::MAX_BULK)]
    pub(super) max: usize,
}

pub(super) async fn list(
    queue: &mut dyn Queue,
    tube: &str,
    args: ListArgs,
    json: bool,
) -> Result<(), Failure> {
    let Some(state) = args.filters.state() else {
        return Err(Failure::usage(
            "jobs needs a state: --ready, --delayed, --reserved or --buried",
        ));
    };
    let query = args.filters.query(tube, state, args.limit)?;
    let page = jobs::list(queue, &query).await?;
    if json {
        let mut doc = page.to_json();
        doc["tube"] = json!(tube);
        doc["state"] = json!(state);
        show::print_json(&doc)?;
        return Ok(());
    }
    show::line(&page_text(tube, state, &query, &page))?;
    Ok(())
}

/// A page as lines: one per job (id, type, reason, the start of the body), then where it
/// stopped.
fn page_text(tube: &str, state: JobState, query: &JobQuery, page: &JobPage) -> String {
    let mut lines = Vec::new();
    for job in &page.jobs {
        let message = job.message();
        let kind = message.as_ref().map_or("-", |m| m.request_type());
        // A message shows its payload; any other body its bytes, as text.
        let shown = match message.as_ref().and_then(|m| m.payload()) {
            Some(Value::String(text)) => text.clone(),
            Some(payload) => payload.to_string(),
            None => String::from_utf8_lossy(&job.body).into_owned(),
        };
        let body: String = shown
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(60)
            .collect();
        lines.push(format!(
            "{}  {}  {}  reason: {}  {}",
            job.id,
            state,
            kind,
            job.reason().unwrap_or("-"),
            body
        ));
    }
    if page.jobs.is_empty() {
        lines.push(format!("no {state} job in tube {tube} matches"));
    }
    let looked = page.looked;
    if looked.swept
        && let (Some(first), Some(last)) = (looked.first, looked.last)
    {
        lines.push(format!("looked at ids {first} to {last}"));
    }
    if let Some(next) = page.next {
        if looked.bounded {
            lines.push(format!(
                "stopped after looking at {} ids; go on with --cursor {next}",
                query.budget
            ));
        } else {
            lines.push(format!("more: --cursor {next}"));
        }
    }
    lines.join("\n")
}

/// `retry`, `kick` or `delete` with filters: every matching job of the tube, or their count.
pub(super) async fn bulk(
    queue: &mut dyn Queue,
    settings: &Settings,
    tube: &str,
    action: Action,
    args: BulkArgs,
    json: bool,
) -> Result<(), Failure> {
    let state = match (args.filters.state(), action) {
        (Some(state), _) => state,
        (None, Action::Retry | Action::Kick) => JobState::Buried,
        (None, Action::Delete) => {
            return Err(Failure::usage(
                "delete with filters needs a state: --ready, --delayed, --reserved or --buried",
            ));
        }
    };
    let query = args.filters.query(tube, state, jobs::MAX_PAGE)?;
    let report = jobs::bulk(queue, settings, action, &query, args.dry_run, args.max).await?;
    if json {
        let mut doc = serde_json::to_value(&report).unwrap_or(Value::Null);
        doc["tube"] = json!(tube);
        doc["state"] = json!(state);
        show::print_json(&doc)?;
    } else {
        show::line(&report_text(tube, state, &report))?;
    }
    if let Some(err) = report.error {
        return Err(Failure {
            code: 1,
            message: err,
        });
    }
    if !report.failed.is_empty() {
        return Err(Failure {
            code: 1,
            message: format!(
                "{} of {} jobs not {}",
                report.failed.len(),
                report.matched,
                past(action)
            ),
        });
    }
    Ok(())
}

fn past(action: Action) -> &'static str {
    match action {
        Action::Retry => "retried",
        Action::Kick => "kicked",
        Action::Delete => "deleted",
    }
}

fn report_text(tube: &str, state: JobState, report: &BulkReport) -> String {
    let jobs = |n: u64| format!("{n} {state} job{}", super::plural(n));
    let mut lines = Vec::new();
    if report.dry_run {
        lines.push(format!(
            "would {} {} in tube {tube}",
            report.action.as_str(),
            jobs(report.matched)
        ));
    } else {
        for done in &report.done {
            match done.new_id {
                Some(new_id) => lines.push(format!("retried job {} as job {new_id}", done.id)),
                None => lines.push(format!("{} job {}", past(report.action), done.id)),
            }
        }
        for failed in &report.failed {
            lines.push(format!("job {}: {}", failed.id, failed.error));
        }
        lines.push(format!(
            "{} {} of {} in tube {tube}",
            past(report.action),
            report.done.len(),
            jobs(report.matched)
        ));
    }
    if report.capped {
        lines.push(format!(
            "stopped at --max {}: run it again for the rest",
            report.matched
        ));
    }
    lines.join("\n")
}

impl BulkArgs {
    /// Whether the command runs on filters (true) or on what it names (ids, a bound, `--all`):
    /// one or the other, and `--dry-run` only with filters.
    pub(super) fn filter_mode(&self, command: &str, names_some: bool) -> Result<bool, Failure> {
        let given = self.filters.given();
        if given && names_some {
            return Err(Failure::usage(format!(
                "{command} takes job ids or filters (a state, --type, --grep, --reason), not both"
            )));
        }
        if !given && (self.dry_run || self.filters.newest) {
            return Err(Failure::usage(format!(
                "--dry-run and --newest go with filters: add a state (e.g. --buried) or --type, \
                 --grep or --reason to {command}"
            )));
        }
        Ok(given)
    }
}
