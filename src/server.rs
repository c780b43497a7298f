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
//! | readable client: recv, queue     | [`Connection::handle`]                        |
//! | empty recv: client left          | [`Step::Close`] from `handle`                 |
//! | writable: send from the queue    | [`Connection::handle`]                        |
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

use std::io;
use std::net::UdpSocket;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use selector::{Event, Events, Interest, Selector, Token, Waker};
use slab::Slab;
use tracing::{info, warn};

use crate::config::Config;
use crate::conn::{Connection, Io, Outcome, Step, Turn};
use crate::idle::IdleList;
use crate::listen::Listener;
use crate::proxy::Greeting;
use crate::signals::SignalPipes;
use crate::splice::PipePool;
use crate::stats::Counters;
use crate::udp::UdpEcho;

mod accept;
mod opening;
mod shared;
mod shutdown;
mod timers;

pub use shared::Shared;

use accept::Intake;
use shutdown::Signals;
use timers::Timers;

/// Token ranges, fixed at startup: decoding a token never depends on a
/// list that shutdown empties. Connections still in a pre-echo phase have
/// a table and a range of their own, below the echoing ones (tokens stay
/// under 2^60, which the selector packs without a lookup).
const WAKER: Token = Token(0);
const SIGNALS: Token = Token(1);
const HANGUP: Token = Token(2);
const FIRST_LISTENER: usize = 1 << 8;
const FIRST_UDP: usize = 1 << 16;
const FIRST_OPENING: usize = 1 << 24;
const FIRST_CONN: usize = 1 << 40;

/// Who an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Waker,
    Signals,
    Hangup,
    Listener(usize),
    Udp(usize),
    Opening(usize),
    Conn(usize),
}

