//! One client connection as a state machine: it reads, echoes, queues what
//! the peer cannot take yet, handles EOF and the shutdown drain, and tells
//! the loop what to do next ([`Step`]). The loop only registers and closes.

use std::io::{self, Read};
use std::time::Instant;

use selector::Interest;
use tracing::{debug, info};

use crate::budget::Budget;
use crate::proxy;
use crate::queue::OutQueue;
use crate::splice::{self, Pipe, PipePool, ZeroCopy, BULK_READ, BULK_STREAK, QUIET_STREAK};
use crate::stats::Counters;
use crate::stream::{would_block, Peer, Stream};

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `--listen-proxy`: reading the PROXY header, echoing nothing yet.
    Header,
    /// Reading and echoing.
    Open,
    /// The peer shut down its write side: send what is held, then close.
    ReadClosed,
    /// Server shutdown: read at most this many more bytes (what the kernel
    /// had already received when the signal came), echo them, then close.
    Draining { budget: u32 },
    /// Our write side is shut; discard input until the peer closes, so that
    /// closing does not reset the connection under the peer's last reads.
    Lingering,
}

/// Where the bytes waiting to go back to the peer are held. Only one place
/// holds bytes at a time, so switching paths never reorders them: a
/// connection moves to a pipe only with its queue empty, and back only with
/// its pipe empty.
/// Boxed, and absent while nothing is held on the copy path, so an idle
/// connection carries one pointer for it.
#[derive(Debug)]
enum Held {
    /// Copied into user space: what the peer could not take yet.
    Queue(OutQueue),
    /// Spliced into a kernel pipe (the zero-copy path), empty or not.
    Pipe(Pipe),
    /// The start of a PROXY header that arrived cut short (nothing to send
    /// back: these bytes are never echoed).
    Header(Vec<u8>),
}

/// What the loop must do with a connection after it has handled an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Leave the registration as it is.
    Keep,
    /// Register this interest instead (register again, if it was parked),
    /// then call [`Connection::watching`].
    Watch(Interest),
    /// Unregister but keep it: the memory budget stops its reading and it
    /// holds nothing to send, so there is no event to wait for. The loop
    /// calls [`Connection::recheck`] now and then.
    Park,
    /// Unregister and drop it.
    Close,
    /// The PROXY header is in: admit the client it names (now
    /// [`Connection::peer`]) under `--max-per-ip`, or close it.
    Admit,
}

/// What a connection borrows from its loop while it handles one event.
#[derive(Debug)]
pub struct Io<'a> {
    /// The loop's read buffer, shared by all its connections.
    pub buf: &'a mut [u8],
    pub counters: &'a mut Counters,
    /// The loop's pipes for the zero-copy path.
    pub pipes: &'a mut PipePool,
    pub zero_copy: ZeroCopy,
    /// `--max-pending`: bytes a connection may hold before it stops reading.
    pub max_pending: usize,
    /// Narrate in the tutorial's words (`--trace`).
    pub trace: bool,
    /// When the loop woke up.
    pub now: Instant,
    /// `--max-memory`, shared by every worker.
    pub budget: &'a Budget,
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
    held: Option<Box<Held>>,
    phase: Phase,
    /// The interest registered in the selector.
    interest: Interest,
    /// Counted in the statistics as paused by backpressure.
    paused: bool,
    /// Not reading because the memory budget is spent (counted in the
    /// statistics as `budget_paused`).
    starved: bool,
    /// Unregistered by [`Step::Park`].
    parked: bool,
    /// Consecutive reads that argue for the other path (bulk reads while
    /// copying, small ones while splicing).
    streak: u8,
}

/// Memory a connection holds besides what it holds for its peer: itself,
/// its slab entry and its idle-list link, rounded up.
const STATE_BYTES: usize = 128;

impl Connection {
    /// The interest a new connection is registered with.
    pub const FIRST_INTEREST: Interest = Interest::READABLE;

