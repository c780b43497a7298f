//! [`select()`]: Python's `select.select(rlist, wlist, xlist, timeout)` for
//! Rust.

use crate::sys;
use rustix::event::{PollFd, PollFlags};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

/// What [`select()`] found ready: references to the caller's own objects, in
/// the order they were passed.
pub struct Ready<'a, R, W, X> {
    /// Entries of `rlist` a read would not block on (data, end of file, or an
    /// error or hangup that the read will report).
    pub readable: Vec<&'a R>,
    /// Entries of `wlist` a write would not block on.
    pub writable: Vec<&'a W>,
    /// Entries of `xlist` in an exceptional state: urgent (out-of-band) data,
    /// as select(2) reports, and also a pending error or a hangup, which
    /// select(2) folds into readability and the tutorial's `exceptional`
    /// branch expects here.
    pub exceptional: Vec<&'a X>,
}

impl<R, W, X> Ready<'_, R, W, X> {
    /// Whether nothing was ready (the timeout passed).
    pub fn is_empty(&self) -> bool {
        self.readable.is_empty() && self.writable.is_empty() && self.exceptional.is_empty()
    }
}

impl<R, W, X> fmt::Debug for Ready<'_, R, W, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ready")
            .field("readable", &self.readable.len())
            .field("writable", &self.writable.len())
            .field("exceptional", &self.exceptional.len())
            .finish()
    }
}

/// Wait until some of the given descriptors are ready, or `timeout` passes.
///
/// The three lists take anything with a file descriptor: sockets, pipes,
/// regular files (always ready), `std::io::Stdin`, a `ChildStdout`, or an
/// `Rc`/`Arc`/`Box` of one. `None` waits forever, zero only looks. A timeout
/// returns an empty [`Ready`], not an error; `EINTR` is retried with the time
/// that remains. Descriptors above 1023 work (this is built on poll(2), which
/// has no `FD_SETSIZE`).
///
/// # Errors
///
/// `InvalidInput` naming the descriptor if one is closed or invalid (Python
/// raises `EBADF`); the kernel's error otherwise.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let (mut a, b) = UnixStream::pair()?;
/// a.write_all(b"hello")?;
/// let (inputs, outputs) = ([&b], [&a]);
/// let ready = selector::select(&inputs, &outputs, &inputs, Some(Duration::ZERO))?;
/// assert_eq!(ready.readable.len(), 1); // b has data
/// assert_eq!(ready.writable.len(), 1); // a has buffer space
/// assert!(ready.exceptional.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn select<'a, R: AsFd, W: AsFd, X: AsFd>(
    rlist: &'a [R],
    wlist: &'a [W],
    xlist: &'a [X],
    timeout: Option<Duration>,
) -> io::Result<Ready<'a, R, W, X>> {
    let entries = rlist
        .iter()
        .map(|r| (r.as_fd(), PollFlags::IN))
        .chain(wlist.iter().map(|w| (w.as_fd(), PollFlags::OUT)))
        .chain(xlist.iter().map(|x| (x.as_fd(), PollFlags::PRI)));
    let mut fds: Vec<PollFd<'_>> = entries
        .map(|(fd, flags)| PollFd::from_borrowed_fd(fd, flags))
        .collect();

    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut remaining = timeout;
    loop {
        let timespec = sys::timespec(remaining);
        match rustix::event::poll(&mut fds, timespec.as_ref()) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => {
                if let Some(deadline) = deadline {
                    remaining = Some(deadline.saturating_duration_since(Instant::now()));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }

    if let Some(bad) = fds.iter().find(|p| p.revents().contains(PollFlags::NVAL)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "select: fd {} is not an open file descriptor",
                bad.as_fd().as_raw_fd()
            ),
        ));
    }

    let (r, rest) = fds.split_at(rlist.len());
    let (w, x) = rest.split_at(wlist.len());
    let pending = PollFlags::ERR | PollFlags::HUP;
    Ok(Ready {
        readable: pick(rlist, r, PollFlags::IN | pending),
        writable: pick(wlist, w, PollFlags::OUT | PollFlags::ERR),
        exceptional: pick(xlist, x, PollFlags::PRI | pending),
    })
}

fn pick<'a, T>(list: &'a [T], polled: &[PollFd<'_>], when: PollFlags) -> Vec<&'a T> {
    list.iter()
        .zip(polled)
        .filter(|(_, p)| p.revents().intersects(when))
        .map(|(item, _)| item)
        .collect()
}
