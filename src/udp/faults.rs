//! UDP faults (`--fault drop|duplicate|reorder|delay=DUR`): what one
//! worker's faults make of each datagram it would echo, drawn per datagram
//! from the worker's seeded stream.
//!
//! - `drop`: not echoed. `duplicate`: echoed twice.
//! - `delay=DUR[,jitter=DUR]`: echoed DUR (± jitter) after it arrived.
//! - `reorder`: held until the next datagram from the same source on the
//!   same socket is echoed, then echoed right after it (the two swap); a
//!   datagram held [`REORDER_HOLD`] with nothing behind it is echoed then.
//!
//! Delayed and held datagrams wait in one per-worker timer heap (a wakeup
//! costs a logarithm of what is held), bounded by [`MAX_HELD`] datagrams
//! and [`MAX_HELD_BYTES`] bytes and counted in `--max-memory`: past any of
//! them a datagram is echoed at once, as if it had drawn no delay or hold.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::RateLimited;
use crate::budget::Budget;
use crate::fault::{Draw, FaultSpec, Kind, Transport};
use crate::stats::Counters;

/// How long a `reorder` datagram waits for the next one from its source.
pub const REORDER_HOLD: Duration = Duration::from_millis(100);
/// Datagrams one worker holds at most (delayed or held for reordering).
pub const MAX_HELD: usize = 4096;
/// Bytes one worker holds at most.
pub const MAX_HELD_BYTES: usize = 4 << 20;

/// What goes out: the datagram just received, or one held.
#[derive(Debug)]
pub enum Data {
    This,
    Held(Box<[u8]>),
}

impl Data {
    fn duplicate(&self) -> Data {
        match self {
            Data::This => Data::This,
            Data::Held(b) => Data::Held(b.clone()),
        }
    }
}

/// One datagram to send.
#[derive(Debug)]
pub struct Outgoing {
    pub socket: usize,
    pub to: SocketAddr,
    pub data: Data,
}

/// Where a datagram goes and what it drew.
#[derive(Clone, Copy, Debug)]
struct Route {
    socket: usize,
    to: SocketAddr,
    copies: u8,
    reorder: bool,
}

#[derive(Debug)]
struct Held {
    route: Route,
    data: Box<[u8]>,
    /// Held for reordering (else delayed).
    holding: bool,
}

/// One worker's UDP faults and the datagrams they hold.
#[derive(Debug)]
pub struct UdpFaults {
    draw: Draw,
    /// Each socket's `--udp` value as written, for `on=`.
    labels: Vec<Option<String>>,
    jitter: fastrand::Rng,
    /// When each held datagram is due; entries whose datagram went early
    /// are skipped when they come up.
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    held: HashMap<u64, Held>,
    /// The datagram held for reordering per socket and source.
    holding: HashMap<(usize, SocketAddr), u64>,
    next_id: u64,
    bytes: usize,
    log: RateLimited,
    trace: bool,
}

impl UdpFaults {
    pub fn new(draw: Draw, labels: Vec<Option<String>>, worker: usize, trace: bool) -> UdpFaults {
        let seed = draw.faults().seed() ^ (worker as u64).wrapping_add(1).rotate_left(32);
        UdpFaults {
            draw,
            labels,
            jitter: fastrand::Rng::with_seed(seed),
            due: BinaryHeap::new(),
            held: HashMap::new(),
            holding: HashMap::new(),
            next_id: 0,
            bytes: 0,
            log: RateLimited::default(),
            trace,
        }
    }

    /// Whether any fault may apply (one relaxed load), or a datagram waits.
    pub fn active(&self) -> bool {
        self.draw.faults().any() || !self.held.is_empty()
    }

    /// When the next held datagram is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// The datagram `data` from `from` on `socket`: what to send now goes
    /// into `out`.
    pub fn receive(&mut self, socket: usize, from: SocketAddr, data: &[u8], ctx: &mut Ctx<'_>) {
        let on = self.labels.get(socket).and_then(Option::as_deref);
        let drawn = self.draw.draw(Transport::Datagram, on);
        let has = |kind: Kind| drawn.iter().any(|s| s.kind == kind);
        if has(Kind::Drop) {
            return self.applied(Kind::Drop, from, ctx.counters);
        }
        let mut copies = 1;
        if has(Kind::Duplicate) {
            copies = 2;
            self.applied(Kind::Duplicate, from, ctx.counters);
        }
        let route = Route {
            socket,
            to: from,
            copies,
            reorder: has(Kind::Reorder),
        };
        if let Some(spec) = drawn.iter().find(|s| s.kind == Kind::Delay) {
            let at = ctx.now + self.delay_of(spec);
            if self.hold(route, data.into(), at, false, ctx.budget).is_ok() {
                return self.applied(Kind::Delay, from, ctx.counters);
            }
        }
        self.dispatch(route, Data::This, data, ctx);
    }

