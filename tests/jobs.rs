//! The listing and bulk library (`pulpo::jobs`) on both queues: the file queue lists from its
//! index, beanstalkd by a bounded sweep over the ids. The same jobs, in every state, are listed
//! by state, order, cursor and each filter, and retried, kicked and deleted in bulk.

use std::process::{Command, Output};
use std::time::Duration;

use bytes::Bytes;
use pulpo::Message;
use pulpo::jobs::{self, Action, Cursor, JobQuery, JobState, Order};
use pulpo::queue::beanstalkd::BeanstalkdQueue;
use pulpo::queue::file::FileQueueAdapter;
use pulpo::queue::{NewJob, Queue, QueueError};
use pulpo_testkit::Beanstalkd;
use serde_json::{Value, json};

/// A queue to run the scenario on, with what keeps it alive.
/// Settings with `[history]` off: bulk deletes record nothing.
fn no_records() -> pulpo::config::Settings {
    pulpo::config::Settings::default()
}

struct Under {
    queue: Box<dyn Queue>,
    /// The `pulpo` flags that name this queue.
    flags: Vec<String>,
    _dir: Option<tempfile::TempDir>,
    _server: Option<Beanstalkd>,
}

async fn file() -> Under {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let queue = FileQueueAdapter::open(&path, false, 65536).await.unwrap();
    Under {
        queue: Box::new(queue),
        flags: vec![
            "--queue".into(),
            "file".into(),
            "--path".into(),
            path.display().to_string(),
        ],
        _dir: Some(dir),
        _server: None,
    }
}

async fn beanstalkd() -> Under {
    let server = Beanstalkd::start();
    let queue = BeanstalkdQueue::connect(&server.address(), Duration::from_secs(5))
        .await
        .unwrap();
    Under {
        queue: Box::new(queue),
        flags: vec![
            "--queue".into(),
            "beanstalkd".into(),
            "--address".into(),
            server.address(),
        ],
        _dir: None,
        _server: Some(server),
    }
}

fn message(request_type: &str, payload: &str) -> Bytes {
    Bytes::from(Message::new(request_type).with_payload(payload).to_json())
}

/// A job whose priority keeps it behind every job put to be reserved at once (`urgent`).
fn new_job(body: Bytes, delay: Duration, urgent: bool) -> NewJob {
    NewJob {
        priority: if urgent { 10 } else { 1000 },
        delay,
        ttr: Duration::from_secs(600),
        body,
    }
}

/// The ids of tube `t`'s jobs, by their place in [`fill`]'s plan.
struct Jobs {
    ids: Vec<u64>,
}

impl Jobs {
    fn of(&self, places: &[usize]) -> Vec<u64> {
        places.iter().map(|&p| self.ids[p]).collect()
    }
}

