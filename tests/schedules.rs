//! Schedules fired by real `pulpo run` processes, on both queues: three
//! runners and a 1-second schedule publish each tick exactly once, and when
//! the leader is killed with SIGKILL another takes over within the token's
//! TTR plus one tick, firing no tick twice; `catch_up` after downtime; and
//! `overlap = "skip"`. The schedules fire into tubes no runner watches, so
//! the test finds every fired job where it was put.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pulpo::config::{Overrides, load_file};
use pulpo::message::{Message, SCHEDULE_MISSED_KEY};
use pulpo::queue::leader::TOKEN_TTR;
use pulpo_testkit::Beanstalkd;
use pulpo_testkit::output::clean_command;

/// Which queue a scenario runs on.
enum On {
    File,
    Beanstalkd(Beanstalkd),
}

impl On {
    fn table(&self, dir: &Path) -> String {
        match self {
            On::File => format!(
                "queue = \"file\"\n[file]\npath = \"{}\"\n",
                dir.join("queue").display()
            ),
            On::Beanstalkd(server) => format!(
                "queue = \"beanstalkd\"\n[beanstalkd]\naddress = \"{}\"\n",
                server.address()
            ),
        }
    }
}

fn beanstalkd() -> On {
    On::Beanstalkd(Beanstalkd::start())
}

/// A config file in `dir`: the queue, a runner that never stops by itself
/// and watches a tube nobody fires into, and `schedules`.
fn config(dir: &Path, on: &On, schedules: &str) -> PathBuf {
    let text = format!(
        "watch = [\"work\"]\nconcurrency = 1\nsleep_duration = \"1s\"\n\
         shutdown_after_number_of_empty_iterations = 0\nshutdown_timeout = \"1s\"\n{}{schedules}",
        on.table(dir)
    );
    let path = dir.join("pulpo.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A `pulpo run` on `config`, logging to `log`.
fn runner(dir: &Path, config: &Path, log: &Path) -> Child {
    runner_with(dir, config, log, &[])
}

/// [`runner`] with more environment variables.
fn runner_with(dir: &Path, config: &Path, log: &Path, env: &[(&str, &str)]) -> Child {
    let mut cmd = clean_command(
        env!("CARGO_BIN_EXE_pulpo"),
        dir,
        &["--config", config.to_str().unwrap(), "run"],
    );
    cmd.envs(env.iter().copied())
        .env("PULPO_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    cmd.spawn().unwrap()
}

fn stop(child: &mut Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "runner {} did not stop", child.id());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fired job: its message and when it was put (to the second).
struct FiredJob {
    message: Message,
    put_at: DateTime<Utc>,
}

/// Every job in `tube`, taken out of the queue.
fn fired_in(config: &Path, tube: &str) -> Vec<FiredJob> {
    let settings = load_file(Some(config), &Overrides::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut queue = pulpo::queue::open(&settings).await.unwrap();
        let mut jobs = Vec::new();
        let watch = [tube.to_owned()];
        while let Some(job) = queue.reserve(&watch, Duration::ZERO).await.unwrap() {
            let stats = queue.stats_job(job.id).await.unwrap();
            let put_at = Utc::now() - chrono::Duration::from_std(stats.age).unwrap();
            jobs.push(FiredJob {
                message: Message::from_json(&job.body).unwrap(),
                put_at,
            });
            queue.delete(job.id).await.unwrap();
        }
        jobs
    })
}

/// The ticks of `jobs` by time, counting duplicates.
fn ticks(jobs: &[FiredJob], schedule: &str) -> BTreeMap<DateTime<Utc>, usize> {
    let mut ticks = BTreeMap::new();
    for job in jobs {
        let (name, tick) = job
            .message
            .schedule()
            .expect("a fired message names its schedule and tick");
        if name == schedule {
            *ticks.entry(tick).or_insert(0) += 1;
        }
    }
    ticks
}

fn wait_for_line(log: &Path, line: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::fs::read_to_string(log).unwrap_or_default().contains(line) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Three runners, a 1-second schedule; the leader is killed with SIGKILL
/// after 12 s, and the run goes on to at least 30 ticks.
fn three_runners_fire_each_tick_once(on: On) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &on,
        "[[schedules]]\nname = \"tick\"\ncron = \"* * * * * *\"\nrequest_type = \"tick\"\ntube = \"ticks\"\n",
    );
    let logs: Vec<PathBuf> = (0..3)
        .map(|n| dir.path().join(format!("runner{n}.log")))
        .collect();
    let mut runners: Vec<Child> = logs.iter().map(|log| runner(dir.path(), &config, log)).collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(12));
    let leader = (0..3)
        .find(|&n| {
            std::fs::read_to_string(&logs[n])
                .unwrap()
                .contains("this runner leads")
        })
        .expect("a runner leads");
    runners[leader].kill().unwrap();
    let killed_at = Utc::now();
    runners[leader].wait().unwrap();
    assert!(
        (0..3).any(|n| n != leader
            && wait_for_line(&logs[n], "this runner leads", TOKEN_TTR + Duration::from_secs(2))),
        "no runner took the lead after the leader was killed"
    );
    std::thread::sleep(Duration::from_secs(32).saturating_sub(started.elapsed()));
    for (n, runner) in runners.iter_mut().enumerate() {
        if n != leader {
            stop(runner);
        }
    }
    let jobs = fired_in(&config, "ticks");
    let ticks = ticks(&jobs, "tick");
    let twice: Vec<_> = ticks.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "ticks fired more than once: {twice:?}");
    assert!(ticks.len() >= 30, "only {} ticks fired: {ticks:?}", ticks.len());
    let times: Vec<_> = ticks.keys().copied().collect();
    let gaps: Vec<_> = times
        .windows(2)
        .filter(|w| w[1] - w[0] != chrono::Duration::seconds(1))
        .collect();
    assert!(gaps.is_empty(), "ticks missing between {gaps:?}");
    // The first tick after the kill was put within the token's TTR plus one
    // tick (plus a second for the job's age, counted in whole seconds).
    let first_after = jobs
        .iter()
        .filter(|job| job.message.schedule().unwrap().1 > killed_at)
        .min_by_key(|job| job.message.schedule().unwrap().1)
        .expect("ticks after the kill");
    let late = first_after.put_at - first_after.message.schedule().unwrap().1;
    let limit = chrono::Duration::from_std(TOKEN_TTR + Duration::from_secs(2)).unwrap();
    assert!(
        late <= limit,
        "the first tick after the kill was put {late} after its time"
    );
}

