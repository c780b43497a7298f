//! One client connection as a state machine: it reads, echoes, queues what
//! the peer cannot take yet, handles EOF and the shutdown drain, and tells
//! the loop what to do next ([`Step`]). The loop only registers and closes.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;

use selector::Interest;
use tracing::{debug, info};

use crate::queue::OutQueue;
use crate::stats::Counters;

/// A connected byte stream, TCP or Unix-domain.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

/// Who is on the other end, for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Ip(SocketAddr),
    /// Unix-domain clients are usually unnamed; the serial tells them apart.
    Unix(u64),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(addr) => addr.fmt(f),
            Peer::Unix(serial) => write!(f, "unix#{serial}"),
        }
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading and echoing.
    Open,
    /// The peer shut down its write side: send what is queued, then close.
    ReadClosed,
    /// Server shutdown: read at most this many more bytes (what the kernel
    /// had already received when the signal came), echo them, then close.
    Draining { budget: usize },
    /// Our write side is shut; discard input until the peer closes, so that
    /// closing does not reset the connection under the peer's last reads.
    Lingering,
}

/// What the loop must do with a connection after it has handled an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Leave the registration as it is.
    Keep,
    /// Register this interest instead, then call [`Connection::watching`].
    Watch(Interest),
    /// Unregister and drop it.
    Close,
}

/// What a connection borrows from its loop while it handles one event.
#[derive(Debug)]
pub struct Io<'a> {
    /// The loop's read buffer, shared by all its connections.
    pub buf: &'a mut [u8],
    pub counters: &'a mut Counters,
    /// `--max-pending`: bytes a connection may hold before it stops reading.
    pub max_pending: usize,
    /// Narrate in the tutorial's words (`--trace`).
    pub trace: bool,
}

/// The peer reset or the socket failed: the connection must be closed.
#[derive(Debug)]
struct Closed;

/// One client: its stream, its queue (the tutorial's `message_queues[s]`)
/// and where it is in its life.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    peer: Peer,
    out: OutQueue,
    phase: Phase,
    /// The interest registered in the selector.
    interest: Interest,
    /// Counted in the statistics as paused by backpressure.
    paused: bool,
}

impl Connection {
    /// A connection just accepted, to be registered for reading.
    pub fn new(stream: Stream, peer: Peer) -> Connection {
        Connection {
            stream,
            peer,
            out: OutQueue::default(),
            phase: Phase::Open,
            interest: Interest::READABLE,
            paused: false,
        }
    }

    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// The interest the connection starts with.
    pub fn interest(&self) -> Interest {
        self.interest
    }

    /// Whether output is waiting to be sent.
    pub fn has_queued(&self) -> bool {
        !self.out.is_empty()
    }

    /// The loop registered what [`Step::Watch`] asked for.
    pub fn watching(&mut self, interest: Interest) {
        self.interest = interest;
    }

    /// Handle one readiness event: read and echo, send what is queued, then
    /// say what the registration must become. Returns whether data arrived
    /// too (for the idle timer).
    pub fn on_ready(&mut self, readable: bool, writable: bool, io: &mut Io) -> (Step, bool) {
        let mut received = false;
        if readable {
            match self.receive(io) {
                Ok(Some(n)) => received = n > 0,
                Ok(None) => return (Step::Close, false),
                Err(Closed) => return (Step::Close, false),
            }
        }
        if writable && self.flush(io).is_err() {
            return (Step::Close, received);
        }
        (self.settle(io), received)
    }

    /// Server shutdown: echo what the kernel has already received, then
    /// finish.
    pub fn begin_drain(&mut self, io: &mut Io) -> Step {
        if self.phase == Phase::Open {
            let budget = rustix::io::ioctl_fionread(&self.stream).unwrap_or(0);
            self.phase = Phase::Draining {
                budget: usize::try_from(budget).unwrap_or(usize::MAX),
            };
        }
        self.settle(io)
    }

    /// Give back what the statistics count for this connection, as it goes.
    pub fn release(&self, counters: &mut Counters) {
        counters.queue_shrank(self.out.len());
        counters.paused -= u64::from(self.paused);
    }

