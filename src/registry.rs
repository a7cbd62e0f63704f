//! The handler registry: maps a handler *kind* (`kind = "echo"` in a
//! `[handlers.<request_type>]` table) to a factory that builds a [`Handler`]
//! from that table, and the sample kinds pulpo ships: `echo`, `upper`,
//! `lower` (write the payload to a new file), `success`, `fail`,
//! `transient` and `fifty_fifty`.
//!
//! A Rust program registers its own kinds before it starts the runner; every
//! table's kind and options are checked when the handlers are built, before
//! anything runs.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::config::{ConfigError, HandlerSettings, Settings};
use crate::handler::{Context, Handler, Outcome};
use crate::message::Message;

/// Builds a handler from its `[handlers.<request_type>]` table; errors name
/// the offending option (see [`HandlerSettings::option_error`]).
pub type Factory = Arc<dyn Fn(&HandlerSettings) -> Result<Arc<dyn Handler>, ConfigError> + Send + Sync>;

/// Handler kinds by name.
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<String, Factory>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("kinds", &self.kinds()).finish()
    }
}

impl Registry {
    /// A registry with no kinds.
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// A registry with pulpo's built-in kinds.
    pub fn with_builtins() -> Registry {
        let mut registry = Registry::empty();
        for (kind, transform) in [
            ("echo", Transform::Same),
            ("upper", Transform::Upper),
            ("lower", Transform::Lower),
        ] {
            registry.register(kind, move |settings| write_payload(settings, transform));
        }
        registry.register("exec", crate::process::factory);
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
        registry
    }

    /// Adds (or replaces) the kind `kind`.
    pub fn register(
        &mut self,
        kind: impl Into<String>,
        factory: impl Fn(&HandlerSettings) -> Result<Arc<dyn Handler>, ConfigError> + Send + Sync + 'static,
    ) -> &mut Registry {
        self.factories.insert(kind.into(), Arc::new(factory));
        self
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    /// Builds the handler of every `[handlers.*]` table, by request type;
    /// the first unknown kind or bad option is the error.
    pub fn build_all(&self, settings: &Settings) -> Result<BTreeMap<String, Arc<dyn Handler>>, ConfigError> {
        settings.check_handler_kinds(&self.kinds())?;
        let mut handlers = BTreeMap::new();
        for (request_type, handler_settings) in &settings.handlers {
            handlers.insert(request_type.clone(), self.build(handler_settings)?);
        }
        Ok(handlers)
    }

    /// Builds one handler from its table.
    pub fn build(&self, settings: &HandlerSettings) -> Result<Arc<dyn Handler>, ConfigError> {
        match self.factories.get(&settings.kind) {
            Some(factory) => factory(settings),
            None => Err(settings.option_error(
                "kind",
                format!(
                    "unknown handler kind {:?} (known kinds: {})",
                    settings.kind,
                    self.kinds().join(", ")
                ),
            )),
        }
    }
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
        Some(Value::String(dir)) if !dir.is_empty() => PathBuf::from(dir),
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
    use crate::handler::{BoxFuture, JobServices};

    struct NoServices;

    impl JobServices for NoServices {
        fn touch(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async { Ok(()) })
        }
        fn publish(&self, _message: Message) -> BoxFuture<'_, Result<u64, String>> {
            Box::pin(async { Err("not in a runner".to_owned()) })
        }
    }

    fn settings(toml: &str) -> Settings {
        crate::config::from_toml_str(toml, std::path::Path::new("pulpo.toml")).unwrap()
    }

    fn context(job_id: u64) -> Context {
        Context::new(job_id, 1, "default", "t", Arc::new(NoServices))
    }

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

    fn build_error(toml: &str) -> String {
        match Registry::with_builtins().build_all(&settings(toml)) {
            Err(err) => err.to_string(),
            Ok(handlers) => panic!("built {:?}", handlers.keys().collect::<Vec<_>>()),
        }
    }

    #[test]
    fn bad_tables_are_refused_by_name() {
        let err = build_error("[handlers.x]\nkind = \"nope\"\n");
        assert!(err.contains("nope") && err.contains("echo"), "{err}");
        let err = build_error("[handlers.x]\nkind = \"echo\"\n");
        assert!(err.contains("destination_directory"), "{err}");
        let err = build_error("[handlers.x]\nkind = \"echo\"\ndestination_directory = 5\n");
        assert!(
            err.contains("destination_directory") && err.contains('5'),
            "{err}"
        );
        let err = build_error("[handlers.x]\nkind = \"success\"\ncolour = \"red\"\n");
        assert!(err.contains("colour"), "{err}");
    }

    #[tokio::test]
    async fn programs_register_their_own_kinds() {
        let mut registry = Registry::with_builtins();
        registry.register("shout", |_settings| {
            Ok(Arc::new(|message: Message, _context: Context| async move {
                Outcome::success_with(vec![
                    Message::new("heard").with_payload(message.request_type().to_owned()),
                ])
            }) as Arc<dyn Handler>)
        });
        assert!(registry.kinds().contains(&"shout"));
        let handlers = registry
            .build_all(&settings("[handlers.greet]\nkind = \"shout\"\n"))
            .unwrap();
        let Outcome::Success { follow_ups } =
            handlers["greet"].handle(Message::new("greet"), context(1)).await
        else {
            panic!("expected success")
        };
        assert_eq!(follow_ups[0].payload_str(), Some("greet"));
    }

    #[test]
    fn the_repository_sample_config_builds() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pulpo.toml")).unwrap();
        let handlers = Registry::with_builtins().build_all(&settings(&text)).unwrap();
        assert!(handlers.len() >= 7, "{:?}", handlers.keys().collect::<Vec<_>>());
    }
}
