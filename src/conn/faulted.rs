//! A connection's injected faults (`--fault`) on the seam of
//! [`super::Connection`]: its reads go through the fault's [`Shape`]
//! (which may hold, corrupt or cut them) before the outbox; what ripens
//! goes out in order; a stream that reached its early end ends with FIN or
//! RST; one that hangs (a stall, a slow read) is parked until a timer or
//! shutdown.

use std::time::{Duration, Instant};

use selector::Interest;
use tracing::info;

use super::flags::PARKED;
use super::{send, Closed, Connection, Io, Phase, Step};
use crate::fault::{End, Shape};
use crate::stream::preview;

/// The faults one connection drew, and the timer it has asked for.
#[derive(Debug)]
pub struct Faulted {
    shape: Shape,
    /// The deadline of the timer the loop holds for it, if any.
    armed: Option<Instant>,
}

impl Faulted {
    /// Bytes held back by the fault.
    pub fn held(&self) -> usize {
        self.shape.held()
    }

    /// How much it may read now (`None`: no limit of its own).
    pub fn read_cap(&self) -> Option<usize> {
        self.shape.read_cap()
    }
}

impl Connection {
    /// A new connection drew faults: from now on its echo goes through them.
    pub fn inject(&mut self, shape: Shape, io: &mut Io) {
        let before = self.gauges();
        self.faults = Some(Box::new(Faulted { shape, armed: None }));
        self.gauges().account(before, io.counters, io.budget);
    }

    pub(super) fn fault_footprint(&self) -> usize {
        match &self.faults {
            None => 0,
            Some(f) => size_of::<Faulted>() + f.shape.footprint(),
        }
    }

    /// The copy path with faults: the bytes just read go into the shape;
    /// what is ripe goes out.
    pub(super) fn echo_faulted(&mut self, n: usize, io: &mut Io) -> Result<(), Closed> {
        let Some(f) = self.faults.as_deref_mut() else {
            return Ok(());
        };
        let data = &mut io.buf[..n];
        if io.cfg.trace {
            info!(target: "trace", peer = %self.peer, bytes = n, "received {n} bytes from {}: {}", self.peer, preview(data));
        }
        f.shape.take(data, io.now);
        self.release_ripe(io)
    }

    /// Send what the shape lets go now, behind what the outbox holds.
    fn release_ripe(&mut self, io: &mut Io) -> Result<(), Closed> {
        let Some(f) = self.faults.as_deref_mut() else {
            return Ok(());
        };
        if f.shape.ripen(io.now) == 0 {
            return Ok(());
        }
        let (a, b) = f.shape.ripe();
        let mut moved = 0;
        for part in [a, b].into_iter().filter(|p| !p.is_empty()) {
            let sent = match self.outbox.pending() {
                0 => send(&mut self.stream, self.peer, part, io.counters, io.cfg.trace)?,
                _ => 0,
            };
            if sent < part.len() {
                self.outbox.push(&part[sent..], io.cfg.max_pending);
            }
            moved += part.len();
        }
        f.shape.consume(moved);
        Ok(())
    }

    /// [`super::Turn::Timer`]: held bytes may be ripe.
    pub(super) fn on_timer(&mut self, io: &mut Io) -> super::Step {
        if let Some(f) = self.faults.as_deref_mut() {
            f.armed = f.armed.filter(|at| *at > io.now);
        }
        match self.release_ripe(io) {
            Ok(()) => self.settle(io),
            Err(Closed) => Step::Close,
        }
    }

    /// Server shutdown: a stall or a slow read ends, what they held goes.
    pub(super) fn lift_faults(&mut self, io: &mut Io) -> Result<(), Closed> {
        if let Some(f) = self.faults.as_deref_mut() {
            f.shape.lift();
        }
        self.release_ripe(io)
    }

    /// After a turn: count and narrate the faults that took effect, and
    /// say when the next held byte ripens if no timer is set for it.
    pub(super) fn after_faulted_turn(&mut self, io: &mut Io) -> Option<Instant> {
        let f = self.faults.as_deref_mut()?;
        for kind in f.shape.applied().iter() {
            io.counters.fault_injected(kind);
            if io.cfg.trace {
                info!(target: "trace", peer = %self.peer, fault = kind.name(), "fault {kind} applied to {}", self.peer);
            }
        }
        let next = f.shape.next_due()?;
        if f.armed.is_some_and(|at| at <= next) {
            return None;
        }
        f.armed = Some(next);
        Some(next)
    }

    /// Nothing to read nor to write now: end the stream where a fault
    /// ends it, or park while a fault holds it. `None`: the faults have
    /// nothing to say, finish as usual.
    pub(super) fn settle_faulted(&mut self, io: &mut Io) -> Option<Step> {
        let f = self.faults.as_deref()?;
        match f.shape.ended() {
            Some(End::Close) => {
                if io.cfg.trace {
                    info!(target: "trace", peer = %self.peer, "closing {} with FIN (fault close)", self.peer);
                }
                if self.stream.shutdown_write().is_err() {
                    return Some(Step::Close);
                }
                // Read and discard until the peer closes: closing with
                // unread input would turn the FIN into a RST.
                self.phase = Phase::Lingering;
                let parked = self.flags.has(PARKED);
                return Some(match self.interest == Interest::READABLE && !parked {
                    true => Step::Keep,
                    false => Step::Watch(Interest::READABLE),
                });
            }
            Some(End::Reset) => {
                if io.cfg.trace {
                    info!(target: "trace", peer = %self.peer, "resetting {} (fault reset)", self.peer);
                }
                // A zero linger: close sends RST and drops what is unread.
                let _ = rustix::net::sockopt::set_socket_linger(&self.stream, Some(Duration::ZERO));
                return Some(Step::Close);
            }
            None => {}
        }
        if f.held() == 0 && !f.shape.hangs() {
            return None;
        }
        if self.flags.has(PARKED) {
            return Some(Step::Keep);
        }
        self.flags.set(PARKED, true);
        Some(Step::Park)
    }
}