    /// A connection just accepted and registered for reading; its state is
    /// counted in the memory budget.
    pub fn new(stream: Stream, peer: Peer, budget: &Budget, counters: &mut Counters) -> Connection {
        budget.join(STATE_BYTES);
        counters.held += STATE_BYTES as u64;
        Connection {
            stream,
            peer,
            held: None,
            phase: Phase::Open,
            interest: Self::FIRST_INTEREST,
            paused: false,
            starved: false,
            parked: false,
            streak: 0,
        }
    }

    /// A connection on a `--listen-proxy` listener: it must send a PROXY
    /// header first, and stands for the client the header names.
    pub fn behind_proxy(self) -> Connection {
        Connection {
            phase: Phase::Header,
            ..self
        }
    }

    /// Whether it still waits for its PROXY header (and so is not counted
    /// under `--max-per-ip` yet).
    pub fn awaiting_header(&self) -> bool {
        self.phase == Phase::Header
    }

    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// Bytes received and not yet sent back, in a queue or a pipe.
    pub fn pending(&self) -> usize {
        match self.held.as_deref() {
            None => 0,
            Some(Held::Queue(queue)) => queue.len(),
            Some(Held::Pipe(pipe)) => pipe.pending(),
            Some(Held::Header(_)) => 0,
        }
    }

    /// The loop registered what [`Step::Watch`] asked for.
    pub fn watching(&mut self, interest: Interest) {
        self.interest = interest;
        self.parked = false;
    }

    /// Whether it is unregistered by [`Step::Park`].
    pub fn is_parked(&self) -> bool {
        self.parked
    }

    /// Whether the memory budget stops its reading.
    pub fn is_starved(&self) -> bool {
        self.starved
    }

    /// The budget may have room again: what the registration must become.
    pub fn recheck(&mut self, io: &mut Io) -> Step {
        if !self.starved {
            return Step::Keep;
        }
        let before = self.footprint();
        let step = self.settle(io);
        self.account(before, io);
        step
    }

    /// Memory it holds for its peer and for itself, as the budget counts
    /// it: its state, and the queue's buffer or the pipe's bytes.
    fn footprint(&self) -> usize {
        STATE_BYTES
            + match self.held.as_deref() {
                None => 0,
                Some(Held::Queue(queue)) => size_of::<Held>() + queue.capacity(),
                Some(Held::Pipe(pipe)) => {
                    size_of::<Held>() + pipe.held() + pipe.overflow.capacity()
                }
                Some(Held::Header(bytes)) => size_of::<Held>() + bytes.capacity(),
            }
    }

    /// Tell the budget and the statistics how the footprint changed.
    fn account(&self, before: usize, io: &mut Io) {
        let now = self.footprint();
        if now > before {
            io.budget.charge(now - before);
            io.counters.held += (now - before) as u64;
        } else if now < before {
            io.budget.release(before - now);
            io.counters.held -= (before - now) as u64;
        }
    }

    /// Handle one readiness event: read and echo, send what is held, then
    /// say what the registration must become. Also returns whether bytes
    /// moved either way (for the idle timer: a slow reader still draining
    /// its echo is not idle, even while its reads are paused).
    pub fn on_ready(&mut self, readable: bool, writable: bool, io: &mut Io) -> (Step, bool) {
        let before = self.footprint();
        let sent_before = io.counters.bytes_out;
        let (step, received) = self.ready(readable, writable, io);
        self.account(before, io);
        (step, received || io.counters.bytes_out != sent_before)
    }

    fn ready(&mut self, readable: bool, writable: bool, io: &mut Io) -> (Step, bool) {
        if self.phase == Phase::Header {
            let step = match readable {
                true => self.read_header(io).unwrap_or(Step::Close),
                false => Step::Keep,
            };
            return (step, false);
        }
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
        if io.trace && held_over_a_wait && self.pending() == 0 {
            info!(target: "trace", peer = %self.peer, "output queue empty for {}", self.peer);
        }
        (self.settle(io), received)
    }

