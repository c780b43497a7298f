//! One rule for the socket addresses the workspace's binaries take on the
//! command line, so echo-server and echo-bench accept the same spellings and
//! name the same problems.
//!
//! The rule, in order:
//!
//! 1. `[V6]:PORT`: an IPv6 address in brackets, then a port.
//! 2. `HOST:PORT`, split at the last `:`. A host with a `:` in it is an IPv6
//!    address without brackets, which is refused (the port would be
//!    ambiguous).
//! 3. The port is a number from 0 to 65535.
//! 4. A host made only of digits and dots is an IPv4 address and is never
//!    looked up as a name: `999.1.1.1` is an error naming it, not a DNS
//!    query.
//! 5. Any other host is resolved with the system resolver
//!    ([`ToSocketAddrs`]).
//!
//! A port alone (`10000`) is refused with a hint naming the two likely
//! hosts (`127.0.0.1:10000`, `0.0.0.0:10000`): the host is never assumed,
//! since the two differ in who can connect. [`SocketAddrs`] is the typed
//! value of an address flag: the text and what it resolved to, parsed once.
//!
//! [`Cidr`] is an address range (`10.0.0.0/8`), for lists of trusted
//! sources.
//!
//! [`parse_target`] adds `unix:/path` for a Unix-domain stream socket.
//! Every error says what was wrong and ends with the hint
//! "expected IP:PORT or HOST:PORT".
//!
//! ```
//! let addr = netaddr::parse_socket_addr("127.0.0.1:7000").unwrap();
//! assert_eq!(addr.port(), 7000);
//!
//! let err = netaddr::parse_socket_addr("999.1.1.1:80").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "bad address \"999.1.1.1:80\": 999.1.1.1 is not an IPv4 address \
//!      (expected IP:PORT or HOST:PORT)"
//! );
//! ```
//!
//! Both parsers fit clap's `value_parser` directly:
//! `#[arg(value_parser = netaddr::parse_socket_addr)]`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod addrs;
mod cidr;

pub use addrs::SocketAddrs;
pub use cidr::{Cidr, CidrError};

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// The hint every error ends with.
pub const HINT: &str = "expected IP:PORT or HOST:PORT";

/// Why an address was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Nothing was given.
    Empty,
    /// No `:PORT` at the end.
    MissingPort,
    /// A port alone (`10000`): the host is never assumed, since the two
    /// likely ones (this machine only, every interface) differ in who can
    /// connect.
    PortOnly,
    /// The port is not a number from 0 to 65535 (the text given).
    BadPort(String),
    /// Nothing before `:PORT`.
    MissingHost,
    /// Digits and dots that are not an IPv4 address (the host given).
    BadIpv4(String),
    /// The text in brackets is not an IPv6 address.
    BadIpv6(String),
    /// An IPv6 address without brackets.
    UnbracketedIpv6,
    /// The resolver failed for this host, with its reason.
    Unresolved(String, String),
    /// The host resolved to no address.
    NoAddress(String),
    /// `unix:` with no path after it.
    EmptyUnixPath,
}

/// A refused address: the text given and what was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrError {
    input: String,
    problem: Problem,
}

impl AddrError {
    fn new(input: &str, problem: Problem) -> AddrError {
        AddrError {
            input: input.to_owned(),
            problem,
        }
    }

    /// The address as given.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What was wrong with it.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad address {:?}: ", self.input)?;
        match &self.problem {
            Problem::Empty => write!(f, "empty")?,
            Problem::MissingPort => write!(f, "no port")?,
            Problem::PortOnly => write!(
                f,
                "a port alone; name the host too: 127.0.0.1:{0} for this machine only, \
                 0.0.0.0:{0} for every IPv4 interface",
                self.input
            )?,
            Problem::BadPort(p) => write!(f, "port {p:?} is not a number from 0 to 65535")?,
            Problem::MissingHost => write!(f, "no host before the port")?,
            Problem::BadIpv4(h) => write!(f, "{h} is not an IPv4 address")?,
            Problem::BadIpv6(h) => write!(f, "[{h}] is not an IPv6 address")?,
            Problem::UnbracketedIpv6 => {
                write!(f, "an IPv6 address needs brackets, as in [::1]:PORT")?
            }
            Problem::Unresolved(h, why) => write!(f, "cannot resolve {h}: {why}")?,
            Problem::NoAddress(h) => write!(f, "{h} resolves to no address")?,
            Problem::EmptyUnixPath => write!(f, "no path after unix:")?,
        }
        write!(f, " ({HINT})")
    }
}

