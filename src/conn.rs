//! One echoing client connection as a state machine: it reads, echoes,
//! queues what the peer cannot take yet, handles EOF and the shutdown
//! drain, and tells the loop what to do next ([`Step`]). The loop only
//! registers and closes.
//!
//! A connection starts here once it echoes: a pre-echo phase (the PROXY
//! header, [`crate::proxy::Greeting`]) is a type of its own that the loop
//! promotes into a [`Connection`]. Where its bytes are held and which path
//! they take (copy or splice) is [`Outbox`]'s business; the budget and the
//! gauges are told what changed once per turn ([`Connection::handle`]).
//!
//! # Where a per-connection behaviour plugs in
//! Something that shapes one connection's echo (injected faults) keeps its
//! state in a module of its own, in a boxed field (`Option<Box<_>>`, so
//! the connection stays within 64 bytes), and takes these hooks:
//! - [`Connection::read_limit`]: may it read, how much (slow read: `No`);
//! - `send`: every copied byte going back passes there once, in order; the
//!   behaviour counts its own offset (delay, rate, corruption, an end after
//!   N bytes). Such a behaviour keeps the connection off the splice path
//!   (`switch_path`). Bytes it holds back count in `pending` and the
//!   outbox's footprint, so the budget and `--max-pending` see them;
//! - [`Connection::settle`]: what to wait for and when it ends (a stall
//!   drops writability; FIN is `finish`; RST is a zero linger, then
//!   [`Step::Close`]);
//! - a timed behaviour gets a [`Turn`] of its own (as `Recheck` is), from a
//!   per-worker timer structure in `server/timers.rs`.
//!
//! Injected faults (`--fault`) are such a behaviour: [`Faulted`] in
//! `conn/faulted.rs`, the stream logic in [`crate::fault::Shape`], and
//! [`Turn::Timer`] when held bytes ripen.

use selector::Interest;
use tracing::{debug, info};

use crate::splice::{Outbox, Streak, ZeroCopy};
use crate::stats::{Counters, Gauges};
use crate::stream::{preview, would_block, Peer, Stream};

mod ending;
mod faulted;
mod flags;
mod path;
mod turn;

pub use faulted::Faulted;
use flags::{Flags, PARKED, PAUSED, STARVED};

pub use turn::{Io, Outcome, Step, Turn};

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading and echoing.
    Open,
    /// The peer shut down its write side: send what is held, then close.
    ReadClosed,
    /// Server shutdown: read at most `drain_budget` more bytes (what the
    /// kernel had already received when the signal came), echo them, then
    /// linger.
    Draining,
    /// Our write side is shut; discard input until the peer closes, so that
    /// closing does not reset the connection under the peer's last reads.
    Lingering,
}

/// Whether it may read now, and how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadLimit {
    /// Its phase reads no more.
    No,
    /// It holds `--max-pending` bytes: backpressure.
    Full,
    /// The memory budget could not hold what the read might bring.
    Starved,
    /// Up to this many bytes.
    Bytes(usize),
}

/// The peer reset or the socket failed: the connection must be closed.
#[derive(Debug)]
struct Closed;

/// One client: its stream, the bytes it owes the peer (the tutorial's
/// `message_queues[s]`) and where it is in its life.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    peer: Peer,
    outbox: Outbox,
    phase: Phase,
    /// [`Phase::Draining`]: how many more bytes it may read.
    drain_budget: u32,
    /// The interest registered in the selector.
    interest: Interest,
    /// `PAUSED`, `STARVED`, `PARKED`: one byte, so that the connection
    /// stays within 64 bytes.
    flags: Flags,
    /// Reads that argue for the other path.
    streak: Streak,
    /// Injected faults (`--fault`), when it drew any.
    faults: Option<Box<Faulted>>,
}

/// Memory a connection holds besides what it holds for its peer: itself,
/// its slab entry and its idle-list link, rounded up.
const STATE_BYTES: usize = 128;

impl Connection {
    /// The interest a new connection is registered with.
    pub const FIRST_INTEREST: Interest = Interest::READABLE;

    /// A connection just registered for reading; its state is counted in
    /// the memory budget.
    pub fn new(stream: Stream, peer: Peer, io: &mut Io) -> Connection {
        let conn = Connection {
            stream,
            peer,
            outbox: Outbox::default(),
            phase: Phase::Open,
            interest: Self::FIRST_INTEREST,
            drain_budget: 0,
            flags: Flags::default(),
            streak: Streak::default(),
            faults: None,
        };
        conn.gauges()
            .account(Gauges::default(), io.counters, io.budget);
        conn
    }

    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// Bytes received and not yet sent back, in a queue or a pipe, or
    /// held by a fault.
    pub fn pending(&self) -> usize {
        match &self.faults {
            None => self.outbox.pending(),
            Some(f) => self.outbox.pending() + f.held(),
        }
    }

    /// The loop registered what [`Step::Watch`] asked for.
    pub fn watching(&mut self, interest: Interest) {
        self.interest = interest;
        self.flags.set(PARKED, false);
    }