    /// One recv into the loop's buffer (level-triggered, so no second recv
    /// just to see EAGAIN), then straight back out; only what the peer
    /// cannot take now is queued. `Ok(None)`: the peer is done and nothing
    /// is left to send.
    fn receive(&mut self, io: &mut Io) -> Result<Option<usize>, Closed> {
        let room = io.max_pending.saturating_sub(self.out.len());
        let want = match self.phase {
            Phase::Lingering => io.buf.len(),
            Phase::Draining { budget } => budget.min(room),
            Phase::Open => room,
            Phase::ReadClosed => 0,
        }
        .min(io.buf.len());
        if want == 0 {
            return Ok(Some(0));
        }
        let n = match self.stream.read(&mut io.buf[..want]) {
            Ok(n) => n,
            Err(e) if would_block(&e) => return Ok(Some(0)),
            Err(e) => {
                debug!(peer = %self.peer, error = %e, "read failed");
                return Err(Closed);
            }
        };
        if n == 0 {
            if self.phase == Phase::Lingering || self.out.is_empty() {
                if io.trace {
                    info!(target: "trace", "closing {} after reading no data", self.peer);
                }
                return Ok(None);
            }
            self.phase = Phase::ReadClosed;
            return Ok(Some(0));
        }
        match &mut self.phase {
            Phase::Lingering => return Ok(Some(0)), // discarded: we are shutting down
            Phase::Draining { budget } => *budget -= n,
            _ => {}
        }
        io.counters.bytes_in += n as u64;
        io.counters.messages += 1;
        let data = &io.buf[..n];
        if io.trace {
            info!(target: "trace", "received {n} bytes from {}: {}", self.peer, preview(data));
        }
        let sent = if self.out.is_empty() {
            send(&mut self.stream, self.peer, data, io.counters, io.trace)?
        } else {
            0
        };
        if sent < n {
            self.out.push(&data[sent..], io.max_pending);
            io.counters.queue_grew(n - sent);
        }
        Ok(Some(n))
    }

    /// A writable client: send from its queue (the tutorial's "output queue
    /// is empty" drops the write interest in `settle`).
    fn flush(&mut self, io: &mut Io) -> Result<(), Closed> {
        if self.out.is_empty() {
            return Ok(());
        }
        let n = send(
            &mut self.stream,
            self.peer,
            self.out.front(),
            io.counters,
            io.trace,
        )?;
        self.out.consume(n);
        io.counters.queue_shrank(n);
        if io.trace && self.out.is_empty() {
            info!(target: "trace", "output queue empty for {}", self.peer);
        }
        Ok(())
    }

    /// What the selector should watch this connection for, given its queue
    /// and phase; `None` when it has nothing left to do.
    fn wanted(&self, max_pending: usize) -> Option<Interest> {
        let read = match self.phase {
            Phase::Open => self.out.len() < max_pending,
            Phase::Draining { budget } => budget > 0 && self.out.len() < max_pending,
            Phase::ReadClosed => false,
            Phase::Lingering => true,
        };
        match (read, !self.out.is_empty()) {
            (true, true) => Some(Interest::BOTH),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }

    /// Bring the backpressure gauge and the registration in line with the
    /// state, or finish when nothing is left to do.
    fn settle(&mut self, io: &mut Io) -> Step {
        let paused = self.phase == Phase::Open && self.out.len() >= io.max_pending;
        if paused != self.paused {
            self.paused = paused;
            if paused {
                io.counters.paused += 1;
            } else {
                io.counters.paused -= 1;
            }
        }
        let wanted = match self.wanted(io.max_pending) {
            Some(interest) => interest,
            None if self.finish() => Interest::READABLE,
            None => return Step::Close,
        };
        if wanted == self.interest {
            Step::Keep
        } else {
            Step::Watch(wanted)
        }
    }

    /// Everything echoed and nothing more to read: send FIN. Close now if
    /// nothing unread is pending (close would otherwise send RST and could
    /// destroy echoed data the peer has not read yet); else linger, reading
    /// and discarding until the peer closes. Returns whether it lingers.
    fn finish(&mut self) -> bool {
        let unread = rustix::io::ioctl_fionread(&self.stream).unwrap_or(0);
        if self.phase == Phase::ReadClosed || unread == 0 || self.stream.shutdown_write().is_err() {
            return false;
        }
        self.phase = Phase::Lingering;
        true
    }
}

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
                info!(target: "trace", "sending {n} bytes to {peer}");
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

pub fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
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