    /// Send the held datagrams that are due.
    pub fn on_timers(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(&Reverse((at, id))) = self.due.peek() {
            if at > ctx.now {
                break;
            }
            self.due.pop();
            let Some(held) = self.take(id, ctx.budget) else {
                continue; // sent early
            };
            if held.holding {
                // Nothing came behind it: it goes alone, unswapped.
                push(ctx.out, held.route, Data::Held(held.data));
            } else {
                self.dispatch(held.route, Data::Held(held.data), &[], ctx);
            }
        }
        if self.due.is_empty() {
            self.due.shrink_to_fit();
            self.held.shrink_to_fit();
            self.holding.shrink_to_fit();
        }
    }

    /// Everything held, to send now (the sockets are closing).
    pub fn flush(&mut self, budget: &Budget, out: &mut Vec<Outgoing>) {
        let mut ids: Vec<u64> = self.held.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(held) = self.take(id, budget) {
                push(out, held.route, Data::Held(held.data));
            }
        }
        self.due.clear();
    }

    /// Send a datagram due now (`this`, the bytes of [`Data::This`]),
    /// unless it is to be held for reordering; then release the one held
    /// before it from its source, if any: the swap.
    fn dispatch(&mut self, route: Route, mut data: Data, this: &[u8], ctx: &mut Ctx<'_>) {
        let key = (route.socket, route.to);
        if route.reorder && !self.holding.contains_key(&key) {
            let at = ctx.now + REORDER_HOLD;
            let owned = match data {
                Data::This => this.into(),
                Data::Held(b) => b,
            };
            match self.hold(route, owned, at, true, ctx.budget) {
                Ok(()) => return,
                Err(back) => data = Data::Held(back),
            }
        }
        push(ctx.out, route, data);
        if let Some(id) = self.holding.get(&key).copied() {
            if let Some(held) = self.take(id, ctx.budget) {
                push(ctx.out, held.route, Data::Held(held.data));
                self.applied(Kind::Reorder, route.to, ctx.counters);
            }
        }
    }

    /// Keep `data` until `at`, if the bounds and the budget allow; else
    /// give it back.
    fn hold(
        &mut self,
        route: Route,
        data: Box<[u8]>,
        at: Instant,
        holding: bool,
        b: &Budget,
    ) -> Result<(), Box<[u8]>> {
        let n = data.len();
        let fits = self.due.len() < MAX_HELD
            && self.bytes + n <= MAX_HELD_BYTES
            && b.may_grow(|| self.bytes, n);
        if !fits {
            if let Some(more) = self.log.ready(at) {
                warn!(
                    held = self.held.len(),
                    bytes = self.bytes,
                    suppressed = more,
                    "udp faults: the hold queue is full, echoing a datagram at once"
                );
            }
            return Err(data);
        }
        let id = self.next_id;
        self.next_id += 1;
        if holding {
            self.holding.insert((route.socket, route.to), id);
        }
        self.held.insert(
            id,
            Held {
                route,
                data,
                holding,
            },
        );
        self.due.push(Reverse((at, id)));
        self.bytes += n;
        b.charge(n);
        Ok(())
    }

    fn take(&mut self, id: u64, budget: &Budget) -> Option<Held> {
        let held = self.held.remove(&id)?;
        if held.holding {
            self.holding.remove(&(held.route.socket, held.route.to));
        }
        self.bytes -= held.data.len();
        budget.release(held.data.len());
        Some(held)
    }

    fn delay_of(&mut self, spec: &FaultSpec) -> Duration {
        if spec.jitter.is_zero() {
            return spec.delay;
        }
        let span = spec.jitter.as_micros() as u64;
        let offset = self.jitter.u64(0..=2 * span);
        (spec.delay + Duration::from_micros(offset)).saturating_sub(spec.jitter)
    }

    fn applied(&self, kind: Kind, peer: SocketAddr, counters: &mut Counters) {
        counters.fault_injected(kind);
        if self.trace {
            info!(target: "trace", %peer, "fault {kind} applied to a datagram from {peer}");
        }
    }
}

/// What a step needs from the loop.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub now: Instant,
    pub budget: &'a Budget,
    pub counters: &'a mut Counters,
    pub out: &'a mut Vec<Outgoing>,
}

fn push(out: &mut Vec<Outgoing>, route: Route, data: Data) {
    let (socket, to) = (route.socket, route.to);
    for _ in 1..route.copies {
        let data = data.duplicate();
        out.push(Outgoing { socket, to, data });
    }
    out.push(Outgoing { socket, to, data });
}

#[cfg(test)]
#[path = "faults_tests.rs"]
mod tests;