    /// Whether it is unregistered by [`Step::Park`].
    pub fn is_parked(&self) -> bool {
        self.flags.has(PARKED)
    }

    /// Whether the memory budget stops its reading.
    pub fn is_starved(&self) -> bool {
        self.flags.has(STARVED)
    }

    fn gauges(&self) -> Gauges {
        Gauges {
            footprint: STATE_BYTES + self.outbox.footprint() + self.fault_footprint(),
            pending: self.pending(),
            paused: self.flags.has(PAUSED),
            starved: self.flags.has(STARVED),
            spliced: self.outbox.is_splicing(),
        }
    }

    /// Handle one turn, then tell the budget and the statistics what
    /// changed, and the loop what the registration must become.
    pub fn handle(&mut self, turn: Turn, io: &mut Io) -> Outcome {
        let before = self.gauges();
        let sent_before = io.counters.bytes_out;
        let (step, received) = match turn {
            Turn::Ready { readable, writable } => self.ready(readable, writable, io),
            Turn::Recheck if !self.flags.has(STARVED) => (Step::Keep, false),
            Turn::Recheck => (self.settle(io), false),
            Turn::Drain => (self.drain(io), false),
            Turn::Timer => (self.on_timer(io), false),
        };
        let after = self.gauges();
        after.account(before, io.counters, io.budget);
        let wake_at = match self.faults {
            None => None,
            Some(_) => self.after_faulted_turn(io),
        };
        Outcome {
            step,
            moved: received || io.counters.bytes_out != sent_before,
            starved: after.starved && !before.starved,
            wake_at,
        }
    }

    /// The connection is going: give back its pipe and what the budget and
    /// the statistics count for it.
    pub fn release(mut self, io: &mut Io) {
        Gauges::default().account(self.gauges(), io.counters, io.budget);
        self.outbox.release(io.pipes, io.now);
    }

    /// Read and echo, send what is held, then settle. Also returns whether
    /// bytes came in.
    fn ready(&mut self, readable: bool, writable: bool, io: &mut Io) -> (Step, bool) {
        let held_over_a_wait = self.pending() > 0;
        let mut received = false;
        if readable {
            match self.receive(io) {
                Ok(Some(n)) => received = n > 0,
                Ok(None) | Err(Closed) => return (Step::Close, false),
            }
        }
        if writable && self.flush(io).is_err() {
            return (Step::Close, received);
        }
        if io.cfg.trace && held_over_a_wait && self.pending() == 0 {
            info!(target: "trace", peer = %self.peer, "output queue empty for {}", self.peer);
        }
        (self.settle(io), received)
    }

    /// One read (level-triggered, so no second one just to see EAGAIN),
    /// then straight back out; only what the peer cannot take now stays
    /// held. `Ok(None)`: the peer is done and nothing is left to send.
    fn receive(&mut self, io: &mut Io) -> Result<Option<usize>, Closed> {
        if self.phase == Phase::Lingering {
            return self.discard(io);
        }
        if io.cfg.zero_copy == ZeroCopy::Always {
            self.switch_path(true, io);
        }
        let ReadLimit::Bytes(want) = self.read_limit(io) else {
            return Ok(Some(0));
        };
        let (n, spliced) = match self.outbox.read(&mut self.stream, io.buf, want) {
            Ok(got) => got,
            Err(e) if would_block(&e) => return Ok(Some(0)),
            Err(e) if crate::splice::refused(&e) && self.pending() == 0 => {
                self.switch_path(false, io);
                return Ok(Some(0)); // still readable: copied next round
            }
            Err(e) => {
                debug!(peer = %self.peer, error = %e, "read failed");
                return Err(Closed);
            }
        };
        if n == 0 {
            if self.pending() == 0 {
                if io.cfg.trace {
                    info!(target: "trace", peer = %self.peer, "closing {} after reading no data", self.peer);
                }
                return Ok(None);
            }
            self.phase = Phase::ReadClosed;
            return Ok(Some(0));
        }
        if self.phase == Phase::Draining {
            let budget = &mut self.drain_budget;
            *budget -= u32::try_from(n).unwrap_or(*budget);
        }
        io.counters.bytes_in += n as u64;
        io.counters.messages += 1;
        if spliced {
            if io.cfg.trace {
                info!(target: "trace", peer = %self.peer, bytes = n, "received {n} bytes from {} (spliced)", self.peer);
            }
            self.flush(io)?;
        } else {
            self.echo_copied(n, io)?;
        }
        self.adapt(n, io);
        Ok(Some(n))
    }

    /// The copy path: send the `n` bytes just read into the loop's buffer
    /// at once if nothing older is waiting, and hold the rest behind what
    /// is held already.
    fn echo_copied(&mut self, n: usize, io: &mut Io) -> Result<(), Closed> {
        if self.faults.is_some() {
            return self.echo_faulted(n, io);
        }
        let data = &io.buf[..n];
        if io.cfg.trace {
            info!(target: "trace", peer = %self.peer, bytes = n, "received {n} bytes from {}: {}", self.peer, preview(data));
        }
        let sent = match self.pending() {
            0 => send(&mut self.stream, self.peer, data, io.counters, io.cfg.trace)?,
            _ => 0,
        };
        if sent < n {
            self.outbox.push(&data[sent..], io.cfg.max_pending);
        }
        Ok(())
    }

