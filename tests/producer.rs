//! `pulpo::Producer` against a real beanstalkd: settings in, job ids out,
//! scheduled as `pulpo publish` schedules them; and its config errors.

use std::path::Path;
use std::time::Duration;

use pulpo::config::{self, QueueKind};
use pulpo::{Message, Producer, ProducerError};
use pulpo_testkit::Beanstalkd;

#[tokio::test]
async fn a_producer_publishes_to_the_configured_queue_and_tube() {
    let server = Beanstalkd::start();
    let text = "tube = \"mail\"\n[handlers.send_email]\nkind = \"success\"\npriority = 3\nttr = \"2m\"\n";
    let mut settings = config::from_toml_str(text, Path::new("pulpo.toml")).unwrap();
    settings.queue = QueueKind::Beanstalkd;
    settings.beanstalkd.address = server.address().parse().unwrap();
    let mut producer = Producer::from_settings(&settings).await.unwrap();

    let id = producer
        .publish(Message::new("send_email").with_payload("hello"))
        .await
        .unwrap();
    let other = producer
        .publish_to(
            "reports",
            Message::new("report").with_delay(chrono::Utc::now() + chrono::Duration::seconds(30)),
        )
        .await
        .unwrap();
    assert_ne!(id, other);

    let queue = producer.queue();
    let stats = queue.stats_job(id).await.unwrap();
    assert_eq!(
        (stats.tube.as_str(), stats.pri, stats.ttr),
        ("mail", 3, Duration::from_secs(120))
    );
    let stored = Message::from_json(&queue.peek(id).await.unwrap().body).unwrap();
    assert_eq!(stored.payload_str(), Some("hello"));
    let delayed = queue.stats_job(other).await.unwrap();
    assert_eq!(delayed.tube, "reports");
    assert_eq!(delayed.state.as_str(), "delayed");
}

#[tokio::test]
async fn a_producer_names_a_missing_config_file() {
    let err = Producer::from_config(Some(Path::new("/nonexistent/pulpo.toml")))
        .await
        .unwrap_err();
    assert!(matches!(err, ProducerError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/pulpo.toml"), "{err}");
}