enum Then {
    Bury(&'static str),
    Ready,
    Delay,
    Reserve,
}

/// Fills tube `t` (and one job of tube `u`):
/// 0 email buried "smtp down", 1 sms buried "no credit", 2 email buried "smtp down",
/// 3 a foreign body buried "bad body", 4 email ready, 5 sms ready, 6 email delayed,
/// 7 email reserved, 8 email buried "smtp refused"; then tube `u`: an email buried.
async fn fill(queue: &mut dyn Queue) -> Jobs {
    let plan: Vec<(&str, Bytes, Then)> = vec![
        ("t", message("email", "alice"), Then::Bury("smtp down")),
        ("t", message("sms", "bob"), Then::Bury("no credit")),
        ("t", message("email", "carol"), Then::Bury("smtp down")),
        (
            "t",
            Bytes::from_static(b"plain hello, not a message"),
            Then::Bury("bad body"),
        ),
        ("t", message("email", "dave"), Then::Ready),
        ("t", message("sms", "erin"), Then::Ready),
        ("t", message("email", "frank"), Then::Delay),
        ("t", message("email", "grace"), Then::Reserve),
        ("t", message("email", "heidi"), Then::Bury("smtp refused")),
        ("u", message("email", "ivan"), Then::Bury("smtp down")),
    ];
    let mut ids = Vec::new();
    for (tube, body, then) in plan {
        let delay = match then {
            Then::Delay => Duration::from_secs(3600),
            _ => Duration::ZERO,
        };
        let urgent = matches!(then, Then::Bury(_) | Then::Reserve);
        let id = queue.put(tube, new_job(body, delay, urgent)).await.unwrap();
        if urgent {
            let got = queue
                .reserve(&[tube.to_owned()], Duration::ZERO)
                .await
                .unwrap()
                .expect("a ready job");
            assert_eq!(got.id, id, "the urgent job just put is reserved first");
            if let Then::Bury(reason) = then {
                queue.bury(id, 10, Some(reason)).await.unwrap();
            }
        }
        if tube == "t" {
            ids.push(id);
        }
    }
    Jobs { ids }
}

fn ids(page: &jobs::JobPage) -> Vec<u64> {
    page.jobs.iter().map(|j| j.id).collect()
}

fn query(state: JobState) -> JobQuery {
    JobQuery::new("t", state)
}

/// Listing by each state, both orders, and paging with the cursor.
async fn jobs_are_listed_by_state_order_and_cursor(mut under: Under) {
    let q = under.queue.as_mut();
    let jobs = fill(q).await;
    for (state, places) in [
        (JobState::Buried, vec![0, 1, 2, 3, 8]),
        (JobState::Ready, vec![4, 5]),
        (JobState::Delayed, vec![6]),
        (JobState::Reserved, vec![7]),
    ] {
        let page = jobs::list(q, &query(state)).await.unwrap();
        assert_eq!(ids(&page), jobs.of(&places), "{state} jobs, oldest first");
        assert_eq!(page.next, None, "{state}: nothing left");
        assert!(!page.looked.bounded);
        assert!(page.jobs.iter().all(|j| j.state == state && j.stats.tube == "t"));
        let mut newest = query(state);
        newest.order = Order::Newest;
        let page = jobs::list(q, &newest).await.unwrap();
        let mut reversed = jobs.of(&places);
        reversed.reverse();
        assert_eq!(ids(&page), reversed, "{state} jobs, newest first");
    }
    // Pages of two, each starting after the cursor of the one before, in both orders.
    for order in [Order::Oldest, Order::Newest] {
        let mut paged = query(JobState::Buried);
        paged.order = order;
        paged.limit = 2;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = jobs::list(q, &paged).await.unwrap();
            assert!(page.jobs.len() <= 2);
            seen.extend(ids(&page));
            pages += 1;
            match page.next {
                Some(next) => paged.cursor = Some(next.to_string().parse::<Cursor>().unwrap()),
                None => break,
            }
            assert!(pages < 10, "the cursor moves on");
        }
        let mut want = jobs.of(&[0, 1, 2, 3, 8]);
        if order == Order::Newest {
            want.reverse();
        }
        assert_eq!(seen, want, "{order:?}: every buried job once, in order");
    }
    // A listed job carries its body and, as JSON, its message.
    let page = jobs::list(q, &query(JobState::Delayed)).await.unwrap();
    let doc = page.to_json();
    assert_eq!(doc["jobs"][0]["message"]["body"]["payload"], "frank", "{doc}");
    assert_eq!(doc["next"], serde_json::Value::Null);
}

