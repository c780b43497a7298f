//! UDP echo (RFC 862): each datagram goes back to its sender unchanged,
//! except where echoing would make the server a reflector or start a loop.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::stats::Counters;

mod rate;
mod shared;

use shared::UdpShared;

/// Source ports never echoed to: echo, daytime, qotd, chargen, time (and 0,
/// which no real sender uses). Echoing to another small service could start
/// an endless packet loop between the two (the classic echo-to-chargen
/// ping-pong); careful inetd implementations refuse them too.
const REFUSED_PORTS: [u16; 6] = [0, 7, 13, 17, 19, 37];

/// Why a datagram is dropped.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// From one of [`REFUSED_PORTS`].
    SmallService,
    /// From the port of one of the server's own UDP sockets.
    OwnPort,
    /// Over `--udp-rate`.
    Rate,
}

impl Refusal {
    fn why(self) -> &'static str {
        match self {
            Refusal::SmallService => {
                "its source port belongs to a small service (reflection guard)"
            }
            Refusal::OwnPort => "its source port is one of this server's UDP ports (loop guard)",
            Refusal::Rate => "over --udp-rate",
        }
    }
}

/// Messages logged at most once per second, with a count of the rest.
#[derive(Debug, Default)]
pub struct RateLimited {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    /// `Some(suppressed since the last one)` when a message may be logged now.
    pub fn ready(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// One worker's UDP sockets and what it knows about the server's others.
#[derive(Debug)]
pub struct UdpEcho {
    sockets: Vec<UdpSocket>,
    /// Every worker's ports and the `--udp-rate` buckets.
    shared: Arc<UdpShared>,
    /// A copy of every port the server serves (never echoed to), and the
    /// shared list's generation it was copied at.
    ports: (Vec<u16>, usize),
    log: RateLimited,
}

impl UdpEcho {
    pub fn new(sockets: Vec<UdpSocket>, rate: Option<u64>) -> io::Result<UdpEcho> {
        let own = sockets
            .iter()
            .map(|s| Ok(s.local_addr()?.port()))
            .collect::<io::Result<Vec<u16>>>()?;
        let shared = UdpShared::join(&own, rate);
        Ok(UdpEcho {
            sockets,
            ports: (shared.ports(), shared.generation()),
            shared,
            log: RateLimited::default(),
        })
    }

    /// Whether `port` is one of the server's UDP ports, on any worker.
    fn is_ours(&mut self, port: u16) -> bool {
        let generation = self.shared.generation();
        if generation != self.ports.1 {
            self.ports = (self.shared.ports(), generation);
        }
        self.ports.0.contains(&port)
    }

    /// Take the sockets out, to unregister and close them.
    pub fn close(&mut self) -> impl Iterator<Item = UdpSocket> + '_ {
        self.sockets.drain(..)
    }

    /// A readable socket: one datagram in, the same datagram back out.
    pub fn echo(
        &mut self,
        index: usize,
        buf: &mut [u8],
        now: Instant,
        counters: &mut Counters,
        trace: bool,
    ) {
        let Some(socket) = self.sockets.get(index) else {
            return;
        };
        let (n, from) = match socket.recv_from(buf) {
            Ok(received) => received,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => return,
            Err(e) => {
                debug!(error = %e, "udp receive failed");
                return;
            }
        };
        match self.refusal(from.port(), from.ip(), n, now) {
            None => self.send(index, &buf[..n], from, counters, trace),
            Some(refusal) => {
                match refusal {
                    Refusal::Rate => counters.dropped_rate += 1,
                    Refusal::SmallService | Refusal::OwnPort => counters.dropped_reflection += 1,
                }
                if let Some(more) = self.log.ready(now) {
                    let why = refusal.why();
                    warn!(peer = %from, suppressed = more, "dropping a datagram: {why}");
                }
            }
        }
    }

    /// Why a datagram of `bytes` from `ip:port` is not echoed, if it is not.
    fn refusal(&mut self, port: u16, ip: IpAddr, bytes: usize, now: Instant) -> Option<Refusal> {
        if REFUSED_PORTS.contains(&port) {
            Some(Refusal::SmallService)
        } else if self.is_ours(port) {
            Some(Refusal::OwnPort)
        } else if !self.shared.admit(ip, bytes, now) {
            Some(Refusal::Rate)
        } else {
            None
        }
    }

    fn send(
        &self,
        index: usize,
        data: &[u8],
        from: SocketAddr,
        counters: &mut Counters,
        trace: bool,
    ) {
        let n = data.len();
        let Some(socket) = self.sockets.get(index) else {
            return;
        };
        match socket.send_to(data, from) {
            Ok(m) => {
                counters.datagrams += 1;
                counters.bytes_in += n as u64;
                counters.bytes_out += m as u64;
                if trace {
                    info!(target: "trace", peer = %from, bytes = n, "echoed a {n}-byte datagram to {from}");
                }
            }
            // UDP makes no promise; a full send buffer drops the echo.
            Err(e) => {
                counters.dropped_send += 1;
                debug!(peer = %from, error = %e, "udp send failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_rate_limited() {
        let mut log = RateLimited::default();
        let t0 = Instant::now();
        assert_eq!(log.ready(t0), Some(0));
        assert_eq!(log.ready(t0 + Duration::from_millis(10)), None);
        assert_eq!(log.ready(t0 + Duration::from_millis(20)), None);
        assert_eq!(log.ready(t0 + Duration::from_secs(2)), Some(2));
    }
}
