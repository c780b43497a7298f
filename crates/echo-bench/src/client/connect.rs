//! The connect phase: batches of non-blocking connects, each confirmed by
//! the echo of message 0.

use super::{Link, Streams, CONNECT_BATCH};

/// The connect window to start with.
const FIRST_WINDOW: usize = 16;
/// A connect plus first echo taking longer than this is slow.
const SLOW: Duration = Duration::from_millis(250);
/// A connection whose handshake completed but whose first echo has not come
/// back by then is probably stuck in an overflowed accept queue (the server
/// dropped the handshake's last ACK); it is reset and connected afresh, at
/// most [`MAX_RETRIES`] times.
const RETRY_AFTER: Duration = Duration::from_secs(1);
const MAX_RETRIES: u8 = 5;
use crate::net::{self, describe};
use crate::plan::Handshake;
use anyhow::{anyhow, Result};
use netaddr::Target;
use selector::{Interest, Token};
use std::time::{Duration, Instant};

/// Where the connect phase stands: the next connection to start, the
/// window of connections between connect and first echo, and the pacing of
/// `--connect-rate`.
#[derive(Debug)]
pub(super) struct Connector {
    next: usize,
    window: usize,
    last_sweep: Instant,
    phase: Instant,
    /// This worker's share of `--connect-rate`, connections per second.
    per_sec: Option<f64>,
}

impl Connector {
    pub(super) fn new(per_sec: Option<f64>) -> Connector {
        Connector {
            next: 0,
            window: FIRST_WINDOW,
            last_sweep: Instant::now(),
            phase: Instant::now(),
            per_sec,
        }
    }

    /// Whether connection `next` may start now under `--connect-rate`.
    fn paced(&self) -> bool {
        match self.per_sec {
            Some(r) => self.next < (self.phase.elapsed().as_secs_f64() * r) as usize + 1,
            None => true,
        }
    }
}

