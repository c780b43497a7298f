//! Zero-copy echo (Linux): splice(2) moves a connection's bytes from its
//! socket into a pipe and from the pipe back into the same socket, inside
//! the kernel, with no copy through user space.
//!
//! Pipes are a kernel resource, two descriptors each, so every worker has a
//! [`PipePool`] with a fixed ceiling (`--zero-copy` reserves descriptors for
//! it out of the limit, see `Config`). A connection that cannot get a pipe,
//! or whose socket refuses splice, stays on the copy path.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::queue::OutQueue;
use crate::stream::Stream;

/// `--zero-copy`: when connections move their bytes with splice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ZeroCopy {
    /// Splice once a connection's reads show a bulk flow; copy otherwise.
    Auto,
    /// Always copy through the loop's buffer.
    Off,
    /// Splice from the first byte (for tests and measurements).
    Always,
}

/// Reads of at least this many bytes mark a bulk flow: below it the copy
/// path costs less CPU than splice's two syscalls and pipe bookkeeping
/// (measured crossover, docs/BENCHMARKS.md).
pub const BULK_READ: usize = 8 * 1024;
/// Consecutive bulk reads before a connection switches to splice.
pub const BULK_STREAK: u8 = 2;
/// Consecutive small reads, with the pipe empty, before it switches back.
pub const QUIET_STREAK: u8 = 4;

/// Consecutive reads that argue for the other path: bulk reads while
/// copying, small ones while splicing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Streak(u8);

impl Streak {
    /// Count a read of `n` bytes: whether the reads now argue for leaving
    /// the path the connection is on (`splicing` or not).
    pub fn argues_after(&mut self, n: usize, splicing: bool) -> bool {
        self.0 = match (n >= BULK_READ) != splicing {
            true => self.0.saturating_add(1),
            false => 0,
        };
        self.0 >= if splicing { QUIET_STREAK } else { BULK_STREAK }
    }
}

/// A pipe between a connection's socket and itself, and what it holds.
///
/// A connection may hold up to `--max-pending` bytes, and a pipe can hold
/// less (its size is capped by the kernel, and each socket buffer fragment
/// takes a slot), so a pipe has an `overflow` queue behind it ([`Outbox`]
/// states the order rule).
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in the pipe, not yet sent back.
    held: usize,
    /// The pipe's size in bytes.
    capacity: usize,
    /// The last fill found no room although bytes were held: the pipe ran
    /// out of slots before bytes.
    full: bool,
    /// Bytes read while the pipe was full, sent after the pipe's.
    overflow: OutQueue,
}

impl Pipe {
    /// Bytes held, in the pipe and behind it.
    pub fn pending(&self) -> usize {
        self.held + self.overflow.len()
    }

    /// Whether the next read may go into the pipe: it has room, and no
    /// copied bytes wait behind it.
    pub fn takes_splice(&self) -> bool {
        !self.full && self.held < self.capacity && self.overflow.is_empty()
    }

    /// Bytes the pipe can take now.
    pub fn room(&self) -> usize {
        self.capacity - self.held.min(self.capacity)
    }

    /// Move up to `max` bytes from `socket` into the pipe: `Ok(0)` is EOF.
    pub fn fill(&mut self, socket: impl AsFd, max: usize) -> io::Result<usize> {
        match splice(socket.as_fd(), self.write.as_fd(), max) {
            Ok(n) => {
                self.held += n;
                Ok(n)
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::WouldBlock && self.held > 0 {
                    self.full = true;
                }
                Err(e)
            }
        }
    }

    /// Move what the pipe holds back out to `socket`: how much went.
    pub fn drain(&mut self, socket: impl AsFd) -> io::Result<usize> {
        if self.held == 0 {
            return Ok(0);
        }
        let n = splice(self.read.as_fd(), socket.as_fd(), self.held)?;
        self.held -= n;
        if n > 0 {
            self.full = false;
        }
        Ok(n)
    }
}

#[cfg(target_os = "linux")]
fn splice(
    from: std::os::fd::BorrowedFd,
    to: std::os::fd::BorrowedFd,
    len: usize,
) -> io::Result<usize> {
    use rustix::pipe::SpliceFlags;
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    Ok(rustix::pipe::splice(from, None, to, None, len, flags)?)
}

#[cfg(not(target_os = "linux"))]
fn splice(_: std::os::fd::BorrowedFd, _: std::os::fd::BorrowedFd, _: usize) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Whether an error from splice means "this socket cannot be spliced", so
/// the connection should go back to copying rather than close.
pub fn refused(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
    )
}

/// One worker's pipes: those lent to connections, and a few empty ones
/// kept for the next bulk flow.
#[derive(Debug)]
pub struct PipePool {
    free: Vec<Pipe>,
    lent: usize,
    /// Pipes (lent and free) this worker may hold at once.
    max: usize,
    /// Size each pipe is grown to (pipes exist only on Linux).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    size: usize,
    /// When a pipe was last given back, so that the empty ones kept are
    /// closed once bulk flows have stopped.
    given_at: Option<Instant>,
}

