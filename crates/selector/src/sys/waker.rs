//! The descriptor behind [`Waker`](crate::Waker): an eventfd on Linux, a
//! non-blocking pipe elsewhere. Writing makes it readable; the selector
//! drains it when it reports it, so one wake gives one event.

use rustix::io::Errno;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

#[derive(Debug)]
pub(crate) struct WakerFd {
    read: OwnedFd,
    #[cfg(not(has_epoll))]
    write: OwnedFd,
}

impl WakerFd {
    #[cfg(has_epoll)]
    pub(crate) fn new() -> io::Result<WakerFd> {
        use rustix::event::{eventfd, EventfdFlags};
        let read = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(WakerFd { read })
    }

    #[cfg(not(has_epoll))]
    pub(crate) fn new() -> io::Result<WakerFd> {
        use rustix::fs::{fcntl_setfl, OFlags};
        use rustix::io::{fcntl_setfd, FdFlags};
        let (read, write) = rustix::pipe::pipe()?;
        for fd in [&read, &write] {
            fcntl_setfl(fd, OFlags::NONBLOCK)?;
            fcntl_setfd(fd, FdFlags::CLOEXEC)?;
        }
        Ok(WakerFd { read, write })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    fn write_end(&self) -> BorrowedFd<'_> {
        #[cfg(has_epoll)]
        return self.read.as_fd();
        #[cfg(not(has_epoll))]
        return self.write.as_fd();
    }

    pub(crate) fn wake(&self) -> io::Result<()> {
        // An eventfd takes an 8-byte count; a pipe takes anything.
        match rustix::io::write(self.write_end(), &1u64.to_ne_bytes()) {
            // Full: a wake is already pending, which is all we need.
            Ok(_) | Err(Errno::AGAIN) => Ok(()),
            Err(Errno::INTR) => self.wake(),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        // Until empty; errors other than "empty" leave it readable, and the
        // next select reports it again, so there is nothing to propagate.
        while let Ok(n) = rustix::io::read(self.fd(), &mut buf) {
            if n < buf.len() {
                break;
            }
        }
    }
}