impl Streams<'_> {
    /// Connect every connection, a window of them at a time, before the
    /// load starts. A connection counts as connected once message 0 has
    /// come back: a completed handshake alone may sit in a full accept
    /// queue, and its first message would then wait a retransmission
    /// timeout (a second or more) inside the measured window.
    ///
    /// The window is the one of TCP congestion control: it starts at
    /// [`FIRST_WINDOW`], grows by one per connection that comes back, up to
    /// [`CONNECT_BATCH`], and halves when connections start taking longer
    /// than [`SLOW`] (a small listen backlog overflowing: the tutorial's
    /// server listens with a backlog of 5).
    ///
    /// A stop asked for meanwhile (a signal) ends the phase at once.
    pub(super) fn connect_all(&mut self, hs: &Handshake) -> Result<()> {
        for c in &mut self.conns {
            c.due = 1;
        }
        let mut k = Connector::new(None);
        loop {
            self.launch(&mut k);
            if self.connected_all(&k) || hs.stop.asked() {
                break;
            }
            let core = &mut self.core;
            core.selector
                .select(&mut core.events, Some(Duration::from_millis(100)))
                .map_err(|e| anyhow!("select: {}", describe(&e)))?;
            let events = std::mem::take(&mut self.core.events);
            for ev in &events {
                self.connect_event(&mut k, ev.token().0);
            }
            self.core.events = events;
            self.sweep(&mut k);
        }
        let due = if self.core.share.rate.is_none() {
            u64::MAX
        } else {
            1
        };
        for c in &mut self.conns {
            c.due = due;
        }
        Ok(())
    }

    /// Every connection started and settled (ready or failed).
    pub(super) fn connected_all(&self, k: &Connector) -> bool {
        k.next == self.conns.len() && self.settled == self.conns.len()
    }

    /// Start the connects the window and `--connect-rate` allow.
    pub(super) fn launch(&mut self, k: &mut Connector) {
        while k.next - self.settled < k.window && k.next < self.conns.len() && k.paced() {
            self.conns[k.next].started = Instant::now();
            self.start_connect(k.next);
            k.next += 1;
        }
    }

    /// Readiness on connection `i` while connects are under way.
    pub(super) fn connect_event(&mut self, k: &mut Connector, i: usize) {
        match self.conns.get(i).map(|c| (&c.link, c.id)) {
            Some((Link::Connecting(socket), id)) => {
                let target = &self.core.cfg.targets[self.core.cfg.target_of(id)];
                match net::finish_connect(socket, target) {
                    Ok(()) => self.opened(i),
                    Err(msg) => self.connect_failed(i, msg),
                }
            }
            Some((Link::Open(_), _)) => self.read(i),
            _ => {}
        }
        if self.check_ready(i) {
            k.window = (k.window + 1).min(CONNECT_BATCH);
        }
    }

    /// Every 100 ms: note slow connects (halving the window), reset
    /// connections stuck without their first echo, time out the rest.
    pub(super) fn sweep(&mut self, k: &mut Connector) {
        if k.last_sweep.elapsed() < Duration::from_millis(100) {
            return;
        }
        k.last_sweep = Instant::now();
        let timeout = self.core.cfg.connect_timeout;
        let mut newly_slow = false;
        for i in 0..k.next {
            let c = &mut self.conns[i];
            let waited = c.started.elapsed();
            let pending = !c.ready && matches!(c.link, Link::Connecting(_) | Link::Open(_));
            if pending && waited > SLOW && !c.slow {
                c.slow = true;
                newly_slow = true;
            }
            let stuck = pending
                && matches!(c.link, Link::Open(_))
                && c.attempt.elapsed() > RETRY_AFTER
                && waited + RETRY_AFTER < timeout
                && c.retries < MAX_RETRIES;
            if stuck {
                c.retries += 1;
                self.restart(i);
                continue;
            }
            if !pending || waited <= timeout {
                continue;
            }
            let secs = timeout.as_secs_f64();
            let addr = self.core.cfg.targets[self.core.cfg.target_of(c.id)].clone();
            match c.link {
                Link::Connecting(_) => self.connect_failed(i, format!("connect {addr}: timed out")),
                Link::Open(_) => self.connect_failed(
                    i,
                    format!("connect {addr}: no echo within {secs} s of connecting"),
                ),
                _ => {}
            }
        }
        if newly_slow {
            k.window = (k.window / 2).max(1);
        }
    }

    /// Reset connection `i` (SO_LINGER 0) and connect it again, keeping
    /// its place in the pending window.
    fn restart(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if let Link::Open(stream) = std::mem::replace(&mut c.link, Link::Idle) {
            let _ = self.core.selector.unregister(&stream);
            let _ = stream.set_linger(Some(Duration::ZERO));
        }
        c.sent = 0;
        c.recvd = 0;
        c.writable = false;
        self.start_connect(i);
    }

    fn start_connect(&mut self, i: usize) {
        let cfg = self.core.cfg;
        let id = self.conns[i].id;
        self.conns[i].attempt = Instant::now();
        let started = match &cfg.targets[cfg.target_of(id)] {
            Target::Inet(addr) => {
                net::start_connect(*addr, net::source_for(*addr, &cfg.sources, id))
            }
            Target::Unix(path) => net::start_connect_unix(path),
        };
        match started {
            Ok((socket, done)) => {
                let interest = if done {
                    Interest::READABLE
                } else {
                    Interest::WRITABLE
                };
                if let Err(e) = self.core.selector.register(&socket, Token(i), interest) {
                    return self.connect_failed(i, format!("register: {}", describe(&e)));
                }
                self.conns[i].link = Link::Connecting(socket);
                if done {
                    self.opened(i);
                }
            }
            Err(msg) => self.connect_failed(i, msg),
        }
    }

    /// The handshake is done: send message 0.
    fn opened(&mut self, i: usize) {
        let Link::Connecting(socket) = std::mem::replace(&mut self.conns[i].link, Link::Idle)
        else {
            return;
        };
        let stream = socket;
        if let Err(e) = self
            .core
            .selector
            .modify(&stream, Token(i), Interest::READABLE)
        {
            self.conns[i].link = Link::Open(stream);
            return self.connect_failed(i, format!("modify: {}", describe(&e)));
        }
        self.conns[i].link = Link::Open(stream);
        self.write(i);
    }

    /// Whether connection `i` has just become ready. Under load (a
    /// `--connect-rate` ramp) it then joins the load.
    fn check_ready(&mut self, i: usize) -> bool {
        let size = self.core.cfg.size as u64;
        let Some(c) = self.conns.get_mut(i) else {
            return false;
        };
        if c.ready || c.recvd < size || !matches!(c.link, Link::Open(_)) {
            return false;
        }
        c.ready = true;
        if self.under_load {
            c.due = if self.core.share.rate.is_none() {
                u64::MAX
            } else {
                1
            };
        }
        let id = c.id;
        self.settled += 1;
        self.core.stats_of(id).connected += 1;
        if self.under_load {
            self.write(i);
        }
        true
    }

    fn connect_failed(&mut self, i: usize, msg: String) {
        self.close(i);
        let stats = self.core.stats_of(self.conns[i].id);
        stats.errors.connect += 1;
        stats.note(|| msg);
    }
}