/// Empty pipes kept for reuse; the rest are closed when given back.
const KEEP_FREE: usize = 16;
/// Kept pipes are closed after this long without a bulk flow ending, so a
/// quiet server holds no pipe at all.
const KEEP_FOR: Duration = Duration::from_secs(1);

impl PipePool {
    /// A pool of at most `max` pipes of `size` bytes (the kernel may cap
    /// the size at `/proc/sys/fs/pipe-max-size`).
    pub fn new(max: usize, size: usize) -> PipePool {
        PipePool {
            free: Vec::new(),
            lent: 0,
            max,
            size,
            given_at: None,
        }
    }

    /// An empty pipe, or `None` when the pool is at its ceiling or the
    /// kernel will not make one (the connection keeps copying).
    pub fn take(&mut self) -> Option<Pipe> {
        let pipe = match self.free.pop() {
            Some(pipe) => pipe,
            None if self.lent < self.max => self.create().ok()?,
            None => return None,
        };
        self.lent += 1;
        Some(pipe)
    }

    /// A pipe back from a connection. Only an empty pipe is kept: bytes left
    /// in one belong to a connection that is gone.
    pub fn give(&mut self, mut pipe: Pipe, now: Instant) {
        self.lent -= 1;
        self.given_at = Some(now);
        if pipe.pending() == 0 && self.free.len() < KEEP_FREE {
            pipe.full = false;
            self.free.push(pipe);
        }
    }

    /// When the kept pipes are due to be closed, if any are kept.
    pub fn trim_due(&self) -> Option<Instant> {
        self.given_at
            .filter(|_| !self.free.is_empty())
            .map(|at| at + KEEP_FOR)
    }

    /// Close the kept pipes once they are due.
    pub fn trim(&mut self, now: Instant) {
        if self.trim_due().is_some_and(|due| due <= now) {
            self.free = Vec::new();
        }
    }

