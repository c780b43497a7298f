//! The lines a server prints on stdout once its sockets are bound, one per socket:
//! `listening tcp 127.0.0.1:41234`, `listening udp ...`, `listening unix /path`,
//! `listening tcp+proxy ...`, `listening metrics ...`, `listening control ...`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A server's sockets, each kind in the order it printed them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listeners {
    /// TCP listeners.
    pub tcp: Vec<SocketAddr>,
    /// UDP sockets.
    pub udp: Vec<SocketAddr>,
    /// Unix-domain listeners.
    pub unix: Vec<PathBuf>,
    /// PROXY-protocol TCP listeners (`tcp+proxy`).
    pub proxy: Vec<SocketAddr>,
    /// The metrics HTTP endpoint.
    pub metrics: Option<SocketAddr>,
    /// The control HTTP endpoint (`--control`).
    pub control: Option<SocketAddr>,
}

impl Listeners {
    /// Adds the socket one `listening KIND ADDR` line names; an error names the line when it
    /// is not one.
    pub fn add(&mut self, line: &str) -> Result<(), String> {
        let mut words = line.splitn(3, ' ');
        let (first, kind, addr) = (words.next(), words.next(), words.next());
        let bad = || format!("bad listening line {line:?}");
        if first != Some("listening") {
            return Err(bad());
        }
        let addr = addr.ok_or_else(bad)?.trim();
        let inet = || addr.parse::<SocketAddr>().map_err(|_| bad());
        match kind {
            Some("tcp") => self.tcp.push(inet()?),
            Some("udp") => self.udp.push(inet()?),
            Some("unix") => self.unix.push(PathBuf::from(addr)),
            Some("tcp+proxy") => self.proxy.push(inet()?),
            Some("metrics") => self.metrics = Some(inet()?),
            Some("control") => self.control = Some(inet()?),
            _ => return Err(bad()),
        }
        Ok(())
    }

    /// How many sockets it holds.
    pub fn len(&self) -> usize {
        self.tcp.len()
            + self.udp.len()
            + self.unix.len()
            + self.proxy.len()
            + usize::from(self.metrics.is_some())
            + usize::from(self.control.is_some())
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The distinct `listening ...` lines among `lines`, in the order first seen.
pub fn lines(all: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for line in all {
        if line.starts_with("listening ") && !seen.contains(line) {
            seen.push(line.clone());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_in_order() {
        let mut l = Listeners::default();
        for line in [
            "listening tcp 127.0.0.1:1000",
            "listening udp [::1]:1001",
            "listening unix /tmp/echo sock",
            "listening tcp+proxy 127.0.0.1:1002",
            "listening metrics 127.0.0.1:1003",
            "listening tcp 127.0.0.1:1004",
            "listening control 127.0.0.1:1005",
        ] {
            l.add(line).unwrap();
        }
        assert_eq!(
            l.tcp,
            [
                "127.0.0.1:1000".parse().unwrap(),
                "127.0.0.1:1004".parse().unwrap()
            ] as [SocketAddr; 2]
        );
        assert_eq!(l.udp, ["[::1]:1001".parse::<SocketAddr>().unwrap()]);
        assert_eq!(l.unix, [PathBuf::from("/tmp/echo sock")]);
        assert_eq!(l.proxy, ["127.0.0.1:1002".parse::<SocketAddr>().unwrap()]);
        assert_eq!(l.metrics, Some("127.0.0.1:1003".parse().unwrap()));
        assert_eq!(l.control, Some("127.0.0.1:1005".parse().unwrap()));
        assert_eq!(l.len(), 7);
    }

    #[test]
    fn a_bad_line_is_named() {
        let mut l = Listeners::default();
        for line in [
            "listening sctp 127.0.0.1:1",
            "listening tcp nonsense",
            "listening tcp",
            "summary: connections 1",
        ] {
            let err = l.add(line).unwrap_err();
            assert!(err.contains(line), "{err}");
        }
        assert!(l.is_empty());
    }

    #[test]
    fn repeated_lines_count_once() {
        let all: Vec<String> = ["listening tcp a", "x", "listening tcp a", "listening udp b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(lines(&all), ["listening tcp a", "listening udp b"]);
    }
}