    /// Server shutdown: echo what the kernel has already received, then
    /// finish.
    pub fn begin_drain(&mut self, io: &mut Io) -> Step {
        if self.phase == Phase::Header {
            return Step::Close; // nothing received that could be echoed
        }
        if self.phase == Phase::Open {
            let budget = rustix::io::ioctl_fionread(&self.stream).unwrap_or(0);
            self.phase = Phase::Draining {
                budget: u32::try_from(budget).unwrap_or(u32::MAX),
            };
        }
        let before = self.footprint();
        let step = self.settle(io);
        self.account(before, io);
        step
    }

    /// The connection is going: give back its pipe and what the statistics
    /// count for it.
    pub fn release(self, io: &mut Io) {
        io.counters.queue_shrank(self.pending());
        io.counters.paused -= u64::from(self.paused);
        io.counters.budget_paused -= u64::from(self.starved);
        let footprint = self.footprint();
        io.budget.leave(footprint);
        io.counters.held -= footprint as u64;
        if let Some(Held::Pipe(pipe)) = self.held.map(|held| *held) {
            io.counters.spliced -= 1;
            io.pipes.give(pipe, io.now);
        }
    }

    /// One read (level-triggered, so no second one just to see EAGAIN),
    /// then straight back out; only what the peer cannot take now stays
    /// held. `Ok(None)`: the peer is done and nothing is left to send.
    fn receive(&mut self, io: &mut Io) -> Result<Option<usize>, Closed> {
        if io.zero_copy == ZeroCopy::Always && self.held.is_none() {
            self.start_splicing(io);
        }
        let want = self.read_size(io);
        if want == 0 || !self.may_read(want, io) {
            return Ok(Some(0));
        }
        let mut spliced = false;
        let got = match self.held.as_deref_mut() {
            Some(Held::Pipe(pipe)) if pipe.takes_splice() && self.phase != Phase::Lingering => {
                spliced = true;
                match pipe.fill(&self.stream, want.min(pipe.room())) {
                    // The pipe ran out of slots: copy this read behind it.
                    Err(e) if would_block(&e) && !pipe.takes_splice() => return Ok(Some(0)),
                    Err(e) if splice::refused(&e) && pipe.pending() == 0 => {
                        self.stop_splicing(io);
                        return Ok(Some(0)); // still readable: copied next round
                    }
                    got => got,
                }
            }
            _ => {
                let want = want.min(io.buf.len());
                self.stream.read(&mut io.buf[..want])
            }
        };
        let n = match got {
            Ok(n) => n,
            Err(e) if would_block(&e) => return Ok(Some(0)),
            Err(e) => {
                debug!(peer = %self.peer, error = %e, "read failed");
                return Err(Closed);
            }
        };
        if n == 0 {
            if self.phase == Phase::Lingering || self.pending() == 0 {
                if io.trace {
                    info!(target: "trace", peer = %self.peer, "closing {} after reading no data", self.peer);
                }
                return Ok(None);
            }
            self.phase = Phase::ReadClosed;
            return Ok(Some(0));
        }
        match &mut self.phase {
            Phase::Lingering => return Ok(Some(0)), // discarded: we are shutting down
            Phase::Draining { budget } => *budget -= u32::try_from(n).unwrap_or(*budget),
            _ => {}
        }
        io.counters.bytes_in += n as u64;
        io.counters.messages += 1;
        if spliced {
            if io.trace {
                info!(target: "trace", peer = %self.peer, bytes = n, "received {n} bytes from {} (spliced)", self.peer);
            }
            io.counters.queue_grew(n);
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
        let data = &io.buf[..n];
        if io.trace {
            info!(target: "trace", peer = %self.peer, bytes = n, "received {n} bytes from {}: {}", self.peer, preview(data));
        }
        let sent = match self.pending() {
            0 => send(&mut self.stream, self.peer, data, io.counters, io.trace)?,
            _ => 0,
        };
        if sent == n {
            return Ok(());
        }
        let held = self
            .held
            .get_or_insert_with(|| Box::new(Held::Queue(OutQueue::default())));
        let queue = match held.as_mut() {
            Held::Pipe(pipe) => &mut pipe.overflow,
            Held::Queue(queue) => queue,
            Held::Header(_) => return Err(Closed), // no echo before the header
        };
        queue.push(&data[sent..], io.max_pending);
        io.counters.queue_grew(n - sent);
        Ok(())
    }

    /// Send what is held: from the queue (dropping it once empty, the
    /// tutorial's "output queue is empty"), or from the pipe and then what
    /// was copied behind it.
    fn flush(&mut self, io: &mut Io) -> Result<(), Closed> {
        let before = self.pending();
        if before == 0 {
            return Ok(());
        }
        match self.held.as_deref_mut() {
            None | Some(Held::Header(_)) => {}
            Some(Held::Queue(queue)) => {
                let n = send(
                    &mut self.stream,
                    self.peer,
                    queue.front(),
                    io.counters,
                    io.trace,
                )?;
                queue.consume(n);
                if queue.is_empty() {
                    self.held = None;
                }
            }
            Some(Held::Pipe(pipe)) => {
                match pipe.drain(&self.stream) {
                    Ok(n) => {
                        io.counters.bytes_out += n as u64;
                        if io.trace && n > 0 {
                            info!(target: "trace", peer = %self.peer, bytes = n, "sending {n} bytes to {} (spliced)", self.peer);
                        }
                    }
                    Err(e) if would_block(&e) => {}
                    Err(e) => {
                        debug!(peer = %self.peer, error = %e, "splice to the socket failed");
                        return Err(Closed);
                    }
                }
                if pipe.held() == 0 && !pipe.overflow.is_empty() {
                    let front = pipe.overflow.front();
                    let n = send(&mut self.stream, self.peer, front, io.counters, io.trace)?;
                    pipe.overflow.consume(n);
                }
            }
        }
        io.counters.queue_shrank(before - self.pending());
        Ok(())
    }

    /// `--listen-proxy`: take the PROXY header off the stream and nothing
    /// after it. The bytes are peeked and only the header's are read, so
    /// what follows stays in the kernel for the echo path; the start of a
    /// header that is cut short is read and kept, so a level-triggered
    /// selector does not report the same bytes again. A malformed, oversized
    /// or missing header closes the connection (counted), nothing echoed.
    fn read_header(&mut self, io: &mut Io) -> Result<Step, Closed> {
        let Stream::Tcp(tcp) = &mut self.stream else {
            return Err(Closed); // proxy listeners are TCP
        };
        let kept = match self.held.as_deref() {
            Some(Held::Header(bytes)) => bytes.len(),
            _ => 0,
        };
        if let Some(Held::Header(bytes)) = self.held.as_deref() {
            io.buf[..kept].copy_from_slice(bytes);
        }
        let refuse = |why: &str, io: &mut Io| {
            io.counters.refused_proxy += 1;
            debug!(peer = %self.peer, "closing: {why}");
            if io.trace {
                info!(target: "trace", peer = %self.peer, "closing {}: {why}", self.peer);
            }
            Err(Closed)
        };
        let peeked = match tcp.peek(&mut io.buf[kept..proxy::MAX_HEADER]) {
            Ok(0) => return refuse("closed before sending a PROXY header", io),
            Ok(n) => n,
            Err(e) if would_block(&e) => return Ok(Step::Keep),
            Err(e) => {
                debug!(peer = %self.peer, error = %e, "read failed");
                return Err(Closed);
            }
        };
        let header = match proxy::parse(&io.buf[..kept + peeked]) {
            Ok(header) => header,
            Err(why) => return refuse(why.as_str(), io),
        };
        // Take exactly the header's bytes (or, cut short, all that came).
        let take = header.map_or(peeked, |h| h.len - kept);
        let start = kept + peeked;
        let mut got = 0;
        while got < take {
            match tcp.read(&mut io.buf[start + got..start + take]) {
                Ok(0) => return refuse("closed before sending a PROXY header", io),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!(peer = %self.peer, error = %e, "read failed");
                    return Err(Closed);
                }
            }
        }
        let Some(header) = header else {
            let taken = &io.buf[start..start + take];
            match self.held.as_deref_mut() {
                Some(Held::Header(bytes)) => bytes.extend_from_slice(taken),
                _ => self.held = Some(Box::new(Held::Header(taken.to_vec()))),
            }
            return Ok(Step::Keep);
        };
        self.held = None;
        self.phase = Phase::Open;
        let proxy = self.peer;
        if let Some(client) = header.client {
            self.peer = Peer::Ip(client);
        }
        if io.trace {
            info!(target: "trace", peer = %self.peer, "PROXY header from {proxy}: client {}", self.peer);
        }
        Ok(Step::Admit)
    }