/// The type and grep filters (on both queues), and the reason filter where the queue keeps
/// reasons.
async fn jobs_are_filtered_by_type_body_and_reason(mut under: Under) {
    let q = under.queue.as_mut();
    let jobs = fill(q).await;
    let mut typed = query(JobState::Buried);
    typed.request_type = Some("email".into());
    assert_eq!(ids(&jobs::list(q, &typed).await.unwrap()), jobs.of(&[0, 2, 8]));
    typed.request_type = Some("sms".into());
    assert_eq!(ids(&jobs::list(q, &typed).await.unwrap()), jobs.of(&[1]));
    let mut grep = query(JobState::Buried);
    grep.grep = Some("hello".into());
    assert_eq!(
        ids(&jobs::list(q, &grep).await.unwrap()),
        jobs.of(&[3]),
        "the foreign body"
    );
    grep.grep = Some("carol".into());
    grep.request_type = Some("email".into());
    assert_eq!(ids(&jobs::list(q, &grep).await.unwrap()), jobs.of(&[2]));
    let mut reason = query(JobState::Buried);
    reason.reason = Some("smtp".into());
    if q.capabilities().keeps_reasons {
        let page = jobs::list(q, &reason).await.unwrap();
        assert_eq!(ids(&page), jobs.of(&[0, 2, 8]));
        assert_eq!(page.jobs[2].reason(), Some("smtp refused"));
    } else {
        let err = jobs::list(q, &reason).await.unwrap_err();
        assert!(matches!(err, QueueError::InvalidArgument(_)), "{err:?}");
        assert!(
            err.to_string().contains("keeps no release or bury reasons"),
            "{err}"
        );
    }
}

/// A page looks at no more than its budget, says so, and goes on from its cursor.
async fn a_page_looks_at_no_more_than_its_budget(mut under: Under) {
    let q = under.queue.as_mut();
    let jobs = fill(q).await;
    let mut small = query(JobState::Buried);
    small.budget = 3;
    let page = jobs::list(q, &small).await.unwrap();
    // The file queue looks at the tube's buried jobs only, a sweep at every id: here the first
    // three ids are the first three buried jobs either way.
    let last = jobs.ids[2];
    assert_eq!(ids(&page), jobs.of(&[0, 1, 2]));
    assert!(page.looked.bounded, "{:?}", page.looked);
    assert_eq!(page.looked.first, Some(jobs.ids[0]));
    assert_eq!(page.looked.last, Some(last));
    assert_eq!(page.next.map(Cursor::id), Some(last));
    small.cursor = page.next;
    let page = jobs::list(q, &small).await.unwrap();
    if !page.looked.swept {
        // Two buried jobs are left: within the budget.
        assert_eq!(ids(&page), jobs.of(&[3, 8]));
        assert!(!page.looked.bounded);
        assert_eq!(page.next, None);
        return;
    }
    // The sweep looks at the next three ids: one buried job of t, two ready ones.
    assert_eq!(ids(&page), jobs.of(&[3]), "{:?}", page.looked);
    assert!(page.looked.bounded);
    assert_eq!(page.looked.last, Some(jobs.ids[5]));
    // A generous budget reaches the end, past tube u's job.
    small.budget = 1000;
    small.cursor = page.next;
    let page = jobs::list(q, &small).await.unwrap();
    assert_eq!(ids(&page), jobs.of(&[8]));
    assert!(!page.looked.bounded);
    assert_eq!(page.next, None);
}

