//! The runner's `/metrics`, `/healthz` and `/readyz` on `[metrics] listen`: scraped after a
//! run and parsed, the counts are the jobs it ran.

#[path = "http_process/mod.rs"]
mod http_process;

use std::process::Stdio;
use std::time::{Duration, Instant};

use http_process::{Over, config, get, parse_metrics, pulpo};

#[test]
fn the_runner_exports_jobs_by_outcome_durations_and_waits_as_prometheus_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", pulpo_testkit::free_port());
    let toml = config(
        &Over::File,
        &format!("[handlers.ok]\nkind = \"success\"\n[handlers.boom]\nkind = \"fail\"\n[metrics]\nlisten = \"{address}\"\n"),
    )
    .replace("shutdown_after_number_of_empty_iterations = 2", "shutdown_after_number_of_empty_iterations = 0");
    std::fs::write(dir.path().join("pulpo.toml"), toml).unwrap();
    for request_type in ["ok", "ok", "boom"] {
        let out = pulpo(dir.path(), &["publish", request_type, "x"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut runner = pulpo(dir.path(), &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let scraped = loop {
        let (status, body) = get(&address, "/metrics");
        let scraped = parse_metrics(&body);
        if status == 200
            && scraped.get("pulpo_jobs_total{request_type=\"ok\",outcome=\"succeeded\"}") == Some(&2.0)
        {
            break scraped;
        }
        assert!(
            Instant::now() < deadline,
            "no metrics for the run: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let health = (get(&address, "/healthz").0, get(&address, "/readyz").0);
    let _ = runner.kill();
    let _ = runner.wait();
    assert_eq!(
        scraped.get("pulpo_jobs_total{request_type=\"boom\",outcome=\"buried\"}"),
        Some(&1.0),
        "{scraped:?}"
    );
    assert_eq!(
        scraped.get("pulpo_handler_duration_seconds_count{request_type=\"ok\"}"),
        Some(&2.0),
        "{scraped:?}"
    );
    assert_eq!(
        scraped.get("pulpo_queue_wait_seconds_count{request_type=\"ok\"}"),
        Some(&2.0),
        "{scraped:?}"
    );
    assert!(
        scraped.contains_key("pulpo_handler_duration_seconds_bucket{request_type=\"ok\",le=\"0.005\"}"),
        "{scraped:?}"
    );
    assert_eq!(scraped.get("pulpo_jobs_in_flight"), Some(&0.0), "{scraped:?}");
    assert_eq!(health, (200, 200));
}

#[test]
fn the_grafana_dashboard_uses_only_metrics_pulpo_records() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dashboard = std::fs::read_to_string(format!("{root}/contrib/grafana/pulpo.json")).unwrap();
    let recorded = std::fs::read_to_string(format!("{root}/src/serve/http/metrics.rs")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&dashboard).expect("valid JSON");
    assert!(doc["panels"].as_array().is_some_and(|p| p.len() >= 8));
    let mut used = std::collections::BTreeSet::new();
    for part in dashboard.split("pulpo_").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        used.insert(format!("pulpo_{}", name.trim_end_matches("_bucket")));
    }
    for name in &used {
        assert!(
            recorded.contains(&format!("\"{name}\"")),
            "{name} is not a metric pulpo describes"
        );
    }
    for needed in [
        "pulpo_jobs_total",
        "pulpo_handler_duration_seconds",
        "pulpo_queue_wait_seconds",
        "pulpo_tube_jobs",
    ] {
        assert!(used.contains(needed), "the dashboard does not show {needed}");
    }
}
