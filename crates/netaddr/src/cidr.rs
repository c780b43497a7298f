//! Address ranges in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), for
//! lists of trusted sources.

use std::fmt;
use std::net::IpAddr;

/// An address range: a network address and a prefix length. A bare
/// address is the range of that one address (`/32` or `/128`).
///
/// ```
/// let lan: netaddr::Cidr = "10.0.0.0/8".parse().unwrap();
/// assert!(lan.contains("10.1.2.3".parse().unwrap()));
/// assert!(!lan.contains("192.168.0.1".parse().unwrap()));
/// assert!("10.1.2.3/8".parse::<netaddr::Cidr>().is_err()); // host bits set
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A refused range: the text given and what was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrError {
    input: String,
    why: String,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad address range {:?}: {} (expected ADDRESS/PREFIX, as 10.0.0.0/8 or \
             2001:db8::/32, or one address)",
            self.input, self.why
        )
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// Parse `ADDRESS/PREFIX` or a bare address. Fits clap's
    /// `value_parser`: `#[arg(value_parser = netaddr::Cidr::parse)]`.
    ///
    /// # Errors
    ///
    /// When the address or the prefix is not one, the prefix is longer than
    /// the address, or bits are set past the prefix (`10.1.2.3/8`: the
    /// error names `10.0.0.0/8`).
    pub fn parse(spec: &str) -> Result<Cidr, CidrError> {
        let fail = |why: String| CidrError {
            input: spec.to_owned(),
            why,
        };
        let (addr, prefix) = match spec.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (spec, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| fail(format!("{addr:?} is not an IP address")))?;
        let bits = max_prefix(network);
        let prefix =
            match prefix {
                None => bits,
                Some(p) => p.parse::<u8>().ok().filter(|&p| p <= bits).ok_or_else(|| {
                    fail(format!("prefix {p:?} is not a number from 0 to {bits}"))
                })?,
            };
        let cidr = Cidr { network, prefix };
        let masked = cidr.masked(network);
        if masked != network {
            return Err(fail(format!(
                "bits are set past the /{prefix} prefix: the range is {masked}/{prefix}"
            )));
        }
        Ok(cidr)
    }

    /// Whether `ip` is in the range. An IPv4-mapped IPv6 address
    /// (`::ffff:10.1.2.3`, as a dual-stack socket reports IPv4 peers) is
    /// taken as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.network
    }

    /// `ip` with the bits past the prefix cleared (same family as `ip`).
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(spec: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(spec)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_their_addresses_only() {
        let lan = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(lan.contains(ip("10.255.0.1")));
        assert!(!lan.contains(ip("11.0.0.1")));
        assert!(!lan.contains(ip("::1")), "other family");
        assert!(lan.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("::1/128").unwrap().contains(ip("::1")));
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        for (bad, says) in [
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("10.0.0.0/33", "0 to 32"),
            ("::/129", "0 to 128"),
            ("10.0.0.0/x", "\"x\""),
            ("nonsense", "not an IP address"),
            ("", "not an IP address"),
            ("10.0.0.0/", "prefix"),
        ] {
            let e = Cidr::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains(says) && e.contains(&format!("{bad:?}")),
                "{bad}: {e}"
            );
        }
    }
}
