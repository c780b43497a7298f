//! Accepting clients: the connection limit, the per-IP cap, and pausing
//! the listeners when descriptors run out.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use selector::{Interest, Mode, Selector, Token, Waker};
use tracing::{info, warn};

use super::{Worker, ACCEPT_BACKOFF, ACCEPT_BATCH, FIRST_CONN, FIRST_LISTENER};
use crate::budget::Budget;
use crate::conn::Connection;
use crate::limits::PerIp;
use crate::listen::Listener;
use crate::stats::Published;
use crate::stream::{would_block, Peer};

/// State shared by all workers. Touched on accept, close and shutdown only.
#[derive(Debug)]
pub struct Shared {
    pub shutdown: AtomicBool,
    /// A second signal: every loop stops at once, without draining.
    pub abort: AtomicBool,
    pub open: AtomicUsize,
    /// Workers whose loop has not ended; worker 0 ends last, so it can
    /// still see a second signal while the others drain.
    pub running: AtomicUsize,
    pub serial: AtomicU64,
    pub per_ip: PerIp,
    /// `--max-memory`: what every worker holds for its clients.
    pub budget: Budget,
    pub wakers: OnceLock<Vec<Waker>>,
    pub published: Vec<Published>,
}

impl Shared {
    pub fn new(workers: usize, max_per_ip: Option<u32>, max_memory: usize) -> Shared {
        Shared {
            shutdown: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            running: AtomicUsize::new(workers),
            serial: AtomicU64::new(0),
            per_ip: PerIp::new(max_per_ip),
            budget: Budget::new(max_memory),
            wakers: OnceLock::new(),
            published: (0..workers).map(|_| Published::default()).collect(),
        }
    }

    /// Count accepts per listener, named as in `names[worker][listener]`.
    pub fn with_listener_names(mut self, names: Vec<Vec<String>>) -> Shared {
        self.published = names.into_iter().map(Published::with_listeners).collect();
        self
    }

    pub fn wake_all(&self) {
        for waker in self.wakers.get().into_iter().flatten() {
            if let Err(e) = waker.wake() {
                warn!(error = %e, "cannot wake a worker");
            }
        }
    }
}

/// A place under `--max-connections`, given back on drop unless the
/// connection it was taken for is kept.
struct Reservation<'a> {
    open: &'a AtomicUsize,
}

impl<'a> Reservation<'a> {
    fn take(open: &'a AtomicUsize, max: usize) -> Option<Reservation<'a>> {
        let reservation = Reservation { open };
        (open.fetch_add(1, Relaxed) < max).then_some(reservation)
    }

    /// The connection is kept: `close` gives the place back.
    fn commit(self) {
        std::mem::forget(self);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Relaxed);
    }
}

impl Worker {
    /// A readable listener: accept what is waiting (the tutorial's
    /// `s is server` branch), registering each client for reading.
    pub(super) fn accept(&mut self, index: usize) {
        let shared = Arc::clone(&self.shared);
        for _ in 0..ACCEPT_BATCH {
            let Some(place) = Reservation::take(&shared.open, self.cfg.max_connections) else {
                self.pause_accepting("connection limit reached (--max-connections)");
                return;
            };
            let serial = shared.serial.fetch_add(1, Relaxed);
            let (stream, peer) = match self.listeners[index].accept(serial) {
                Ok(accepted) => accepted,
                Err(e) => {
                    use rustix::io::Errno;
                    match Errno::from_io_error(&e) {
                        _ if would_block(&e) => return,
                        // The client gave up while queued: try the next one.
                        Some(Errno::CONNABORTED) => continue,
                        Some(Errno::MFILE | Errno::NFILE) => {
                            self.pause_accepting("out of file descriptors");
                        }
                        _ => warn!(error = %e, "accept failed"),
                    }
                    return;
                }
            };
            // Behind a proxy, the client is known (and admitted) only once
            // its PROXY header is in.
            let proxied = self.listeners[index].is_proxy();
            if !proxied && !self.admit(peer) {
                self.counters.refused_per_ip += 1;
                continue; // dropping the stream closes it
            }
            let entry = self.conns.vacant_entry();
            let token = Token(FIRST_CONN + entry.key());
            if let Err(e) = self
                .selector
                .register(&stream, token, Connection::FIRST_INTEREST)
            {
                warn!(%peer, error = %e, "cannot register a new connection");
                if !proxied {
                    self.release_ip(peer);
                }
                continue;
            }
            let conn = Connection::new(stream, peer, &shared.budget, &mut self.counters);
            let conn = if proxied { conn.behind_proxy() } else { conn };
            if self.cfg.trace {
                info!(target: "trace", %peer, "new connection from {peer}");
            }
            if self.cfg.idle_timeout.is_some() {
                self.idle.insert(entry.key(), self.now);
            }
            if proxied {
                self.headers.insert(entry.key(), self.now);
            }
            entry.insert(conn);
            place.commit();
            self.counters.accepted += 1;
            self.shared.published[self.id].accepted_on(index);
        }
    }

    /// The per-IP cap, when configured.
    pub(super) fn admit(&mut self, peer: Peer) -> bool {
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

    pub(super) fn release_ip(&self, peer: Peer) {
        if let Peer::Ip(addr) = peer {
            self.shared.per_ip.release(addr.ip());
        }
    }

    /// Stop watching the listeners for a while: the pending clients wait in
    /// the backlog instead of the loop spinning on an accept that fails.
    pub(super) fn pause_accepting(&mut self, why: &str) {
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

    pub(super) fn resume_accepting(&mut self) {
        self.resume_at = None;
        for (i, l) in self.listeners.iter().enumerate() {
            let token = Token(FIRST_LISTENER + i);
            if let Err(e) = register_listener(&mut self.selector, l, token) {
                warn!(error = %e, "cannot resume a listener");
            }
        }
        self.listening = true;
    }
}

/// Registers a listener for reading, with exclusive wakeups where the
/// backend has them (epoll): a connection to a listener the workers share
/// (inherited from systemd) then wakes one waiting worker, not all of them.
pub(super) fn register_listener(
    selector: &mut Selector,
    listener: &Listener,
    token: Token,
) -> std::io::Result<()> {
    if selector.backend().supports_exclusive() {
        selector.register_exclusive(listener, token, Interest::READABLE, Mode::Level)
    } else {
        selector.register(listener, token, Interest::READABLE)
    }
}
