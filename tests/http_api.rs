//! The HTTP side of `pulpo serve` end to end, on the file queue and on a real beanstalkd:
//! publish, tubes with counts, a buried job's detail, retry, kick, delete, pause and resume,
//! listing with filters and a cursor, bulk actions with a dry run, JSON errors, `/metrics`,
//! `/healthz` and `/readyz`; and the security rules (a token off loopback, bearer and cookie,
//! cross-site refusals, CSRF, escaped bodies).

#[path = "http_process/mod.rs"]
mod http_process;

use http_process::{Http, Over, parse_metrics, request};
use pulpo_testkit::Beanstalkd;
use serde_json::{Value, json};

fn publish(http: &Http, request_type: &str, payload: &str) -> u64 {
    let body = json!({"request_type": request_type, "payload": payload}).to_string();
    let reply = http.call("POST", "/api/tubes/web/jobs", Some(&body));
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_u64().unwrap()
}

fn tube(http: &Http) -> Value {
    let reply = http.call("GET", "/api/tubes/web", None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// The whole API on one queue.
fn api_round_trip(over: Over) {
    let keeps_reasons = matches!(over, Over::File);
    let http = Http::start(over, "");
    let boom = publish(&http, "boom", "needle one");
    let _other = publish(&http, "boom", "haystack");
    let ok = publish(&http, "ok", "fine");
    assert_eq!(tube(&http)["ready"], 3);

    // A runner buries the two `boom` jobs and deletes the `ok` one.
    http.run_once();
    let counts = tube(&http);
    assert_eq!(
        (counts["ready"].clone(), counts["buried"].clone()),
        (json!(0), json!(2)),
        "{counts}"
    );
    let tubes = http.call("GET", "/api/tubes", None).json();
    assert!(
        tubes["tubes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "web"),
        "{tubes}"
    );

    // The buried job's detail, with its reason where the queue keeps one.
    let detail = http.call("GET", &format!("/api/jobs/{boom}"), None).json();
    assert_eq!(detail["state"], "buried", "{detail}");
    assert_eq!(detail["message"]["body"]["payload"], "needle one");
    if keeps_reasons {
        assert!(
            detail["stats"]["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{detail}"
        );
    }
    assert_eq!(http.call("GET", &format!("/api/jobs/{ok}"), None).status, 404);

    // Listing: buried jobs, filtered by payload text, and paged with a cursor.
    let found = http
        .call("GET", "/api/tubes/web/jobs?state=buried&grep=needle", None)
        .json();
    let ids: Vec<u64> = found["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![boom], "{found}");
    let first = http
        .call("GET", "/api/tubes/web/jobs?state=buried&limit=1", None)
        .json();
    assert_eq!(first["jobs"].as_array().unwrap().len(), 1, "{first}");
    let next = first["next"]
        .as_str()
        .expect("a cursor to the second page")
        .to_owned();
    let second = http
        .call(
            "GET",
            &format!("/api/tubes/web/jobs?state=buried&limit=1&cursor={next}"),
            None,
        )
        .json();
    assert_ne!(second["jobs"][0]["id"], first["jobs"][0]["id"], "{second}");

    // Page size and bulk caps, and bad input, answered as JSON errors.
    let too_big = http.call("GET", "/api/tubes/web/jobs?limit=100000", None);
    assert_eq!(too_big.status, 400);
    assert!(
        too_big.json()["error"].as_str().unwrap().contains("limit"),
        "{}",
        too_big.body
    );
    let bad_state = http.call("GET", "/api/tubes/web/jobs?state=lost", None);
    assert_eq!(bad_state.status, 400);
    assert!(bad_state.json()["error"].as_str().unwrap().contains("lost"));
    let bad_id = http.call("GET", "/api/jobs/nope", None);
    assert_eq!((bad_id.status, bad_id.json()["error"].is_string()), (400, true));
    let bad_body = http.call("POST", "/api/tubes/web/jobs", Some("{\"payload\": 1}"));
    assert_eq!(bad_body.status, 422, "{}", bad_body.body);
    assert!(
        bad_body.json()["error"]
            .as_str()
            .unwrap()
            .contains("request_type"),
        "{}",
        bad_body.body
    );
    let over_cap = http.call(
        "POST",
        "/api/tubes/web/bulk",
        Some(&json!({"action": "delete", "state": "buried", "cap": 1_000_000}).to_string()),
    );
    assert_eq!(over_cap.status, 400, "{}", over_cap.body);

    // Bulk with a dry run counts and changes nothing.
    let dry = http.call(
        "POST",
        "/api/tubes/web/bulk",
        Some(&json!({"action": "retry", "state": "buried", "dry_run": true}).to_string()),
    );
    assert_eq!(dry.json()["matched"], 2, "{}", dry.body);
    assert_eq!(tube(&http)["buried"], 2);

    // Retry: a fresh, ready copy; the buried one is gone.
    let retried = http.call("POST", &format!("/api/jobs/{boom}/retry"), None).json();
    let new_id = retried["new_id"].as_u64().expect("the copy's id");
    assert_eq!(
        http.call("GET", &format!("/api/jobs/{new_id}"), None).json()["state"],
        "ready"
    );
    assert_eq!(http.call("GET", &format!("/api/jobs/{boom}"), None).status, 404);
    // Kick refuses a ready job; delete takes it.
    let kick = http.call("POST", &format!("/api/jobs/{new_id}/kick"), None);
    assert_eq!(kick.status, 404, "{}", kick.body);
    assert!(
        kick.json()["error"]
            .as_str()
            .unwrap()
            .contains(&new_id.to_string())
    );
    assert_eq!(
        http.call("DELETE", &format!("/api/jobs/{new_id}"), None).json()["deleted"],
        true
    );

    // Bulk kick of what is left buried.
    let kicked = http.call(
        "POST",
        "/api/tubes/web/bulk",
        Some(&json!({"action": "kick", "state": "buried", "type": "boom"}).to_string()),
    );
    assert_eq!(
        kicked.json()["done"].as_array().map(Vec::len),
        Some(1),
        "{}",
        kicked.body
    );
    assert_eq!(tube(&http)["ready"], 1);

    // Pause and resume.
    let paused = http.call("POST", "/api/tubes/web/pause", Some("{\"for\": \"1m\"}"));
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(tube(&http)["paused"], true);
    http.call("POST", "/api/tubes/web/resume", None);
    assert_eq!(tube(&http)["paused"], false);

    // Health, readiness and the tube gauges.
    assert_eq!(http.call("GET", "/healthz", None).status, 200);
    assert_eq!(http.call("GET", "/readyz", None).status, 200);
    let scraped = parse_metrics(&http.call("GET", "/metrics", None).body);
    assert_eq!(
        scraped.get("pulpo_tube_jobs{tube=\"web\",state=\"ready\"}"),
        Some(&1.0),
        "{scraped:?}"
    );
    assert_eq!(
        scraped.get("pulpo_tube_jobs{tube=\"web\",state=\"buried\"}"),
        Some(&0.0)
    );
    assert!(
        scraped
            .get("pulpo_tube_jobs_put_total{tube=\"web\"}")
            .is_some_and(|n| *n >= 4.0),
        "{scraped:?}"
    );
}

#[test]
fn the_http_api_publishes_lists_and_acts_on_jobs_over_the_file_queue() {
    api_round_trip(Over::File);
}

#[test]
fn the_http_api_publishes_lists_and_acts_on_jobs_over_beanstalkd() {
    api_round_trip(Over::Beanstalkd(Beanstalkd::start()));
}

#[test]
fn http_off_loopback_without_a_token_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[file]\npath = \"q\"\n[serve]\nlisten = []\nhttp = \"0.0.0.0:{}\"\n",
        pulpo_testkit::free_port()
    );
    std::fs::write(dir.path().join("pulpo.toml"), toml).unwrap();
    let out = http_process::pulpo(dir.path(), &["serve"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("[serve] token"), "{stderr}");
}

#[test]
fn a_token_guards_the_api_and_dashboard_but_not_health() {
    let http = Http::start(Over::File, "token = \"s3cret\"");
    let denied = http.call("GET", "/api/tubes", None);
    assert_eq!(denied.status, 401);
    assert!(denied.json()["error"].as_str().unwrap().contains("token"));
    assert_eq!(http.call("GET", "/metrics", None).status, 401);
    let wrong = request(
        &http.address,
        "GET",
        "/api/tubes",
        &[("Authorization", "Bearer nope")],
        None,
    );
    assert_eq!(wrong.status, 401);
    let right = request(
        &http.address,
        "GET",
        "/api/tubes",
        &[("Authorization", "Bearer s3cret")],
        None,
    );
    assert_eq!(right.status, 200, "{}", right.body);
    assert_eq!(http.call("GET", "/healthz", None).status, 200);
    // The dashboard sends a browser to the login form, which sets a cookie.
    let page = http.call("GET", "/", None);
    assert_eq!((page.status, page.header("location")), (303, Some("/login")));
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let login = request(&http.address, "POST", "/login", &form, Some("token=s3cret"));
    let cookie = login
        .header("set-cookie")
        .expect("a cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(login.header("set-cookie").unwrap().contains("HttpOnly"));
    let page = request(&http.address, "GET", "/", &[("Cookie", &cookie)], None);
    assert_eq!(page.status, 200);
    let bad_login = request(&http.address, "POST", "/login", &form, Some("token=guess"));
    assert_eq!(bad_login.status, 401);
}

#[test]
fn cross_site_requests_and_forms_without_the_csrf_token_are_refused() {
    let http = Http::start(Over::File, "");
    let id = publish(&http, "boom", "keep me");
    let evil = [("Origin", "http://evil.example")];
    let refused = request(
        &http.address,
        "POST",
        &format!("/api/jobs/{id}/delete"),
        &evil,
        None,
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.json()["error"].as_str().unwrap().contains("cross-site"));
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let no_csrf = request(
        &http.address,
        "POST",
        &format!("/actions/jobs/{id}/delete"),
        &form,
        Some("csrf=guess"),
    );
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);
    assert_eq!(
        http.call("GET", &format!("/api/jobs/{id}"), None).status,
        200,
        "the job is still there"
    );
    // The page's own form, with its token and from its own origin, works.
    let page = http.call("GET", &format!("/jobs/{id}"), None).body;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let own = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Origin", &format!("http://{}", http.address)),
    ];
    let done = request(
        &http.address,
        "POST",
        &format!("/actions/jobs/{id}/delete"),
        &own,
        Some(&format!("csrf={csrf}")),
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(http.call("GET", &format!("/api/jobs/{id}"), None).status, 404);
}

#[test]
fn job_bodies_are_shown_escaped_in_the_dashboard() {
    let http = Http::start(Over::File, "");
    let id = publish(&http, "boom", "<script>alert('x')</script>");
    let page = http.call("GET", &format!("/jobs/{id}"), None).body;
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("&lt;script&gt;alert"), "{page}");
    let list = http.call("GET", "/jobs?state=ready&tube=web", None).body;
    assert!(
        !list.contains("<script>alert") && list.contains("&lt;script&gt;"),
        "{list}"
    );
}

#[test]
fn the_readme_curl_examples_run_against_a_server() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## HTTP API, dashboard and metrics")
        .nth(1)
        .expect("the README's HTTP section")
        .split("\n## ")
        .next()
        .unwrap();
    let script = section
        .split("```sh\n")
        .nth(1)
        .expect("a sh block of curl examples")
        .split("```")
        .next()
        .unwrap();
    assert!(script.matches("curl ").count() >= 10, "{script}");
    let http = Http::start(Over::File, "");
    let script = format!("set -e\n{}", script.replace("127.0.0.1:8080", &http.address));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the README's curl examples failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        http.call("GET", "/api/jobs/1", None).status,
        404,
        "the last example deleted job 1"
    );
}

/// `pulpo status ID --json` on the server's queue: the job's state and record.
fn status(http: &Http, id: u64) -> Value {
    let out = http_process::pulpo(http.path(), &["status", &id.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pulpo status {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// With `[history]` on: a delete through the API, by id or in bulk, records a waiting job as
/// cancelled, as `pulpo delete` does; and a job's detail carries its record (attempts with
/// their errors, the outcome), still there once the job has left the queue.
fn deletes_and_details_with_records(over: Over) {
    let records = tempfile::tempdir().unwrap();
    let http = Http::start(
        over,
        &format!(
            "\n[history]\nenabled = true\npath = \"{}\"\n",
            records.path().display()
        ),
    );
    let by_id = publish(&http, "ok", "one");
    let in_bulk = publish(&http, "ok", "two");
    let deleted = http.call("DELETE", &format!("/api/jobs/{by_id}"), None);
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let bulk = http.call(
        "POST",
        "/api/tubes/web/bulk",
        Some(&json!({"action": "delete", "state": "ready"}).to_string()),
    );
    assert_eq!(bulk.status, 200, "{}", bulk.body);
    assert_eq!(bulk.json()["done"][0]["id"], in_bulk, "{}", bulk.body);
    for id in [by_id, in_bulk] {
        let status = status(&http, id);
        assert_eq!(status["state"], "cancelled", "job {id}: {status}");
        assert_eq!(status["record"]["request_type"], "ok", "job {id}: {status}");
    }

    // A failed job's detail has its attempt with the error; a succeeded job, gone from the
    // queue, still has one from its record; a cancelled one too.
    let boom = publish(&http, "boom", "fails");
    let ok = publish(&http, "ok", "works");
    http.run_once();
    let detail = http.call("GET", &format!("/api/jobs/{boom}"), None);
    assert_eq!(detail.status, 200, "{}", detail.body);
    let detail = detail.json();
    assert_eq!(detail["state"], "buried", "{detail}");
    assert_eq!(detail["record"]["outcome"], "buried", "{detail}");
    let attempts = detail["record"]["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{detail}");
    assert!(
        attempts[0]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{detail}"
    );
    for (id, outcome) in [(ok, "succeeded"), (by_id, "cancelled")] {
        let detail = http.call("GET", &format!("/api/jobs/{id}"), None);
        assert_eq!(detail.status, 200, "job {id}: {}", detail.body);
        let detail = detail.json();
        assert_eq!(detail["state"], outcome, "{detail}");
        assert_eq!(detail["record"]["outcome"], outcome, "{detail}");
        assert!(detail.get("message").is_none(), "{detail}");
    }
    let page = http.call("GET", &format!("/jobs/{ok}"), None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("succeeded"), "{}", page.body);
    // A job neither in the queue nor in the records is still not found.
    let unknown = http.call("GET", "/api/jobs/999999", None);
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}

#[test]
fn api_deletes_record_cancelled_and_details_show_records_over_the_file_queue() {
    deletes_and_details_with_records(Over::File);
}

#[test]
fn api_deletes_record_cancelled_and_details_show_records_over_beanstalkd() {
    deletes_and_details_with_records(Over::Beanstalkd(Beanstalkd::start()));
}
