//! What one connection's drawn faults do to its echo stream, as plain data
//! with no socket: the bytes it holds, when each may go, where the stream
//! ends, and what the connection may read. The connection feeds it what it
//! reads ([`Shape::take`]) and sends what is ripe ([`Shape::ripen`],
//! [`Shape::ripe`], [`Shape::consume`]).
//!
//! Offsets count the echo stream from 0, as echo-bench does: a fault with
//! `after=N` touches the byte at offset N first (`corrupt` flips exactly
//! that byte, `close` and `reset` end the stream just before it, `stall`
//! holds it and everything after, `slow-read` reads no byte past it).
//! Delayed bytes keep their order: every deadline is at least the one
//! before it, whatever the jitter drew.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::spec::{FaultSpec, Kind};

/// How the echo stream ends early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// FIN.
    Close,
    /// RST.
    Reset,
}

/// A set of kinds, one bit per index in [`super::KINDS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kinds(u16);

impl Kinds {
    pub fn insert(&mut self, kind: Kind) {
        self.0 |= 1 << kind.index();
    }

    pub fn iter(self) -> impl Iterator<Item = Kind> {
        super::KINDS
            .iter()
            .filter(move |k| self.0 & (1 << k.kind.index()) != 0)
            .map(|k| k.kind)
    }
}

/// The faults a connection drew, as offsets and values.
#[derive(Clone, Copy, Debug, Default)]
struct Plan {
    delay: Option<(u64, Duration, Duration)>,
    rate: Option<(u64, u64)>,
    corrupt: Option<u64>,
    end: Option<(u64, End)>,
    stall: Option<u64>,
    slow_read: Option<u64>,
}

impl Plan {
    /// From the specs drawn; of two of one kind, the one that starts first.
    fn new(specs: &[FaultSpec]) -> Plan {
        let mut plan = Plan::default();
        let first = |slot: Option<u64>, at: u64| slot.map_or(true, |s| at < s);
        for s in specs {
            let at = s.after;
            match s.kind {
                Kind::Delay if first(plan.delay.map(|d| d.0), at) => {
                    plan.delay = Some((at, s.delay, s.jitter));
                }
                Kind::Rate if first(plan.rate.map(|r| r.0), at) => plan.rate = Some((at, s.rate)),
                Kind::Corrupt if first(plan.corrupt, at) => plan.corrupt = Some(at),
                Kind::Close if first(plan.end.map(|e| e.0), at) => {
                    plan.end = Some((at, End::Close));
                }
                Kind::Reset if first(plan.end.map(|e| e.0), at) => {
                    plan.end = Some((at, End::Reset));
                }
                Kind::Stall if first(plan.stall, at) => plan.stall = Some(at),
                Kind::SlowRead if first(plan.slow_read, at) => plan.slow_read = Some(at),
                _ => {}
            }
        }
        plan
    }
}

/// One connection's faults at work.
#[derive(Debug)]
pub struct Shape {
    plan: Plan,
    /// Offset of the next byte taken in.
    taken: u64,
    /// Offset of the first byte held (those before went out).
    released: u64,
    /// Bytes before this offset may go out now.
    ripe_to: u64,
    held: VecDeque<u8>,
    /// (deadline, end offset): the held bytes before `end` go at `deadline`;
    /// deadlines never decrease.
    marks: VecDeque<(Instant, u64)>,
    /// Where the next rate-limited byte may go.
    rate_clock: Option<Instant>,
    /// The fault kinds applied and not yet reported.
    applied: Kinds,
    rng: fastrand::Rng,
}

impl Shape {
    /// The shape of a connection that drew `specs`; `None` when none of
    /// them acts on a stream. `seed` drives the jitter.
    pub fn new(specs: &[FaultSpec], seed: u64) -> Option<Shape> {
        let plan = Plan::new(specs);
        let acts = specs.iter().any(|s| s.kind.info().tcp);
        let mut shape = Shape {
            plan,
            taken: 0,
            released: 0,
            ripe_to: 0,
            held: VecDeque::new(),
            marks: VecDeque::new(),
            rate_clock: None,
            applied: Kinds::default(),
            rng: fastrand::Rng::with_seed(seed),
        };
        // Those at offset 0 with no byte to wait for apply at once.
        if let Some((0, end)) = plan.end {
            shape.applied.insert(end_kind(end));
        }
        if plan.slow_read == Some(0) {
            shape.applied.insert(Kind::SlowRead);
        }
        acts.then_some(shape)
    }

    /// How many bytes it may read now: `None` for no limit of its own.
    pub fn read_cap(&self) -> Option<usize> {
        let stop = match (self.plan.slow_read, self.plan.end) {
            (Some(s), Some((e, _))) => s.min(e),
            (Some(s), None) => s,
            (None, Some((e, _))) => e,
            (None, None) => return None,
        };
        Some(usize::try_from(stop.saturating_sub(self.taken)).unwrap_or(usize::MAX))
    }