/// Retry, kick and delete in bulk, with a dry run first and a cap.
async fn bulk_actions_take_every_match_up_to_the_cap(mut under: Under) {
    let q = under.queue.as_mut();
    let jobs = fill(q).await;
    let mut email = query(JobState::Buried);
    email.request_type = Some("email".into());
    let dry = jobs::bulk(q, &no_records(), Action::Retry, &email, true, 100)
        .await
        .unwrap();
    assert_eq!((dry.matched, dry.done.len(), dry.capped), (3, 0, false));
    assert_eq!(
        q.stats_tube("t").await.unwrap().current_jobs_buried,
        5,
        "a dry run changes nothing"
    );

    let capped = jobs::bulk(q, &no_records(), Action::Retry, &email, false, 1)
        .await
        .unwrap();
    assert_eq!((capped.matched, capped.done.len(), capped.capped), (1, 1, true));
    assert_eq!(capped.done[0].id, jobs.ids[0]);
    let copy = capped.done[0].new_id.expect("a retry's copy");
    let copied = q.stats_job(copy).await.unwrap();
    assert_eq!(
        (copied.state, copied.reserves),
        (JobState::Ready, 0),
        "a fresh set of attempts"
    );

    let rest = jobs::bulk(q, &no_records(), Action::Retry, &email, false, 100)
        .await
        .unwrap();
    assert_eq!(
        rest.done.iter().map(|d| d.id).collect::<Vec<_>>(),
        jobs.of(&[2, 8])
    );
    assert!(rest.failed.is_empty() && !rest.capped);

    let mut hello = query(JobState::Buried);
    hello.grep = Some("hello".into());
    let kicked = jobs::bulk(q, &no_records(), Action::Kick, &hello, false, 100)
        .await
        .unwrap();
    assert_eq!(kicked.done.len(), 1);
    assert_eq!(q.stats_job(jobs.ids[3]).await.unwrap().state, JobState::Ready);

    let mut sms = query(JobState::Buried);
    sms.request_type = Some("sms".into());
    let deleted = jobs::bulk(q, &no_records(), Action::Delete, &sms, false, 100)
        .await
        .unwrap();
    assert_eq!(deleted.done.len(), 1);
    assert!(matches!(
        q.stats_job(jobs.ids[1]).await,
        Err(QueueError::JobNotFound { .. })
    ));
    assert_eq!(q.stats_tube("t").await.unwrap().current_jobs_buried, 0);
    // A job another worker holds is not deleted: it is reported, and the rest go on.
    let mut other = under.another().await;
    let held = jobs::bulk(
        other.as_mut(),
        &no_records(),
        Action::Delete,
        &query(JobState::Reserved),
        false,
        100,
    )
    .await
    .unwrap();
    assert_eq!((held.matched, held.done.len()), (1, 0), "{held:?}");
    assert_eq!(held.failed[0].id, jobs.ids[7]);
    let q = under.queue.as_mut();
    assert_eq!(q.stats_job(jobs.ids[7]).await.unwrap().state, JobState::Reserved);
    // Tube u's buried email was never touched.
    assert_eq!(q.stats_tube("u").await.unwrap().current_jobs_buried, 1);
}

/// Bad input is refused before anything is looked at, naming the input.
async fn bad_listing_input_is_refused_by_name(mut under: Under) {
    let q = under.queue.as_mut();
    fill(q).await;
    let refused = |err: QueueError, words: &str| {
        assert!(matches!(err, QueueError::InvalidArgument(_)), "{err:?}");
        assert!(err.to_string().contains(words), "{err} lacks {words:?}");
    };
    let mut bad = query(JobState::Buried);
    bad.limit = 0;
    refused(jobs::list(q, &bad).await.unwrap_err(), "limit 0");
    bad.limit = 5000;
    refused(jobs::list(q, &bad).await.unwrap_err(), "limit 5000");
    let mut empty = query(JobState::Buried);
    empty.grep = Some(String::new());
    refused(jobs::list(q, &empty).await.unwrap_err(), "grep filter is empty");
    refused("abc".parse::<Cursor>().unwrap_err(), "cursor \"abc\"");
    let ready = query(JobState::Ready);
    refused(
        jobs::bulk(q, &no_records(), Action::Retry, &ready, true, 10)
            .await
            .unwrap_err(),
        "retry takes buried jobs",
    );
    refused(
        jobs::bulk(
            q,
            &no_records(),
            Action::Kick,
            &query(JobState::Reserved),
            true,
            10,
        )
        .await
        .unwrap_err(),
        "kick takes buried or delayed jobs",
    );
    refused(
        jobs::bulk(
            q,
            &no_records(),
            Action::Delete,
            &query(JobState::Buried),
            true,
            0,
        )
        .await
        .unwrap_err(),
        "cap 0",
    );
    let mut other = JobQuery::new("bad tube!", JobState::Buried);
    other.limit = 10;
    assert!(jobs::list(q, &other).await.is_err(), "a bad tube name");
}

