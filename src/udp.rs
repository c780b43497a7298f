//! UDP echo (RFC 862): each datagram goes back to its sender unchanged,
//! except where echoing would make the server a reflector or start a loop.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::budget::Budget;
use crate::fault::Draw;
use crate::stats::Counters;

mod faults;
mod rate;
mod shared;

use faults::{Ctx, Data, Outgoing, UdpFaults};
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
    /// `--fault drop|duplicate|reorder|delay`, and what they hold.
    faults: UdpFaults,
    /// What the faults send now (kept to reuse its allocation).
    out: Vec<Outgoing>,
}

impl UdpEcho {
    /// Worker `worker`'s UDP echo; its faults are drawn from `draw`.
    pub fn new(
        sockets: Vec<UdpSocket>,
        rate: Option<u64>,
        draw: Draw,
        worker: usize,
        trace: bool,
    ) -> io::Result<UdpEcho> {
        let local = sockets
            .iter()
            .map(UdpSocket::local_addr)
            .collect::<io::Result<Vec<SocketAddr>>>()?;
        let own: Vec<u16> = local.iter().map(SocketAddr::port).collect();
        let labels = local.iter().map(|a| draw.faults().udp_label(*a)).collect();
        let shared = UdpShared::join(&own, rate);
        Ok(UdpEcho {
            sockets,
            ports: (shared.ports(), shared.generation()),
            shared,
            log: RateLimited::default(),
            faults: UdpFaults::new(draw, labels, worker, trace),
            out: Vec::new(),
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

    /// Send what the faults hold, then take the sockets out, to unregister
    /// and close them.
    pub fn close(
        &mut self,
        budget: &Budget,
        counters: &mut Counters,
    ) -> impl Iterator<Item = UdpSocket> + '_ {
        self.faults.flush(budget, &mut self.out);
        self.send_out(&[], counters, false);
        self.sockets.drain(..)
    }

    /// When a datagram the faults hold is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.faults.next_due()
    }

    /// Send the held datagrams that are due.
    pub fn on_timers(
        &mut self,
        now: Instant,
        budget: &Budget,
        counters: &mut Counters,
        trace: bool,
    ) {
        let ctx = &mut Ctx {
            now,
            budget,
            counters,
            out: &mut self.out,
        };
        self.faults.on_timers(ctx);
        self.send_out(&[], counters, trace);
    }

    /// A readable socket: one datagram in, the same datagram back out
    /// (unless a fault says otherwise).
    pub fn echo(
        &mut self,
        index: usize,
        buf: &mut [u8],
        now: Instant,
        budget: &Budget,
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
            None if self.faults.active() => {
                counters.bytes_in += n as u64;
                let ctx = &mut Ctx {
                    now,
                    budget,
                    counters,
                    out: &mut self.out,
                };
                self.faults.receive(index, from, &buf[..n], ctx);
                self.send_out(&buf[..n], counters, trace);
            }
            None => {
                counters.bytes_in += n as u64;
                self.send(index, &buf[..n], from, counters, trace);
            }
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

    /// Send what the faults put out; `this` is the datagram just received.
    fn send_out(&mut self, this: &[u8], counters: &mut Counters, trace: bool) {
        let mut out = std::mem::take(&mut self.out);
        for o in out.drain(..) {
            let data = match &o.data {
                Data::This => this,
                Data::Held(held) => held,
            };
            self.send(o.socket, data, o.to, counters, trace);
        }
        self.out = out;
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