    /// `--zero-copy auto`: splice once reads show a bulk flow, copy again
    /// once the flow goes quiet. Paths change only with nothing held.
    fn adapt(&mut self, n: usize, io: &mut Io) {
        if io.zero_copy != ZeroCopy::Auto {
            return;
        }
        let splicing = matches!(self.held.as_deref(), Some(Held::Pipe(_)));
        let argues_for_switch = (n >= BULK_READ) != splicing;
        self.streak = if argues_for_switch {
            self.streak.saturating_add(1)
        } else {
            0
        };
        if splicing && self.streak >= QUIET_STREAK && self.pending() == 0 {
            self.stop_splicing(io);
        } else if !splicing && self.streak >= BULK_STREAK && self.pending() == 0 {
            self.start_splicing(io);
        }
    }

    /// Move to the zero-copy path, if a pipe can be had.
    fn start_splicing(&mut self, io: &mut Io) {
        self.streak = 0;
        if let Some(pipe) = io.pipes.take() {
            self.held = Some(Box::new(Held::Pipe(pipe)));
            io.counters.spliced += 1;
            if io.trace {
                info!(target: "trace", peer = %self.peer, "{} moves to zero-copy (splice)", self.peer);
            }
        }
    }

    /// Back to the copy path; the pipe (empty) goes back to the pool.
    fn stop_splicing(&mut self, io: &mut Io) {
        self.streak = 0;
        if !matches!(self.held.as_deref(), Some(Held::Pipe(_))) {
            return;
        }
        if let Some(Held::Pipe(pipe)) = self.held.take().map(|held| *held) {
            io.counters.spliced -= 1;
            io.pipes.give(pipe, io.now);
            if io.trace {
                info!(target: "trace", peer = %self.peer, "{} moves back to copying", self.peer);
            }
        }
    }