impl Under {
    /// Another handle on the same queue (another worker: the jobs this one reserved are not
    /// its own).
    async fn another(&self) -> Box<dyn Queue> {
        match self.flags[1].as_str() {
            "file" => Box::new(
                FileQueueAdapter::open(std::path::Path::new(&self.flags[3]), false, 65536)
                    .await
                    .unwrap(),
            ),
            _ => Box::new(
                BeanstalkdQueue::connect(&self.flags[3], Duration::from_secs(5))
                    .await
                    .unwrap(),
            ),
        }
    }

    /// Runs `pulpo ARGS` on this queue, in an empty directory, without the test's own
    /// `PULPO_*` variables (config keys to pulpo).
    fn run(&self, args: &[&str]) -> Output {
        let cwd = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulpo"));
        cmd.current_dir(cwd.path()).args(&self.flags).args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("PULPO_") {
                cmd.env_remove(key);
            }
        }
        cmd.output().expect("run the pulpo binary")
    }

    /// Runs `pulpo --tube t ARGS` on this queue.
    fn pulpo(&self, args: &[&str]) -> Output {
        self.run(&[&["--tube", "t"], args].concat())
    }

    fn ok(&self, args: &[&str]) -> String {
        pulpo_testkit::output::stdout_of_success(&format!("pulpo {args:?}"), self.pulpo(args))
    }

    fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(&[args, &["--json"]].concat());
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{args:?}: not JSON ({err}): {text}"))
    }

    /// Runs a command that must fail with `code`; returns its stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.pulpo(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "pulpo {args:?}: {stderr}");
        stderr
    }
}

fn json_ids(doc: &Value, key: &str) -> Vec<u64> {
    doc[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {doc}"))
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect()
}

/// `pulpo jobs` and the filter mode of `retry`, `kick` and `delete`, with their usage errors.
async fn the_cli_lists_and_acts_on_filters(mut under: Under) {
    let jobs = fill(under.queue.as_mut()).await;
    let page = under.json(&["jobs", "--buried", "--type", "email"]);
    assert_eq!(json_ids(&page, "jobs"), jobs.of(&[0, 2, 8]), "{page}");
    let first = under.json(&["jobs", "--buried", "--limit", "2", "--newest"]);
    assert_eq!(json_ids(&first, "jobs"), jobs.of(&[8, 3]));
    let next = first["next"].as_str().expect("a cursor").to_owned();
    let rest = under.json(&["jobs", "--buried", "--newest", "--cursor", &next]);
    assert_eq!(json_ids(&rest, "jobs"), jobs.of(&[2, 1, 0]));
    let text = under.ok(&["jobs", "--buried", "--grep", "hello"]);
    assert!(text.contains("plain hello"), "{text}");
    if under.queue.capabilities().keeps_reasons {
        let text = under.ok(&["jobs", "--buried", "--reason", "credit"]);
        assert!(text.contains("reason: no credit"), "{text}");
    } else {
        let err = under.fails(&["jobs", "--buried", "--reason", "credit"], 1);
        assert!(err.contains("keeps no release or bury reasons"), "{err}");
        let text = under.ok(&["jobs", "--ready", "--budget", "2"]);
        assert!(text.contains("go on with --cursor 2"), "{text}");
    }

    let dry = under.ok(&["retry", "--type", "email", "--dry-run"]);
    assert_eq!(dry.trim(), "would retry 3 buried jobs in tube t");
    assert_eq!(
        under.json(&["jobs", "--buried"])["jobs"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let retried = under.json(&["retry", "--type", "email"]);
    assert_eq!(json_ids(&retried, "done"), jobs.of(&[0, 2, 8]), "{retried}");
    let kicked = under.ok(&["kick", "--grep", "hello"]);
    assert!(
        kicked.contains(&format!("kicked job {}", jobs.ids[3])),
        "{kicked}"
    );
    let deleted = under.json(&["delete", "--buried", "--type", "sms"]);
    assert_eq!(json_ids(&deleted, "done"), jobs.of(&[1]));
    assert_eq!(under.json(&["jobs", "--buried"])["jobs"], json!([]));

    for (args, words) in [
        (&["jobs"][..], "jobs needs a state"),
        (&["delete", "--type", "sms"], "delete with filters needs a state"),
        (&["delete", "5", "--buried"], "not both"),
        (
            &["delete", "--dry-run", "5"],
            "--dry-run and --newest go with filters",
        ),
        (&["jobs", "--buried", "--cursor", "abc"], "cursor \"abc\""),
        (&["retry"], "retry needs job ids"),
    ] {
        let err = under.fails(args, 2);
        assert!(err.contains(words), "pulpo {args:?}: {err}");
    }
    let err = under.fails(&["jobs", "--buried", "--limit", "0"], 1);
    assert!(err.contains("limit 0 is out of range"), "{err}");
    let err = under.fails(&["retry", "--ready", "--dry-run"], 1);
    assert!(err.contains("retry takes buried jobs"), "{err}");
}

macro_rules! on_both {
    ($($name:ident),*) => {
        mod file_queue {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::file().await).await
            })*
        }
        mod on_beanstalkd {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::beanstalkd().await).await
            })*
        }
    };
}

