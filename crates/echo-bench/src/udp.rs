//! UDP: one connected socket per "connection", `pipeline` datagrams of
//! `--size` bytes in flight on each, every echo checked.
//!
//! A datagram starts with its sequence number (little-endian, as many of
//! its 8 bytes as fit) followed by the [`pattern`] bytes of that message, so
//! an echo is matched to its datagram even after a loss. A datagram not
//! echoed within `--udp-timeout` is counted `lost`, not as a mismatch: UDP
//! may drop datagrams, and does on loopback when a socket buffer overflows.
//! Echoes arriving after that are counted `late`; a second echo of a
//! datagram already echoed is `duplicated`, a fault like a mismatch (see
//! [`history`] for how far back the two are told apart). Sockets that got no
//! echo at all in the window `unserved` (all their datagrams were lost),
//! neither of them an error. A wrong length, a wrong byte, or a sequence
//! number never sent is a mismatch; a socket error (ICMP port unreachable
//! shows up as "connection refused") is an error, and its socket counts as
//! unserved too if it got no echo in the window. A socket counts as
//! `connected` only once an echo came back on it, so a closed port reads
//! "connected 0/N", "N sockets got no echo" (issue 12).

mod history;

use crate::net::{self, describe};
use crate::pattern;
use crate::plan::{ns, Config, Handshake, Share};
use crate::stats::Stats;
use crate::worker::{self, Core, Sockets};
use anyhow::{anyhow, Result};
use history::{Fate, History};
use netaddr::Target;
use selector::{Interest, Token};
use std::io;
use std::net::{SocketAddr, UdpSocket};

#[derive(Clone, Copy, Default)]
struct Slot {
    busy: bool,
    seq: u64,
    /// When the message was due (open loop) or sent, ns since the start.
    start: u64,
    sent_at: u64,
}

struct Sock {
    socket: Option<UdpSocket>,
    id: u64,
    addr: SocketAddr,
    next_seq: u64,
    due: u64,
    slots: Box<[Slot]>,
    /// What became of recent datagrams no longer in flight.
    history: History,
    inflight: usize,
    writable: bool,
    expecting: bool,
    /// An echo came back in the window; in the whole run.
    served: bool,
    answered: bool,
    /// A socket error closed it; it could not even be created.
    failed: bool,
    never_set_up: bool,
}

/// One worker's UDP sockets.
struct Datagrams<'a> {
    core: Core<'a>,
    socks: Vec<Sock>,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    scratch: Vec<u8>,
    /// Loss timeout, ns, and when datagrams were last checked against it.
    timeout: u64,
    last_sweep: u64,
}

fn header_len(size: usize) -> usize {
    size.min(8)
}

/// Run `share`'s sockets until the schedule ends; per-target counts.
///
/// # Errors
///
/// When the selector cannot be created or fails while waiting, or a target
/// is not an IP address.
pub fn run(cfg: &Config, share: Share, hs: Handshake) -> Result<Vec<Stats>> {
    let mut w = Datagrams {
        core: Core::new(cfg, share, share.count as usize)?,
        socks: Vec::new(),
        wbuf: vec![0; cfg.size],
        rbuf: vec![0; cfg.size + 1],
        scratch: vec![0; cfg.size],
        timeout: ns(cfg.udp_timeout),
        last_sweep: 0,
    };
    for i in 0..share.count {
        let id = share.first + i;
        let Target::Inet(addr) = cfg.targets[cfg.target_of(id)] else {
            return Err(anyhow!("UDP needs an IP target, not a unix: path"));
        };
        let source = net::source_for(addr, &cfg.sources, id);
        let socket = match net::udp_socket(addr, source) {
            Ok(s) => Some(UdpSocket::from(s)),
            Err(msg) => {
                let stats = w.core.stats_of(id);
                stats.errors.connect += 1;
                stats.note(|| msg);
                None
            }
        };
        if let Some(s) = &socket {
            let token = Token(w.socks.len());
            w.core
                .selector
                .register(s, token, Interest::READABLE)
                .map_err(|e| anyhow!("register: {}", describe(&e)))?;
            // A socket is "connected" (set up); whether anything answers
            // shows in `answered`.
            w.core.stats_of(id).connected += 1;
        }
        w.socks.push(Sock {
            id,
            addr,
            next_seq: 0,
            due: if share.rate.is_none() { u64::MAX } else { 0 },
            slots: vec![Slot::default(); cfg.pipeline].into_boxed_slice(),
            history: History::new(cfg.pipeline),
            inflight: 0,
            writable: false,
            expecting: false,
            served: false,
            answered: false,
            failed: false,
            never_set_up: socket.is_none(),
            socket,
        });
    }
    let Some(schedule) = hs.connected(&w.core.stats) else {
        return Ok(w.core.stats);
    };
    worker::drive(&mut w, &schedule, &hs)?;
    w.finish();
    Ok(w.core.stats)
}

