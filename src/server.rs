//! The event loop: the tutorial's `select.select(inputs, outputs, inputs)`
//! server, one loop per worker.
//!
//! | tutorial                         | here                                          |
//! |----------------------------------|-----------------------------------------------|
//! | `select.select(...)`             | [`Selector::select`] (level-triggered)        |
//! | `inputs`                         | registrations with [`Interest::READABLE`]     |
//! | `outputs`                        | registrations with [`Interest::WRITABLE`]     |
//! | `message_queues[s]`              | the connection's queue ([`crate::queue`])     |
//! | readable server socket: accept   | [`Worker::accept`]                            |
//! | readable client: recv, queue     | [`Connection::on_ready`]                      |
//! | empty recv: client left          | [`Step::Close`] from `on_ready`               |
//! | writable: send from the queue    | [`Connection::on_ready`]                      |
//! | exceptional: close and forget    | [`Worker::close`]                             |
//!
//! The loop decodes a token, hands the event to its owner, and applies the
//! [`Step`] a connection returns: keep, re-register, or close. What a
//! connection does with its bytes lives in [`crate::conn`].
//!
//! Where it departs from the tutorial, and why: received data is sent back
//! at once and only what the kernel did not take is queued (waiting for
//! writability before every send costs two selector calls per message);
//! reading stops while a queue is full (backpressure); an empty recv with
//! data still queued finishes sending first (half-close); accept failures
//! pause the listeners instead of spinning; a signal drains and stops.

use std::io::{self, Read};
use std::net::UdpSocket;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use selector::{Event, Events, Interest, Selector, Token, Waker};
use slab::Slab;
use tracing::{info, warn};

use crate::config::Config;
use crate::conn::{Connection, Step};
use crate::idle::IdleList;
use crate::listen::{Listener, Origin};
use crate::signals::SignalPipes;
use crate::splice::PipePool;
use crate::stats::Counters;
use crate::udp::{RateLimited, UdpEcho};

/// What a connection borrows from its worker for one step: the fields are
/// borrowed one by one, so the worker's other fields stay usable.
macro_rules! io {
    ($worker:ident) => {
        $crate::conn::Io {
            buf: &mut $worker.buf,
            counters: &mut $worker.counters,
            pipes: &mut $worker.pipes,
            zero_copy: $worker.cfg.zero_copy,
            max_pending: $worker.cfg.max_pending,
            trace: $worker.cfg.trace,
            now: $worker.now,
            budget: &$worker.shared.budget,
        }
    };
}

mod accept;
mod timers;

pub use accept::Shared;

/// Token ranges, fixed at startup: decoding a token never depends on a
/// list that shutdown empties.
const WAKER: Token = Token(0);
const SIGNALS: Token = Token(1);
const HANGUP: Token = Token(2);
const FIRST_LISTENER: usize = 1 << 8;
const FIRST_UDP: usize = 1 << 16;
const FIRST_CONN: usize = 1 << 24;

/// Who an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Waker,
    Signals,
    Hangup,
    Listener(usize),
    Udp(usize),
    Conn(usize),
}

impl Source {
    fn of(token: Token) -> Option<Source> {
        Some(match token {
            WAKER => Source::Waker,
            SIGNALS => Source::Signals,
            HANGUP => Source::Hangup,
            Token(t) if t >= FIRST_CONN => Source::Conn(t - FIRST_CONN),
            Token(t) if t >= FIRST_UDP => Source::Udp(t - FIRST_UDP),
            Token(t) if t >= FIRST_LISTENER => Source::Listener(t - FIRST_LISTENER),
            Token(_) => return None,
        })
    }
}

