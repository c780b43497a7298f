//! TCP connections on one [`Selector`]: connect in batches, then keep
//! `pipeline` messages in flight on each (or send on schedule with
//! `--rate`), checking every echoed byte.
//!
//! Each connection's echo stream is the concatenation of its messages, so
//! a received byte's stream offset says which message and which byte of it
//! it is; bytes are checked against [`pattern`] as they arrive. Nothing is
//! allocated per message: one write buffer, one read buffer and one scratch
//! buffer serve every connection of the worker.

use crate::net::describe;
use crate::pace::Pacer;
use crate::pattern;
use crate::run::{ns, Config, Handshake, Schedule, Share, DRAIN};
use crate::stats::Stats;
use anyhow::{anyhow, Result};
use selector::{Events, Interest, Selector, Token};
use socket2::Socket;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod connect;

/// At most this many connections between connect and their first echo: a
/// common listen backlog (128), so that batches do not overflow the accept
/// queue.
const CONNECT_BATCH: usize = 128;
const BUFFER: usize = 64 * 1024;

enum Link {
    Idle,
    Connecting(Socket),
    Open(TcpStream),
    Closed,
}

struct Conn {
    link: Link,
    id: u64,
    /// Bytes written and bytes echoed back, as offsets in the stream.
    sent: u64,
    recvd: u64,
    /// Messages the schedule allows so far (`u64::MAX` in closed loop).
    due: u64,
    /// Start time (ns since the schedule's start) of message `k`, at `k % pipeline`.
    starts: Box<[u64]>,
    writable: bool,
    /// Echoes owed at the window's start, or a message started in it.
    expecting: bool,
    served: bool,
    /// Message 0 came back: the connection is established and served.
    ready: bool,
    /// When its first connect started, and its latest attempt.
    started: Instant,
    attempt: Instant,
    /// Attempts reset because the first echo did not come back.
    retries: u8,
    /// It took long to connect (counted once, to shrink the connect window).
    slow: bool,
}

/// Run `share`'s connections until the schedule ends.
///
/// # Errors
///
/// When the selector cannot be created or fails while waiting; connection
/// failures are counted, not returned.
pub fn run(cfg: &Config, share: Share, hs: Handshake) -> Result<Stats> {
    let selector = Selector::with_backend(cfg.backend)
        .map_err(|e| anyhow!("create {} selector: {}", cfg.backend, describe(&e)))?;
    let closed_loop = share.rate.is_none();
    let conns = (0..share.count)
        .map(|i| Conn {
            link: Link::Idle,
            id: share.first + i,
            sent: 0,
            recvd: 0,
            due: if closed_loop { u64::MAX } else { 0 },
            starts: vec![0; cfg.pipeline].into_boxed_slice(),
            writable: false,
            expecting: false,
            served: false,
            ready: false,
            started: Instant::now(),
            attempt: Instant::now(),
            retries: 0,
            slow: false,
        })
        .collect();
    // Room for every connection at once: a level-triggered wait that cannot
    // take all that is ready serves the descriptors it just reported before
    // the ones it left over, which skews latency at 10,000 connections.
    let events = Events::with_capacity(share.count as usize + 8);
    let mut w = Worker {
        cfg,
        share,
        selector,
        events,
        conns,
        stats: Stats::new(),
        wbuf: vec![0; BUFFER],
        rbuf: vec![0; BUFFER],
        scratch: vec![0; BUFFER],
        origin: Instant::now(),
        in_window: false,
        sending: true,
        pacer: None,
        echoed: 0,
        settled: 0,
    };
    w.connect_all()?;
    let Some(schedule) = hs.connected(&w.stats) else {
        return Ok(w.stats);
    };
    w.origin = schedule.start;
    w.run(&schedule, &hs)?;
    w.finish();
    Ok(w.stats)
}

struct Worker<'a> {
    cfg: &'a Config,
    share: Share,
    selector: Selector,
    events: Events,
    conns: Vec<Conn>,
    stats: Stats,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    scratch: Vec<u8>,
    origin: Instant,
    in_window: bool,
    sending: bool,
    pacer: Option<Pacer>,
    /// Messages echoed since the start, for the progress line.
    echoed: u64,
    /// Connections that are ready or failed before they were.
    settled: usize,
}

/// Why a connection was closed early.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The server closed it while echoes were owed.
    Closed,
    /// A read or write failed.
    Io,
    /// The echo differed from what was sent (counted as a mismatch).
    Mismatch,
}

/// The pacing timer's token; connections use their index.
const TIMER: Token = Token(usize::MAX);