on_both!(
    jobs_are_listed_by_state_order_and_cursor,
    jobs_are_filtered_by_type_body_and_reason,
    a_page_looks_at_no_more_than_its_budget,
    bulk_actions_take_every_match_up_to_the_cap,
    bad_listing_input_is_refused_by_name,
    the_cli_lists_and_acts_on_filters
);

/// Splits a README command line into words: spaces separate, double quotes group; a `#`
/// after a space starts the comment, returned apart.
fn shell_words(line: &str) -> (Vec<String>, Option<String>) {
    let (command, comment) = match line.find("  #") {
        Some(at) => (
            &line[..at],
            Some(line[at..].trim_start_matches([' ', '#']).to_owned()),
        ),
        None => (line, None),
    };
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in command.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    (words, comment)
}

/// The README's listing examples run as written, in order, on a file queue with buried jobs in
/// the `default` tube, and print what their comments say.
#[tokio::test]
async fn the_readme_listing_examples_run() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("### Listing jobs and acting on many at once")
        .expect("the README's listing section");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];

    let mut under = file().await;
    let q = under.queue.as_mut();
    for (body, reason) in [
        (message("send_email", "ann@example.com"), "smtp down"),
        (message("send_email", "bob@example.com"), "smtp down"),
        (Bytes::from_static(b"not a message"), "bad body"),
    ] {
        let id = q
            .put("default", new_job(body, Duration::ZERO, true))
            .await
            .unwrap();
        let got = q.reserve(&["default".to_owned()], Duration::ZERO).await.unwrap();
        assert_eq!(got.map(|j| j.id), Some(id));
        q.bury(id, 10, Some(reason)).await.unwrap();
    }
    let mut ran = 0;
    for line in block.lines() {
        let (words, comment) = shell_words(line);
        assert_eq!(words[0], "pulpo", "{line}");
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        let out = pulpo_testkit::output::stdout_of_success(line, under.run(&args));
        if let Some(printed) = comment.as_deref().and_then(|c| c.strip_prefix("prints: ")) {
            assert_eq!(out.trim(), printed, "{line}");
        }
        ran += 1;
    }
    assert!(ran >= 6, "the block holds the examples");
    let q = under.queue.as_mut();
    assert_eq!(
        q.stats_tube("default").await.unwrap().current_jobs_buried,
        0,
        "retried and deleted"
    );
}