    /// Send what is held, in the order [`Outbox`] keeps: the pipe's bytes,
    /// then the copied ones.
    fn flush(&mut self, io: &mut Io) -> Result<(), Closed> {
        match self.outbox.drain_pipe(&self.stream) {
            Ok(0) => {}
            Ok(n) => {
                io.counters.bytes_out += n as u64;
                if io.cfg.trace {
                    info!(target: "trace", peer = %self.peer, bytes = n, "sending {n} bytes to {} (spliced)", self.peer);
                }
            }
            Err(e) => {
                debug!(peer = %self.peer, error = %e, "splice to the socket failed");
                return Err(Closed);
            }
        }
        if let Some(front) = self.outbox.copied() {
            let n = send(
                &mut self.stream,
                self.peer,
                front,
                io.counters,
                io.cfg.trace,
            )?;
            self.outbox.sent(n);
        }
        Ok(())
    }

    /// Whether it may read now, and how much: what its phase allows, the
    /// room left under `--max-pending`, and whether the memory budget could
    /// hold all of it should the peer take none of the echo; a connection
    /// holding nothing may always read the budget's floor.
    pub fn read_limit(&self, io: &Io) -> ReadLimit {
        let room = io.cfg.max_pending.saturating_sub(self.pending());
        let want = match self.phase {
            Phase::Lingering => return ReadLimit::Bytes(io.buf.len()), // discarded
            Phase::ReadClosed => return ReadLimit::No,
            Phase::Draining if self.drain_budget == 0 => return ReadLimit::No,
            Phase::Draining => (self.drain_budget as usize).min(room),
            Phase::Open => room,
        };
        let want = match self.faults.as_deref().and_then(Faulted::read_cap) {
            None => want,
            Some(0) => return ReadLimit::No,
            Some(cap) => want.min(cap),
        };
        if want == 0 {
            return ReadLimit::Full;
        }
        let fits = |want| {
            let growth = self
                .outbox
                .growth_for(want, io.buf.len(), io.cfg.max_pending);
            io.budget.may_grow(
                || STATE_BYTES + self.outbox.footprint() + self.fault_footprint(),
                growth,
            )
        };
        // A pipe could take `want` at once; a tight budget lends it no more
        // than a copied read would take.
        let small = want.min(io.buf.len());
        if fits(want) {
            ReadLimit::Bytes(want)
        } else if small < want && self.outbox.is_splicing() && fits(small) {
            ReadLimit::Bytes(small)
        } else if self.pending() == 0 {
            ReadLimit::Bytes(want.min(io.budget.floor())) // the budget's floor
        } else {
            ReadLimit::Starved
        }
    }

    /// Bring the pause flags and the registration in line with the state,
    /// or finish when nothing is left to do.
    pub fn settle(&mut self, io: &mut Io) -> Step {
        let limit = self.read_limit(io);
        let starved = limit == ReadLimit::Starved;
        self.flags.set(STARVED, starved);
        self.flags.set(
            PAUSED,
            limit == ReadLimit::Full && self.phase == Phase::Open,
        );
        let parked = self.flags.has(PARKED);
        let read = matches!(limit, ReadLimit::Bytes(_));
        // What waits to be written (bytes a fault holds wait for a timer).
        let wanted = match (read, self.outbox.pending() > 0) {
            (true, true) => Interest::BOTH,
            (true, false) => Interest::READABLE,
            (false, true) => Interest::WRITABLE,
            (false, false) if starved && parked => return Step::Keep,
            (false, false) if starved => {
                self.flags.set(PARKED, true);
                return Step::Park;
            }
            (false, false) if self.faults.is_some() => match self.settle_faulted(io) {
                Some(step) => return step,
                None if self.finish(io) => Interest::READABLE,
                None => return Step::Close,
            },
            (false, false) if self.finish(io) => Interest::READABLE,
            (false, false) => return Step::Close,
        };
        if wanted == self.interest && !self.flags.has(PARKED) {
            Step::Keep
        } else {
            Step::Watch(wanted)
        }
    }
}

/// Idle connections cost little: the connection itself stays within a
/// cache line (docs/BENCHMARKS.md has the measured RSS per connection).
const _: () = assert!(size_of::<Connection>() <= 64);

/// The one send path for copied bytes, after a read and on writability:
/// how much the kernel took (0 when it would block).
fn send(
    stream: &mut Stream,
    peer: Peer,
    data: &[u8],
    counters: &mut Counters,
    trace: bool,
) -> Result<usize, Closed> {
    let n = stream.send(data).map_err(|e| {
        debug!(%peer, error = %e, "send failed");
        Closed
    })?;
    counters.bytes_out += n as u64;
    if trace && n > 0 {
        info!(target: "trace", %peer, bytes = n, "sending {n} bytes to {peer}");
    }
    Ok(n)
}
