//! UDP echo (RFC 862): each datagram goes back to its sender unchanged,
//! except where echoing would make the server a reflector.

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::stats::Counters;

mod rate;

use rate::RateTable;

/// Source ports never echoed to: echo, daytime, qotd, chargen, time (and 0,
/// which no real sender uses). Echoing to another small service could start
/// an endless packet loop between the two (the classic echo-to-chargen
/// ping-pong); careful inetd implementations refuse them too.
const REFUSED_PORTS: [u16; 6] = [0, 7, 13, 17, 19, 37];

/// Source addresses `--udp-rate` remembers per worker; past this the least
/// recently seen is forgotten. About 80 bytes each, so at most about 5 MiB.
const MAX_TRACKED_SOURCES: usize = 65_536;

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

/// One worker's UDP sockets and what it remembers about their senders.
#[derive(Debug)]
pub struct UdpEcho {
    /// Each socket with its own port (never echoed to).
    sockets: Vec<(UdpSocket, u16)>,
    /// `--udp-rate`, when set.
    rates: Option<RateTable>,
    log: RateLimited,
}

impl UdpEcho {
    pub fn new(sockets: Vec<UdpSocket>, rate: Option<u64>) -> io::Result<UdpEcho> {
        let sockets = sockets
            .into_iter()
            .map(|s| {
                let port = s.local_addr()?.port();
                Ok((s, port))
            })
            .collect::<io::Result<_>>()?;
        Ok(UdpEcho {
            sockets,
            rates: rate.map(|r| RateTable::new(r, MAX_TRACKED_SOURCES)),
            log: RateLimited::default(),
        })
    }

    /// Take the sockets out, to unregister and close them.
    pub fn close(&mut self) -> impl Iterator<Item = UdpSocket> + '_ {
        self.sockets.drain(..).map(|(s, _)| s)
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
        let Some((socket, own_port)) = self.sockets.get(index) else {
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
        let refused = REFUSED_PORTS.contains(&from.port()) || from.port() == *own_port;
        if refused || !self.within_rate(from, n, now) {
            if refused {
                counters.dropped_reflection += 1;
            } else {
                counters.dropped_rate += 1;
            }
            if let Some(more) = self.log.ready(now) {
                let why = if refused {
                    "its source port belongs to a small service (reflection guard)"
                } else {
                    "over --udp-rate"
                };
                warn!(peer = %from, suppressed = more, "dropping a datagram: {why}");
            }
            return;
        }
        let socket = &self.sockets[index].0;
        match socket.send_to(&buf[..n], from) {
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

    fn within_rate(&mut self, from: SocketAddr, bytes: usize, now: Instant) -> bool {
        self.rates
            .as_mut()
            .map_or(true, |table| table.admit(from.ip(), bytes, now))
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
