//! Tube names and beanstalkd's rules for them, checked in one place for the
//! config, the file queue and the protocol (both directions).

use std::fmt;

use serde::Serialize;

/// The longest tube name beanstalkd accepts, in bytes: longer names are
/// refused by the server, so every queue refuses them too.
pub const MAX_TUBE_NAME: usize = 200;

/// Which of beanstalkd's naming rules a tube name breaks; the message is the
/// rule, for an error that also names the tube (see [`InvalidTubeName`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TubeNameError {
    /// Zero bytes.
    #[error("a tube name cannot be empty")]
    Empty,
    /// Over [`MAX_TUBE_NAME`] bytes.
    #[error("a tube name is at most 200 bytes, this one is {len}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Starts with `-` (which beanstalkd's parser would take for an option).
    #[error("a tube name cannot start with '-'")]
    LeadingHyphen,
    /// Has a character outside the allowed set.
    #[error("a tube name cannot contain {c:?} (allowed: letters, digits and - + / ; . $ _ ( ))")]
    BadChar {
        /// The first such character.
        c: char,
    },
}

/// A refused tube name with the rule it breaks: what a caller reports, so
/// that every queue says the same about the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tube name {name:?}: {reason}")]
pub struct InvalidTubeName {
    /// The rejected name (lossily decoded if it was bytes, cut to 256
    /// characters so that a hostile name cannot flood a log).
    pub name: String,
    /// Which rule it breaks.
    pub reason: TubeNameError,
}

/// Checks a tube name by beanstalkd's rules: 1 to 200 bytes of letters,
/// digits and `- + / ; . $ _ ( )`, not starting with `-`.
pub fn validate_tube_name(name: &str) -> Result<(), TubeNameError> {
    if name.is_empty() {
        return Err(TubeNameError::Empty);
    }
    if name.len() > MAX_TUBE_NAME {
        return Err(TubeNameError::TooLong { len: name.len() });
    }
    if name.starts_with('-') {
        return Err(TubeNameError::LeadingHyphen);
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-+/;.$_()".contains(c);
    match name.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(TubeNameError::BadChar { c }),
        None => Ok(()),
    }
}

/// A tube name that follows beanstalkd's rules (see
/// [`validate_tube_name`]): holding one proves it was checked, so it can be
/// sent or stored without checking again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TubeName(String);

impl TubeName {
    /// Validates `name`; the error says which rule it breaks.
    pub fn new(name: impl Into<String>) -> Result<TubeName, InvalidTubeName> {
        let name = name.into();
        TubeName::check(&name)?;
        Ok(TubeName(name))
    }

    /// Checks `name` without taking a copy, for a caller that keeps its
    /// `&str` (a queue checking every put); the error is [`TubeName::new`]'s.
    pub fn check(name: &str) -> Result<(), InvalidTubeName> {
        validate_tube_name(name).map_err(|reason| InvalidTubeName {
            name: truncated(name),
            reason,
        })
    }

    /// Validates raw bytes, as they come from the wire or a file (bytes
    /// that are not UTF-8 break the character rule).
    pub fn from_bytes(bytes: &[u8]) -> Result<TubeName, InvalidTubeName> {
        TubeName::new(String::from_utf8_lossy(bytes))
    }

    /// The tube every beanstalkd connection uses and watches at first.
    pub fn default_tube() -> TubeName {
        TubeName("default".to_owned())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

fn truncated(name: &str) -> String {
    name.chars().take(256).collect()
}

impl fmt::Display for TubeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TubeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<TubeName> for String {
    fn from(name: TubeName) -> String {
        name.0
    }
}

impl std::str::FromStr for TubeName {
    type Err = InvalidTubeName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TubeName::new(s)
    }
}

impl TryFrom<&str> for TubeName {
    type Error = InvalidTubeName;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        TubeName::new(s)
    }
}

impl TryFrom<String> for TubeName {
    type Error = InvalidTubeName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TubeName::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_beanstalkd() {
        for ok in [
            "default",
            "a",
            "x-y",
            "A+b/c;d.e$f_g(h)",
            "0",
            "A-Z+/;.$_()0",
            &"t".repeat(200),
        ] {
            assert_eq!(validate_tube_name(ok), Ok(()), "{ok}");
            assert_eq!(TubeName::new(ok).unwrap().as_str(), ok);
        }
        for (bad, reason) in [
            ("", TubeNameError::Empty),
            ("-x", TubeNameError::LeadingHyphen),
            ("a b", TubeNameError::BadChar { c: ' ' }),
            ("é", TubeNameError::BadChar { c: 'é' }),
            ("a\n", TubeNameError::BadChar { c: '\n' }),
            ("a*", TubeNameError::BadChar { c: '*' }),
            (&"t".repeat(201), TubeNameError::TooLong { len: 201 }),
        ] {
            assert_eq!(validate_tube_name(bad), Err(reason.clone()), "{bad:?}");
            assert_eq!(TubeName::new(bad).unwrap_err().reason, reason, "{bad:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused() {
        let err = TubeName::from_bytes(b"a\xffb").unwrap_err();
        assert_eq!(err.reason, TubeNameError::BadChar { c: '\u{fffd}' });
        assert_eq!(TubeName::from_bytes(b"jobs").unwrap().as_str(), "jobs");
    }

    #[test]
    fn errors_name_the_tube_and_the_rule() {
        let err = TubeName::new("-jobs").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid tube name \"-jobs\": a tube name cannot start with '-'"
        );
        let long = "x".repeat(300);
        assert_eq!(TubeName::new(long).unwrap_err().name.len(), 256);
    }
}