impl<'a> Sockets<'a> for Datagrams<'a> {
    fn core(&mut self) -> &mut Core<'a> {
        &mut self.core
    }

    fn count(&self) -> usize {
        self.socks.len()
    }

    fn start_window(&mut self) {
        for c in &mut self.socks {
            c.served = false;
            c.expecting = c.inflight > 0;
        }
    }

    fn send(&mut self, i: usize) {
        self.send_due(i);
    }

    fn release(&mut self, i: usize) {
        self.socks[i].due += 1;
        self.send_due(i);
    }

    fn ready(&mut self, i: usize, readable: bool, writable: bool) {
        if readable {
            self.receive(i);
        }
        if writable {
            self.send_due(i);
        }
    }

    fn tick(&mut self, now: u64) {
        if now >= self.last_sweep + self.timeout / 4 {
            self.last_sweep = now;
            self.expire(now, self.timeout);
        }
    }

    fn idle(&self) -> bool {
        self.socks
            .iter()
            .all(|c| c.inflight == 0 || c.socket.is_none())
    }
}

impl Datagrams<'_> {
    fn now(&self) -> u64 {
        self.core.now()
    }

    /// Count datagrams older than `timeout` as lost and free their slots.
    fn expire(&mut self, now: u64, timeout: u64) {
        for i in 0..self.socks.len() {
            let c = &mut self.socks[i];
            let mut freed = false;
            for slot in c.slots.iter_mut().filter(|s| s.busy) {
                if now.saturating_sub(slot.sent_at) > timeout {
                    slot.busy = false;
                    c.history.mark(slot.seq, Fate::Lost);
                    c.inflight -= 1;
                    self.core.stats_of(c.id).lost += 1;
                    freed = true;
                }
            }
            if freed {
                self.send_due(i);
            }
        }
    }

    fn send_due(&mut self, i: usize) {
        let size = self.core.cfg.size;
        let h = header_len(size);
        while self.core.sending {
            let c = &self.socks[i];
            let Some(socket) = &c.socket else { return };
            if c.inflight >= c.slots.len() || c.next_seq >= c.due {
                break;
            }
            let seq = c.next_seq;
            pattern::fill(pattern::seed(c.id, seq), 0, &mut self.wbuf);
            self.wbuf[..h].copy_from_slice(&seq.to_le_bytes()[..h]);
            match socket.send(&self.wbuf) {
                Ok(n) if n == size => {
                    let now = self.now();
                    let start = match &self.core.pacer {
                        // Due time, not send time: no coordinated omission.
                        Some(p) => p.due_time(i, seq),
                        None => now,
                    };
                    let c = &mut self.socks[i];
                    if let Some(slot) = c.slots.iter_mut().find(|s| !s.busy) {
                        *slot = Slot {
                            busy: true,
                            seq,
                            start,
                            sent_at: now,
                        };
                    }
                    c.history.mark(seq, Fate::Unknown);
                    c.inflight += 1;
                    c.next_seq += 1;
                    c.expecting |= self.core.in_window;
                }
                Ok(n) => return self.fail(i, format!("send: sent {n} of {size} bytes")),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !c.writable
                        && self
                            .core
                            .selector
                            .modify(socket, Token(i), Interest::BOTH)
                            .is_ok()
                    {
                        self.socks[i].writable = true;
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, format!("send: {}", describe(&e))),
            }
        }
        let c = &mut self.socks[i];
        if let (Some(socket), true) = (&c.socket, c.writable) {
            let _ = self
                .core
                .selector
                .modify(socket, Token(i), Interest::READABLE);
            c.writable = false;
        }
    }

    fn receive(&mut self, i: usize) {
        for _ in 0..64 {
            let Some(socket) = &self.socks[i].socket else {
                return;
            };
            match socket.recv(&mut self.rbuf) {
                Ok(n) => self.check(i, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, format!("recv: {}", describe(&e))),
            }
        }
        self.send_due(i);
    }

    /// Match a received datagram of `n` bytes to its slot and check it.
    fn check(&mut self, i: usize, n: usize) {
        let size = self.core.cfg.size;
        let h = header_len(size);
        let now = self.now();
        let (addr, id) = (self.socks[i].addr, self.socks[i].id);
        let stats = self.core.stats_of(id);
        if n != size {
            stats.mismatches += 1;
            return stats.note(|| {
                format!("socket {id} to {addr}: echoed a datagram of {n} bytes, sent {size}")
            });
        }
        let mut seq_bytes = [0u8; 8];
        seq_bytes[..h].copy_from_slice(&self.rbuf[..h]);
        let low = u64::from_le_bytes(seq_bytes);
        let mask = if h == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * h)) - 1
        };
        // How far apart two sequence numbers with the same low bytes are.
        let span = mask.saturating_add(1);
        let c = &mut self.socks[i];
        let found = c.slots.iter().position(|s| s.busy && s.seq & mask == low);
        let seq = match found {
            Some(k) => c.slots[k].seq,
            // The latest sequence number sent with these low bytes.
            None if low < c.next_seq => {
                let top = c.next_seq - 1;
                top - (top - low) % span
            }
            None => {
                stats.mismatches += 1;
                return stats.note(|| {
                    format!("socket {id} to {addr}: echoed sequence number {low}, never sent")
                });
            }
        };
        if !pattern::matches(
            pattern::seed(id, seq),
            h,
            &self.rbuf[h..n],
            &mut self.scratch,
        ) {
            stats.mismatches += 1;
            if let Some(k) = found {
                c.slots[k].busy = false;
                c.inflight -= 1;
                c.history.mark(seq, Fate::Echoed);
            }
            return stats.note(|| {
                format!(
                    "socket {id} to {addr}: datagram {seq}: echoed bytes differ from those sent"
                )
            });
        }
        let Some(k) = found else {
            match c.history.fate(seq, c.next_seq, span) {
                Fate::Echoed => {
                    stats.duplicated += 1;
                    stats.note(|| {
                        format!("socket {id} to {addr}: datagram {seq} echoed more than once")
                    });
                }
                Fate::Lost => {
                    stats.late += 1;
                    c.history.mark(seq, Fate::Echoed);
                }
                Fate::Unknown => stats.late += 1,
            }
            return;
        };
        let slot = &mut c.slots[k];
        slot.busy = false;
        c.inflight -= 1;
        c.served = true;
        c.answered = true;
        c.history.mark(seq, Fate::Echoed);
        let (due, sent) = (slot.start, slot.sent_at);
        self.core.complete(id, now, due, sent);
    }

    fn fail(&mut self, i: usize, msg: String) {
        let c = &mut self.socks[i];
        if let Some(socket) = c.socket.take() {
            let _ = self.core.selector.unregister(&socket);
        }
        c.inflight = 0;
        c.failed = true;
        let (id, addr) = (c.id, c.addr);
        let stats = self.core.stats_of(id);
        stats.errors.io += 1;
        stats.note(|| format!("socket {id} to {addr}: {msg}"));
    }

    /// Datagrams still out are lost. Sockets that got no echo in the window
    /// are counted apart (`silent`): under UDP that is loss, not an error,
    /// and that includes sockets that failed. Only sockets that got an
    /// echo at some point stay counted as connected.
    fn finish(&mut self) {
        for c in &mut self.socks {
            if let Some(socket) = c.socket.take() {
                let _ = self.core.selector.unregister(&socket);
            }
            let stats = self.core.stats_of(c.id);
            stats.lost += c.inflight as u64;
            if (c.expecting || c.failed) && !c.served {
                stats.silent += 1;
            }
            // Set up but never answered: not connected after all.
            if !c.answered && !c.never_set_up {
                stats.connected -= 1;
            }
        }
    }
}