impl Worker<'_> {
    fn now(&self) -> u64 {
        ns(self.origin.elapsed())
    }

    fn run(&mut self, s: &Schedule, hs: &Handshake) -> Result<()> {
        let marks = s.marks();
        if let Some(rate) = self.share.rate.filter(|_| !self.conns.is_empty()) {
            let n = self.conns.len() as u64;
            let pacer = Pacer::new(rate, n, &mut self.selector, TIMER)
                .map_err(|e| anyhow!("pacing timer: {}", describe(&e)))?;
            self.pacer = Some(pacer);
        }
        let now = self.now();
        if let Some(p) = &mut self.pacer {
            p.start(now)
                .map_err(|e| anyhow!("pacing timer: {}", describe(&e)))?;
        }
        for i in 0..self.conns.len() {
            self.write(i);
        }
        loop {
            let now = self.now();
            if !self.in_window && self.sending && now >= marks.window_start {
                self.in_window = true;
                self.stats.start_window();
                for c in &mut self.conns {
                    c.served = false;
                    c.expecting = c.recvd < c.sent;
                }
            }
            if self.sending && now >= marks.window_end {
                self.sending = false;
                self.in_window = false;
                if let Some(p) = &mut self.pacer {
                    p.stop(&mut self.selector);
                }
            }
            if !self.sending && (now >= marks.drain_end || self.drained()) {
                return Ok(());
            }
            let wake = marks.next_wake(now, self.sending);
            if self.sending {
                while let Some(i) = self.pacer.as_mut().and_then(|p| p.pop(now)) {
                    self.conns[i].due += 1;
                    self.write(i);
                }
            }
            let timeout =
                Duration::from_nanos(wake.saturating_sub(now)).min(Duration::from_millis(50));
            self.selector
                .select(&mut self.events, Some(timeout))
                .map_err(|e| anyhow!("select: {}", describe(&e)))?;
            let events = std::mem::take(&mut self.events);
            for ev in &events {
                if ev.token() == TIMER {
                    if let Some(p) = &mut self.pacer {
                        p.acknowledge();
                    }
                    continue;
                }
                let i = ev.token().0;
                if ev.is_readable() || ev.is_error_or_hangup() {
                    self.read(i);
                }
                if ev.is_writable() {
                    self.write(i);
                }
            }
            self.events = events;
            hs.progress.echoed.store(self.echoed, Ordering::Relaxed);
            hs.progress
                .failures
                .store(self.failures(), Ordering::Relaxed);
        }
    }

    fn drained(&self) -> bool {
        self.conns
            .iter()
            .all(|c| !matches!(c.link, Link::Open(_)) || c.recvd >= c.sent)
    }

    fn failures(&self) -> u64 {
        self.stats.errors.total() + self.stats.mismatches
    }

    /// Messages connection `i` may have started by now.
    fn allowed(&self, c: &Conn) -> u64 {
        let size = self.cfg.size as u64;
        let mut msgs = (c.recvd / size + self.cfg.pipeline as u64).min(c.due);
        if !self.sending {
            msgs = msgs.min(c.sent.div_ceil(size)); // finish a partial message, start none
        }
        msgs
    }

    fn start_time(&self, i: usize, k: u64, now: u64) -> u64 {
        match &self.pacer {
            // Latency counts from when the message was due, not from when a
            // slow server let us send it (no coordinated omission).
            // Message 0 went out while connecting; the pacer counts from 1.
            Some(p) => p.due_time(i, k.saturating_sub(1)),
            None => now,
        }
    }

    fn write(&mut self, i: usize) {
        let size = self.cfg.size as u64;
        loop {
            let c = &self.conns[i];
            let Link::Open(stream) = &c.link else { return };
            let target = self.allowed(c) * size;
            if c.sent >= target {
                if c.writable {
                    let _ = self.selector.modify(stream, Token(i), Interest::READABLE);
                    self.conns[i].writable = false;
                }
                return;
            }
            let len = ((target - c.sent) as usize).min(self.wbuf.len());
            let (id, sent) = (c.id, c.sent);
            fill(id, sent, size, &mut self.wbuf[..len]);
            let Link::Open(stream) = &mut self.conns[i].link else {
                return;
            };
            match stream.write(&self.wbuf[..len]) {
                Ok(0) => return self.fail(i, Failure::Io, "write returned 0".into()),
                Ok(n) => {
                    let now = self.now();
                    let mut k = sent.div_ceil(size);
                    while k * size < sent + n as u64 {
                        let t = self.start_time(i, k, now);
                        let c = &mut self.conns[i];
                        let slot = (k % c.starts.len() as u64) as usize;
                        c.starts[slot] = t;
                        c.expecting |= self.in_window;
                        k += 1;
                    }
                    self.conns[i].sent += n as u64;
                    if n < len {
                        self.want_writable(i);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.want_writable(i),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, Failure::Io, format!("write: {}", describe(&e))),
            }
        }
    }

    fn want_writable(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if let (Link::Open(stream), false) = (&c.link, c.writable) {
            if self
                .selector
                .modify(stream, Token(i), Interest::BOTH)
                .is_ok()
            {
                c.writable = true;
            }
        }
    }

    fn read(&mut self, i: usize) {
        for _ in 0..16 {
            let Link::Open(stream) = &mut self.conns[i].link else {
                return;
            };
            match stream.read(&mut self.rbuf) {
                Ok(0) => {
                    let c = &self.conns[i];
                    if self.sending || c.recvd < c.sent {
                        let owed = c.sent - c.recvd;
                        let msg = format!("closed by the server with {owed} echoed bytes owed");
                        return self.fail(i, Failure::Closed, msg);
                    }
                    return self.close(i);
                }
                Ok(n) => {
                    if let Err(msg) = self.consume(i, n) {
                        self.stats.mismatches += 1;
                        return self.fail(i, Failure::Mismatch, msg);
                    }
                    if n < self.rbuf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, Failure::Io, format!("read: {}", describe(&e))),
            }
        }
        self.write(i);
    }

    /// Check `n` fresh bytes in `rbuf` and count the messages they
    /// complete; the error says how the echo differed.
    fn consume(&mut self, i: usize, n: usize) -> Result<(), String> {
        let size = self.cfg.size as u64;
        let now = self.now();
        let c = &mut self.conns[i];
        if c.recvd + n as u64 > c.sent {
            let extra = c.recvd + n as u64 - c.sent;
            return Err(format!("{extra} more bytes echoed than sent"));
        }
        let mut data = &self.rbuf[..n];
        while !data.is_empty() {
            let (m, off) = (c.recvd / size, (c.recvd % size) as usize);
            let len = (self.cfg.size - off).min(data.len());
            if !pattern::matches(pattern::seed(c.id, m), off, &data[..len], &mut self.scratch) {
                let end = off + len;
                return Err(format!(
                    "message {m}: echoed bytes {off}..{end} differ from those sent"
                ));
            }
            c.recvd += len as u64;
            c.served = true; // echoed bytes, even of a message not yet whole
            data = &data[len..];
            if off + len == self.cfg.size {
                let start = c.starts[(m % c.starts.len() as u64) as usize];
                if self.in_window {
                    self.stats.record(now.saturating_sub(start), self.cfg.size);
                }
                self.echoed += 1;
            }
        }
        Ok(())
    }

    /// Close connection `i` after a failure and count it; a mismatch is
    /// counted by the caller, and is not also an error or "unserved".
    fn fail(&mut self, i: usize, why: Failure, msg: String) {
        match why {
            Failure::Closed => self.stats.errors.closed += 1,
            Failure::Io => self.stats.errors.io += 1,
            Failure::Mismatch => self.conns[i].served = true,
        }
        let (id, addr) = (self.conns[i].id, self.cfg.addr);
        self.stats
            .note(|| format!("connection {id} to {addr}: {msg}"));
        self.close(i);
    }

    fn close(&mut self, i: usize) {
        match std::mem::replace(&mut self.conns[i].link, Link::Closed) {
            Link::Open(stream) => {
                let _ = self.selector.unregister(&stream);
            }
            Link::Connecting(socket) => {
                let _ = self.selector.unregister(&socket);
            }
            Link::Closed => return,
            Link::Idle => {} // its connect failed to start
        }
        if !self.conns[i].ready {
            self.settled += 1;
        }
    }

    /// Count what the drain did not bring back, and connections the window
    /// never served; then close everything.
    fn finish(&mut self) {
        let addr = self.cfg.addr;
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let open = matches!(c.link, Link::Open(_));
            if open && c.recvd < c.sent {
                self.stats.errors.short += 1;
                let (id, owed) = (c.id, c.sent - c.recvd);
                let secs = DRAIN.as_secs();
                self.stats.note(|| format!("connection {id} to {addr}: {owed} echoed bytes still missing {secs} s after the run (short read)"));
            } else if open && c.expecting && !c.served {
                self.stats.errors.unserved += 1;
                let id = c.id;
                self.stats.note(|| {
                    format!("connection {id} to {addr}: no echo during the measured window")
                });
            }
            self.close(i);
        }
    }
}

/// The stream bytes at `offset..offset + out.len()` of a connection whose
/// messages are `size` bytes each.
fn fill(id: u64, offset: u64, size: u64, out: &mut [u8]) {
    let mut pos = offset;
    let mut rest = out;
    while !rest.is_empty() {
        let (m, off) = (pos / size, pos % size);
        let len = ((size - off) as usize).min(rest.len());
        let (head, tail) = rest.split_at_mut(len);
        pattern::fill(pattern::seed(id, m), off as usize, head);
        pos += len as u64;
        rest = tail;
    }
}
