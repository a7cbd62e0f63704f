//! The smallest program with a handler kind of its own: the README's first handler.
use std::sync::Arc;

use pulpo::{Context, Handler, Message, Outcome, Registry};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Greet {
    greeting: String, // from [handlers.<request_type>]: greeting = "Hello"
}

fn main() -> std::process::ExitCode {
    let mut registry = Registry::with_builtins();
    registry.register("greet", |settings| {
        let greet = Arc::new(settings.options_as::<Greet>()?); // errors name the key
        Ok(Arc::new(move |message: Message, context: Context| {
            let greet = greet.clone();
            async move {
                let Some(name) = message.payload_str() else {
                    return Outcome::fatal("greet needs a string payload"); // buried
                };
                println!("{} {name}! (job {})", greet.greeting, context.job_id);
                Outcome::success() // the runner deletes the job
            }
        }) as Arc<dyn Handler>)
    });
    pulpo::cli::main_with(registry) // the whole pulpo command line, with "greet"
}
