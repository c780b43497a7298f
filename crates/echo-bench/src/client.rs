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

use crate::pattern;
use crate::plan::{Config, Handshake, Share};
use crate::stats::Stats;
use crate::worker::{self, Core, Sockets};
use anyhow::Result;
use selector::{Interest, Token};
use socket2::Socket;
use std::io::{self, Read, Write};
use std::time::Instant;

mod connect;
mod health;
mod outcome;

use connect::Connector;
use health::Health;
use outcome::Failure;

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
    /// Stalls and delays seen on it.
    health: Health,
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
            health: Health::default(),
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
        stall_check: 0,
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
    /// When stalls were last looked for, ns.
    stall_check: u64,
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

    fn tick(&mut self, now: u64) {
        let every = crate::plan::ns(self.core.cfg.stall_after) / 4;
        if now >= self.stall_check + every {
            self.stall_check = now;
            self.stalls(now);
        }
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
            pattern::fill_stream(id, sent, size, &mut self.wbuf[..len]);
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
                    let c = &mut self.conns[i];
                    if c.recvd == c.sent {
                        c.health.owing(now);
                    }
                    c.sent += n as u64;
                    if n < len {
                        self.want_writable(i);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.want_writable(i),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.io_failure(i, &e, "write"),
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
                    if let Err((msg, at)) = self.consume(i, n) {
                        return self.fail(i, Failure::Mismatch(at), msg);
                    }
                    if n < self.rbuf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.io_failure(i, &e, "read"),
            }
        }
        self.write(i);
    }

    /// Check `n` fresh bytes in `rbuf` and count the messages they
    /// complete; the error says how the echo differed, and at which stream
    /// offset its first wrong byte is.
    fn consume(&mut self, i: usize, n: usize) -> Result<(), (String, u64)> {
        let size = self.core.cfg.size as u64;
        let now = self.now();
        let threshold = crate::plan::ns(self.core.cfg.delay_threshold);
        let c = &mut self.conns[i];
        if c.recvd + n as u64 > c.sent {
            let extra = c.recvd + n as u64 - c.sent;
            return Err((format!("{extra} more bytes echoed than sent"), c.sent));
        }
        c.health.progress(now);
        let mut data = &self.rbuf[..n];
        while !data.is_empty() {
            let (m, off) = (c.recvd / size, (c.recvd % size) as usize);
            let len = (self.core.cfg.size - off).min(data.len());
            if !pattern::matches(pattern::seed(c.id, m), off, &data[..len], &mut self.scratch) {
                let end = off + len;
                let expected = &mut self.scratch[..len];
                pattern::fill(pattern::seed(c.id, m), off, expected);
                let first = expected.iter().zip(data).position(|(a, b)| a != b);
                let at = c.recvd + first.unwrap_or(0) as u64;
                return Err((
                    format!("message {m}: echoed bytes {off}..{end} differ from those sent (first at stream offset {at})"),
                    at,
                ));
            }
            c.recvd += len as u64;
            c.served = true; // echoed bytes, even of a message not yet whole
            data = &data[len..];
            if off + len == self.core.cfg.size {
                let slot = (m % c.starts.len() as u64) as usize;
                let (due, sent) = (c.starts[slot], c.sent_at[slot]);
                c.health
                    .message(now.saturating_sub(sent), m * size, threshold);
                self.core.complete(c.id, now, due, sent);
            }
        }
        Ok(())
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
}
