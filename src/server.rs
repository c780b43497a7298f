//! The event loop: the tutorial's `select.select(inputs, outputs, inputs)`
//! server, one loop per worker.
//!
//! | tutorial                         | here                                          |
//! |----------------------------------|-----------------------------------------------|
//! | `select.select(...)`             | [`Selector::select`] (level-triggered)        |
//! | `inputs`                         | registrations with [`Interest::READABLE`]     |
//! | `outputs`                        | registrations with [`Interest::WRITABLE`]     |
//! | `message_queues[s]`              | [`Connection::out`]                           |
//! | readable server socket: accept   | [`Worker::accept`]                            |
//! | readable client: recv, queue     | [`Worker::on_readable`]                       |
//! | empty recv: client left          | `Ok(0)` in `on_readable`                      |
//! | writable: send from the queue    | [`Worker::on_writable`]                       |
//! | exceptional: close and forget    | [`Worker::close`]                             |
//!
//! Where it departs from the tutorial, and why: received data is sent back
//! at once and only what the kernel did not take is queued (waiting for
//! writability before every send costs two selector calls per message);
//! reading stops while a queue is full (backpressure); an empty recv with
//! data still queued finishes sending first (half-close); accept failures
//! pause the listeners instead of spinning; a signal drains and stops.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, ErrorKind, Read};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use selector::{Event, Events, Interest, Selector, Token, Waker};
use slab::Slab;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::conn::{Connection, OutQueue, Peer, Phase};
use crate::limits::PerIp;
use crate::listen::Listener;
use crate::stats::{self, Counters, Published};
use crate::udp::{RateLimited, UdpEcho};

const WAKER: Token = Token(0);
const SIGNALS: Token = Token(1);
const FIRST_SOCKET: usize = 2;
/// Connection tokens start here; listeners and UDP sockets sit below.
const FIRST_CONN: usize = 1 << 24;
/// Connections accepted per readable listener event, at most.
const ACCEPT_BATCH: usize = 64;
/// How long listeners stay paused after EMFILE or a full house, at most.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Events taken per wait: the buffer starts at `FIRST_EVENTS` and doubles
/// whenever a wait fills it, up to `MAX_EVENTS`.
const FIRST_EVENTS: usize = 1024;
const MAX_EVENTS: usize = 1 << 16;
/// The shared read buffer: one per loop, not one per connection. It also
/// receives UDP datagrams, so it must hold the largest (65,507 bytes).
const READ_BUFFER: usize = 64 * 1024;
const _: () = assert!(READ_BUFFER >= 65_507);

/// State shared by all workers. Touched on accept, close and shutdown only.
#[derive(Debug)]
pub struct Shared {
    pub shutdown: AtomicBool,
    pub open: AtomicUsize,
    /// Workers whose loop has not ended; worker 0 ends last, so it can
    /// still see a second signal while the others drain.
    pub running: AtomicUsize,
    pub serial: AtomicU64,
    pub per_ip: PerIp,
    pub wakers: OnceLock<Vec<Waker>>,
    pub published: Vec<Published>,
}

impl Shared {
    pub fn new(workers: usize, max_per_ip: Option<u32>) -> Shared {
        Shared {
            shutdown: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            running: AtomicUsize::new(workers),
            serial: AtomicU64::new(0),
            per_ip: PerIp::new(max_per_ip),
            wakers: OnceLock::new(),
            published: (0..workers).map(|_| Published::default()).collect(),
        }
    }

    fn wake_all(&self) {
        for waker in self.wakers.get().into_iter().flatten() {
            if let Err(e) = waker.wake() {
                warn!(error = %e, "cannot wake a worker");
            }
        }
    }
}

/// One event loop: a selector, its sockets, and its connections.
#[derive(Debug)]
pub struct Worker {
    id: usize,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    selector: Selector,
    events: Events,
    listeners: Vec<Listener>,
    listening: bool,
    resume_at: Option<Instant>,
    udp: UdpEcho,
    conns: Slab<Connection>,
    buf: Box<[u8]>,
    /// Worker 0 only: the signal self-pipe.
    signals: Option<UnixStream>,
    signals_seen: usize,
    idle: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    deadline: Option<Instant>,
    counters: Counters,
    stats_due: Option<Instant>,
    stats_before: (Counters, Instant),
    accept_log: RateLimited,
    started: Instant,
    now: Instant,
}

