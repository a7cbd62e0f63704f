//! The handler registry: maps a handler *kind* (`kind = "echo"` in a
//! `[handlers.<request_type>]` table) to a factory that builds a [`Handler`]
//! from that table. [`Registry::with_builtins`] holds `exec` and the sample
//! kinds of [`super::samples`].
//!
//! A Rust program registers its own kinds before it starts the runner; every
//! table's kind and options are checked when the handlers are built, before
//! anything runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{ConfigError, HandlerSettings, Settings};
use crate::handlers::Handler;

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
        registry.register("exec", super::exec::factory);
        super::samples::register(&mut registry);
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::handlers::{BoxFuture, Context, JobServices, Outcome};
    use crate::message::Message;

    struct NoServices;

    impl JobServices for NoServices {
        fn touch(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async { Ok(()) })
        }
        fn publish(&self, _message: Message) -> BoxFuture<'_, Result<u64, String>> {
            Box::pin(async { Err("not in a runner".to_owned()) })
        }
    }

    pub(crate) fn settings(toml: &str) -> Settings {
        crate::config::from_toml_str(toml, std::path::Path::new("pulpo.toml")).unwrap()
    }

    pub(crate) fn context(job_id: u64) -> Context {
        Context::new(job_id, 1, "default", "t", Arc::new(NoServices))
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
        let Outcome::Success { follow_ups, .. } =
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
