//! UDP: one connected socket per "connection", `pipeline` datagrams of
//! `--size` bytes in flight on each, every echo checked.
//!
//! A datagram starts with its sequence number (little-endian, as many of
//! its 8 bytes as fit) followed by the [`pattern`] bytes of that message, so
//! an echo is matched to its datagram even after a loss. A datagram not
//! echoed within `--udp-timeout` is counted `lost`, not as a mismatch: UDP
//! may drop datagrams, and does on loopback when a socket buffer overflows.
//! Echoes arriving after that are counted `late`, and sockets that got no
//! echo at all in the window `unserved` (all their datagrams were lost),
//! neither of them an error. A wrong length, a wrong byte, or a sequence
//! number never sent is a mismatch; a socket error (ICMP port unreachable
//! shows up as "connection refused") is an error.

use crate::net::{self, describe};
use crate::pace::Pacer;
use crate::pattern;
use crate::run::{ns, Config, Handshake, Schedule, Share};
use crate::stats::Stats;
use anyhow::{anyhow, Result};
use selector::{Events, Interest, Selector, Token};
use std::io;
use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
    next_seq: u64,
    due: u64,
    slots: Box<[Slot]>,
    inflight: usize,
    writable: bool,
    expecting: bool,
    served: bool,
}

struct Worker<'a> {
    cfg: &'a Config,
    share: Share,
    selector: Selector,
    socks: Vec<Sock>,
    stats: Stats,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    scratch: Vec<u8>,
    origin: Instant,
    in_window: bool,
    sending: bool,
    pacer: Option<Pacer>,
    echoed: u64,
}

/// The pacing timer's token; connections use their index.
const TIMER: Token = Token(usize::MAX);

fn header_len(size: usize) -> usize {
    size.min(8)
}

/// Run `share`'s sockets until the schedule ends.
///
/// # Errors
///
/// When the selector cannot be created or fails while waiting.
pub fn run(cfg: &Config, share: Share, hs: Handshake) -> Result<Stats> {
    let selector = Selector::with_backend(cfg.backend)
        .map_err(|e| anyhow!("create {} selector: {}", cfg.backend, describe(&e)))?;
    let mut w = Worker {
        cfg,
        share,
        selector,
        socks: Vec::new(),
        stats: Stats::new(),
        wbuf: vec![0; cfg.size],
        rbuf: vec![0; cfg.size + 1],
        scratch: vec![0; cfg.size],
        origin: Instant::now(),
        in_window: false,
        sending: true,
        pacer: None,
        echoed: 0,
    };
    for i in 0..share.count {
        let id = share.first + i;
        let source = net::source_for(cfg.addr, cfg.source_base, id);
        let socket = match net::udp_socket(cfg.addr, source) {
            Ok(s) => Some(UdpSocket::from(s)),
            Err(msg) => {
                w.stats.errors.connect += 1;
                w.stats.note(|| msg);
                None
            }
        };
        if let Some(s) = &socket {
            let token = Token(w.socks.len());
            w.selector
                .register(s, token, Interest::READABLE)
                .map_err(|e| anyhow!("register: {}", describe(&e)))?;
            w.stats.connected += 1;
        }
        w.socks.push(Sock {
            socket,
            id,
            next_seq: 0,
            due: if share.rate.is_none() { u64::MAX } else { 0 },
            slots: vec![Slot::default(); cfg.pipeline].into_boxed_slice(),
            inflight: 0,
            writable: false,
            expecting: false,
            served: false,
        });
    }
    let Some(schedule) = hs.connected(&w.stats) else {
        return Ok(w.stats);
    };
    w.origin = schedule.start;
    w.run(&schedule, &hs)?;
    w.finish();
    Ok(w.stats)
}

