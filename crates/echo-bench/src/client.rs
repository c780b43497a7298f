//! Stream connections (TCP or Unix-domain) on one
//! [`Selector`](selector::Selector): connect in batches, then keep
//! `pipeline` messages in flight on each (or send on schedule with
//! `--rate`), checking every echoed byte.
//!
//! Each connection's echo stream is the concatenation of its messages, so
//! a received byte's stream offset says which message and which byte of it
//! it is; bytes are checked against [`pattern`] as they arrive. Nothing is
//! allocated per message: one write buffer, one read buffer and one scratch
//! buffer serve every connection of the worker.

use crate::net::describe;
use crate::pattern;
use crate::plan::{Config, Handshake, Share, DRAIN};
use crate::stats::Stats;
use crate::worker::{self, Core, Sockets};
use anyhow::Result;
use selector::{Interest, Token};
use socket2::Socket;
use std::io::{self, Read, Write};
use std::time::Instant;

mod connect;

use connect::Connector;

/// At most this many connections between connect and their first echo: a
/// common listen backlog (128), so that batches do not overflow the accept
/// queue.
const CONNECT_BATCH: usize = 128;
const BUFFER: usize = 64 * 1024;

/// A connection's socket: TCP or Unix-domain, the same stream to us.
enum Link {
    Idle,
    Connecting(Socket),
    Open(Socket),
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
    /// When message `k` was due (closed loop: sent), and when its first
    /// byte was sent, ns since the schedule's start, at `k % pipeline`.
    starts: Box<[u64]>,
    sent_at: Box<[u64]>,
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
    /// Messages the pacer released for it before it was ready (a
    /// `--connect-rate` ramp): not sent, and not owed.
    skipped: u64,
}

/// Run `share`'s connections until the schedule ends; per-target counts.
///
/// # Errors
///
/// When the selector cannot be created or fails while waiting; connection
/// failures are counted, not returned.
pub fn run(cfg: &Config, share: Share, hs: Handshake) -> Result<Vec<Stats>> {
    let core = Core::new(cfg, share, share.count as usize)?;
    let closed_loop = share.rate.is_none();
    let conns = (0..share.count)
        .map(|i| Conn {
            link: Link::Idle,
            id: share.first + i,
            sent: 0,
            recvd: 0,
            due: if closed_loop { u64::MAX } else { 0 },
            starts: vec![0; cfg.pipeline].into_boxed_slice(),
            sent_at: vec![0; cfg.pipeline].into_boxed_slice(),
            writable: false,
            expecting: false,
            served: false,
            ready: false,
            started: Instant::now(),
            attempt: Instant::now(),
            retries: 0,
            slow: false,
            skipped: 0,
        })
        .collect();
    let mut w = Streams {
        core,
        conns,
        wbuf: vec![0; BUFFER],
        rbuf: vec![0; BUFFER],
        scratch: vec![0; BUFFER],
        settled: 0,
        ramp: None,
        under_load: false,
    };
    match cfg.connect_rate {
        // A ramp: connections open at the rate while the load runs, and
        // join it once their first echo is back.
        Some(rate) => {
            let share = rate * share.count as f64 / cfg.connections.max(1) as f64;
            w.ramp = Some(Connector::new(Some(share)));
            w.under_load = true;
            for c in &mut w.conns {
                c.due = 1;
            }
        }
        None => w.connect_all(&hs)?,
    }
    let Some(schedule) = hs.connected(&w.core.stats) else {
        return Ok(w.core.stats);
    };
    worker::drive(&mut w, &schedule, &hs)?;
    w.finish();
    Ok(w.core.stats)
}

/// One worker's stream connections.
struct Streams<'a> {
    core: Core<'a>,
    conns: Vec<Conn>,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    scratch: Vec<u8>,
    /// Connections that are ready or failed before they were.
    settled: usize,
    /// The connect phase, while it runs under load (`--connect-rate`).
    ramp: Option<Connector>,
    /// Connections open during the load, not before it.
    under_load: bool,
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

impl<'a> Sockets<'a> for Streams<'a> {
    fn core(&mut self) -> &mut Core<'a> {
        &mut self.core
    }

    fn count(&self) -> usize {
        self.conns.len()
    }

    fn start_window(&mut self) {
        for c in &mut self.conns {
            c.served = false;
            c.expecting = c.recvd < c.sent;
        }
    }

    fn send(&mut self, i: usize) {
        self.write(i);
    }

    fn release(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if !c.ready {
            c.skipped += 1;
            return;
        }
        c.due += 1;
        self.write(i);
    }

    fn ready(&mut self, i: usize, readable: bool, writable: bool) {
        if !self.conns[i].ready {
            if let Some(mut k) = self.ramp.take() {
                self.connect_event(&mut k, i);
                self.ramp = Some(k);
                return;
            }
        }
        if readable {
            self.read(i);
        }
        if writable {
            self.write(i);
        }
    }

    fn tick(&mut self, _now: u64) {
        let Some(mut k) = self.ramp.take() else {
            return;
        };
        if self.core.sending {
            self.launch(&mut k);
        }
        self.sweep(&mut k);
        if !self.connected_all(&k) {
            self.ramp = Some(k);
        }
    }

    fn idle(&self) -> bool {
        self.drained()
    }
}

