//! A beanstalkd server's address, parsed by one set of rules for the config
//! and the client, so that an address the config accepts is one the client
//! can dial and the reverse.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a beanstalkd server listens: `HOST:PORT` or `unix:/path/to/socket`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// `HOST:PORT` as written (IPv6 hosts in brackets), kept as text so that
    /// a host name is resolved when connecting, not when parsing.
    Tcp(String),
    /// `unix:/path/to/socket`: the socket's path.
    Unix(PathBuf),
}

/// Why a text is not an [`Address`]; the message is the reason alone, for
/// the caller to frame with the address and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// `unix:` with nothing after it.
    #[error("the socket path is empty")]
    EmptySocketPath,
    /// No `:PORT` at the end.
    #[error("there is no port")]
    NoPort,
    /// An empty host, one with spaces, or an IPv6 address without brackets.
    #[error("the host is empty, has spaces, or is an IPv6 address without [brackets]")]
    BadHost,
    /// A port that is not a number from 1 to 65535 (0 is refused: it means
    /// "any free port" to a listener and is nowhere a client can connect).
    #[error("the port is not a number from 1 to 65535")]
    BadPort,
}

impl Address {
    /// Parses `HOST:PORT` (port 1 to 65535; IPv6 hosts in brackets, e.g.
    /// `[::1]:11300`) or `unix:/path/to/socket`.
    pub fn parse(address: &str) -> Result<Address, AddressError> {
        if let Some(path) = address.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(AddressError::EmptySocketPath);
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let Some((host, port)) = address.rsplit_once(':') else {
            return Err(AddressError::NoPort);
        };
        let host_ok = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').is_some_and(|ip| !ip.is_empty()),
            None => !host.is_empty() && !host.contains(':') && !host.contains(char::is_whitespace),
        };
        if !host_ok {
            return Err(AddressError::BadHost);
        }
        let port_ok = port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !port_ok {
            return Err(AddressError::BadPort);
        }
        Ok(Address::Tcp(address.to_owned()))
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_addresses_print_as_written() {
        for text in [
            "127.0.0.1:11300",
            "localhost:1",
            "[::1]:11300",
            "beanstalk.example.com:65535",
            "unix:/run/beanstalkd.sock",
        ] {
            assert_eq!(Address::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            Address::parse("[::1]:11300"),
            Ok(Address::Tcp("[::1]:11300".to_owned()))
        );
        assert_eq!(
            Address::parse("unix:/tmp/b.sock"),
            Ok(Address::Unix("/tmp/b.sock".into()))
        );
    }

    #[test]
    fn refused_addresses_say_why() {
        for (bad, reason) in [
            ("", AddressError::NoPort),
            ("localhost", AddressError::NoPort),
            ("no-port", AddressError::NoPort),
            ("unix:", AddressError::EmptySocketPath),
            (":11300", AddressError::BadHost),
            ("::1:11300", AddressError::BadHost),
            ("[]:11300", AddressError::BadHost),
            ("a host:11300", AddressError::BadHost),
            ("host:", AddressError::BadPort),
            ("host:0", AddressError::BadPort),
            ("[::1]:0", AddressError::BadPort),
            ("host:65536", AddressError::BadPort),
            ("host:x1", AddressError::BadPort),
            ("host:port", AddressError::BadPort),
            ("host:+1", AddressError::BadPort),
        ] {
            assert_eq!(Address::parse(bad), Err(reason), "{bad:?}");
        }
    }
}