#[test]
fn three_runners_fire_each_tick_once_on_the_file_queue() {
    three_runners_fire_each_tick_once(On::File);
}

#[test]
fn three_runners_fire_each_tick_once_on_beanstalkd() {
    three_runners_fire_each_tick_once(beanstalkd());
}

/// A runner fires for 4 s, stops, is down for 5 s (ticks older than the
/// 2 s grace are missed), and runs 3 s more: `catch_up = "once"` fires one
/// message for the missed ticks, `"none"` none; meanwhile `overlap =
/// "skip"` fires nothing while its first job waits, and `"allow"` fires on.
fn catch_up_and_overlap(on: On) {
    let dir = tempfile::tempdir().unwrap();
    let every = "cron = \"* * * * * *\"\nrequest_type = \"tick\"\ngrace = \"2s\"\n";
    let config = config(
        dir.path(),
        &on,
        &format!(
            "[[schedules]]\nname = \"once\"\ntube = \"once\"\ncatch_up = \"once\"\n{every}\
             [[schedules]]\nname = \"none\"\ntube = \"none\"\ncatch_up = \"none\"\n{every}\
             [[schedules]]\nname = \"skip\"\ntube = \"skip\"\noverlap = \"skip\"\n{every}\
             [[schedules]]\nname = \"allow\"\ntube = \"allow\"\noverlap = \"allow\"\n{every}"
        ),
    );
    let log = dir.path().join("runner.log");
    let mut first = runner(dir.path(), &config, &log);
    std::thread::sleep(Duration::from_secs(4));
    stop(&mut first);
    let stopped_at = Utc::now();
    std::thread::sleep(Duration::from_secs(5));
    let mut second = runner(dir.path(), &config, &log);
    std::thread::sleep(Duration::from_secs(3));
    stop(&mut second);

    let once = fired_in(&config, "once");
    let catch_ups: Vec<_> = once
        .iter()
        .filter(|job| job.message.header.extra.contains_key(SCHEDULE_MISSED_KEY))
        .collect();
    assert_eq!(
        catch_ups.len(),
        1,
        "catch_up = \"once\" fired {} catch-ups: {:?} (stopped at {stopped_at})",
        catch_ups.len(),
        catch_ups
            .iter()
            .map(|job| (
                job.message.schedule().unwrap().1,
                job.message.header.extra[SCHEDULE_MISSED_KEY].clone()
            ))
            .collect::<Vec<_>>()
    );
    let missed = catch_ups[0].message.header.extra[SCHEDULE_MISSED_KEY]
        .as_u64()
        .unwrap();
    assert!(
        (2..=7).contains(&missed),
        "{missed} ticks missed in about 5 s down"
    );
    assert!(ticks(&once, "once").values().all(|n| *n == 1));

    let none = fired_in(&config, "none");
    assert!(
        none.iter()
            .all(|job| !job.message.header.extra.contains_key(SCHEDULE_MISSED_KEY))
    );
    let none_ticks: Vec<_> = ticks(&none, "none").into_keys().collect();
    let gap = none_ticks.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        gap >= chrono::Duration::seconds(3),
        "catch_up = \"none\" left no gap: {none_ticks:?}"
    );
    assert!(
        none_ticks.iter().any(|t| *t > stopped_at),
        "nothing fired after the restart"
    );

    let skip = fired_in(&config, "skip");
    assert_eq!(skip.len(), 1, "overlap = \"skip\" fired while its job waited");
    let allow = fired_in(&config, "allow");
    assert!(allow.len() >= 5, "overlap = \"allow\" fired only {}", allow.len());
}

