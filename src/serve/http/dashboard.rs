//! The web dashboard: HTML rendered on the server by maud (which escapes every value, job
//! bodies included), styled inline, with a little plain JavaScript that refreshes the tube
//! counts. Nothing is fetched from elsewhere. Pages: the tubes overview (live counts,
//! throughput, pause and resume, a publish form, search), jobs by state with their reasons,
//! and a job's detail with its message and the retry, kick and delete buttons. Every form that
//! changes something carries the process's CSRF secret.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::Value;

use super::api::{self, Action, BulkRequest, ListParams, Publish};
use super::{ApiError, App, auth};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(overview))
        .route("/jobs", get(jobs_page))
        .route("/jobs/{id}", get(job_page))
        .route("/actions/tubes/{tube}/bulk", post(bulk))
        .route("/jobs/go", get(go))
        .route("/actions/jobs/{id}/{action}", post(job_action))
        .route("/actions/tubes/{tube}/{action}", post(tube_action))
        .route("/actions/publish", post(publish))
}

const STYLE: &str = r#"
:root{--bg:#f5f6f8;--card:#fff;--ink:#1d2330;--muted:#6b7385;--line:#e3e6ec;--accent:#3557d4;
--ready:#1f9d55;--reserved:#d08a00;--delayed:#6b5bd2;--buried:#c93636}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:var(--bg);color:var(--ink)}
header{background:#1d2330;color:#fff;padding:0 24px;display:flex;align-items:center;gap:24px;height:52px}
header a{color:#cfd6e6;text-decoration:none;font-weight:500}header a:hover{color:#fff}
header .brand{font-weight:700;font-size:17px;color:#fff;letter-spacing:.3px}
header .brand span{color:#8fa7ff}header .queue{margin-left:auto;color:#8b93a7;font-size:12px}
main{max-width:1180px;margin:24px auto;padding:0 24px}
h1{font-size:20px;margin:0 0 16px}h2{font-size:15px;margin:0 0 12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 20px;margin-bottom:20px;
box-shadow:0 1px 2px rgba(20,30,60,.04)}.narrow{max-width:420px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:20px}@media(max-width:860px){.grid{grid-template-columns:1fr}}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:8px 10px;border-bottom:1px solid var(--line);
vertical-align:top}th{font-size:11px;text-transform:uppercase;letter-spacing:.6px;color:var(--muted);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}tr:last-child td{border-bottom:0}
.pill{display:inline-block;padding:1px 8px;border-radius:99px;font-size:12px;font-weight:600;color:#fff}
.s-ready{background:var(--ready)}.s-reserved{background:var(--reserved)}.s-delayed{background:var(--delayed)}
.s-buried{background:var(--buried)}.zero{color:#b3b9c6}.buried-n{color:var(--buried);font-weight:700}
a{color:var(--accent)}.muted{color:var(--muted)}code,pre{font-family:ui-monospace,"SF Mono",Menlo,monospace;font-size:12.5px}
pre{background:#f3f5f9;border:1px solid var(--line);border-radius:8px;padding:12px;overflow:auto;white-space:pre-wrap;
word-break:break-word;margin:0}
form.inline{display:inline}label{display:block;margin-bottom:10px;color:var(--muted);font-size:12px}
input,select,textarea{display:block;width:100%;margin-top:4px;padding:7px 9px;border:1px solid #cdd2dc;border-radius:6px;
font:inherit;color:var(--ink);background:#fff}textarea{min-height:70px}
button{font:inherit;border:1px solid #cdd2dc;background:#fff;border-radius:6px;padding:5px 12px;cursor:pointer}
button:hover{background:#f0f2f6}button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button.primary:hover{background:#2945b0}button.danger{color:var(--buried);border-color:#e9b4b4}
.row{display:flex;gap:10px}.row>*{flex:1}.actions{display:flex;gap:8px;flex-wrap:wrap}
.flash{padding:10px 14px;border-radius:8px;background:#e8f3ec;color:#17663a;margin-bottom:16px}
.flash.bad{background:#fbeaea;color:#a12626}.reason{color:var(--buried)}
dl{display:grid;grid-template-columns:150px 1fr;gap:6px 12px;margin:0}dt{color:var(--muted)}dd{margin:0}
.live{font-size:11px;color:var(--muted)}.live::before{content:"";display:inline-block;width:7px;height:7px;
border-radius:50%;background:var(--ready);margin-right:6px;vertical-align:middle}
"#;

const SCRIPT: &str = r#"
(function(){
  const table=document.getElementById('tubes');if(!table)return;
  async function refresh(){
    try{
      const r=await fetch('/api/tubes',{headers:{'Accept':'application/json'}});if(!r.ok)return;
      const data=await r.json();
      for(const t of data.tubes){
        const row=table.querySelector('tr[data-tube="'+CSS.escape(t.name)+'"]');if(!row)continue;
        for(const k of ['ready','reserved','delayed','buried','urgent','waiting','put_per_second','delete_per_second']){
          const cell=row.querySelector('[data-k="'+k+'"]');if(!cell)continue;
          cell.textContent=String(t[k]);cell.classList.toggle('zero',t[k]==0);
          if(k==='buried')cell.classList.toggle('buried-n',t[k]>0);
        }
        const p=row.querySelector('[data-k="paused"]');if(p)p.textContent=t.paused?'paused':'';
      }
    }catch(e){}
  }
  setInterval(refresh,2000);
})();
"#;

/// A whole page: the header, `body`, the style and the script.
pub(super) fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · pulpo" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" { "pulpo" span { " dashboard" } }
                    a href="/" { "Tubes" }
                    a href="/jobs?state=buried" { "Buried" }
                    a href="/jobs" { "Search" }
                }
                main { (body) }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// `?flash=...&bad=1` after an action, shown once at the top of the page.
#[derive(Debug, Default, Deserialize)]
struct Flash {
    flash: Option<String>,
    bad: Option<String>,
}

fn flash(f: &Flash) -> Markup {
    html! {
        @if let Some(text) = &f.flash {
            p.flash.bad[f.bad.is_some()] { (text) }
        }
    }
}

fn error_page(err: ApiError) -> Response {
    let status = err.0;
    (
        status,
        page(
            "Error",
            html! { p.flash.bad { (err.1) } p { a href="/" { "Back to the tubes" } } },
        ),
    )
        .into_response()
}

async fn overview(State(app): State<Arc<App>>, Query(f): Query<Flash>) -> Response {
    let infos = match app.tube_stats().await {
        Ok(infos) => infos,
        Err(err) => return error_page(err),
    };
    let tubes: Vec<Value> = infos.iter().map(|info| api::tube_document(&app, info)).collect();
    let csrf = &app.csrf;
    let states = ["ready", "reserved", "delayed", "buried", "urgent", "waiting"];
    page(
        "Tubes",
        html! {
            (flash(&f))
            section.card {
                div style="display:flex;align-items:baseline;gap:12px" {
                    h1 { "Tubes" } span.live { "live, every 2 s" }
                }
                table #tubes {
                    thead { tr {
                        th { "Tube" }
                        @for s in states { th.num { (s) } }
                        th.num { "put/s" } th.num { "done/s" } th { "" } th { "" }
                    } }
                    tbody {
                        @for t in &tubes {
                            @let name = t["name"].as_str().unwrap_or("");
                            tr data-tube=(name) {
                                td { a href={ "/jobs?tube=" (urlencode(name)) } { strong { (name) } } }
                                @for s in states {
                                    @let n = &t[s];
                                    @let zero = n.as_u64() == Some(0);
                                    td.num.zero[zero].buried-n[s == "buried" && !zero] data-k=(s) {
                                        @if s == "buried" && !zero {
                                            a href={ "/jobs?state=buried&tube=" (urlencode(name)) } { (n.to_string()) }
                                        } @else { (n.to_string()) }
                                    }
                                }
                                td.num data-k="put_per_second" { (t["put_per_second"].to_string()) }
                                td.num data-k="delete_per_second" { (t["delete_per_second"].to_string()) }
                                td.muted data-k="paused" { @if t["paused"] == true { "paused" } }
                                td {
                                    @let action = if t["paused"] == true { "resume" } else { "pause" };
                                    form.inline method="post" action={ "/actions/tubes/" (urlencode(name)) "/" (action) } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" { (action) }
                                    }
                                }
                            }
                        }
                        @if tubes.is_empty() { tr { td colspan="11" .muted { "No tubes yet: publish a job." } } }
                    }
                }
            }
            div.grid {
                section.card {
                    h2 { "Publish a job" }
                    form #publish method="post" action="/actions/publish" {
                        input type="hidden" name="csrf" value=(csrf);
                        div.row {
                            label { "Tube" input name="tube" value=(app.settings.tube); }
                            label { "Request type" input name="request_type" required placeholder="send_email"; }
                        }
                        label { "Payload" textarea name="payload" placeholder="hello" {} }
                        div.row {
                            label { "Priority" input name="priority" placeholder=(app.settings.defaults.priority); }
                            label { "Delay" input name="delay" placeholder="0s"; }
                            label { "TTR" input name="ttr" placeholder="60s"; }
                        }
                        button.primary type="submit" { "Publish" }
                    }
                }
                section.card {
                    h2 { "Search jobs" }
                    form #search method="get" action="/jobs" {
                        div.row {
                            label { "Tube" input name="tube" value=(app.settings.tube); }
                            label { "State" select name="state" {
                                option value="buried" { "buried" } option value="ready" { "ready" }
                                option value="delayed" { "delayed" } option value="reserved" { "reserved" }
                            } }
                        }
                        label { "Text in the body" input name="grep" placeholder="a payload, an address"; }
                        label { "Request type" input name="type"; }
                        button.primary type="submit" { "Search" }
                    }
                    p.muted { "Or open a job by id: " }
                    form method="get" action="/jobs/go" { div.row { input name="id" placeholder="42"; button type="submit" { "Open" } } }
                }
            }
        },
    )
    .into_response()
}

async fn job_page(State(app): State<Arc<App>>, Path(id): Path<String>, Query(f): Query<Flash>) -> Response {
    let id = match api::parse_id(&id) {
        Ok(id) => id,
        Err(err) => return error_page(err),
    };
    let doc = match api::job_value(&app, id).await {
        Ok(doc) => doc,
        Err(err) => return error_page(err),
    };
    let state = doc["state"].as_str().unwrap_or("");
    // A job gone from the queue is shown from its record, with nothing to act on.
    let live = doc.get("stats").is_some();
    let stats = &doc["stats"];
    let reason = stats["reason"].as_str();
    let shown = doc
        .get("message")
        .map(|m| serde_json::to_string_pretty(m).unwrap_or_default())
        .or_else(|| doc.get("body").and_then(Value::as_str).map(str::to_owned))
        .or_else(|| {
            doc.get("body_base64")
                .and_then(Value::as_str)
                .map(|b| format!("(base64) {b}"))
        })
        .unwrap_or_default();
    let csrf = &app.csrf;
    let button = |action: &str, label: &str, class: &str| {
        html! {
            form.inline method="post" action={ "/actions/jobs/" (id) "/" (action) } {
                input type="hidden" name="csrf" value=(csrf);
                button class=(class) type="submit" id={ "do-" (action) } { (label) }
            }
        }
    };
    page(
        &format!("Job {id}"),
        html! {
            (flash(&f))
            section.card {
                div style="display:flex;align-items:center;gap:12px;margin-bottom:14px" {
                    h1 style="margin:0" { "Job " (id) }
                    span #state class={ "pill s-" (state) } { (state) }
                    @if live {
                        div.actions style="margin-left:auto" {
                            @if state == "buried" { (button("retry", "Retry", "primary")) }
                            @if state == "buried" || state == "delayed" { (button("kick", "Kick", "")) }
                            (button("delete", "Delete", "danger"))
                        }
                    }
                }
                @if let Some(reason) = reason { p.reason #reason { strong { "Reason: " } (reason) } }
                @if let Some(err) = doc.get("body_error").and_then(Value::as_str) { p.reason { "Not a message: " (err) } }
                @if !live { p #gone { "No longer in the queue: shown from its record." } }
                @if live { div.grid {
                    div { h2 { "Message" } pre #message { (shown) } }
                    div {
                        h2 { "Stats" }
                        dl {
                            @for key in ["tube", "pri", "age", "delay", "ttr", "time_left", "reserves", "timeouts", "releases", "buries", "kicks"] {
                                @if let Some(v) = stats.get(key) {
                                    dt { (key) }
                                    dd { @if key == "tube" { a href={ "/jobs?tube=" (urlencode(v.as_str().unwrap_or(""))) } { (v.as_str().unwrap_or("")) } } @else { (plain(v)) } }
                                }
                            }
                        }
                    }
                } }
                @if let Some(record) = doc.get("record") { (record_section(record)) }
            }
        },
    )
    .into_response()
}

/// A job's record (`[history]`), as the API gives it: its outcome, its attempts with their
/// errors, the events its handler wrote and its result.
fn record_section(record: &Value) -> Markup {
    let outcome = record["outcome"].as_str();
    let empty = Vec::new();
    let attempts = record["attempts"].as_array().unwrap_or(&empty);
    let events = record["events"].as_array().unwrap_or(&empty);
    html! {
        section.card #record {
            h2 { "Record" }
            p { "Outcome: " strong #outcome { (outcome.unwrap_or("not ended yet")) } }
            @if !attempts.is_empty() {
                table #attempts {
                    tr { th { "Attempt" } th { "Started" } th { "Took (ms)" } th { "Settled" } th { "Error" } }
                    @for a in attempts {
                        tr {
                            td { (plain(&a["attempt"])) }
                            td { (plain(&a["started"])) }
                            td { (plain(&a["duration_ms"])) }
                            td { (plain(&a["settlement"])) }
                            td.reason { (a["error"].as_str().unwrap_or("")) }
                        }
                    }
                }
            }
            @if !events.is_empty() {
                h2 { "Events" }
                ul #events {
                    @for e in events { li { (plain(&e["at"])) " (attempt " (plain(&e["attempt"])) "): " (plain(&e["text"])) } }
                }
            }
            @if let Some(result) = record.get("result") {
                h2 { "Result" }
                pre #result { (serde_json::to_string_pretty(result).unwrap_or_default()) }
            }
        }
    }
}

/// `?id=N` from the overview's "open a job" box.
#[derive(Debug, Deserialize)]
struct Go {
    id: String,
}

async fn go(Query(go): Query<Go>) -> Response {
    match api::parse_id(go.id.trim()) {
        Ok(id) => Redirect::to(&format!("/jobs/{id}")).into_response(),
        Err(err) => back_to("/", &err.1, true),
    }
}

/// `/jobs`: a tube's jobs in one state, filtered, a page at a time; with `tube` left out, the
/// configured tube.
#[derive(Debug, Default, Deserialize)]
struct JobsParams {
    #[serde(default)]
    tube: Option<String>,
    #[serde(flatten)]
    list: ListParams,
    #[serde(flatten)]
    flash: Flash,
}

async fn jobs_page(State(app): State<Arc<App>>, Query(params): Query<JobsParams>) -> Response {
    let tube = params
        .tube
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(&app.settings.tube)
        .to_owned();
    let query = match params.list.query(&tube) {
        Ok(query) => query,
        Err(err) => return error_page(err),
    };
    let page_result = api::list_page(&app, &query).await;
    let state = query.state.as_str();
    let keep = |name: &str, value: &Option<String>| {
        value
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| format!("&{name}={}", urlencode(v)))
            .unwrap_or_default()
    };
    let filters = format!(
        "tube={}&state={state}{}{}{}",
        urlencode(&tube),
        keep("type", &params.list.request_type),
        keep("grep", &params.list.grep),
        keep("reason", &params.list.reason)
    );
    let csrf = &app.csrf;
    let bulk_button = |action: &str, label: &str, class: &str| {
        html! {
            form.inline method="post" action={ "/actions/tubes/" (urlencode(&tube)) "/bulk" } {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value=(action);
                input type="hidden" name="state" value=(state);
                @if let Some(v) = &query.request_type { input type="hidden" name="type" value=(v); }
                @if let Some(v) = &query.grep { input type="hidden" name="grep" value=(v); }
                @if let Some(v) = &query.reason { input type="hidden" name="reason" value=(v); }
                button class=(class) type="submit" id={ "bulk-" (action) } { (label) }
            }
        }
    };
    page(
        &format!("{state} jobs in {tube}"),
        html! {
            (flash(&params.flash))
            section.card {
                form #search method="get" action="/jobs" style="margin-bottom:14px" {
                    div.row {
                        label { "Tube" input name="tube" value=(tube); }
                        label { "State" select name="state" {
                            @for s in ["buried", "ready", "delayed", "reserved"] {
                                option value=(s) selected[s == state] { (s) }
                            }
                        } }
                        label { "Text in the body" input name="grep" value=(query.grep.clone().unwrap_or_default()); }
                        label { "Request type" input name="type" value=(query.request_type.clone().unwrap_or_default()); }
                        label style="flex:0 0 auto;align-self:end" { button.primary type="submit" { "Search" } }
                    }
                }
                div style="display:flex;align-items:center;gap:12px;margin-bottom:10px" {
                    h1 style="margin:0" { span class={ "pill s-" (state) } { (state) } " jobs in " (tube) }
                    div.actions style="margin-left:auto" {
                        @if state == "buried" { (bulk_button("retry", "Retry all matching", "primary")) }
                        @if state == "buried" || state == "delayed" { (bulk_button("kick", "Kick all matching", "")) }
                        (bulk_button("delete", "Delete all matching", "danger"))
                    }
                }
                @match &page_result {
                    Err(err) => p.flash.bad { (err.1) },
                    Ok(page) => {
                        table #jobs {
                            thead { tr { th { "Job" } th { "Type" } th { "Payload" } th { "Reason" } th.num { "Tries" } th.num { "Age" } th { "" } } }
                            tbody {
                                @for job in &page.jobs {
                                    @let message = job.message();
                                    tr data-id=(job.id) {
                                        td { a href={ "/jobs/" (job.id) } { (job.id) } }
                                        td { @if let Some(m) = &message { code { (m.request_type()) } } @else { span.muted { "(not a message)" } } }
                                        td { code { (preview(&job.body, message.as_ref())) } }
                                        td.reason { (job.reason().unwrap_or("")) }
                                        td.num { (job.stats.reserves) }
                                        td.num { (crate::duration::format_duration(Duration::from_secs(job.stats.age.as_secs()))) }
                                        td {
                                            @if state == "buried" {
                                                form.inline method="post" action={ "/actions/jobs/" (job.id) "/retry" } {
                                                    input type="hidden" name="csrf" value=(csrf);
                                                    button type="submit" { "retry" }
                                                }
                                            }
                                        }
                                    }
                                }
                                @if page.jobs.is_empty() { tr { td colspan="7" .muted { "No " (state) " jobs match." } } }
                            }
                        }
                        p.muted style="margin-top:10px" {
                            @if page.looked.swept {
                                "Swept job ids "
                                (page.looked.first.map(|i| i.to_string()).unwrap_or_default()) "–"
                                (page.looked.last.map(|i| i.to_string()).unwrap_or_default())
                                @if page.looked.bounded { " (the sweep is bounded: page on for more)" }
                            } @else { "From the queue's index." }
                            @if let Some(next) = page.next {
                                " · " a #next href={ "/jobs?" (filters) "&cursor=" (next) } { "next page →" }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

/// A short, one-line view of a body: the payload of a message, else the body's text.
fn preview(body: &[u8], message: Option<&crate::message::Message>) -> String {
    let text = match message.and_then(|m| m.payload()) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::from_utf8_lossy(body).into_owned(),
    };
    let mut short: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        short.push('…');
    }
    short
}

/// The bulk buttons' form: the action and the listing's filters.
#[derive(Debug, Deserialize)]
struct BulkForm {
    #[serde(default)]
    csrf: String,
    action: String,
    #[serde(flatten)]
    filters: ListParams,
}

async fn bulk(State(app): State<Arc<App>>, Path(tube): Path<String>, Form(form): Form<BulkForm>) -> Response {
    if let Err(refused) = check_csrf(&app, &form.csrf) {
        return *refused;
    }
    let state = form.filters.state.clone().unwrap_or_else(|| "buried".to_owned());
    let request = BulkRequest {
        action: form.action.clone(),
        filters: form.filters,
        dry_run: false,
        cap: None,
    };
    let back = format!("/jobs?tube={}&state={}", urlencode(&tube), urlencode(&state));
    match api::bulk_action(&app, &tube, &request).await {
        Ok(report) => {
            let mut text = format!(
                "{}: {} of {} matching jobs",
                form.action,
                report.done.len(),
                report.matched
            );
            if !report.failed.is_empty() {
                text += &format!(", {} failed ({})", report.failed.len(), report.failed[0].error);
            }
            if report.capped {
                text += &format!(
                    "; stopped at the cap of {}: run it again for more",
                    crate::jobs::MAX_BULK
                );
            }
            back_to(&back, &text, !report.failed.is_empty())
        }
        Err(err) => back_to(&back, &err.1, true),
    }
}

/// A JSON value as text: strings without quotes.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `text` for a URL's query or path segment.
pub(super) fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every dashboard form's hidden field.
#[derive(Debug, Deserialize)]
struct Csrf {
    #[serde(default)]
    csrf: String,
}

/// Refuses a form without this process's CSRF secret: the page that says so.
fn check_csrf(app: &App, given: &str) -> Result<(), Box<Response>> {
    if auth::same_secret(given, &app.csrf) {
        Ok(())
    } else {
        Err(Box::new(error_page(ApiError(
            StatusCode::FORBIDDEN,
            "refused: the form's CSRF token is missing or stale; reload the page and try again".to_owned(),
        ))))
    }
}

fn back_to(path: &str, message: &str, bad: bool) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    let bad = if bad { "&bad=1" } else { "" };
    Redirect::to(&format!("{path}{sep}flash={}{bad}", urlencode(message))).into_response()
}

async fn job_action(
    State(app): State<Arc<App>>,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<Csrf>,
) -> Response {
    if let Err(refused) = check_csrf(&app, &form.csrf) {
        return *refused;
    }
    let id = match api::parse_id(&id) {
        Ok(id) => id,
        Err(err) => return error_page(err),
    };
    let action = match action.as_str() {
        "retry" => Action::Retry,
        "kick" => Action::Kick,
        "delete" => Action::Delete,
        other => {
            return error_page(ApiError(
                StatusCode::NOT_FOUND,
                format!("no action {other:?} on a job"),
            ));
        }
    };
    match api::act(&app, id, action).await {
        Ok(done) => match action {
            Action::Retry => {
                let new_id = done["new_id"].as_u64().unwrap_or(id);
                back_to(
                    &format!("/jobs/{new_id}"),
                    &format!("job {id} retried as job {new_id}"),
                    false,
                )
            }
            Action::Kick => back_to(&format!("/jobs/{id}"), &format!("job {id} kicked"), false),
            Action::Delete => back_to("/", &format!("job {id} deleted"), false),
        },
        Err(err) => back_to(&format!("/jobs/{id}"), &err.1, true),
    }
}

async fn tube_action(
    State(app): State<Arc<App>>,
    Path((tube, action)): Path<(String, String)>,
    Form(form): Form<Csrf>,
) -> Response {
    if let Err(refused) = check_csrf(&app, &form.csrf) {
        return *refused;
    }
    let duration = match action.as_str() {
        // The dashboard pauses for an hour; resume ends it sooner.
        "pause" => Duration::from_secs(3600),
        "resume" => Duration::ZERO,
        other => {
            return error_page(ApiError(
                StatusCode::NOT_FOUND,
                format!("no action {other:?} on a tube"),
            ));
        }
    };
    match api::pause_tube(&app, &tube, duration).await {
        Ok(_) if duration.is_zero() => back_to("/", &format!("tube {tube} resumed"), false),
        Ok(_) => back_to("/", &format!("tube {tube} paused for an hour"), false),
        Err(err) => back_to("/", &err.1, true),
    }
}

/// The publish form's fields (all text, as a browser sends them).
#[derive(Debug, Deserialize)]
struct PublishForm {
    #[serde(default)]
    csrf: String,
    tube: String,
    request_type: String,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    delay: String,
    #[serde(default)]
    ttr: String,
}

async fn publish(State(app): State<Arc<App>>, Form(form): Form<PublishForm>) -> Response {
    if let Err(refused) = check_csrf(&app, &form.csrf) {
        return *refused;
    }
    let parsed = (|| -> Result<Publish, String> {
        let duration = |name: &str, text: &str| -> Result<Option<Duration>, String> {
            if text.trim().is_empty() {
                return Ok(None);
            }
            crate::duration::parse_duration(text.trim())
                .map(Some)
                .map_err(|err| format!("{name} {text:?}: {err}"))
        };
        Ok(Publish {
            request_type: form.request_type.trim().to_owned(),
            payload: (!form.payload.is_empty()).then(|| Value::String(form.payload.clone())),
            body: Default::default(),
            header: Default::default(),
            priority: match form.priority.trim() {
                "" => None,
                text => Some(
                    text.parse()
                        .map_err(|_| format!("priority {text:?} is not 0 to 4294967295"))?,
                ),
            },
            delay: duration("delay", &form.delay)?,
            ttr: duration("ttr", &form.ttr)?,
        })
    })();
    let publish = match parsed {
        Ok(publish) => publish,
        Err(problem) => return back_to("/", &problem, true),
    };
    match api::publish_message(&app, form.tube.trim(), publish).await {
        Ok(id) => back_to(&format!("/jobs/{id}"), &format!("published job {id}"), false),
        Err(err) => back_to("/", &err.1, true),
    }
}
