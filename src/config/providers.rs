//! The config layers as Figment providers: built-in [`defaults`], a TOML
//! [`FileProvider`], the `PULPO_` [`EnvProvider`], and command-line
//! [`Overrides`]. Each names itself in its metadata so errors can say where
//! a value came from (the variable or flag name, via `interpolate`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider, Source};

use super::{ConfigError, ENV_PREFIX, Overrides, Settings};

/// Metadata name of the defaults layer.
pub(crate) const DEFAULTS_NAME: &str = "built-in default";
/// Metadata name of the environment layer.
pub(crate) const ENV_NAME: &str = "environment variable";
/// Metadata name of the command-line layer.
pub(crate) const FLAG_NAME: &str = "command-line flag";

/// The built-in defaults ([`Settings::default`]) as the bottom layer.
pub fn defaults() -> impl Provider {
    Named {
        name: DEFAULTS_NAME,
        inner: Serialized::defaults(Settings::default()),
    }
}

/// A provider under another metadata name.
struct Named<P> {
    name: &'static str,
    inner: P,
}

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        self.inner.data()
    }
}

/// A TOML config file, read and syntax-checked up front so that a missing
/// file, a non-UTF-8 file and a TOML syntax error each get a clear message
/// with the path as given (relative paths are not searched for in parent
/// directories, unlike Figment's `Toml::file`).
#[derive(Debug, Clone)]
pub struct FileProvider {
    path: PathBuf,
    text: String,
}

impl FileProvider {
    /// Reads and checks the file at `path`.
    pub fn read(path: &Path) -> Result<FileProvider, ConfigError> {
        let bytes = std::fs::read(path).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => ConfigError::FileNotFound {
                path: path.to_path_buf(),
            },
            _ => ConfigError::ReadFile {
                path: path.to_path_buf(),
                error,
            },
        })?;
        let text = String::from_utf8(bytes).map_err(|err| ConfigError::NotUtf8 {
            path: path.to_path_buf(),
            offset: err.utf8_error().valid_up_to(),
        })?;
        FileProvider::from_text(path, text)
    }

    /// Checks `text` as if it were the contents of `path`.
    pub fn from_text(path: &Path, text: String) -> Result<FileProvider, ConfigError> {
        if let Err(err) = text.parse::<toml::Table>() {
            let (line, column) = err.span().map_or((1, 1), |span| line_column(&text, span.start));
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: err.message().trim().replace('\n', "; "),
            });
        }
        Ok(FileProvider {
            path: path.to_path_buf(),
            text,
        })
    }

    /// The file's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Provider for FileProvider {
    fn metadata(&self) -> Metadata {
        Metadata::from("TOML file", Source::File(self.path.clone()))
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Toml::string(&self.text).data()
    }
}

/// 1-based line and character column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

/// The `PULPO_` environment: `PULPO_RETRY__MAX_ATTEMPTS=3` sets
/// `retry.max_attempts`. Names are matched case-insensitively and keys
/// lowercased (Figment's `Env::prefixed(..).split("__")`). `PULPO_LOG`,
/// `PULPO_BENCH_*`, `PULPO_TEST_*` and `PULPO_JOB_*` (what an `exec`
/// handler's child is told about its job) are not config keys and are
/// skipped, so a handler can run `pulpo` itself.
/// The provider remembers each variable's name, so an error names the
/// variable that was actually set.
#[derive(Clone)]
pub struct EnvProvider {
    env: Env,
    /// (key path, variable name) for every variable the layer reads.
    names: Arc<Vec<(Vec<String>, String)>>,
}

impl EnvProvider {
    /// The process's `PULPO_` variables, read now and again on every merge.
    pub fn from_process() -> EnvProvider {
        let env = Env::prefixed(ENV_PREFIX)
            .filter(|key| !is_reserved(key.as_str()))
            .split("__");
        let names = std::env::vars_os()
            .filter_map(|(name, _)| {
                let name = name.to_string_lossy().trim().to_owned();
                let key = strip_prefix_ignore_case(&name, ENV_PREFIX)?;
                if key.is_empty() || is_reserved(key) {
                    return None;
                }
                let path = key.to_ascii_lowercase().split("__").map(str::to_owned).collect();
                Some((path, name))
            })
            .collect();
        EnvProvider {
            env,
            names: Arc::new(names),
        }
    }
}

