//! Tube names, validated against the protocol's naming rules before anything
//! is sent or accepted.

use std::fmt;

use super::ProtocolError;

/// The longest tube name the protocol allows, in bytes.
pub(crate) const MAX_TUBE_NAME: usize = 200;

/// A tube name that follows protocol.txt: 1 to 200 bytes of `A-Z a-z 0-9 - + /
/// ; . $ _ ( )`, not starting with `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TubeName(String);

impl TubeName {
    /// Validates `name`; the error says which rule it breaks.
    pub fn new(name: impl Into<String>) -> Result<TubeName, ProtocolError> {
        let name = name.into();
        match invalid_reason(name.as_bytes()) {
            None => Ok(TubeName(name)),
            Some(reason) => Err(ProtocolError::InvalidTubeName {
                name: truncated(&name),
                reason,
            }),
        }
    }

    /// Validates raw bytes from the wire.
    pub fn from_bytes(bytes: &[u8]) -> Result<TubeName, ProtocolError> {
        match invalid_reason(bytes) {
            // Valid names are ASCII, so this cannot fail.
            None => Ok(TubeName(String::from_utf8_lossy(bytes).into_owned())),
            Some(reason) => Err(ProtocolError::InvalidTubeName {
                name: truncated(&String::from_utf8_lossy(bytes)),
                reason,
            }),
        }
    }

    /// The tube every connection uses and watches at first.
    pub fn default_tube() -> TubeName {
        TubeName("default".to_owned())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn truncated(name: &str) -> String {
    name.chars().take(256).collect()
}

fn invalid_reason(bytes: &[u8]) -> Option<&'static str> {
    if bytes.is_empty() {
        return Some("a tube name must be at least one character long");
    }
    if bytes.len() > MAX_TUBE_NAME {
        return Some("a tube name must be at most 200 bytes");
    }
    if bytes[0] == b'-' {
        return Some("a tube name may not begin with a hyphen");
    }
    if !bytes.iter().all(|&b| is_name_byte(b)) {
        return Some("a tube name may contain only letters, digits and - + / ; . $ _ ( )");
    }
    None
}

/// Whether `b` may appear in a protocol name.
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'/' | b';' | b'.' | b'$' | b'_' | b'(' | b')')
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

impl std::str::FromStr for TubeName {
    type Err = ProtocolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TubeName::new(s)
    }
}

impl TryFrom<&str> for TubeName {
    type Error = ProtocolError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        TubeName::new(s)
    }
}

impl TryFrom<String> for TubeName {
    type Error = ProtocolError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TubeName::new(s)
    }
}
