//! The sample handler kinds pulpo ships, for trying it out and for tests:
//! `echo`, `upper`, `lower` (write the payload to a new file), `success`,
//! `fail`, `transient` and `fifty_fifty`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::registry::Registry;
use crate::config::{ConfigError, HandlerSettings};
use crate::handlers::{Context, Handler, Outcome};
use crate::message::Message;

/// Adds the sample kinds to `registry`.
pub(crate) fn register(registry: &mut Registry) {
    for (kind, transform) in [
        ("echo", Transform::Same),
        ("upper", Transform::Upper),
        ("lower", Transform::Lower),
    ] {
        registry.register(kind, move |settings| write_payload(settings, transform));
    }
    registry.register("success", |settings| fixed(settings, Outcome::success));
    registry.register("fail", |settings| {
        fixed(settings, || Outcome::fatal("the fail handler always fails"))
    });
    registry.register("transient", |settings| {
        fixed(settings, || {
            Outcome::transient("the transient handler always fails transiently")
        })
    });
    registry.register("fifty_fifty", |settings| {
        fixed(settings, || {
            if coin_flip() {
                Outcome::success()
            } else {
                Outcome::transient("fifty_fifty lost the coin flip")
            }
        })
    });
}

/// A handler kind that takes no options must say so when given some.
fn no_options(settings: &HandlerSettings) -> Result<(), ConfigError> {
    match settings.options.keys().next() {
        Some(key) => Err(settings.option_error(
            key,
            format!("the {} handler takes no option {key:?}", settings.kind),
        )),
        None => Ok(()),
    }
}

fn fixed(settings: &HandlerSettings, outcome: fn() -> Outcome) -> Result<Arc<dyn Handler>, ConfigError> {
    no_options(settings)?;
    Ok(Arc::new(move |_message: Message, _context: Context| async move {
        outcome()
    }))
}

fn coin_flip() -> bool {
    RandomState::new().build_hasher().finish() & 1 == 0
}

#[derive(Debug, Clone, Copy)]
enum Transform {
    Same,
    Upper,
    Lower,
}

/// `echo`, `upper`, `lower`: write the payload (a string as is, anything
/// else as JSON), transformed, to a new file `<job id>-<attempt>.txt` under
/// `destination_directory`.
fn write_payload(settings: &HandlerSettings, transform: Transform) -> Result<Arc<dyn Handler>, ConfigError> {
    let key = "destination_directory";
    let directory = match settings.options.get(key) {
        Some(Value::String(dir)) if !dir.is_empty() => settings.option_path(key, Path::new(dir)),
        Some(other) => {
            return Err(settings.option_error(key, format!("expected a directory path, found {other}")));
        }
        None => return Err(settings.option_error(key, format!("the {} handler needs {key}", settings.kind))),
    };
    if let Some(extra) = settings.options.keys().find(|k| *k != key) {
        return Err(settings.option_error(
            extra,
            format!("the {} handler takes no option {extra:?}", settings.kind),
        ));
    }
    let directory = Arc::new(directory);
    Ok(Arc::new(move |message: Message, context: Context| {
        let directory = directory.clone();
        async move {
            let text = match message.payload() {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => return Outcome::fatal("the message has no body.payload to write"),
            };
            let text = match transform {
                Transform::Same => text,
                Transform::Upper => text.to_uppercase(),
                Transform::Lower => text.to_lowercase(),
            };
            let path = directory.join(format!("{}-{}.txt", context.job_id, context.attempt));
            let write = async {
                tokio::fs::create_dir_all(&*directory).await?;
                let mut file = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .await?;
                tokio::io::AsyncWriteExt::write_all(&mut file, text.as_bytes()).await?;
                file.sync_all().await
            };
            match write.await {
                Ok(()) => Outcome::success(),
                Err(err) => Outcome::transient(format!("cannot write {}: {err}", path.display())),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::registry::tests::{context, settings};

    #[tokio::test]
    async fn sample_kinds_write_and_decide() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let config = format!(
            "[handlers.e]\nkind = \"echo\"\ndestination_directory = {out:?}\n\
             [handlers.u]\nkind = \"upper\"\ndestination_directory = {out:?}\n\
             [handlers.l]\nkind = \"lower\"\ndestination_directory = {out:?}\n\
             [handlers.s]\nkind = \"success\"\n[handlers.f]\nkind = \"fail\"\n\
             [handlers.t]\nkind = \"transient\"\n[handlers.ff]\nkind = \"fifty_fifty\"\n"
        );
        let handlers = Registry::with_builtins().build_all(&settings(&config)).unwrap();
        let message = |payload: &str| Message::new("x").with_payload(payload);
        assert_eq!(
            handlers["e"].handle(message("Hello"), context(1)).await,
            Outcome::success()
        );
        assert_eq!(
            handlers["u"].handle(message("Hello"), context(2)).await,
            Outcome::success()
        );
        assert_eq!(
            handlers["l"].handle(message("Hello"), context(3)).await,
            Outcome::success()
        );
        let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
        assert_eq!(
            (read("1-1.txt"), read("2-1.txt"), read("3-1.txt")),
            ("Hello".into(), "HELLO".into(), "hello".into())
        );
        // A new file each time: writing the same job and attempt again is a transient failure.
        assert!(matches!(
            handlers["e"].handle(message("again"), context(1)).await,
            Outcome::Transient { .. }
        ));
        assert!(matches!(
            handlers["e"].handle(Message::new("x"), context(9)).await,
            Outcome::Fatal { .. }
        ));

        assert_eq!(
            handlers["s"].handle(message("x"), context(4)).await,
            Outcome::success()
        );
        assert!(matches!(
            handlers["f"].handle(message("x"), context(5)).await,
            Outcome::Fatal { .. }
        ));
        assert!(matches!(
            handlers["t"].handle(message("x"), context(6)).await,
            Outcome::Transient { .. }
        ));
        let mut seen = (false, false);
        for i in 0..200 {
            match handlers["ff"].handle(message("x"), context(i)).await {
                Outcome::Success { .. } => seen.0 = true,
                Outcome::Transient { .. } => seen.1 = true,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, (true, true), "fifty_fifty gives both outcomes");
    }
}