    /// The most the next read may take: what the phase allows and the
    /// room left under `--max-pending`.
    fn read_size(&self, io: &Io) -> usize {
        let room = io.max_pending.saturating_sub(self.pending());
        match self.phase {
            Phase::Lingering => io.buf.len(),
            Phase::Draining { budget } => (budget as usize).min(room),
            Phase::Open => room,
            Phase::ReadClosed | Phase::Header => 0,
        }
    }

    /// Whether the memory budget lets it read `want` bytes now: enough to
    /// hold all of them, should the peer take none of the echo.
    fn may_read(&self, want: usize, io: &Io) -> bool {
        let growth = match self.held.as_deref() {
            _ if self.phase == Phase::Lingering => return true, // discarded
            None => {
                size_of::<Held>()
                    + OutQueue::default().growth_for(want.min(io.buf.len()), io.max_pending)
            }
            Some(Held::Queue(queue)) => queue.growth_for(want.min(io.buf.len()), io.max_pending),
            Some(Held::Pipe(pipe)) if pipe.takes_splice() => want.min(pipe.room()),
            Some(Held::Pipe(pipe)) => pipe
                .overflow
                .growth_for(want.min(io.buf.len()), io.max_pending),
            // A PROXY header is at most a small fixed size.
            Some(Held::Header(_)) => 0,
        };
        io.budget.may_grow(self.footprint(), growth)
    }

