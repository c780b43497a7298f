//! One client connection: its stream, its peer, and its outgoing queue (the
//! tutorial's `message_queues[s]`).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use selector::Interest;

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

/// Bytes received and not yet sent back, oldest first.
///
/// A `Vec` with a read offset: appends go to the end, sends take from the
/// front, and the space is reclaimed when the queue empties (the common
/// case) or when the consumed front grows past half of it.
#[derive(Debug, Default)]
pub struct OutQueue {
    buf: Vec<u8>,
    head: usize,
}

/// Capacity kept after a queue drains; larger buffers go back to the
/// allocator so idle connections cost nothing.
const KEEP_CAPACITY: usize = 64 * 1024;

impl OutQueue {
    pub fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append `data`. The buffer grows by doubling, but never past `limit`
    /// bytes of capacity unless the queued bytes themselves need it, so a
    /// connection capped at `--max-pending` holds at most that much memory.
    pub fn push(&mut self, data: &[u8], limit: usize) {
        if self.head > 0
            && (self.head >= self.buf.len() / 2
                || self.buf.len() + data.len() > self.buf.capacity())
        {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        let needed = self.buf.len() + data.len();
        if needed > self.buf.capacity() {
            let grown = (self.buf.capacity() * 2).clamp(needed, limit.max(needed));
            self.buf.reserve_exact(grown - self.buf.len());
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes of memory held, for the memory bound.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub fn front(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    pub fn consume(&mut self, n: usize) {
        self.head = (self.head + n).min(self.buf.len());
        if self.head == self.buf.len() {
            self.head = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            } else {
                self.buf.clear();
            }
        }
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
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

#[derive(Debug)]
pub struct Connection {
    pub stream: Stream,
    pub peer: Peer,
    /// Unique for the process lifetime; tells a reused slab slot apart.
    pub serial: u64,
    pub out: OutQueue,
    pub phase: Phase,
    /// The interest currently registered in the selector.
    pub interest: Interest,
    /// Counted in the statistics as paused by backpressure.
    pub paused: bool,
    /// Last time data arrived (only kept up to date with an idle timeout).
    pub last_active: Instant,
}

impl Connection {
    /// What the selector should watch this connection for, given its queue
    /// and phase; `None` when it is finished and should be closed.
    pub fn wanted(&self, max_pending: usize) -> Option<Interest> {
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

    /// Whether backpressure stopped reading (for statistics).
    pub fn is_paused(&self, max_pending: usize) -> bool {
        matches!(self.phase, Phase::Open) && self.out.len() >= max_pending
    }
}

#[cfg(test)]
mod tests {
    use super::OutQueue;
    use proptest::prelude::*;

    const LIMIT: usize = 1000;

    proptest! {
        /// Whatever is pushed comes out once, in order, however it is sent.
        #[test]
        fn out_queue_preserves_bytes(ops in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300).prop_map(Ok),
                (0usize..400).prop_map(Err),
            ],
            0..200,
        )) {
            let mut queue = OutQueue::default();
            let mut pushed = Vec::new();
            let mut sent = Vec::new();
            for op in ops {
                match op {
                    // The server reads no more than the room left under the
                    // limit, so the queue never holds more than LIMIT.
                    Ok(data) if queue.len() + data.len() <= LIMIT => {
                        pushed.extend_from_slice(&data);
                        queue.push(&data, LIMIT);
                        prop_assert!(queue.capacity() <= LIMIT);
                    }
                    Ok(_) => {}
                    Err(n) => {
                        let n = n.min(queue.len());
                        sent.extend_from_slice(&queue.front()[..n]);
                        queue.consume(n);
                    }
                }
                prop_assert_eq!(queue.len(), pushed.len() - sent.len());
            }
            sent.extend_from_slice(queue.front());
            prop_assert_eq!(sent, pushed);
        }
    }
}
