//! Where a server listens: `HOST:PORT` or `unix:/path`, parsed once from the
//! config form and written back in it for error messages.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where a server listens; the client connects to it and reconnects to the
/// same place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `HOST:PORT`.
    Tcp(String),
    /// `unix:/path/to/socket`.
    Unix(PathBuf),
}

impl Address {
    /// Parses `HOST:PORT` or `unix:/path`.
    pub fn parse(address: &str) -> Result<Address> {
        let invalid = |reason: &str| Error::InvalidAddress {
            address: address.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = address.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(invalid("the socket path is empty"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let Some((host, port)) = address.rsplit_once(':') else {
            return Err(invalid("there is no port"));
        };
        if host.is_empty() {
            return Err(invalid("the host is empty"));
        }
        if port.parse::<u16>().is_err() {
            return Err(invalid("the port is not a number from 0 to 65535"));
        }
        Ok(Address::Tcp(address.to_owned()))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => f.write_str(addr),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}