impl std::error::Error for AddrError {}

/// The first address `spec` names (see the [crate rule](crate)).
///
/// # Errors
///
/// When `spec` breaks the rule or its host does not resolve.
pub fn parse_socket_addr(spec: &str) -> Result<SocketAddr, AddrError> {
    let mut all = parse_socket_addrs(spec)?;
    // parse_socket_addrs never returns an empty list.
    Ok(all.swap_remove(0))
}

/// Every address `spec` names, in the resolver's order, without duplicates;
/// never empty. A literal IP gives exactly one.
///
/// # Errors
///
/// When `spec` breaks the rule or its host does not resolve.
pub fn parse_socket_addrs(spec: &str) -> Result<Vec<SocketAddr>, AddrError> {
    let fail = |p| AddrError::new(spec, p);
    let (host, port) = split(spec).map_err(fail)?;
    let port: u16 = port
        .parse()
        .map_err(|_| fail(Problem::BadPort(port.to_owned())))?;
    match host {
        Host::V6(ip) => Ok(vec![SocketAddr::new(IpAddr::V6(ip), port)]),
        Host::Name(name) => {
            if let Ok(ip) = name.parse::<Ipv4Addr>() {
                return Ok(vec![SocketAddr::new(IpAddr::V4(ip), port)]);
            }
            if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return Err(fail(Problem::BadIpv4(name.to_owned())));
            }
            let mut addrs: Vec<SocketAddr> = (name, port)
                .to_socket_addrs()
                .map_err(|e| fail(Problem::Unresolved(name.to_owned(), describe(&e))))?
                .collect();
            let mut seen = Vec::with_capacity(addrs.len());
            addrs.retain(|a| {
                let new = !seen.contains(a);
                seen.push(*a);
                new
            });
            if addrs.is_empty() {
                return Err(fail(Problem::NoAddress(name.to_owned())));
            }
            Ok(addrs)
        }
    }
}

/// Where a client connects: an IP socket address, or a Unix-domain socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// TCP or UDP to this address.
    Inet(SocketAddr),
    /// A Unix-domain stream socket at this path.
    Unix(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Inet(a) => write!(f, "{a}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// `unix:/path`, or an address by [`parse_socket_addr`].
///
/// # Errors
///
/// As [`parse_socket_addr`], and for `unix:` without a path.
pub fn parse_target(spec: &str) -> Result<Target, AddrError> {
    match spec.strip_prefix("unix:") {
        Some("") => Err(AddrError::new(spec, Problem::EmptyUnixPath)),
        Some(path) => Ok(Target::Unix(PathBuf::from(path))),
        None => parse_socket_addr(spec).map(Target::Inet),
    }
}

enum Host<'a> {
    V6(Ipv6Addr),
    Name(&'a str),
}

fn split(spec: &str) -> Result<(Host<'_>, &str), Problem> {
    if spec.is_empty() {
        return Err(Problem::Empty);
    }
    if let Some(rest) = spec.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(Problem::BadIpv6(rest.to_owned()));
        };
        let ip = inside
            .parse::<Ipv6Addr>()
            .map_err(|_| Problem::BadIpv6(inside.to_owned()))?;
        let port = after.strip_prefix(':').ok_or(Problem::MissingPort)?;
        return Ok((Host::V6(ip), nonempty_port(port)?));
    }
    let Some((host, port)) = spec.rsplit_once(':') else {
        if spec.parse::<u16>().is_ok() {
            return Err(Problem::PortOnly);
        }
        return Err(Problem::MissingPort);
    };
    if host.contains(':') {
        return Err(Problem::UnbracketedIpv6);
    }
    if host.is_empty() {
        return Err(Problem::MissingHost);
    }
    Ok((Host::Name(host), nonempty_port(port)?))
}