    /// Take in `data`, just read at `now` (it may corrupt a byte of it).
    /// Bytes past the end of the stream are dropped.
    pub fn take(&mut self, data: &mut [u8], now: Instant) {
        let start = self.taken;
        let room = self.read_cap().unwrap_or(usize::MAX);
        let keep = data.len().min(room);
        let data = &mut data[..keep];
        let end = start + data.len() as u64;
        if let Some(at) = self.plan.corrupt.filter(|at| (start..end).contains(at)) {
            data[(at - start) as usize] ^= 0xff;
            self.applied.insert(Kind::Corrupt);
        }
        self.held.extend(data.iter());
        self.taken = end;
        self.schedule(start, end, now);
        let reached = |at: Option<u64>| at.is_some_and(|at| at < end && at >= start);
        if reached(self.plan.stall) {
            self.applied.insert(Kind::Stall);
        }
        for (at, kind) in [
            (self.plan.slow_read, Kind::SlowRead),
            (self.plan.end.map(|e| e.0), self.end_kind()),
        ] {
            if at.is_some_and(|at| at > start && at <= end) {
                self.applied.insert(kind);
            }
        }
    }

    fn end_kind(&self) -> Kind {
        self.plan.end.map_or(Kind::Close, |(_, e)| end_kind(e))
    }

    /// Deadlines for the bytes `start..end`, read at `now`.
    fn schedule(&mut self, start: u64, end: u64, now: Instant) {
        let mut due = now;
        if let Some((at, delay, jitter)) = self.plan.delay.filter(|d| d.0 < end) {
            if at > start {
                self.mark(now, at);
            }
            due = now + self.jittered(delay, jitter);
            if at >= start {
                self.applied.insert(Kind::Delay);
            }
        }
        let Some((at, rate)) = self.plan.rate.filter(|r| r.0 < end) else {
            return self.mark(due, end);
        };
        let mut from = start.max(at);
        if from > start {
            self.mark(due, from);
        }
        if at >= start {
            self.applied.insert(Kind::Rate);
        }
        // 50 slices a second: smooth enough, and few marks.
        let slice = (rate / 50).max(1);
        let mut clock = self.rate_clock.unwrap_or(due).max(due);
        while from < end {
            let to = (from + slice).min(end);
            self.mark(clock, to);
            clock += Duration::from_secs_f64((to - from) as f64 / rate as f64);
            from = to;
        }
        self.rate_clock = Some(clock);
    }

    fn jittered(&mut self, delay: Duration, jitter: Duration) -> Duration {
        if jitter.is_zero() {
            return delay;
        }
        let spread = jitter.as_secs_f64() * (2.0 * self.rng.f64() - 1.0);
        Duration::from_secs_f64((delay.as_secs_f64() + spread).max(0.0))
    }

    /// The held bytes before `end` go at `deadline`, or after the bytes
    /// before them, whichever is later: order is kept.
    fn mark(&mut self, deadline: Instant, end: u64) {
        let deadline = match self.marks.back() {
            Some(&(last, _)) => deadline.max(last),
            None => deadline,
        };
        match self.marks.back_mut() {
            Some(back) if back.0 == deadline => back.1 = end,
            _ => self.marks.push_back((deadline, end)),
        }
    }

    /// Ripen what is due at `now` (up to the stall point); returns the
    /// bytes that may go out now.
    pub fn ripen(&mut self, now: Instant) -> usize {
        let stop = self.plan.stall.unwrap_or(u64::MAX);
        while let Some(&(deadline, end)) = self.marks.front() {
            if deadline > now {
                break;
            }
            self.ripe_to = self.ripe_to.max(end.min(stop));
            if end > stop {
                break;
            }
            self.marks.pop_front();
        }
        (self.ripe_to - self.released) as usize
    }

    /// The ripe bytes, oldest first (two slices: the ring's halves).
    pub fn ripe(&self) -> (&[u8], &[u8]) {
        let n = (self.ripe_to - self.released) as usize;
        let (a, b) = self.held.as_slices();
        let first = n.min(a.len());
        (&a[..first], &b[..n - first])
    }

    /// `n` ripe bytes went out.
    pub fn consume(&mut self, n: usize) {
        self.held.drain(..n);
        self.released += n as u64;
        if self.held.is_empty() {
            self.held = VecDeque::new();
            self.marks = VecDeque::new();
        }
    }

    /// Bytes held back.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Memory held, as the budget counts it.
    pub fn footprint(&self) -> usize {
        size_of::<Shape>() + self.held.capacity() + self.marks.capacity() * 16
    }

    /// When the next held byte ripens; `None` when none will (nothing
    /// held, or held by a stall).
    pub fn next_due(&self) -> Option<Instant> {
        let stop = self.plan.stall.unwrap_or(u64::MAX);
        (self.ripe_to < stop)
            .then(|| self.marks.front().map(|m| m.0))
            .flatten()
    }

    /// The stream has reached its early end and every byte before it went
    /// out of here: how it ends.
    pub fn ended(&self) -> Option<End> {
        let (at, end) = self.plan.end?;
        (self.released >= at).then_some(end)
    }

    /// Whether it holds bytes that will not go (a stall), or reads no more
    /// (slow read): the connection then waits for nothing of its own.
    pub fn hangs(&self) -> bool {
        let stalled = self.plan.stall.is_some_and(|s| self.taken > s);
        stalled || self.plan.slow_read.is_some_and(|s| self.taken >= s)
    }

    /// Server shutdown: a stall or a slow read ends, so the connection
    /// drains like any other.
    pub fn lift(&mut self) {
        self.plan.stall = None;
        self.plan.slow_read = None;
    }

    /// The kinds applied since the last call.
    pub fn applied(&mut self) -> Kinds {
        std::mem::take(&mut self.applied)
    }
}

fn end_kind(end: End) -> Kind {
    match end {
        End::Close => Kind::Close,
        End::Reset => Kind::Reset,
    }
}

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
