//! The dashboard in a real browser: Debian's chromium, headless, driven through chromedriver
//! (WebDriver) by fantoccini. A person opens the overview, follows the buried count to the
//! buried jobs and sees the reason, searches by payload text, retries a job and sees it ready,
//! and publishes from the form. The browser's screenshot of the overview is written to
//! `$CARGO_TARGET_TMPDIR/dashboard.png` (docs/dashboard.png is one).

#[path = "http_process/mod.rs"]
mod http_process;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use http_process::{Http, Over};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver on a free port, stopped by its pid when dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let port = pulpo_testkit::free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        port,
        _profile: tempfile::tempdir().unwrap(),
    }
}

async fn browser(driver: &Driver) -> Client {
    let profile = driver._profile.path().display().to_string();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,860", format!("--user-data-dir={profile}"),
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromium session through chromedriver")
}

async fn text(client: &Client, css: &str) -> String {
    client
        .wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn publish(http: &Http, tube: &str, request_type: &str, payload: &str) {
    let body = json!({"request_type": request_type, "payload": payload}).to_string();
    let reply = http.call("POST", &format!("/api/tubes/{tube}/jobs"), Some(&body));
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_searches_retries_and_publishes_jobs_in_the_dashboard() {
    for needed in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(needed).exists() {
            pulpo_testkit::skip::skip(
                "a_person_sees_searches_retries_and_publishes_jobs_in_the_dashboard",
                &format!("{needed} is missing (Debian's chromium and chromium-driver)"),
            );
            return;
        }
    }
    let http = Http::start(Over::File, "");
    publish(&http, "web", "boom", "the needle job");
    publish(&http, "web", "boom", "hay");
    publish(&http, "web", "boom", "more hay");
    http.run_once();
    // Some company for the screenshot.
    for (tube, n) in [("emails", 12), ("reports", 3)] {
        for i in 0..n {
            publish(&http, tube, "ok", &format!("job {i}"));
        }
    }
    let driver = start_driver();
    let client = browser(&driver).await;
    let base = format!("http://{}", http.address);

    // The overview, with its live counts.
    client.goto(&format!("{base}/")).await.unwrap();
    let buried = text(&client, "tr[data-tube='web'] td[data-k='buried']").await;
    assert_eq!(buried, "3");
    let shot = client.screenshot().await.unwrap();
    std::fs::write(Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"), shot).unwrap();

    // Follow the buried count: the buried jobs, each with its reason.
    client
        .find(Locator::Css("tr[data-tube='web'] td[data-k='buried'] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let rows = client
        .wait()
        .for_element(Locator::Css("#jobs tbody tr[data-id]"))
        .await
        .unwrap();
    let reason = rows
        .find(Locator::Css("td.reason"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!reason.trim().is_empty(), "a buried job shows its reason");
    assert_eq!(
        client
            .find_all(Locator::Css("#jobs tbody tr[data-id]"))
            .await
            .unwrap()
            .len(),
        3
    );

    // Search by payload text.
    let grep = client
        .find(Locator::Css("#search input[name='grep']"))
        .await
        .unwrap();
    grep.send_keys("needle").await.unwrap();
    client
        .find(Locator::Css("#search button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("grep=needle")
    {
        assert!(Instant::now() < deadline, "the search did not load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let found = client
        .find_all(Locator::Css("#jobs tbody tr[data-id]"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].text().await.unwrap().contains("the needle job"));

    // Open it and retry it: the new job is ready.
    found[0]
        .find(Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text(&client, "#state").await, "buried");
    client
        .find(Locator::Css("#do-retry"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client.wait().for_element(Locator::Css(".flash")).await.unwrap();
    assert!(text(&client, ".flash").await.contains("retried"));
    assert_eq!(text(&client, "#state").await, "ready");

    // Publish from the form: the new job's page shows the message.
    client.goto(&format!("{base}/")).await.unwrap();
    let form = client.form(Locator::Css("#publish")).await.unwrap();
    form.set_by_name("request_type", "ok").await.unwrap();
    form.set_by_name("payload", "sent from the form <b>bold?</b>")
        .await
        .unwrap();
    client
        .find(Locator::Css("#publish button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let message = text(&client, "#message").await;
    assert!(message.contains("sent from the form <b>bold?</b>"), "{message}");
    assert_eq!(text(&client, "#state").await, "ready");
    assert!(text(&client, ".flash").await.contains("published"));

    client.close().await.unwrap();
}
