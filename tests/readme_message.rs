//! The README's sample message is one a reader can publish as is: a pulpo
//! message whose dates will not have passed when they try it.

use chrono::{TimeZone, Utc};
use pulpo::Message;

/// The JSON block of the README's "Messages" section.
fn sample_message() -> String {
    let readme = include_str!("../README.md");
    let section = &readme[readme.find("\n## Messages\n").expect("a Messages section")..];
    let block = &section[section.find("```json\n").expect("a JSON block") + "```json\n".len()..];
    block[..block.find("```").unwrap()].to_owned()
}

#[test]
fn the_readme_sample_message_does_not_go_stale() {
    let text = sample_message();
    let message = Message::from_json(text.as_bytes()).unwrap_or_else(|err| panic!("{err}: {text}"));
    // Well after anyone reads this README.
    let decades_ahead = Utc.with_ymd_and_hms(2090, 1, 1, 0, 0, 0).unwrap();
    assert!(
        !message.is_expired(decades_ahead),
        "its expiration will pass: {text}"
    );
    let delay = message.header.delay.expect("the sample shows a delay");
    let expiration = message.header.expiration.expect("the sample shows an expiration");
    assert!(delay < expiration, "{text}");
}