#[test]
fn catch_up_and_overlap_on_the_file_queue() {
    catch_up_and_overlap(On::File);
}

#[test]
fn catch_up_and_overlap_on_beanstalkd() {
    catch_up_and_overlap(beanstalkd());
}

/// `pulpo` with `args` in `dir`, without the caller's `PULPO_*` variables.
fn pulpo(dir: &Path, args: &[&str]) -> std::process::Output {
    clean_command(env!("CARGO_BIN_EXE_pulpo"), dir, args)
        .output()
        .unwrap()
}

/// The stdout of `pulpo args`, which must succeed.
fn pulpo_ok(dir: &Path, args: &[&str]) -> String {
    pulpo_testkit::output::stdout_of_success(&format!("pulpo {args:?}"), pulpo(dir, args))
}

/// `pulpo schedules --json` lists each schedule with its next fire times
/// (in its zone) and, once a runner fired it, the last tick and its job.
#[test]
fn pulpo_schedules_shows_next_and_last_fired() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &On::File,
        "[[schedules]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\nrequest_type = \"r\"\n\
         [[schedules]]\nname = \"tick\"\ncron = \"* * * * * *\"\nrequest_type = \"r\"\ntube = \"ticks\"\n",
    );
    let config = config.to_str().unwrap();
    let out = pulpo_ok(dir.path(), &["--config", config, "schedules", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let nightly = &doc["schedules"][0];
    assert_eq!(nightly["name"], "nightly");
    assert_eq!(nightly["last_fired"], serde_json::Value::Null);
    let next: Vec<DateTime<Utc>> = nightly["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(next.len(), 3);
    for at in &next {
        use chrono::Timelike;
        let berlin = at.with_timezone(&chrono_tz::Europe::Berlin);
        assert_eq!((berlin.hour(), berlin.minute()), (3, 0), "{at}");
    }
    let log = dir.path().join("runner.log");
    let mut run = runner(dir.path(), Path::new(config), &log);
    std::thread::sleep(Duration::from_secs(3));
    stop(&mut run);
    let out = pulpo_ok(dir.path(), &["--config", config, "schedules", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tick = &doc["schedules"][1]["last_fired"];
    assert!(
        tick["job"].as_u64().is_some() && tick["tick"].is_string(),
        "{doc}"
    );
    let human = pulpo_ok(dir.path(), &["--config", config, "schedules"]);
    assert!(
        human.contains("nightly") && human.contains("last fired never"),
        "{human}"
    );
}

/// `pulpo publish --at` takes a local `YYYY-MM-DD HH:MM` or RFC 3339 time
/// and stores the job delayed until then; a past or unreadable time is a
/// usage error naming it.
#[test]
fn publish_at_an_absolute_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &On::File, "");
    let config = config.to_str().unwrap();
    let at = chrono::Local::now() + chrono::Duration::hours(2);
    let local = at.format("%Y-%m-%d %H:%M").to_string();
    let out = pulpo_ok(dir.path(), &["--config", config, "publish", "r", "--at", &local]);
    let id = out
        .split_whitespace()
        .find_map(|w| w.parse::<u64>().ok())
        .expect("an id");
    let stats = pulpo_ok(
        dir.path(),
        &["--config", config, "stats-job", &id.to_string(), "--json"],
    );
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["state"], "delayed", "{stats}");
    let peek = pulpo_ok(
        dir.path(),
        &["--config", config, "peek", &id.to_string(), "--json"],
    );
    let expected = at.format("%Y-%m-%dT%H:%M").to_string();
    let delay = serde_json::from_str::<serde_json::Value>(&peek).unwrap()["message"]["header"]["delay"]
        .as_str()
        .unwrap()
        .to_owned();
    let delay: DateTime<chrono::Local> = delay.parse::<DateTime<Utc>>().unwrap().into();
    assert_eq!(delay.format("%Y-%m-%dT%H:%M").to_string(), expected);

    let rfc = (Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    assert!(
        pulpo(dir.path(), &["--config", config, "publish", "r", "--at", &rfc])
            .status
            .success()
    );
    for (bad, says) in [
        ("2020-01-01 10:00", "that time has passed"),
        ("tomorrow", "is not a time"),
    ] {
        let out = pulpo(dir.path(), &["--config", config, "publish", "r", "--at", bad]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && err.lines().count() == 1, "{err}");
    }
}

/// The README's schedules example is a config pulpo reads, and `pulpo
/// schedules` lists it.
#[test]
fn the_readme_schedules_example_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("\n## Schedules\n").expect("a Schedules section")..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let toml = &section[start..start + section[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &On::File, toml);
    let out = pulpo_ok(dir.path(), &["--config", config.to_str().unwrap(), "schedules"]);
    assert!(
        out.contains("nightly-report") && out.contains("Europe/Berlin"),
        "{out}"
    );
}

/// A runner started with `PULPO_SCHEDULES=false` takes no part: alone on
/// the queue, it fires nothing.
#[test]
fn a_runner_with_schedules_false_fires_none() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &On::File,
        "[[schedules]]\nname = \"tick\"\ncron = \"* * * * * *\"\nrequest_type = \"r\"\ntube = \"ticks\"\n",
    );
    let log = dir.path().join("runner.log");
    let mut run = runner_with(dir.path(), &config, &log, &[("PULPO_SCHEDULES", "false")]);
    std::thread::sleep(Duration::from_millis(2500));
    stop(&mut run);
    assert!(fired_in(&config, "ticks").is_empty());
}

