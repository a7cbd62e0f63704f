//! Config errors: what went wrong, on which key, set where, and what would be
//! accepted. Figment's errors are translated here, using their `path` (the
//! key) and `metadata` (the layer that set the value: its file `source`, or
//! its `interpolate`d environment variable or flag name).

use std::fmt;
use std::path::PathBuf;

use figment::error::{Actual, Kind};
use figment::{Metadata, Profile};

use super::providers::{DEFAULTS_NAME, ENV_NAME, FLAG_NAME};

/// Where a config value came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// pulpo's built-in defaults.
    #[default]
    Default,
    /// A config file, as its path was given.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag, e.g. `--tube`.
    Flag(String),
    /// Set by a program in code, not read from config.
    Code,
    /// Another figment provider, by its name.
    Other(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(flag) => write!(f, "command-line flag {flag}"),
            Origin::Code => f.write_str("settings set in code"),
            Origin::Other(name) => f.write_str(name),
        }
    }
}

impl Origin {
    /// `path` as the place it was set means it: a relative path written in
    /// a config file is relative to that file's directory, as most tools
    /// read theirs; one from a flag, a variable, a default or code is
    /// relative to the working directory and is returned as is.
    pub fn resolve_path(&self, path: &std::path::Path) -> std::path::PathBuf {
        match self {
            Origin::File(file) if path.is_relative() => {
                file.parent().unwrap_or(std::path::Path::new("")).join(path)
            }
            _ => path.to_path_buf(),
        }
    }

    /// The origin of the value at `path` set by the provider `metadata`.
    pub(crate) fn from_metadata<K: AsRef<str>>(
        metadata: Option<&Metadata>,
        profile: &Profile,
        path: &[K],
    ) -> Origin {
        let Some(metadata) = metadata else {
            return Origin::Other("config".to_owned());
        };
        if let Some(file) = metadata.source.as_ref().and_then(|source| source.file_path()) {
            return Origin::File(file.to_path_buf());
        }
        match metadata.name.as_ref() {
            ENV_NAME => Origin::Env(metadata.interpolate(profile, path)),
            FLAG_NAME => Origin::Flag(metadata.interpolate(profile, path)),
            DEFAULTS_NAME => Origin::Default,
            name => Origin::Other(name.to_owned()),
        }
    }
}

/// A config that cannot be used. Every message names the file or the
/// variable or flag, the key, and what would be accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file given does not exist.
    #[error("config file {} does not exist; check the --config path", path.display())]
    FileNotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// The config file exists but cannot be read.
    #[error("config file {}: cannot read it: {error}", path.display())]
    ReadFile {
        /// The path as given.
        path: PathBuf,
        /// Why (shown in this error's message, so not also its `source()`).
        error: std::io::Error,
    },
    /// The config file is not UTF-8.
    #[error("{}: not UTF-8 text (invalid byte at offset {offset}); save it as UTF-8", path.display())]
    NotUtf8 {
        /// The path as given.
        path: PathBuf,
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The config file is not valid TOML.
    #[error("{}: line {line}, column {column}: not valid TOML: {message}", path.display())]
    Syntax {
        /// The path as given.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// The TOML parser's reason.
        message: String,
    },
    /// A key pulpo does not know (usually a typo).
    #[error(
        "{origin}: unknown key {key:?}{} (known keys{}: {})",
        suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default(),
        if section.is_empty() { String::new() } else { format!(" in [{section}]") },
        known.join(", ")
    )]
    UnknownKey {
        /// Where the key was set.
        origin: Origin,
        /// The full dotted key.
        key: String,
        /// The table it is in, dotted (empty at the top level).
        section: String,
        /// The keys that table accepts.
        known: &'static [&'static str],
        /// The known key closest to it, in full, if one is close.
        suggestion: Option<String>,
    },
    /// A required key is absent.
    #[error("{origin}: key {key:?} is missing: {hint}")]
    MissingKey {
        /// Where the table that lacks it was set.
        origin: Origin,
        /// The full dotted key.
        key: String,
        /// What to add.
        hint: String,
    },
    /// A value of the wrong type or out of range.
    #[error("{origin}: key {key:?}: {problem}")]
    InvalidValue {
        /// Where the value was set.
        origin: Origin,
        /// The full dotted key.
        key: String,
        /// What is wrong and what would be accepted.
        problem: String,
    },
    /// A handler kind that no code provides.
    #[error("{origin}: key {key:?}: unknown handler kind {kind:?} (known kinds: {})", known.join(", "))]
    UnknownHandlerKind {
        /// Where the kind was set.
        origin: Origin,
        /// `handlers.<request_type>.kind`.
        key: String,
        /// The kind given.
        kind: String,
        /// The kinds available.
        known: Vec<String>,
    },
    /// Any other problem a config layer reported.
    #[error("{origin}: {message}")]
    Other {
        /// The layer.
        origin: Origin,
        /// Its message.
        message: String,
    },
}