fn would_block(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

impl Worker {
    /// A worker with its sockets registered; returns its waker too.
    pub fn new(
        id: usize,
        cfg: Arc<Config>,
        shared: Arc<Shared>,
        mut selector: Selector,
        listeners: Vec<Listener>,
        udp: Vec<UdpSocket>,
        signals: Option<UnixStream>,
    ) -> io::Result<(Worker, Waker)> {
        let waker = Waker::new(&mut selector, WAKER)?;
        if let Some(s) = &signals {
            selector.register(s, SIGNALS, Interest::READABLE)?;
        }
        for (i, l) in listeners.iter().enumerate() {
            selector.register(l, Token(FIRST_SOCKET + i), Interest::READABLE)?;
        }
        for (j, socket) in udp.iter().enumerate() {
            let token = Token(FIRST_SOCKET + listeners.len() + j);
            selector.register(socket, token, Interest::READABLE)?;
        }
        let udp = UdpEcho::new(udp, cfg.udp_rate)?;
        let now = Instant::now();
        let stats_due = (id == 0)
            .then_some(())
            .and(cfg.stats_interval)
            .map(|i| now + i);
        let worker = Worker {
            id,
            selector,
            events: Events::with_capacity(FIRST_EVENTS),
            listeners,
            listening: true,
            resume_at: None,
            udp,
            conns: Slab::new(),
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            signals,
            signals_seen: 0,
            idle: BinaryHeap::new(),
            deadline: None,
            counters: Counters::default(),
            stats_due,
            stats_before: (Counters::default(), now),
            accept_log: RateLimited::default(),
            started: now,
            now,
            cfg,
            shared,
        };
        Ok((worker, waker))
    }

    /// Serve until shutdown has drained every connection; returns the totals.
    pub fn run(mut self) -> io::Result<Counters> {
        let trace = self.cfg.trace;
        let measure = self.cfg.stats_interval.is_some();
        loop {
            if self.deadline.is_some() && self.conns.is_empty() && self.others_done() {
                break;
            }
            let timeout = self.next_timeout();
            if trace {
                info!(target: "trace", worker = self.id, "waiting for the next event");
            }
            let before = if measure { Instant::now() } else { self.now };
            let mut events = std::mem::take(&mut self.events);
            let result = self.selector.select(&mut events, timeout);
            self.now = Instant::now();
            if measure {
                self.counters.wait_ns += nanos(self.now.duration_since(before));
                self.counters.loop_ns = nanos(self.now.duration_since(self.started));
            }
            if let Err(e) = result {
                self.events = events;
                return Err(e);
            }
            self.counters.wakeups += 1;
            self.counters.events += events.len() as u64;
            for event in &events {
                self.dispatch(event);
            }
            // A full buffer means more was ready than one wait could take.
            // Level-triggered epoll then hands out the rest after the
            // descriptors it just reported (it requeues those at the tail at
            // once), so busy connections would keep cutting in ahead of the
            // ones left over: with 10,000 connections that doubled the p99.
            // Take everything that is ready in one wait instead.
            if events.len() == events.capacity() && events.capacity() < MAX_EVENTS {
                events = Events::with_capacity(events.capacity() * 2);
            }
            self.events = events;
            self.on_timers();
            if measure {
                self.shared.published[self.id].store(&self.counters);
            }
        }
        self.shared.running.fetch_sub(1, Relaxed);
        if let Some(first) = self.shared.wakers.get().and_then(|w| w.first()) {
            let _ = first.wake(); // worker 0 may be waiting for the last of us
        }
        Ok(self.counters)
    }

    /// Worker 0 outlives the others; the others need not wait.
    fn others_done(&self) -> bool {
        self.id != 0 || self.shared.running.load(Relaxed) == 1
    }

    fn dispatch(&mut self, event: &Event) {
        match event.token() {
            WAKER => {
                if self.shared.shutdown.load(Relaxed) && self.deadline.is_none() {
                    self.begin_shutdown();
                }
            }
            SIGNALS => self.on_signal(),
            Token(t) if t >= FIRST_CONN => self.on_connection(t - FIRST_CONN, event),
            Token(t) if t - FIRST_SOCKET < self.listeners.len() => {
                self.accept(t - FIRST_SOCKET);
            }
            Token(t) => self.on_datagram(t - FIRST_SOCKET - self.listeners.len()),
        }
    }

    /// A readable listener: accept what is waiting (the tutorial's
    /// `s is server` branch), registering each client for reading.
    fn accept(&mut self, index: usize) {
        for _ in 0..ACCEPT_BATCH {
            if self.shared.open.fetch_add(1, Relaxed) >= self.cfg.max_connections {
                self.shared.open.fetch_sub(1, Relaxed);
                self.pause_accepting("connection limit reached (--max-connections)");
                return;
            }
            let serial = self.shared.serial.fetch_add(1, Relaxed);
            let (stream, peer) = match self.listeners[index].accept(serial) {
                Ok(accepted) => accepted,
                Err(e) => {
                    self.shared.open.fetch_sub(1, Relaxed);
                    match e.raw_os_error() {
                        _ if would_block(&e) => return,
                        // The client gave up while queued: try the next one.
                        Some(code) if code == rustix::io::Errno::CONNABORTED.raw_os_error() => {
                            continue
                        }
                        Some(code)
                            if code == rustix::io::Errno::MFILE.raw_os_error()
                                || code == rustix::io::Errno::NFILE.raw_os_error() =>
                        {
                            self.pause_accepting("out of file descriptors");
                        }
                        _ => warn!(error = %e, "accept failed"),
                    }
                    return;
                }
            };
            if !self.admit(peer) {
                self.shared.open.fetch_sub(1, Relaxed);
                continue; // dropping the stream closes it
            }
            let entry = self.conns.vacant_entry();
            let token = Token(FIRST_CONN + entry.key());
            if let Err(e) = self.selector.register(&stream, token, Interest::READABLE) {
                warn!(%peer, error = %e, "cannot register a new connection");
                self.release_ip(peer);
                self.shared.open.fetch_sub(1, Relaxed);
                continue;
            }
            if self.cfg.trace {
                info!(target: "trace", %peer, token = token.0, "new connection from {peer}");
            }
            entry.insert(Connection {
                stream,
                peer,
                serial,
                out: OutQueue::default(),
                phase: Phase::Open,
                interest: Interest::READABLE,
                paused: false,
                last_active: self.now,
            });
            if let Some(idle) = self.cfg.idle_timeout {
                self.idle
                    .push(Reverse((self.now + idle, token.0 - FIRST_CONN, serial)));
            }
            self.counters.accepted += 1;
        }
    }

    /// The per-IP cap, when configured.
    fn admit(&mut self, peer: Peer) -> bool {
        let Peer::Ip(addr) = peer else {
            return true;
        };
        match self.shared.per_ip.admit(addr.ip()) {
            Ok(()) => true,
            Err(cap) => {
                if let Some(more) = self.accept_log.ready(self.now) {
                    warn!(%peer, suppressed = more, "refusing connection: {cap} already open from {} (--max-per-ip)", addr.ip());
                }
                false
            }
        }
    }

    fn release_ip(&self, peer: Peer) {
        if let Peer::Ip(addr) = peer {
            self.shared.per_ip.release(addr.ip());
        }
    }

    /// Stop watching the listeners for a while: the pending clients wait in
    /// the backlog instead of the loop spinning on an accept that fails.
    fn pause_accepting(&mut self, why: &str) {
        if let Some(more) = self.accept_log.ready(self.now) {
            warn!(
                open = self.shared.open.load(Relaxed),
                suppressed = more,
                "not accepting for now: {why}"
            );
        }
        if self.listening {
            for l in &self.listeners {
                if let Err(e) = self.selector.unregister(l) {
                    warn!(error = %e, "cannot pause a listener");
                }
            }
            self.listening = false;
        }
        self.resume_at = Some(self.now + ACCEPT_BACKOFF);
    }

    fn resume_accepting(&mut self) {
        self.resume_at = None;
        for (i, l) in self.listeners.iter().enumerate() {
            if let Err(e) = self
                .selector
                .register(l, Token(FIRST_SOCKET + i), Interest::READABLE)
            {
                warn!(error = %e, "cannot resume a listener");
            }
        }
        self.listening = true;
    }

    fn on_connection(&mut self, key: usize, event: &Event) {
        if !self.conns.contains(key) {
            return; // closed earlier in this round
        }
        if event.is_readable() {
            self.on_readable(key);
        }
        if event.is_writable() && self.conns.contains(key) {
            self.on_writable(key);
        }
        if event.is_error_or_hangup() && self.conns.contains(key) {
            if self.cfg.trace {
                let peer = self.conns[key].peer;
                info!(target: "trace", %peer, token = FIRST_CONN + key, "exceptional condition on {peer}");
            }
            self.close(key);
            return;
        }
        if self.conns.contains(key) {
            self.update_interest(key);
        }
    }

    /// A readable client: one recv into the loop's buffer (level-triggered,
    /// so no second recv just to see EAGAIN), then straight back out.
    fn on_readable(&mut self, key: usize) {
        let max_pending = self.cfg.max_pending;
        let conn = &mut self.conns[key];
        let room = match conn.phase {
            Phase::Lingering => self.buf.len(),
            Phase::Draining { budget } => budget.min(max_pending - conn.out.len().min(max_pending)),
            _ => max_pending - conn.out.len().min(max_pending),
        };
        let want = room.min(self.buf.len());
        if want == 0 {
            return;
        }
        let n = match conn.stream.read(&mut self.buf[..want]) {
            Ok(n) => n,
            Err(e) if would_block(&e) => return,
            Err(e) => {
                debug!(peer = %conn.peer, error = %e, "read failed");
                self.close(key);
                return;
            }
        };
        let peer = conn.peer;
        if n == 0 {
            if conn.phase == Phase::Lingering || conn.out.is_empty() {
                if self.cfg.trace {
                    info!(target: "trace", %peer, "closing {peer} after reading no data");
                }
                self.close(key);
            } else {
                conn.phase = Phase::ReadClosed;
            }
            return;
        }
        match &mut conn.phase {
            Phase::Lingering => return, // discarded: we are shutting down
            Phase::Draining { budget } => *budget -= n,
            _ => {}
        }
        conn.last_active = self.now;
        self.counters.bytes_in += n as u64;
        self.counters.messages += 1;
        if self.cfg.trace {
            info!(target: "trace", %peer, bytes = n, "received {n} bytes from {peer}");
        }
        let data = &self.buf[..n];
        let mut sent = 0;
        if conn.out.is_empty() {
            match conn.stream.write(data) {
                Ok(m) => sent = m,
                Err(e) if would_block(&e) => {}
                Err(e) => {
                    debug!(%peer, error = %e, "send failed");
                    self.close(key);
                    return;
                }
            }
            self.counters.bytes_out += sent as u64;
            if self.cfg.trace {
                info!(target: "trace", %peer, bytes = sent, "sending {sent} bytes to {peer}");
            }
        }
        if sent < n {
            conn.out.push(&data[sent..], self.cfg.max_pending);
            self.counters.queue_grew(n - sent);
        }
    }

    /// A writable client: send from its queue; when the queue is empty the
    /// write interest is dropped (the tutorial's "output queue is empty").
    fn on_writable(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.out.is_empty() {
            return;
        }
        let peer = conn.peer;
        match conn.stream.write(conn.out.front()) {
            Ok(n) => {
                conn.out.consume(n);
                self.counters.bytes_out += n as u64;
                self.counters.queue_shrank(n);
                if self.cfg.trace {
                    info!(target: "trace", %peer, bytes = n, "sending {n} bytes to {peer}");
                    if conn.out.is_empty() {
                        info!(target: "trace", %peer, "output queue empty for {peer}");
                    }
                }
            }
            Err(e) if would_block(&e) => {}
            Err(e) => {
                debug!(%peer, error = %e, "send failed");
                self.close(key);
            }
        }
    }

    /// Bring the registration in line with the connection's state, or
    /// finish the connection when it has nothing left to do.
    fn update_interest(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let paused = conn.is_paused(self.cfg.max_pending);
        if paused != conn.paused {
            conn.paused = paused;
            if paused {
                self.counters.paused += 1;
            } else {
                self.counters.paused -= 1;
            }
        }
        match conn.wanted(self.cfg.max_pending) {
            Some(interest) if interest == conn.interest => {}
            Some(interest) => {
                let token = Token(FIRST_CONN + key);
                match self.selector.modify(&conn.stream, token, interest) {
                    Ok(()) => conn.interest = interest,
                    Err(e) => {
                        warn!(peer = %conn.peer, error = %e, "cannot change interest");
                        self.close(key);
                    }
                }
            }
            None => self.finish(key),
        }
    }

    /// Everything echoed and nothing more to read: send FIN. Close now if
    /// nothing unread is pending (close would otherwise send RST and could
    /// destroy echoed data the peer has not read yet); else linger.
    fn finish(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let unread = rustix::io::ioctl_fionread(&conn.stream).unwrap_or(0);
        if conn.phase == Phase::ReadClosed || unread == 0 || conn.stream.shutdown_write().is_err() {
            self.close(key);
            return;
        }
        conn.phase = Phase::Lingering;
        self.update_interest(key);
    }

    /// Unregister, then drop: one place, so the two never drift apart.
    fn close(&mut self, key: usize) {
        let Some(conn) = self.conns.try_remove(key) else {
            return;
        };
        if let Err(e) = self.selector.unregister(&conn.stream) {
            warn!(peer = %conn.peer, error = %e, "unregister failed");
        }
        self.counters.queue_shrank(conn.out.len());
        self.counters.paused -= u64::from(conn.paused);
        self.counters.closed += 1;
        self.release_ip(conn.peer);
        self.shared.open.fetch_sub(1, Relaxed);
        if !self.listening && self.deadline.is_none() {
            self.resume_at = Some(self.now);
        }
    }

    fn on_datagram(&mut self, index: usize) {
        let trace = self.cfg.trace;
        self.udp
            .echo(index, &mut self.buf, self.now, &mut self.counters, trace);
    }

    /// The self-pipe says a signal came: the first starts the drain, the
    /// second ends the process at once.
    fn on_signal(&mut self) {
        let mut buf = [0u8; 16];
        let n = match self.signals.as_mut().map(|s| s.read(&mut buf)) {
            Some(Ok(n)) => n,
            _ => return,
        };
        self.signals_seen += n;
        if self.signals_seen >= 2 {
            eprintln!("second signal: exiting at once");
            std::process::exit(130);
        }
        if n > 0 {
            info!("signal received: finishing open connections, then exiting");
            self.shared.shutdown.store(true, Relaxed);
            self.shared.wake_all();
            self.begin_shutdown();
        }
    }

    /// Stop accepting; let each connection echo what it has already
    /// received (read or still in the kernel's buffer), then close.
    fn begin_shutdown(&mut self) {
        self.deadline = Some(self.now + self.cfg.shutdown_timeout);
        for l in self.listeners.drain(..) {
            if self.listening {
                let _ = self.selector.unregister(&l);
            }
            if let Listener::Unix(_, path) = &l {
                let _ = std::fs::remove_file(path);
            }
        }
        self.listening = false;
        self.resume_at = None;
        for socket in self.udp.close() {
            let _ = self.selector.unregister(&socket);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let conn = &mut self.conns[key];
            if conn.phase == Phase::Open {
                let budget = rustix::io::ioctl_fionread(&conn.stream).unwrap_or(0);
                conn.phase = Phase::Draining {
                    budget: usize::try_from(budget).unwrap_or(usize::MAX),
                };
            }
            self.update_interest(key);
        }
    }

    fn next_timeout(&self) -> Option<Duration> {
        let due = [
            self.idle.peek().map(|Reverse((at, _, _))| *at),
            self.resume_at,
            self.deadline.filter(|_| !self.conns.is_empty()),
            self.stats_due,
        ];
        due.into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(self.now))
    }

    fn on_timers(&mut self) {
        let now = self.now;
        if let Some(idle) = self.cfg.idle_timeout {
            while let Some(&Reverse((at, key, serial))) = self.idle.peek() {
                if at > now {
                    break;
                }
                self.idle.pop();
                let Some(conn) = self.conns.get(key).filter(|c| c.serial == serial) else {
                    continue; // closed since
                };
                let due = conn.last_active + idle;
                if due <= now {
                    if self.cfg.trace {
                        let peer = conn.peer;
                        info!(target: "trace", %peer, "closing {peer} after {}s idle", idle.as_secs_f64());
                    }
                    self.close(key);
                } else {
                    self.idle.push(Reverse((due, key, serial)));
                }
            }
        }
        if self.resume_at.is_some_and(|at| at <= now) && self.deadline.is_none() {
            self.resume_accepting();
        }
        if self.deadline.is_some_and(|at| at <= now) && !self.conns.is_empty() {
            let queued = self.conns.iter().filter(|(_, c)| !c.out.is_empty()).count();
            warn!(
                open = self.conns.len(),
                queued, "shutdown timeout: closing connections that have not finished"
            );
            let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
            for key in keys {
                self.close(key);
            }
        }
        if let (Some(due), Some(interval)) = (self.stats_due, self.cfg.stats_interval) {
            if due <= now {
                let mut total = Counters::default();
                for (i, p) in self.shared.published.iter().enumerate() {
                    if i == self.id {
                        total.add(&self.counters);
                    } else {
                        total.add(&p.load());
                    }
                }
                let (before, at) = self.stats_before;
                eprintln!("{}", stats::line(&total, &before, now.duration_since(at)));
                self.stats_before = (total, now);
                self.stats_due = Some(now + interval);
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