impl Worker<'_> {
    fn now(&self) -> u64 {
        ns(self.origin.elapsed())
    }

    fn run(&mut self, s: &Schedule, hs: &Handshake) -> Result<()> {
        let marks = s.marks();
        let timeout = ns(self.cfg.udp_timeout);
        if let Some(rate) = self.share.rate.filter(|_| !self.socks.is_empty()) {
            let n = self.socks.len() as u64;
            let pacer = Pacer::new(rate, n, &mut self.selector, TIMER)
                .map_err(|e| anyhow!("pacing timer: {}", describe(&e)))?;
            self.pacer = Some(pacer);
        }
        let now = self.now();
        if let Some(p) = &mut self.pacer {
            p.start(now)
                .map_err(|e| anyhow!("pacing timer: {}", describe(&e)))?;
        }
        // Room for every socket at once (see the TCP worker).
        let mut events = Events::with_capacity(self.socks.len() + 8);
        let mut last_sweep = 0;
        for i in 0..self.socks.len() {
            self.send(i);
        }
        loop {
            let now = self.now();
            if !self.in_window && self.sending && now >= marks.window_start {
                self.in_window = true;
                self.stats.start_window();
                for c in &mut self.socks {
                    c.served = false;
                    c.expecting = c.inflight > 0;
                }
            }
            if self.sending && now >= marks.window_end {
                self.sending = false;
                self.in_window = false;
                if let Some(p) = &mut self.pacer {
                    p.stop(&mut self.selector);
                }
            }
            let idle = self
                .socks
                .iter()
                .all(|c| c.inflight == 0 || c.socket.is_none());
            if !self.sending && (now >= marks.drain_end || idle) {
                return Ok(());
            }
            if now >= last_sweep + timeout / 4 {
                last_sweep = now;
                self.expire(now, timeout);
            }
            let wake = marks.next_wake(now, self.sending);
            if self.sending {
                while let Some(i) = self.pacer.as_mut().and_then(|p| p.pop(now)) {
                    self.socks[i].due += 1;
                    self.send(i);
                }
            }
            let wait =
                Duration::from_nanos(wake.saturating_sub(now)).min(Duration::from_millis(50));
            self.selector
                .select(&mut events, Some(wait))
                .map_err(|e| anyhow!("select: {}", describe(&e)))?;
            for ev in &events {
                if ev.token() == TIMER {
                    if let Some(p) = &mut self.pacer {
                        p.acknowledge();
                    }
                    continue;
                }
                let i = ev.token().0;
                if ev.is_readable() || ev.is_error_or_hangup() {
                    self.receive(i);
                }
                if ev.is_writable() {
                    self.send(i);
                }
            }
            hs.progress.echoed.store(self.echoed, Ordering::Relaxed);
            let failures = self.stats.errors.total() + self.stats.mismatches;
            hs.progress.failures.store(failures, Ordering::Relaxed);
        }
    }

    /// Count datagrams older than `timeout` as lost and free their slots.
    fn expire(&mut self, now: u64, timeout: u64) {
        for i in 0..self.socks.len() {
            let c = &mut self.socks[i];
            let mut freed = false;
            for slot in c.slots.iter_mut().filter(|s| s.busy) {
                if now.saturating_sub(slot.sent_at) > timeout {
                    slot.busy = false;
                    c.inflight -= 1;
                    self.stats.lost += 1;
                    freed = true;
                }
            }
            if freed {
                self.send(i);
            }
        }
    }

    fn send(&mut self, i: usize) {
        let size = self.cfg.size;
        let h = header_len(size);
        while self.sending {
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
                    let start = match &self.pacer {
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
                    c.inflight += 1;
                    c.next_seq += 1;
                    c.expecting |= self.in_window;
                }
                Ok(n) => return self.fail(i, format!("send: sent {n} of {size} bytes")),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !c.writable
                        && self
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
            let _ = self.selector.modify(socket, Token(i), Interest::READABLE);
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
        self.send(i);
    }

    /// Match a received datagram of `n` bytes to its slot and check it.
    fn check(&mut self, i: usize, n: usize) {
        let size = self.cfg.size;
        let h = header_len(size);
        let now = self.now();
        let (addr, id) = (self.cfg.addr, self.socks[i].id);
        if n != size {
            self.stats.mismatches += 1;
            return self.stats.note(|| {
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
        let c = &mut self.socks[i];
        let found = c.slots.iter().position(|s| s.busy && s.seq & mask == low);
        let seq = match found {
            Some(k) => c.slots[k].seq,
            None if h == 8 && low < c.next_seq => low,
            None if h < 8 => {
                self.stats.late += 1;
                return;
            }
            None => {
                self.stats.mismatches += 1;
                return self.stats.note(|| {
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
            self.stats.mismatches += 1;
            if let Some(k) = found {
                c.slots[k].busy = false;
                c.inflight -= 1;
            }
            return self.stats.note(|| {
                format!(
                    "socket {id} to {addr}: datagram {seq}: echoed bytes differ from those sent"
                )
            });
        }
        let Some(k) = found else {
            self.stats.late += 1;
            return;
        };
        let slot = &mut c.slots[k];
        slot.busy = false;
        c.inflight -= 1;
        c.served = true;
        self.echoed += 1;
        if self.in_window {
            self.stats.record(now.saturating_sub(slot.start), size);
        }
    }

    fn fail(&mut self, i: usize, msg: String) {
        let c = &mut self.socks[i];
        if let Some(socket) = c.socket.take() {
            let _ = self.selector.unregister(&socket);
        }
        c.inflight = 0;
        self.stats.errors.io += 1;
        let (id, addr) = (c.id, self.cfg.addr);
        self.stats.note(|| format!("socket {id} to {addr}: {msg}"));
    }

    /// Datagrams still out are lost. Sockets that got no echo in the window
    /// are counted apart: under UDP that is loss, not an error.
    fn finish(&mut self) {
        for c in &mut self.socks {
            let Some(socket) = c.socket.take() else {
                continue;
            };
            let _ = self.selector.unregister(&socket);
            self.stats.lost += c.inflight as u64;
            if c.expecting && !c.served {
                self.stats.silent += 1;
            }
        }
    }
}
