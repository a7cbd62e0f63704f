//! How the CLI prints: human text by default, one JSON document with `--json`.

use serde_json::{Map, Value};

use super::{Failure, job_document};
use crate::config::Settings;
use crate::queue::{Job, JobStats, TubeStats};

/// Prints `value` as JSON when `json`, else the human text `human` makes.
pub(super) fn emit(json: bool, value: Value, human: impl FnOnce() -> String) {
    if json {
        print_json(&value);
    } else {
        println!("{}", human());
    }
}

/// Prints one JSON document on one line.
pub(super) fn print_json(value: &Value) {
    println!("{value}");
}

/// `name: value` lines, in order.
pub(super) fn pairs(map: &Map<String, Value>) -> String {
    let width = map.keys().map(String::len).max().unwrap_or(0);
    map.iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{key:<width$}  {value}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A job's statistics as `name: value` lines.
pub(super) fn job_stats(info: &JobStats) -> String {
    match serde_json::to_value(info) {
        Ok(Value::Object(map)) => {
            let map: Map<String, Value> = map.into_iter().filter(|(_, v)| !v.is_null()).collect();
            pairs(&map)
        }
        _ => format!("{info:?}"),
    }
}

/// Prints a job: a summary line, its statistics, and its message.
pub(super) fn job(json: bool, job: &Job, info: Option<&JobStats>) {
    let doc = job_document(job, info);
    if json {
        print_json(&doc);
        return;
    }
    match info {
        Some(info) => {
            println!("job {} ({}) in tube {}", job.id, info.state, info.tube);
            println!(
                "  pri {}  age {}s  delay {}s  ttr {}s  time-left {}s",
                info.pri,
                info.age.as_secs(),
                info.delay.as_secs(),
                info.ttr.as_secs(),
                info.time_left.as_secs()
            );
            println!(
                "  reserves {}  timeouts {}  releases {}  buries {}  kicks {}",
                info.reserves, info.timeouts, info.releases, info.buries, info.kicks
            );
            if let Some(reason) = &info.reason {
                println!("  reason: {reason}");
            }
        }
        None => println!("job {}", job.id),
    }
    match (doc.get("message"), doc.get("body")) {
        (Some(message), _) => {
            let pretty = serde_json::to_string_pretty(message).unwrap_or_else(|_| message.to_string());
            println!("{pretty}");
        }
        (None, Some(Value::String(body))) => {
            if let Some(Value::String(err)) = doc.get("body_error") {
                println!("  (body is not a pulpo message: {err})");
            }
            println!("{body}");
        }
        _ => {}
    }
}

/// A table of tubes and their job counts.
pub(super) fn tube_table(infos: &[TubeStats]) -> String {
    let width = infos.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:<width$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>6}",
        "tube", "ready", "urgent", "reserved", "delayed", "buried", "paused"
    );
    for t in infos {
        let paused = if t.pause_time_left.as_secs() > 0 {
            format!("{}s", t.pause_time_left.as_secs())
        } else {
            "-".to_owned()
        };
        out.push_str(&format!(
            "\n{:<width$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>6}",
            t.name,
            t.current_jobs_ready,
            t.current_jobs_urgent,
            t.current_jobs_reserved,
            t.current_jobs_delayed,
            t.current_jobs_buried,
            paused
        ));
    }
    out
}

/// `pulpo config`: the resolved settings.
pub(super) fn config(settings: &Settings, json: bool) -> Result<(), Failure> {
    if json {
        print_json(&settings.to_json_value());
    } else {
        print!("{}", settings.to_toml_string());
    }
    Ok(())
}

/// The runner's exit summary: why it stopped and its counters.
pub(super) fn run_report(json: bool, report: &crate::runner::RunReport) {
    let total = crate::runner::total(&report.counters);
    let mut value = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert(
            "total".to_owned(),
            serde_json::to_value(total).unwrap_or(Value::Null),
        );
    }
    emit(json, value, || {
        let stop = match report.stop {
            crate::runner::StopReason::Idle => "idle",
            crate::runner::StopReason::Shutdown => "shutdown",
        };
        let restarts = match report.restarts {
            0 => String::new(),
            n => format!(", {n} restarts"),
        };
        format!(
            "runner stopped ({stop}) after {:.1}s{restarts}\n{}",
            report.elapsed.as_secs_f64(),
            crate::runner::render(&report.counters).trim_end()
        )
    });
}