fn nonempty_port(port: &str) -> Result<&str, Problem> {
    if port.is_empty() {
        Err(Problem::MissingPort)
    } else {
        Ok(port)
    }
}

/// An I/O error without its "(os error N)" suffix.
fn describe(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(spec: &str) -> Problem {
        parse_socket_addr(spec).unwrap_err().problem().clone()
    }

    #[test]
    fn literal_addresses_parse_without_lookup() {
        assert_eq!(
            parse_socket_addr("127.0.0.1:7000").unwrap(),
            "127.0.0.1:7000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_socket_addr("[::1]:0").unwrap(),
            "[::1]:0".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(parse_socket_addrs("10.0.0.1:65535").unwrap().len(), 1);
    }

    #[test]
    fn localhost_resolves() {
        let addrs = parse_socket_addrs("localhost:9").unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
    }

    #[test]
    fn dotted_quads_that_are_not_ipv4_are_not_looked_up() {
        assert_eq!(
            problem("999.1.1.1:80"),
            Problem::BadIpv4("999.1.1.1".into())
        );
        assert_eq!(problem("1.2.3:80"), Problem::BadIpv4("1.2.3".into()));
        assert_eq!(problem("12:80"), Problem::BadIpv4("12".into()));
    }

    #[test]
    fn ports_are_named() {
        assert_eq!(problem("localhost"), Problem::MissingPort);
        assert_eq!(problem("10000"), Problem::PortOnly);
        let alone = parse_socket_addr("10000").unwrap_err().to_string();
        assert!(alone.contains("127.0.0.1:10000"), "{alone}");
        assert_eq!(problem("99999"), Problem::MissingPort);
        assert_eq!(problem("localhost:"), Problem::MissingPort);
        assert_eq!(problem("[::1]"), Problem::MissingPort);
        assert_eq!(problem("127.0.0.1:99999"), Problem::BadPort("99999".into()));
        assert_eq!(problem("127.0.0.1:http"), Problem::BadPort("http".into()));
    }

    #[test]
    fn other_shapes_are_named() {
        assert_eq!(problem(""), Problem::Empty);
        assert_eq!(problem(":80"), Problem::MissingHost);
        assert_eq!(problem("::1:80"), Problem::UnbracketedIpv6);
        assert_eq!(problem("[::g]:80"), Problem::BadIpv6("::g".into()));
        assert_eq!(problem("[::1:80"), Problem::BadIpv6("::1:80".into()));
    }

    #[test]
    fn unresolvable_hosts_are_named() {
        match problem("no-such-host.invalid:7") {
            Problem::Unresolved(host, _) => assert_eq!(host, "no-such-host.invalid"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_error_names_the_input_and_carries_the_hint() {
        for spec in ["", "x", "1.2.3.4:x", "999.1.1.1:80", "[::1]", "unix:"] {
            let e = parse_target(spec).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("bad address {spec:?}: ")),
                "{text}"
            );
            assert!(text.ends_with(&format!("({HINT})")), "{text}");
            assert_eq!(e.input(), spec);
        }
    }

    #[test]
    fn unix_targets() {
        assert_eq!(
            parse_target("unix:/tmp/echo.sock").unwrap(),
            Target::Unix(PathBuf::from("/tmp/echo.sock"))
        );
        assert_eq!(
            parse_target("unix:").unwrap_err().problem(),
            &Problem::EmptyUnixPath
        );
        let t = parse_target("127.0.0.1:1").unwrap();
        assert_eq!(t.to_string(), "127.0.0.1:1");
        assert_eq!(Target::Unix(PathBuf::from("/a")).to_string(), "unix:/a");
    }
}