impl Streams<'_> {
    fn now(&self) -> u64 {
        self.core.now()
    }

    fn drained(&self) -> bool {
        self.conns
            .iter()
            .all(|c| !matches!(c.link, Link::Open(_)) || c.recvd >= c.sent)
    }

    /// Messages connection `i` may have started by now.
    fn allowed(&self, c: &Conn) -> u64 {
        let size = self.core.cfg.size as u64;
        let mut msgs = (c.recvd / size + self.core.cfg.pipeline as u64).min(c.due);
        if !self.core.sending {
            msgs = msgs.min(c.sent.div_ceil(size)); // finish a partial message, start none
        }
        msgs
    }

    /// When message `k` of connection `i` was due.
    fn start_time(&self, i: usize, k: u64, now: u64) -> u64 {
        match &self.core.pacer {
            // Latency counts from when the message was due, not from when a
            // slow server let us send it (no coordinated omission).
            // Message 0 went out while connecting; the pacer counts from 1,
            // past the releases skipped while it was not ready.
            Some(p) => p.due_time(i, k.saturating_sub(1) + self.conns[i].skipped),
            None => now,
        }
    }

    fn write(&mut self, i: usize) {
        let size = self.core.cfg.size as u64;
        loop {
            let c = &self.conns[i];
            let Link::Open(stream) = &c.link else { return };
            let target = self.allowed(c) * size;
            if c.sent >= target {
                if c.writable {
                    let _ = self
                        .core
                        .selector
                        .modify(stream, Token(i), Interest::READABLE);
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
                        c.sent_at[slot] = now;
                        c.expecting |= self.core.in_window;
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
                .core
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
                    if self.core.sending || c.recvd < c.sent {
                        let owed = c.sent - c.recvd;
                        let msg = format!("closed by the server with {owed} echoed bytes owed");
                        return self.fail(i, Failure::Closed, msg);
                    }
                    return self.close(i);
                }
                Ok(n) => {
                    if let Err(msg) = self.consume(i, n) {
                        let id = self.conns[i].id;
                        self.core.stats_of(id).mismatches += 1;
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
        let size = self.core.cfg.size as u64;
        let now = self.now();
        let c = &mut self.conns[i];
        if c.recvd + n as u64 > c.sent {
            let extra = c.recvd + n as u64 - c.sent;
            return Err(format!("{extra} more bytes echoed than sent"));
        }
        let mut data = &self.rbuf[..n];
        while !data.is_empty() {
            let (m, off) = (c.recvd / size, (c.recvd % size) as usize);
            let len = (self.core.cfg.size - off).min(data.len());
            if !pattern::matches(pattern::seed(c.id, m), off, &data[..len], &mut self.scratch) {
                let end = off + len;
                return Err(format!(
                    "message {m}: echoed bytes {off}..{end} differ from those sent"
                ));
            }
            c.recvd += len as u64;
            c.served = true; // echoed bytes, even of a message not yet whole
            data = &data[len..];
            if off + len == self.core.cfg.size {
                let slot = (m % c.starts.len() as u64) as usize;
                let (due, sent) = (c.starts[slot], c.sent_at[slot]);
                self.core.complete(c.id, now, due, sent);
            }
        }
        Ok(())
    }

    /// Close connection `i` after a failure and count it; a mismatch is
    /// counted by the caller, and is not also an error or "unserved".
    fn fail(&mut self, i: usize, why: Failure, msg: String) {
        let id = self.conns[i].id;
        let addr = self.core.cfg.targets[self.core.cfg.target_of(id)].clone();
        let stats = self.core.stats_of(id);
        match why {
            Failure::Closed => stats.errors.closed += 1,
            Failure::Io => stats.errors.io += 1,
            Failure::Mismatch => {}
        }
        stats.note(|| format!("connection {id} to {addr}: {msg}"));
        if why == Failure::Mismatch {
            self.conns[i].served = true;
        }
        self.close(i);
    }

    fn close(&mut self, i: usize) {
        match std::mem::replace(&mut self.conns[i].link, Link::Closed) {
            Link::Open(stream) => {
                let _ = self.core.selector.unregister(&stream);
            }
            Link::Connecting(socket) => {
                let _ = self.core.selector.unregister(&socket);
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
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let open = matches!(c.link, Link::Open(_));
            let id = c.id;
            let addr = &self.core.cfg.targets[self.core.cfg.target_of(id)];
            if open && c.recvd < c.sent {
                let owed = c.sent - c.recvd;
                let secs = DRAIN.as_secs();
                let msg = format!("connection {id} to {addr}: {owed} echoed bytes still missing {secs} s after the run (short read)");
                let stats = self.core.stats_of(id);
                stats.errors.short += 1;
                stats.note(|| msg);
            } else if open && c.expecting && !c.served {
                let msg = format!("connection {id} to {addr}: no echo during the measured window");
                let stats = self.core.stats_of(id);
                stats.errors.unserved += 1;
                stats.note(|| msg);
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