    /// What the selector should watch this connection for, given what it
    /// holds, its phase and whether the budget stops its reading; `None`
    /// when it has nothing left to do.
    fn wanted(&self, max_pending: usize, starved: bool) -> Option<Interest> {
        let pending = self.pending();
        let room = pending < max_pending && !starved;
        let read = match self.phase {
            Phase::Open => room,
            Phase::Draining { budget } => budget > 0 && room,
            Phase::ReadClosed => false,
            Phase::Lingering | Phase::Header => true,
        };
        match (read, pending > 0) {
            (true, true) => Some(Interest::BOTH),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }

    /// Bring the backpressure gauge and the registration in line with the
    /// state, or finish when nothing is left to do.
    fn settle(&mut self, io: &mut Io) -> Step {
        let reading = match self.phase {
            Phase::Open => true,
            Phase::Draining { budget } => budget > 0,
            Phase::ReadClosed | Phase::Lingering | Phase::Header => false,
        };
        let full = self.pending() >= io.max_pending;
        let starved = reading && !full && !self.may_read(self.read_size(io), io);
        if starved != self.starved {
            self.starved = starved;
            if starved {
                io.counters.budget_paused += 1;
            } else {
                io.counters.budget_paused -= 1;
            }
        }
        let paused = self.phase == Phase::Open && full;
        if paused != self.paused {
            self.paused = paused;
            if paused {
                io.counters.paused += 1;
            } else {
                io.counters.paused -= 1;
            }
        }
        let wanted = match self.wanted(io.max_pending, starved) {
            Some(interest) => interest,
            None if starved && self.parked => return Step::Keep,
            None if starved => {
                self.parked = true;
                return Step::Park;
            }
            None if self.finish(io) => Interest::READABLE,
            None => return Step::Close,
        };
        if wanted == self.interest && !self.parked {
            Step::Keep
        } else {
            Step::Watch(wanted)
        }
    }

    /// Everything echoed and nothing more to read: send FIN. Close now if
    /// nothing unread is pending (close would otherwise send RST and could
    /// destroy echoed data the peer has not read yet); else linger, reading
    /// and discarding (by copying) until the peer closes. Returns whether
    /// it lingers.
    fn finish(&mut self, io: &mut Io) -> bool {
        let unread = rustix::io::ioctl_fionread(&self.stream).unwrap_or(0);
        if self.phase == Phase::ReadClosed || unread == 0 || self.stream.shutdown_write().is_err() {
            return false;
        }
        self.stop_splicing(io);
        self.phase = Phase::Lingering;
        true
    }
}

/// Idle connections cost little: the connection itself stays within a
/// cache line (docs/BENCHMARKS.md has the measured RSS per connection).
const _: () = assert!(size_of::<Connection>() <= 64);

/// The one send path, after a read and on writability: how much the kernel
/// took (0 when it would block).
fn send(
    stream: &mut Stream,
    peer: Peer,
    data: &[u8],
    counters: &mut Counters,
    trace: bool,
) -> Result<usize, Closed> {
    match stream.write(data) {
        Ok(n) => {
            counters.bytes_out += n as u64;
            if trace {
                info!(target: "trace", %peer, bytes = n, "sending {n} bytes to {peer}");
            }
            Ok(n)
        }
        Err(e) if would_block(&e) => Ok(0),
        Err(e) => {
            debug!(%peer, error = %e, "send failed");
            Err(Closed)
        }
    }
}

/// The start of the data as the tutorial's prints show it: quoted, with
/// control and non-ASCII bytes escaped, cut at 32 bytes.
pub fn preview(data: &[u8]) -> String {
    const SHOWN: usize = 32;
    let shown = &data[..data.len().min(SHOWN)];
    let more = if data.len() > SHOWN { "..." } else { "" };
    format!("\"{}\"{more}", shown.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::preview;

    #[test]
    fn preview_escapes_and_cuts() {
        assert_eq!(preview(b"hi\n"), r#""hi\n""#);
        assert_eq!(preview(&[0xff, b'"']), r#""\xff\"""#);
        let long = [b'a'; 40];
        assert_eq!(preview(&long), format!("\"{}\"...", "a".repeat(32)));
    }
}