/// A tick the last leader recorded but may not have published (it died
/// between the two) is not fired again by the next leader: it is logged as
/// possibly lost, and firing goes on from the next tick.
#[test]
fn a_tick_recorded_but_not_published_is_not_fired_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &On::File,
        "[[schedules]]\nname = \"tick\"\ncron = \"* * * * * *\"\nrequest_type = \"r\"\ntube = \"ticks\"\n",
    );
    pulpo_ok(dir.path(), &["--config", config.to_str().unwrap(), "stats"]);
    let now = Utc::now();
    let recorded = now - chrono::Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
    let state = serde_json::json!({"seq": 7, "fired": {"tick": {"tick": recorded.to_rfc3339()}}});
    std::fs::write(dir.path().join("queue/schedules.json"), state.to_string()).unwrap();
    let log = dir.path().join("runner.log");
    let mut run = runner(dir.path(), &config, &log);
    std::thread::sleep(Duration::from_millis(2500));
    stop(&mut run);
    let fired = ticks(&fired_in(&config, "ticks"), "tick");
    assert!(
        !fired.contains_key(&recorded),
        "the recorded tick fired again: {fired:?}"
    );
    assert_eq!(
        fired.keys().next(),
        Some(&(recorded + chrono::Duration::seconds(1))),
        "{fired:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("may be lost"), "{text}");
}