    #[cfg(target_os = "linux")]
    fn create(&self) -> io::Result<Pipe> {
        use rustix::pipe::{fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, PipeFlags};
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // Growing is best effort: past pipe-max-size, or over the user's
        // pipe page quota, the kernel refuses and the default size serves.
        let capacity =
            fcntl_setpipe_size(&write, self.size).or_else(|_| fcntl_getpipe_size(&write))?;
        Ok(Pipe {
            read,
            write,
            held: 0,
            capacity,
            full: false,
            overflow: OutQueue::default(),
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn create(&self) -> io::Result<Pipe> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// The largest pipe an unprivileged process may ask for
/// (`/proc/sys/fs/pipe-max-size`; 1 MiB when it cannot be read).
pub fn pipe_max_size() -> usize {
    std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// Where the bytes a connection owes its peer are held, on either path.
///
/// The byte-order rule of the zero-copy path, stated here only:
/// - Only one place holds bytes at a time. A connection moves to a pipe
///   ([`Outbox::splice`]) only while it holds nothing, and back to copying
///   ([`Outbox::unsplice`]) only while its pipe and overflow are empty, so
///   changing path never reorders bytes.
/// - On the pipe path, a read that finds the pipe full (out of bytes or of
///   slots) is copied into the pipe's overflow, behind the pipe's bytes.
///   The pipe is sent first, then the overflow ([`Outbox::copied`]), and
///   the pipe is filled again only once the overflow is empty
///   ([`Pipe::takes_splice`]).
///
/// Boxed, and absent while nothing is held on the copy path, so an idle
/// connection carries one pointer for it.
#[derive(Debug, Default)]
pub struct Outbox(Option<Box<Held>>);

#[derive(Debug)]
enum Held {
    /// Copied into user space: what the peer could not take yet.
    Queue(OutQueue),
    /// Spliced into a kernel pipe (the zero-copy path), empty or not.
    Pipe(Pipe),
}

impl Outbox {
    /// Bytes received and not yet sent back, in a queue or a pipe.
    pub fn pending(&self) -> usize {
        match self.0.as_deref() {
            None => 0,
            Some(Held::Queue(queue)) => queue.len(),
            Some(Held::Pipe(pipe)) => pipe.pending(),
        }
    }

    /// Whether it is on the zero-copy path.
    pub fn is_splicing(&self) -> bool {
        matches!(self.0.as_deref(), Some(Held::Pipe(_)))
    }

    /// Memory held, as the budget counts it: the queue's buffer, or the
    /// pipe's bytes and its overflow's buffer.
    pub fn footprint(&self) -> usize {
        match self.0.as_deref() {
            None => 0,
            Some(Held::Queue(queue)) => size_of::<Held>() + queue.capacity(),
            Some(Held::Pipe(pipe)) => size_of::<Held>() + pipe.held + pipe.overflow.capacity(),
        }
    }

    /// How much memory a read of `want` bytes could add, should the peer
    /// take none of the echo: copied reads are cut to `buf_len`.
    pub fn growth_for(&self, want: usize, buf_len: usize, max_pending: usize) -> usize {
        let copied = want.min(buf_len);
        match self.0.as_deref() {
            // A new queue's buffer takes just what it holds.
            None => size_of::<Held>() + copied,
            Some(Held::Queue(queue)) => queue.growth_for(copied, max_pending),
            Some(Held::Pipe(pipe)) if pipe.takes_splice() => want.min(pipe.room()),
            Some(Held::Pipe(pipe)) => pipe.overflow.growth_for(copied, max_pending),
        }
    }

    /// Move to the zero-copy path, if nothing is held and a pipe can be
    /// had; returns whether it moved.
    pub fn splice(&mut self, pipes: &mut PipePool) -> bool {
        if self.0.is_some() {
            return false;
        }
        let Some(pipe) = pipes.take() else {
            return false;
        };
        self.0 = Some(Box::new(Held::Pipe(pipe)));
        true
    }

    /// Back to the copy path, if the pipe is empty; the pipe goes back to
    /// the pool. Returns whether it moved.
    pub fn unsplice(&mut self, pipes: &mut PipePool, now: Instant) -> bool {
        if !self.is_splicing() || self.pending() > 0 {
            return false;
        }
        self.release(pipes, now);
        true
    }

    /// One read from `stream` of at most `want` bytes: into the pipe when
    /// it takes splice (then `true`), else into `buf`. `Ok((0, _))` is EOF.
    ///
    /// A splice that finds nothing to move although the socket was reported
    /// readable is followed by one copying read: the pipe may be out of
    /// slots, or the stream is at an urgent (`MSG_OOB`) byte's mark, which
    /// splice never passes (the kernel's `tcp_read_sock` stops there) and a
    /// read does. Without it the connection would stay readable and never
    /// read: a loop spinning on one connection, whose later bytes never echo.
    /// That read takes no more than the splice might have (the memory budget
    /// reserved that much).
    pub fn read(
        &mut self,
        stream: &mut Stream,
        buf: &mut [u8],
        mut want: usize,
    ) -> io::Result<(usize, bool)> {
        if let Some(Held::Pipe(pipe)) = self.0.as_deref_mut() {
            if pipe.takes_splice() {
                want = want.min(pipe.room());
                match pipe.fill(&*stream, want) {
                    Err(e) if crate::stream::would_block(&e) => {}
                    filled => return filled.map(|n| (n, true)),
                }
            }
        }
        let want = want.min(buf.len());
        stream.read(&mut buf[..want]).map(|n| (n, false))
    }

    /// Hold copied bytes the peer could not take, behind all held bytes.
    pub fn push(&mut self, data: &[u8], max_pending: usize) {
        let held = self
            .0
            .get_or_insert_with(|| Box::new(Held::Queue(OutQueue::default())));
        match held.as_mut() {
            Held::Pipe(pipe) => pipe.overflow.push(data, max_pending),
            Held::Queue(queue) => queue.push(data, max_pending),
        }
    }

    /// Splice what the pipe holds back out to `socket`: how much went (0
    /// when it would block or nothing is in a pipe).
    pub fn drain_pipe(&mut self, socket: impl AsFd) -> io::Result<usize> {
        match self.0.as_deref_mut() {
            Some(Held::Pipe(pipe)) => match pipe.drain(socket) {
                Err(e) if crate::stream::would_block(&e) => Ok(0),
                drained => drained,
            },
            _ => Ok(0),
        }
    }

    /// The copied bytes that may be sent now, oldest first: the queue, or
    /// the overflow once its pipe is empty. `None` when there are none.
    pub fn copied(&self) -> Option<&[u8]> {
        let queue = match self.0.as_deref()? {
            Held::Queue(queue) => queue,
            Held::Pipe(pipe) if pipe.held == 0 => &pipe.overflow,
            Held::Pipe(_) => return None,
        };
        Some(queue.front()).filter(|front| !front.is_empty())
    }

    /// `n` bytes of [`Outbox::copied`] were sent; an emptied queue is
    /// dropped (the tutorial's "output queue is empty").
    pub fn sent(&mut self, n: usize) {
        match self.0.as_deref_mut() {
            Some(Held::Queue(queue)) => {
                queue.consume(n);
                if queue.is_empty() {
                    self.0 = None;
                }
            }
            Some(Held::Pipe(pipe)) => pipe.overflow.consume(n),
            None => {}
        }
    }

    /// Drop what is held; a pipe goes back to the pool.
    pub fn release(&mut self, pipes: &mut PipePool, now: Instant) {
        if let Some(Held::Pipe(pipe)) = self.0.take().map(|held| *held) {
            pipes.give(pipe, now);
        }
    }
}