impl ConfigError {
    /// Translates a figment extraction error, keeping its key and origin.
    pub fn from_figment(err: figment::Error) -> ConfigError {
        let profile = err.profile.clone().unwrap_or_default();
        // Figment's magic types (`Tagged`) add internal field names to the path.
        let path: Vec<&str> = err
            .path
            .iter()
            .map(String::as_str)
            .filter(|part| !part.starts_with("___figment"))
            .collect();
        let origin = Origin::from_metadata(err.metadata.as_ref(), &profile, &path);
        let key = format_key(&path);
        match err.kind {
            Kind::UnknownField(field, known) => {
                let section = format_key(path.split_last().map_or(&[][..], |(_, parent)| parent));
                let suggestion = closest(&field, known).map(|name| {
                    let mut full = path.clone();
                    full.pop();
                    full.push(name);
                    format_key(&full)
                });
                ConfigError::UnknownKey {
                    origin,
                    key,
                    section,
                    known,
                    suggestion,
                }
            }
            Kind::MissingField(field) => {
                let mut full = path.clone();
                full.push(&field);
                let hint = if field == "kind" {
                    "every handler needs one, e.g. kind = \"exec\"".to_owned()
                } else {
                    format!("add {field} = ...")
                };
                ConfigError::MissingKey {
                    origin,
                    key: format_key(&full),
                    hint,
                }
            }
            Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                ConfigError::InvalidValue {
                    origin,
                    key,
                    problem: format!("expected {expected}, found {}", found(&actual)),
                }
            }
            Kind::InvalidLength(0, expected) => ConfigError::InvalidValue {
                origin,
                key,
                problem: format!("expected {expected}, found an empty list"),
            },
            Kind::InvalidLength(len, expected) => ConfigError::InvalidValue {
                origin,
                key,
                problem: format!("expected {expected}, found {len} items"),
            },
            Kind::UnknownVariant(variant, known) => ConfigError::InvalidValue {
                origin,
                key,
                problem: format!("expected {}, found {variant:?}", super::raw::one_of(known)),
            },
            Kind::Message(message) if path.is_empty() => ConfigError::Other { origin, message },
            Kind::Message(problem) => ConfigError::InvalidValue { origin, key, problem },
            other if path.is_empty() => ConfigError::Other {
                origin,
                message: other.to_string(),
            },
            other => ConfigError::InvalidValue {
                origin,
                key,
                problem: other.to_string(),
            },
        }
    }
}

/// A key path as people write it: `retry.max_attempts`, `watch[1]`,
/// `handlers."app.send".kind` (parts that are not bare TOML keys quoted).
pub(crate) fn format_key<K: AsRef<str>>(path: &[K]) -> String {
    let mut key = String::new();
    for part in path {
        let part = part.as_ref();
        if !key.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
            key.push('[');
            key.push_str(part);
            key.push(']');
            continue;
        }
        if !key.is_empty() {
            key.push('.');
        }
        if !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            key.push_str(part);
        } else {
            key.push_str(&format!("{part:?}"));
        }
    }
    key
}

/// A value as an error message shows it: strings quoted (long ones cut),
/// numbers and booleans as written, lists and tables by kind.
fn found(actual: &Actual) -> String {
    match actual {
        Actual::Str(text) => match text.char_indices().nth(60) {
            Some((cut, _)) => format!("{:?}...", &text[..cut]),
            None => format!("{text:?}"),
        },
        Actual::Char(c) => format!("{:?}", c.to_string()),
        Actual::Bool(b) => b.to_string(),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(x) => format!("{x:?}"),
        Actual::Seq => "a list".to_owned(),
        Actual::Map => "a table".to_owned(),
        Actual::Unit | Actual::Option => "nothing".to_owned(),
        other => other.to_string(),
    }
}

/// The known name closest to `name`, if it is close enough to be a typo.
fn closest(name: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(current)
            };
            prev = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_like_toml() {
        assert_eq!(format_key(&["retry", "max_attempts"]), "retry.max_attempts");
        assert_eq!(format_key(&["watch", "1"]), "watch[1]");
        assert_eq!(
            format_key(&["handlers", "app.send", "kind"]),
            "handlers.\"app.send\".kind"
        );
        assert_eq!(format_key(&["handlers", ""]), "handlers.\"\"");
    }

    #[test]
    fn typos_are_suggested() {
        assert_eq!(
            closest("concurency", &["queue", "concurrency"]),
            Some("concurrency")
        );
        assert_eq!(
            closest("max_attempt", &["max_attempts", "delay"]),
            Some("max_attempts")
        );
        assert_eq!(closest("zzz", &["queue", "tube"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
