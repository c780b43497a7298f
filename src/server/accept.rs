//! Accepting clients: the connection limit, the per-IP cap, and pausing
//! the listeners when descriptors run out.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use selector::{Interest, Mode, Selector, Token};
use tracing::{info, warn};

use super::{Worker, ACCEPT_BACKOFF, ACCEPT_BATCH, FIRST_CONN, FIRST_LISTENER};
use crate::conn::Connection;
use crate::fault::{Draw, Shape};
use crate::listen::Listener;
use crate::stream::{would_block, Peer, Stream};
use crate::udp::RateLimited;

/// The worker's listeners, and whether they are watched now.
#[derive(Debug)]
pub(super) struct Intake {
    pub(super) listeners: Vec<Listener>,
    /// Whether the listeners are registered (not paused nor closed).
    pub(super) listening: bool,
    /// When paused listeners are watched again.
    pub(super) resume_at: Option<Instant>,
    /// Warnings about refused clients and paused accepting, rate limited.
    pub(super) log: RateLimited,
    /// `--fault`: this worker's draws, and each listener's address as
    /// written (what `on=` names).
    draw: Draw,
    labels: Vec<Option<String>>,
}

impl Intake {
    pub(super) fn new(listeners: Vec<Listener>, draw: Draw) -> Intake {
        let labels = listeners
            .iter()
            .map(|l| {
                let local = l.tcp_local_addr()?;
                draw.faults().label(l.is_proxy(), local)
            })
            .collect();
        Intake {
            listeners,
            listening: true,
            resume_at: None,
            log: RateLimited::default(),
            draw,
            labels,
        }
    }

    /// The faults a connection accepted on listener `index` draws; `None`
    /// (at the cost of one load) when no fault is configured.
    pub(super) fn faults_for(&mut self, index: Option<usize>) -> Option<Shape> {
        if !self.draw.faults().any() {
            return None;
        }
        let label = index.and_then(|i| self.labels.get(i)?.as_deref());
        self.draw.shape(label)
    }

    /// The proxy listener a promoted connection came through, by address.
    pub(super) fn proxy_listener_of(&self, stream: &Stream) -> Option<usize> {
        if !self.draw.faults().any() {
            return None;
        }
        let Stream::Tcp(s) = stream else { return None };
        let local = s.local_addr().ok()?;
        self.listeners.iter().position(|l| {
            l.is_proxy()
                && l.tcp_local_addr().is_some_and(|a| {
                    a.port() == local.port() && (a.ip() == local.ip() || a.ip().is_unspecified())
                })
        })
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
            let (stream, peer) = match self.intake.listeners[index].accept(serial) {
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
            let kept = match self.intake.listeners[index].is_proxy() {
                true => self.open(stream, peer),
                false => self.admit(peer) && self.echo(stream, peer, index),
            };
            if !kept {
                continue; // dropping the stream closed it
            }
            if self.cfg.trace {
                info!(target: "trace", %peer, "new connection from {peer}");
            }
            place.commit();
            self.res.counters.accepted += 1;
            self.shared.published[self.id].accepted_on(index);
        }
    }

    /// Register a client that the per-IP cap admitted, as an echoing
    /// connection; returns whether it is kept.
    pub(super) fn echo(&mut self, stream: Stream, peer: Peer, listener: usize) -> bool {
        let entry = self.tables.conns.vacant_entry();
        let token = Token(FIRST_CONN + entry.key());
        if let Err(e) = self
            .selector
            .register(&stream, token, Connection::FIRST_INTEREST)
        {
            warn!(%peer, error = %e, "cannot register a new connection");
            self.release_ip(peer);
            return false;
        }
        if self.cfg.idle_timeout.is_some() {
            self.tables.idle.insert(entry.key(), self.now);
        }
        let io = &mut self.res.lend(&self.cfg, &self.shared, self.now);
        let conn = entry.insert(Connection::new(stream, peer, io));
        if let Some(shape) = self.intake.faults_for(Some(listener)) {
            conn.inject(shape, io);
        }
        true
    }

    /// The per-IP cap, when configured; a refusal is counted.
    pub(super) fn admit(&mut self, peer: Peer) -> bool {
        let Peer::Ip(addr) = peer else {
            return true;
        };
        match self.shared.per_ip.admit(addr.ip()) {
            Ok(()) => true,
            Err(cap) => {
                self.res.counters.refused_per_ip += 1;
                if let Some(more) = self.intake.log.ready(self.now) {
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
        let intake = &mut self.intake;
        if let Some(more) = intake.log.ready(self.now) {
            warn!(
                open = self.shared.open.load(Relaxed),
                suppressed = more,
                "not accepting for now: {why}"
            );
        }
        if intake.listening {
            for l in &intake.listeners {
                if let Err(e) = self.selector.unregister(l) {
                    warn!(error = %e, "cannot pause a listener");
                }
            }
            intake.listening = false;
        }
        intake.resume_at = Some(self.now + ACCEPT_BACKOFF);
    }

    pub(super) fn resume_accepting(&mut self) {
        let intake = &mut self.intake;
        intake.resume_at = None;
        for (i, l) in intake.listeners.iter().enumerate() {
            let token = Token(FIRST_LISTENER + i);
            if let Err(e) = register_listener(&mut self.selector, l, token) {
                warn!(error = %e, "cannot resume a listener");
            }
        }
        intake.listening = true;
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