impl Source {
    fn of(token: Token) -> Option<Source> {
        Some(match token {
            WAKER => Source::Waker,
            SIGNALS => Source::Signals,
            HANGUP => Source::Hangup,
            Token(t) if t >= FIRST_CONN => Source::Conn(t - FIRST_CONN),
            Token(t) if t >= FIRST_OPENING => Source::Opening(t - FIRST_OPENING),
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
pub const READ_BUFFER: usize = 64 * 1024;
const _: () = assert!(READ_BUFFER >= 65_507);

/// What a worker lends its connections, one at a time.
#[derive(Debug)]
struct Resources {
    /// The read buffer, shared by all the worker's sockets.
    buf: Box<[u8]>,
    /// Pipes for the zero-copy path.
    pipes: PipePool,
    counters: Counters,
}

impl Resources {
    /// What a connection borrows for one turn.
    fn lend<'a>(&'a mut self, cfg: &'a Config, shared: &'a Shared, now: Instant) -> Io<'a> {
        Io {
            buf: &mut self.buf,
            counters: &mut self.counters,
            pipes: &mut self.pipes,
            cfg,
            now,
            budget: &shared.budget,
        }
    }
}

/// The worker's clients, by slab key, and the lists that order them.
#[derive(Debug)]
struct Tables {
    conns: Slab<Connection>,
    /// Connections on proxy listeners still reading their PROXY header.
    openings: Slab<Greeting>,
    /// `--idle-timeout`: echoing connections, least recently active first.
    idle: IdleList,
    /// Openings, oldest first (closed after [`crate::proxy::HEADER_TIMEOUT`]).
    headers: IdleList,
    /// Connections the memory budget stopped (and a few that recovered
    /// since the last look): what the budget recheck walks.
    starved: std::collections::BTreeSet<usize>,
}

/// One event loop: a selector, its sockets, and its connections.
#[derive(Debug)]
pub struct Worker {
    id: usize,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    selector: Selector,
    events: Events,
    intake: Intake,
    udp: UdpEcho,
    tables: Tables,
    res: Resources,
    timers: Timers,
    signals: Option<Signals>,
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
        let udp = UdpEcho::new(udp, cfg.udp_rate, shared.faults.draw_for(id), id, cfg.trace)?;
        let now = Instant::now();
        let worker = Worker {
            id,
            selector,
            events: Events::with_capacity(FIRST_EVENTS),
            intake: Intake::new(listeners, shared.faults.draw_for(id)),
            udp,
            tables: Tables {
                conns: Slab::with_capacity(cfg.max_connections.min(RESERVED_SLOTS)),
                openings: Slab::new(),
                idle: IdleList::default(),
                headers: IdleList::default(),
                starved: Default::default(),
            },
            res: Resources {
                buf: vec![0; READ_BUFFER].into_boxed_slice(),
                pipes: PipePool::new(cfg.pipes_per_worker, cfg.pipe_size),
                counters: Counters::default(),
            },
            timers: Timers::new(id, &cfg, now),
            signals: signals.map(|pipes| Signals { pipes, seen: 0 }),
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
            if self.shared.abort.load(Relaxed) || (self.drained() && self.others_done()) {
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
            let counters = &mut self.res.counters;
            if measure {
                counters.wait_ns += nanos(self.now.duration_since(before));
                counters.loop_ns = nanos(self.now.duration_since(self.timers.started));
            }
            if let Err(e) = result {
                self.events = events;
                return Err(e);
            }
            counters.wakeups += 1;
            counters.events += events.len() as u64;
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
                self.res.counters.idle_tracked = self.tables.idle.len() as u64;
                self.shared.published[self.id].store(&self.res.counters);
            }
        }
        self.close_listeners();
        self.shared.running.fetch_sub(1, Relaxed);
        self.shared.wake(0); // worker 0 may be waiting for the last of us
        Ok(self.res.counters)
    }

    /// Shutting down, with no client left.
    fn drained(&self) -> bool {
        self.timers.deadline.is_some()
            && self.tables.conns.is_empty()
            && self.tables.openings.is_empty()
    }

    /// Worker 0 outlives the others; the others need not wait.
    fn others_done(&self) -> bool {
        self.id != 0 || self.shared.running.load(Relaxed) == 1
    }

    fn dispatch(&mut self, event: &Event) {
        match Source::of(event.token()) {
            Some(Source::Conn(key)) => self.on_connection(key, event),
            Some(Source::Opening(key)) => self.on_opening(key, event),
            Some(Source::Listener(i)) if i < self.intake.listeners.len() => self.accept(i),
            Some(Source::Udp(j)) => {
                let res = &mut self.res;
                let trace = self.cfg.trace;
                let budget = &self.shared.budget;
                self.udp
                    .echo(j, &mut res.buf, self.now, budget, &mut res.counters, trace);
            }
            Some(Source::Signals) => self.on_signal(),
            Some(Source::Hangup) => self.on_hangup(),
            Some(Source::Waker) => {
                if self.shared.shutdown.load(Relaxed) && self.timers.deadline.is_none() {
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
        let Some(conn) = self.tables.conns.get_mut(key) else {
            return; // closed earlier in this round
        };
        let turn = Turn::Ready {
            readable: event.is_readable(),
            writable: event.is_writable(),
        };
        let outcome = conn.handle(turn, &mut self.res.lend(&self.cfg, &self.shared, self.now));
        if outcome.moved && self.cfg.idle_timeout.is_some() {
            self.tables.idle.touch(key, self.now);
        }
        if outcome.step != Step::Close && event.is_error_or_hangup() {
            if self.cfg.trace {
                info!(target: "trace", peer = %conn.peer(), "exceptional condition on {}", conn.peer());
            }
            self.close(key);
            return;
        }
        self.apply(key, outcome);
    }

    /// Carry out what a connection asked for.
    fn apply(&mut self, key: usize, outcome: Outcome) {
        if outcome.starved {
            self.tables.starved.insert(key);
        }
        if let Some(at) = outcome.wake_at {
            self.timers.faults.push(std::cmp::Reverse((at, key)));
        }
        match outcome.step {
            Step::Keep => {}
            Step::Watch(interest) => {
                let conn = &mut self.tables.conns[key];
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
                let conn = &self.tables.conns[key];
                if let Err(e) = self.selector.unregister(conn.stream()) {
                    warn!(peer = %conn.peer(), error = %e, "cannot park a connection");
                    self.close(key);
                }
            }
            Step::Close => self.close(key),
        }
    }

    /// Unregister, then drop: one place, so the two never drift apart.
    fn close(&mut self, key: usize) {
        let Some(conn) = self.tables.conns.try_remove(key) else {
            return;
        };
        if !conn.is_parked() {
            if let Err(e) = self.selector.unregister(conn.stream()) {
                warn!(peer = %conn.peer(), error = %e, "unregister failed");
            }
        }
        let peer = conn.peer();
        conn.release(&mut self.res.lend(&self.cfg, &self.shared, self.now));
        let tables = &mut self.tables;
        tables.idle.remove(key);
        tables.starved.remove(&key);
        if tables.conns.is_empty() {
            // The high-water mark of a burst goes back to the allocator.
            tables.conns.shrink_to_fit();
            tables.idle.shrink();
        }
        self.release_ip(peer);
        self.closed();
    }

    /// A client is gone, echoing or not: count it, and give its place under
    /// `--max-connections` back.
    fn closed(&mut self) {
        self.res.counters.closed += 1;
        self.shared.open.fetch_sub(1, Relaxed);
        if !self.intake.listening && self.timers.deadline.is_none() {
            self.intake.resume_at = Some(self.now);
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
