//! select(2), over bit vectors sized to the highest registered descriptor,
//! so descriptors above 1023 work (the kernel takes any `nfds`; only libc's
//! fixed `fd_set` stops at `FD_SETSIZE`). Each wait copies and scans the sets,
//! so its cost grows with the highest descriptor number.
//!
//! select(2) cannot say *why* a descriptor is ready: an error or hangup just
//! makes it readable or writable. To report the same error and hangup bits as
//! poll and epoll, the ready descriptors (only those) are classified with one
//! zero-timeout poll(2). A descriptor closed behind the selector's back makes
//! the whole call fail with EBADF; the registered descriptors are then checked
//! one by one and the closed ones reported as errors, as poll's POLLNVAL.

use super::{Backend, Tag};
use crate::event::Ready;
use crate::Interest;
use rustix::event::{fd_set_insert, fd_set_num_elements, fd_set_remove};
use rustix::event::{FdSetElement, FdSetIter, PollFd, PollFlags};
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Select {
    read: Vec<FdSetElement>,
    write: Vec<FdSetElement>,
    /// Interest by descriptor number, to find the new highest on unregister.
    interest: Vec<Option<Interest>>,
    /// One past the highest registered descriptor.
    nfds: RawFd,
    /// Scratch space reused by every wait.
    read_out: Vec<FdSetElement>,
    write_out: Vec<FdSetElement>,
    ready: Vec<(RawFd, Ready)>,
    classify: Vec<PollFd<'static>>,
    /// Registered descriptors found closed during this wait.
    closed: Vec<RawFd>,
}

impl std::fmt::Debug for Select {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select")
            .field("nfds", &self.nfds)
            .finish_non_exhaustive()
    }
}

impl Select {
    fn set(&mut self, fd: RawFd, interest: Interest) {
        let elements = fd_set_num_elements(0, fd + 1);
        if self.read.len() < elements {
            self.read.resize(elements, FdSetElement::default());
            self.write.resize(elements, FdSetElement::default());
        }
        if interest.is_readable() {
            fd_set_insert(&mut self.read, fd);
        } else {
            fd_set_remove(&mut self.read, fd);
        }
        if interest.is_writable() {
            fd_set_insert(&mut self.write, fd);
        } else {
            fd_set_remove(&mut self.write, fd);
        }
        self.interest[fd as usize] = Some(interest);
    }

    fn registered(&self) -> impl Iterator<Item = RawFd> + '_ {
        (0..self.nfds).filter(|&fd| self.interest[fd as usize].is_some())
    }

    /// Collects the ready descriptors from the output sets, in ascending
    /// order, merging a descriptor that is both readable and writable.
    fn collect_ready(&mut self) {
        self.ready.clear();
        self.ready
            .extend(FdSetIter::new(&self.read_out).map(|fd| (fd, Ready::READABLE)));
        let readable = self.ready.len();
        let mut i = 0;
        for fd in FdSetIter::new(&self.write_out) {
            while i < readable && self.ready[i].0 < fd {
                i += 1;
            }
            if i < readable && self.ready[i].0 == fd {
                self.ready[i].1.insert(Ready::WRITABLE);
            } else {
                self.ready.push((fd, Ready::WRITABLE));
            }
        }
    }

    /// Adds the error and hangup bits select(2) cannot express.
    fn classify(&mut self) -> io::Result<()> {
        self.classify.clear();
        for &(fd, _) in &self.ready {
            // SAFETY: `fd` is registered, hence open (unregister before
            // close); the borrow lives only until the end of this call's use
            // of `classify`, which is cleared before the next wait.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            // No requested events: poll(2) still reports ERR, HUP and NVAL.
            self.classify
                .push(PollFd::from_borrowed_fd(fd, PollFlags::empty()));
        }
        rustix::event::poll(
            &mut self.classify,
            Some(&rustix::event::Timespec::default()),
        )?;
        for (entry, (_, ready)) in self.classify.iter().zip(&mut self.ready) {
            ready.insert(super::ready_from_poll(entry.revents()));
        }
        Ok(())
    }
}

impl Backend for Select {
    fn create() -> io::Result<Self> {
        Ok(Select::default())
    }

    fn register(&mut self, fd: BorrowedFd<'_>, interest: Interest, _tag: Tag) -> io::Result<()> {
        let fd = fd.as_raw_fd();
        if self.interest.len() <= fd as usize {
            self.interest.resize(fd as usize + 1, None);
        }
        self.set(fd, interest);
        self.nfds = self.nfds.max(fd + 1);
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, interest: Interest, _tag: Tag) -> io::Result<()> {
        self.set(fd.as_raw_fd(), interest);
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        let slot = self
            .interest
            .get_mut(fd as usize)
            .ok_or(io::ErrorKind::NotFound)?;
        *slot = None;
        fd_set_remove(&mut self.read, fd);
        fd_set_remove(&mut self.write, fd);
        while self.nfds > 0 && self.interest[self.nfds as usize - 1].is_none() {
            self.nfds -= 1;
        }
        Ok(())
    }

    fn select(
        &mut self,
        timeout: Option<Duration>,
        _max: usize,
        emit: &mut impl FnMut(Tag, Ready),
    ) -> io::Result<()> {
        let mut timeout = timeout;
        self.closed.clear();
        loop {
            let elements = fd_set_num_elements(0, self.nfds).min(self.read.len());
            self.read_out.clear();
            self.read_out.extend_from_slice(&self.read[..elements]);
            self.write_out.clear();
            self.write_out.extend_from_slice(&self.write[..elements]);
            for &fd in &self.closed {
                fd_set_remove(&mut self.read_out, fd);
                fd_set_remove(&mut self.write_out, fd);
            }
            let timespec = super::timespec_millis(timeout);
            // SAFETY: every descriptor in the sets is registered, hence open
            // (unregister before close). One closed anyway makes the kernel
            // answer EBADF, handled below; nothing is read through it.
            let result = unsafe {
                rustix::event::select(
                    self.nfds,
                    Some(&mut self.read_out),
                    Some(&mut self.write_out),
                    None,
                    timespec.as_ref(),
                )
            };
            match result {
                Ok(0) => break,
                Ok(_) => {
                    self.collect_ready();
                    self.classify()?;
                    for &(fd, ready) in &self.ready {
                        emit(Tag::fd(fd), ready);
                    }
                    break;
                }
                Err(Errno::BADF) if self.closed.is_empty() => {
                    // Report the closed ones as poll's POLLNVAL would, then
                    // look at the others once more without waiting.
                    let closed: Vec<RawFd> = self
                        .registered()
                        .filter(|&fd| !super::is_open(fd))
                        .collect();
                    if closed.is_empty() {
                        return Err(Errno::BADF.into());
                    }
                    self.closed = closed;
                    timeout = Some(Duration::ZERO);
                }
                Err(e) => return Err(e.into()),
            }
        }
        for &fd in &self.closed {
            emit(Tag::fd(fd), Ready::ERROR);
        }
        Ok(())
    }
}
