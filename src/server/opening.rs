//! Connections in a pre-echo phase: on `--listen-proxy` listeners, a
//! [`Greeting`] reads its PROXY header, with a table, a token range and a
//! timeout of its own, and echoes nothing. Once the header is in, the
//! client it names is admitted under `--max-per-ip` and the stream is
//! promoted to an echoing [`crate::conn::Connection`] (another table and
//! token range). Another pre-echo phase (a TLS handshake) would take the
//! same path: its own type, read here, promoted by [`Worker::echo`].

use selector::{Event, Token};
use tracing::{debug, warn};

use super::{Worker, FIRST_CONN, FIRST_OPENING};
use crate::conn::Connection;
use crate::proxy::{self, Greeting};
use crate::stats::Gauges;
use crate::stream::{Peer, Stream};

impl Worker {
    /// Register a client accepted on a proxy listener, to read its header
    /// first; returns whether it is kept.
    pub(super) fn open(&mut self, stream: Stream, peer: Peer) -> bool {
        if !self.trusts(peer) || !self.await_header_from(peer) {
            return false;
        }
        // The key the greeting gets when inserted below.
        let key = self.tables.openings.vacant_key();
        let token = Token(FIRST_OPENING + key);
        if let Err(e) = self
            .selector
            .register(&stream, token, Connection::FIRST_INTEREST)
        {
            warn!(%peer, error = %e, "cannot register a new connection");
            self.header_done(peer);
            return false;
        }
        let greeting = Greeting::new(stream, peer);
        self.account(0, greeting.footprint());
        self.tables.headers.insert(key, self.now);
        self.tables.openings.insert(greeting);
        true
    }

    /// `--proxy-from`: whether `peer` may send a PROXY header (any peer
    /// when the list is empty); a refusal is counted.
    fn trusts(&mut self, peer: Peer) -> bool {
        let trusted = &self.cfg.proxy_from;
        match peer {
            Peer::Ip(addr) if !trusted.iter().any(|c| c.contains(addr.ip())) => {
                if trusted.is_empty() {
                    return true;
                }
                self.res.counters.refused_untrusted += 1;
                debug!(%peer, "closing: not a trusted proxy (--proxy-from)");
                false
            }
            _ => true,
        }
    }

    /// `--max-pending-headers-per-ip`: whether `peer` (the TCP peer: the
    /// header is not read yet) may have one more connection waiting for
    /// its header; a refusal is counted with `--max-per-ip`'s.
    fn await_header_from(&mut self, peer: Peer) -> bool {
        let (Peer::Ip(addr), Some(cap)) = (peer, self.cfg.max_pending_headers) else {
            return true;
        };
        match self.shared.pending_headers.admit(addr.ip(), cap) {
            Ok(()) => true,
            Err(cap) => {
                self.res.counters.refused_per_ip += 1;
                if let Some(more) = self.intake.log.ready(self.now) {
                    warn!(%peer, suppressed = more, "refusing connection: {cap} from {} already wait for their PROXY header (--max-pending-headers-per-ip)", addr.ip());
                }
                false
            }
        }
    }

    /// A connection from `peer` no longer waits for its header.
    fn header_done(&self, peer: Peer) {
        if let (Peer::Ip(addr), Some(_)) = (peer, self.cfg.max_pending_headers) {
            self.shared.pending_headers.release(addr.ip());
        }
    }

    /// A readable opening: read its header, then promote, wait or close.
    pub(super) fn on_opening(&mut self, key: usize, event: &Event) {
        let Some(greeting) = self.tables.openings.get_mut(key) else {
            return; // closed earlier in this round
        };
        let before = greeting.footprint();
        let step = match event.is_readable() {
            true => greeting.read(&mut self.res.buf, &mut self.res.counters, self.cfg.trace),
            false => proxy::Step::Wait,
        };
        let after = greeting.footprint();
        self.account(before, after);
        match step {
            proxy::Step::Wait if !event.is_error_or_hangup() => {}
            proxy::Step::Wait | proxy::Step::Close => self.close_opening(key, false),
            proxy::Step::Admit(client) => self.promote(key, client),
        }
    }

    /// The header named the client: echo for it, if `--max-per-ip` admits
    /// it, under a token of the echoing range.
    fn promote(&mut self, key: usize, client: Peer) {
        if !self.admit(client) {
            self.close_opening(key, false);
            return;
        }
        let Some(greeting) = self.forget_opening(key) else {
            return;
        };
        let stream = greeting.into_stream();
        let entry = self.tables.conns.vacant_entry();
        let token = Token(FIRST_CONN + entry.key());
        if let Err(e) = self
            .selector
            .modify(&stream, token, Connection::FIRST_INTEREST)
        {
            warn!(peer = %client, error = %e, "cannot register a new connection");
            let _ = self.selector.unregister(&stream);
            self.release_ip(client);
            self.closed();
            return;
        }
        if self.cfg.idle_timeout.is_some() {
            self.tables.idle.insert(entry.key(), self.now);
        }
        let listener = self.intake.proxy_listener_of(&stream);
        let io = &mut self.res.lend(&self.cfg, &self.shared, self.now);
        let conn = entry.insert(Connection::new(stream, client, io));
        if let Some(shape) = self.intake.faults_for(listener) {
            conn.inject(shape, io);
        }
    }

    /// Close an opening, counting it in `refused_proxy` when it `timed_out`.
    pub(super) fn close_opening(&mut self, key: usize, timed_out: bool) {
        let Some(greeting) = self.forget_opening(key) else {
            return;
        };
        if let Err(e) = self.selector.unregister(greeting.stream()) {
            warn!(peer = %greeting.peer(), error = %e, "unregister failed");
        }
        if timed_out {
            debug!(peer = %greeting.peer(), "closing: no PROXY header within {:?}", self.opening_timeout());
            self.res.counters.refused_proxy += 1;
        }
        self.closed();
    }

    /// Server shutdown: an opening has received nothing to echo.
    pub(super) fn close_openings(&mut self) {
        let keys: Vec<usize> = self.tables.openings.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close_opening(key, false);
        }
    }

    /// Close the openings whose header is late: after
    /// [`proxy::HEADER_TIMEOUT`], or `--idle-timeout` if that is shorter.
    pub(super) fn expire_openings(&mut self) {
        let due = self.opening_timeout();
        while let Some((key, at)) = self.tables.headers.oldest() {
            if at + due > self.now {
                break;
            }
            self.close_opening(key, true);
        }
    }

    /// How long an opening may wait for its header.
    pub(super) fn opening_timeout(&self) -> std::time::Duration {
        self.cfg.idle_timeout.map_or(proxy::HEADER_TIMEOUT, |idle| {
            idle.min(proxy::HEADER_TIMEOUT)
        })
    }

    /// Take an opening out of its table and lists; its memory leaves the
    /// budget.
    fn forget_opening(&mut self, key: usize) -> Option<Greeting> {
        let greeting = self.tables.openings.try_remove(key)?;
        self.tables.headers.remove(key);
        if self.tables.openings.is_empty() {
            self.tables.openings.shrink_to_fit();
            self.tables.headers.shrink();
        }
        self.account(greeting.footprint(), 0);
        self.header_done(greeting.peer());
        Some(greeting)
    }

    /// An opening's memory went from `before` to `after` bytes: tell the
    /// budget and the `held` gauge.
    fn account(&mut self, before: usize, after: usize) {
        let counters = &mut self.res.counters;
        Gauges::holding(after).account(Gauges::holding(before), counters, &self.shared.budget);
    }
}