/// Connections accepted per readable listener event, at most.
const ACCEPT_BATCH: usize = 64;
/// How long listeners stay paused after EMFILE or a full house, at most.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Events taken per wait: the buffer starts at `FIRST_EVENTS` and doubles
/// whenever a wait fills it, up to `MAX_EVENTS`.
const FIRST_EVENTS: usize = 1024;
const MAX_EVENTS: usize = 1 << 16;
/// Connection slots reserved up front (at most): address space only until
/// used, and no copy of the table (nor a freed old one that the allocator
/// keeps resident for a while) as a storm of clients fills it.
const RESERVED_SLOTS: usize = 1 << 16;
/// The shared read buffer: one per loop, not one per connection. It also
/// receives UDP datagrams, so it must hold the largest (65,507 bytes).
const READ_BUFFER: usize = 64 * 1024;
const _: () = assert!(READ_BUFFER >= 65_507);

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
    pipes: PipePool,
    /// Worker 0 only: the signal self-pipes.
    signals: Option<SignalPipes>,
    signals_seen: usize,
    idle: IdleList,
    /// Connections on proxy listeners still waiting for their PROXY header,
    /// oldest first (closed after [`crate::proxy::HEADER_TIMEOUT`]).
    headers: IdleList,
    /// When the connections the memory budget stopped are next looked at,
    /// and whether any were stopped at the last look (for the log).
    budget_check_at: Instant,
    budget_limited: bool,
    deadline: Option<Instant>,
    counters: Counters,
    stats_due: Option<Instant>,
    /// Worker 0 only, with `WATCHDOG_USEC`: the next watchdog ping.
    watchdog_due: Option<Instant>,
    stats_before: (Counters, Instant),
    accept_log: RateLimited,
    started: Instant,
    now: Instant,
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
        signals: Option<SignalPipes>,
    ) -> io::Result<(Worker, Waker)> {
        let waker = Waker::new(&mut selector, WAKER)?;
        if let Some(s) = &signals {
            selector.register(&s.stop, SIGNALS, Interest::READABLE)?;
            selector.register(&s.hangup, HANGUP, Interest::READABLE)?;
        }
        for (i, l) in listeners.iter().enumerate() {
            l.set_keepalive(cfg.tcp_keepalive)?;
            accept::register_listener(&mut selector, l, Token(FIRST_LISTENER + i))?;
        }
        for (j, socket) in udp.iter().enumerate() {
            selector.register(socket, Token(FIRST_UDP + j), Interest::READABLE)?;
        }
        let udp = UdpEcho::new(udp, cfg.udp_rate)?;
        let now = Instant::now();
        let stats_due = (id == 0)
            .then_some(())
            .and(cfg.stats_interval)
            .map(|i| now + i);
        let watchdog_due = (id == 0).then_some(()).and(cfg.watchdog).map(|_| now);
        let worker = Worker {
            id,
            selector,
            events: Events::with_capacity(FIRST_EVENTS),
            listeners,
            listening: true,
            resume_at: None,
            udp,
            conns: Slab::with_capacity(cfg.max_connections.min(RESERVED_SLOTS)),
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            pipes: PipePool::new(cfg.pipes_per_worker, cfg.pipe_size),
            signals,
            signals_seen: 0,
            idle: IdleList::default(),
            headers: IdleList::default(),
            budget_check_at: now,
            budget_limited: false,
            deadline: None,
            counters: Counters::default(),
            stats_due,
            watchdog_due,
            stats_before: (Counters::default(), now),
            accept_log: RateLimited::default(),
            started: now,
            now,
            cfg,
            shared,
        };
        Ok((worker, waker))
    }

    /// Serve until shutdown has drained every connection (or a second
    /// signal stops everything); returns the totals.
    pub fn run(mut self) -> io::Result<Counters> {
        // Every log line from this loop carries `worker` (a field in JSON).
        let _span = tracing::info_span!("worker", worker = self.id).entered();
        let trace = self.cfg.trace;
        let measure = self.cfg.stats_interval.is_some();
        loop {
            if self.shared.abort.load(Relaxed)
                || (self.deadline.is_some() && self.conns.is_empty() && self.others_done())
            {
                break;
            }
            let timeout = self.next_timeout();
            if trace {
                info!(target: "trace", "waiting for the next event");
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
                self.dispatch(&event);
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
            if self.cfg.publish {
                self.counters.idle_tracked = self.idle.len() as u64;
                self.shared.published[self.id].store(&self.counters);
            }
        }
        self.close_listeners();
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
        match Source::of(event.token()) {
            Some(Source::Conn(key)) => self.on_connection(key, event),
            Some(Source::Listener(i)) if i < self.listeners.len() => self.accept(i),
            Some(Source::Udp(j)) => {
                let trace = self.cfg.trace;
                let buf = &mut self.buf;
                self.udp.echo(j, buf, self.now, &mut self.counters, trace);
            }
            Some(Source::Signals) => self.on_signal(),
            Some(Source::Hangup) => self.on_hangup(),
            Some(Source::Waker) => {
                if self.shared.shutdown.load(Relaxed) && self.deadline.is_none() {
                    self.begin_shutdown();
                }
            }
            // A listener closed by shutdown, or a token we never gave out.
            Some(Source::Listener(_)) | None => {}
        }
    }

    /// A client's event: the connection does the work, the loop applies
    /// what it says.
    fn on_connection(&mut self, key: usize, event: &Event) {
        let Some(conn) = self.conns.get_mut(key) else {
            return; // closed earlier in this round
        };
        let (step, moved) = conn.on_ready(event.is_readable(), event.is_writable(), &mut io!(self));
        if moved && self.cfg.idle_timeout.is_some() {
            self.idle.touch(key, self.now);
        }
        if step != Step::Close && event.is_error_or_hangup() {
            if self.cfg.trace {
                info!(target: "trace", peer = %conn.peer(), "exceptional condition on {}", conn.peer());
            }
            self.close(key);
            return;
        }
        self.apply(key, step);
    }

    /// Carry out what a connection asked for.
    fn apply(&mut self, key: usize, step: Step) {
        match step {
            Step::Keep => {}
            Step::Watch(interest) => {
                let conn = &mut self.conns[key];
                let token = Token(FIRST_CONN + key);
                let result = if conn.is_parked() {
                    self.selector.register(conn.stream(), token, interest)
                } else {
                    self.selector.modify(conn.stream(), token, interest)
                };
                match result {
                    Ok(()) => conn.watching(interest),
                    Err(e) => {
                        warn!(peer = %conn.peer(), error = %e, "cannot change interest");
                        self.close(key);
                    }
                }
            }
            Step::Park => {
                let conn = &self.conns[key];
                if let Err(e) = self.selector.unregister(conn.stream()) {
                    warn!(peer = %conn.peer(), error = %e, "cannot park a connection");
                    self.close(key);
                }
            }
            Step::Close => self.close(key),
            Step::Admit => {
                self.headers.remove(key);
                let peer = self.conns[key].peer();
                if !self.admit(peer) {
                    self.counters.refused_per_ip += 1;
                    self.discard(key, false);
                }
            }
        }
    }

    /// Unregister, then drop: one place, so the two never drift apart.
    fn close(&mut self, key: usize) {
        let counted = self.conns.get(key).is_some_and(|c| !c.awaiting_header());
        self.discard(key, counted);
    }

    /// [`Worker::close`], giving its place under `--max-per-ip` back only if
    /// it was `counted` there.
    fn discard(&mut self, key: usize, counted: bool) {
        let Some(conn) = self.conns.try_remove(key) else {
            return;
        };
        if !conn.is_parked() {
            if let Err(e) = self.selector.unregister(conn.stream()) {
                warn!(peer = %conn.peer(), error = %e, "unregister failed");
            }
        }
        let peer = conn.peer();
        conn.release(&mut io!(self));
        self.idle.remove(key);
        self.headers.remove(key);
        if self.conns.is_empty() {
            // The high-water mark of a burst goes back to the allocator.
            self.conns.shrink_to_fit();
            self.idle.shrink();
        }
        self.counters.closed += 1;
        if counted {
            self.release_ip(peer);
        }
        self.shared.open.fetch_sub(1, Relaxed);
        if !self.listening && self.deadline.is_none() {
            self.resume_at = Some(self.now);
        }
    }

    /// The self-pipe says a signal came: the first starts the drain, the
    /// second stops every loop at once.
    fn on_signal(&mut self) {
        let mut buf = [0u8; 16];
        let n = match self.signals.as_mut().map(|s| s.stop.read(&mut buf)) {
            Some(Ok(n)) => n,
            _ => return,
        };
        self.signals_seen += n;
        if self.signals_seen >= 2 {
            self.shared.abort.store(true, Relaxed);
            self.shared.wake_all();
            return;
        }
        if n > 0 {
            info!("signal received: finishing open connections, then exiting");
            crate::notify::stopping();
            self.shared.shutdown.store(true, Relaxed);
            self.shared.wake_all();
            self.begin_shutdown();
        }
    }

    /// SIGHUP: there is no configuration to reload, so it is only logged.
    fn on_hangup(&mut self) {
        let mut buf = [0u8; 16];
        if let Some(Ok(n @ 1..)) = self.signals.as_mut().map(|s| s.hangup.read(&mut buf)) {
            info!(
                signals = n,
                "SIGHUP received: ignored (echo-server has no configuration to reload)"
            );
        }
    }

    /// Stop accepting; let each connection echo what it has already
    /// received (read or still in the kernel's buffer), then close.
    fn begin_shutdown(&mut self) {
        self.deadline = Some(self.now + self.cfg.shutdown_timeout);
        self.close_listeners();
        for socket in self.udp.close() {
            let _ = self.selector.unregister(&socket);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let step = self.conns[key].begin_drain(&mut io!(self));
            self.apply(key, step);
        }
    }

    /// Close the listeners (new clients are refused, not left waiting) and
    /// remove the Unix socket paths we created (never inherited ones: the
    /// service manager owns those, and may hand them to our successor).
    fn close_listeners(&mut self) {
        for l in self.listeners.drain(..) {
            if self.listening {
                let _ = self.selector.unregister(&l);
            }
            if let Listener::Unix(_, path, Origin::Bound) = &l {
                let _ = std::fs::remove_file(path);
            }
        }
        self.listening = false;
        self.resume_at = None;
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
