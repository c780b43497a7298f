//! The typed value of an address flag.

use std::fmt;
use std::net::SocketAddr;

use crate::{parse_socket_addrs, AddrError};

/// An address flag's value, parsed once: the text as given and every
/// address it names (see the [crate rule](crate)); never empty.
///
/// ```
/// let listen: netaddr::SocketAddrs = "127.0.0.1:7000".parse().unwrap();
/// assert_eq!(listen.first().port(), 7000);
/// assert_eq!(listen.to_string(), "127.0.0.1:7000");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketAddrs {
    spec: String,
    addrs: Vec<SocketAddr>,
}

impl SocketAddrs {
    /// Parse `spec` by the crate rule, resolving its host now. Fits clap's
    /// `value_parser`: `#[arg(value_parser = netaddr::SocketAddrs::parse)]`.
    ///
    /// # Errors
    ///
    /// When `spec` breaks the rule or its host does not resolve.
    pub fn parse(spec: &str) -> Result<SocketAddrs, AddrError> {
        Ok(SocketAddrs {
            spec: spec.to_owned(),
            addrs: parse_socket_addrs(spec)?,
        })
    }

    /// Every address, in the resolver's order, without duplicates.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The first address (the one a single socket binds or connects to).
    pub fn first(&self) -> SocketAddr {
        // parse_socket_addrs never returns an empty list.
        self.addrs[0]
    }

    /// The text as given.
    pub fn as_str(&self) -> &str {
        &self.spec
    }
}

impl From<SocketAddr> for SocketAddrs {
    fn from(addr: SocketAddr) -> SocketAddrs {
        SocketAddrs {
            spec: addr.to_string(),
            addrs: vec![addr],
        }
    }
}

impl std::str::FromStr for SocketAddrs {
    type Err = AddrError;

    fn from_str(spec: &str) -> Result<SocketAddrs, AddrError> {
        SocketAddrs::parse(spec)
    }
}

impl fmt::Display for SocketAddrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_addresses_keep_the_text_and_every_address() {
        let one = SocketAddrs::parse("[::1]:80").unwrap();
        assert_eq!(one.as_str(), "[::1]:80");
        assert_eq!(one.addrs(), &["[::1]:80".parse::<SocketAddr>().unwrap()]);
        let local = SocketAddrs::parse("localhost:9").unwrap();
        assert!(!local.addrs().is_empty());
        assert_eq!(local.first(), local.addrs()[0]);
        assert!(SocketAddrs::parse("nonsense").is_err());
        let from: SocketAddrs = "127.0.0.1:1".parse::<SocketAddr>().unwrap().into();
        assert_eq!(from.to_string(), "127.0.0.1:1");
    }
}
