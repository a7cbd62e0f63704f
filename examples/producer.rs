//! A Rust producer: publishes one message to the queue `pulpo.toml` names
//! and prints the new job's id, as `pulpo publish` would.
//!
//! ```text
//! cargo run --example producer -- send_email "hello from Rust"
//! pulpo peek --ready
//! ```

use pulpo::{Message, Producer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let request_type = args.next().unwrap_or_else(|| "send_email".to_owned());
    let payload = args.next().unwrap_or_else(|| "hello from Rust".to_owned());

    // ./pulpo.toml (when present) and PULPO_ variables, as the CLI reads them;
    // Producer::from_settings(&settings) takes settings built another way.
    let mut producer = Producer::from_config(None).await?;
    let message = Message::new(request_type)
        .with_payload(payload)
        .with_body_field("to", "a@example.com")
        .with_source("examples/producer.rs");
    let id = producer.publish(message).await?;
    println!("{id}");
    Ok(())
}