impl std::fmt::Debug for EnvProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvProvider").field("names", &self.names).finish()
    }
}

fn strip_prefix_ignore_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        name.get(prefix.len()..)
    } else {
        None
    }
}

/// Variables under the prefix that other parts of pulpo own.
fn is_reserved(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "log" || key.starts_with("bench_") || key.starts_with("test_") || key.starts_with("job_")
}

/// The variable that set the value at `path`: the one whose key is `path`,
/// else the one holding a whole list or table that contains it, else one
/// nested under it; failing all, the name the path would have.
fn variable_for(names: &[(Vec<String>, String)], path: &[&str]) -> String {
    let matches =
        |key: &[String], path: &[&str]| key.len() == path.len() && key.iter().zip(path).all(|(a, b)| a == b);
    if let Some((_, name)) = names.iter().find(|(key, _)| matches(key, path)) {
        return name.clone();
    }
    let containing = names
        .iter()
        .filter(|(key, _)| key.len() < path.len() && matches(key, &path[..key.len()]))
        .max_by_key(|(key, _)| key.len());
    if let Some((_, name)) = containing {
        return name.clone();
    }
    if let Some((_, name)) = names
        .iter()
        .find(|(key, _)| key.len() > path.len() && matches(&key[..path.len()], path))
    {
        return name.clone();
    }
    let parts: Vec<String> = path
        .iter()
        .filter(|p| !p.bytes().all(|b| b.is_ascii_digit()))
        .map(|p| p.to_ascii_uppercase())
        .collect();
    format!("{ENV_PREFIX}{}", parts.join("__"))
}

impl Provider for EnvProvider {
    fn metadata(&self) -> Metadata {
        let names = Arc::clone(&self.names);
        Metadata::named(ENV_NAME).interpolater(move |_: &Profile, path: &[&str]| variable_for(&names, path))
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        self.env.data()
    }
}

/// The flag that overrides the key `path`.
fn flag_for(path: &[&str]) -> String {
    match path {
        ["queue", ..] => "--queue".to_owned(),
        ["tube", ..] => "--tube".to_owned(),
        ["file", "path", ..] => "--path".to_owned(),
        ["beanstalkd", "address", ..] => "--address".to_owned(),
        other => format!("--{}", other.join(".")),
    }
}

impl Provider for Overrides {
    fn metadata(&self) -> Metadata {
        Metadata::named(FLAG_NAME).interpolater(|_: &Profile, path: &[&str]| flag_for(path))
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        let mut dict = Dict::new();
        if let Some(queue) = self.queue {
            dict.insert("queue".to_owned(), Value::from(queue.as_str()));
        }
        if let Some(tube) = &self.tube {
            dict.insert("tube".to_owned(), Value::from(tube.as_str()));
        }
        if let Some(path) = &self.path {
            let mut file = Dict::new();
            file.insert(
                "path".to_owned(),
                Value::from(path.to_string_lossy().into_owned()),
            );
            dict.insert("file".to_owned(), Value::from(file));
        }
        if let Some(address) = &self.address {
            let mut beanstalkd = Dict::new();
            beanstalkd.insert("address".to_owned(), Value::from(address.as_str()));
            dict.insert("beanstalkd".to_owned(), Value::from(beanstalkd));
        }
        Ok(Profile::Default.collect(dict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_found_by_key() {
        let names = vec![
            (
                vec!["retry".to_owned(), "max_attempts".to_owned()],
                "PULPO_RETRY__MAX_ATTEMPTS".to_owned(),
            ),
            (vec!["watch".to_owned()], "pulpo_watch".to_owned()),
            (
                vec!["foo".to_owned(), "bar".to_owned()],
                "PULPO_FOO__BAR".to_owned(),
            ),
        ];
        assert_eq!(
            variable_for(&names, &["retry", "max_attempts"]),
            "PULPO_RETRY__MAX_ATTEMPTS"
        );
        assert_eq!(variable_for(&names, &["watch", "1"]), "pulpo_watch");
        assert_eq!(variable_for(&names, &["foo"]), "PULPO_FOO__BAR");
        assert_eq!(variable_for(&names, &["concurrency"]), "PULPO_CONCURRENCY");
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_column("a = 1\nb = ?", 10), (2, 5));
        assert_eq!(line_column("x", 0), (1, 1));
    }
}
