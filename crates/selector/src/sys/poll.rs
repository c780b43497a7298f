//! poll(2). One `pollfd` per registration in a dense array, so each wait
//! costs time in proportion to the number registered. No descriptor limit.
//!
//! A descriptor closed behind the selector's back comes back as `POLLNVAL`,
//! reported as an error event until it is unregistered.

use super::{Backend, Tag};
use crate::event::Ready;
use crate::Interest;
use rustix::event::{PollFd, PollFlags};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

const NONE: u32 = u32::MAX;

#[derive(Debug, Default)]
pub(crate) struct Poll {
    /// The array handed to poll(2), in no particular order.
    fds: Vec<PollFd<'static>>,
    /// Descriptor number -> position in `fds` (`NONE` when absent).
    index: Vec<u32>,
}

fn flags(interest: Interest) -> PollFlags {
    let mut flags = PollFlags::empty();
    if interest.is_readable() {
        flags |= PollFlags::IN;
    }
    if interest.is_writable() {
        flags |= PollFlags::OUT;
    }
    flags
}

impl Poll {
    fn position(&self, fd: RawFd) -> Option<usize> {
        let slot = *self.index.get(usize::try_from(fd).ok()?)?;
        (slot != NONE).then_some(slot as usize)
    }
}

impl Backend for Poll {
    fn create() -> io::Result<Self> {
        Ok(Poll::default())
    }

    fn register(&mut self, fd: BorrowedFd<'_>, interest: Interest, _tag: Tag) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        let slot = raw as usize;
        if self.index.len() <= slot {
            self.index.resize(slot + 1, NONE);
        }
        self.index[slot] = self.fds.len() as u32;
        self.fds.push(entry(raw, interest));
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, interest: Interest, _tag: Tag) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        let i = self.position(raw).ok_or(io::ErrorKind::NotFound)?;
        self.fds[i] = entry(raw, interest);
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        let i = self.position(fd).ok_or(io::ErrorKind::NotFound)?;
        self.index[fd as usize] = NONE;
        self.fds.swap_remove(i);
        if let Some(moved) = self.fds.get(i) {
            self.index[raw_fd(moved) as usize] = i as u32;
        }
        Ok(())
    }

    fn select(
        &mut self,
        timeout: Option<Duration>,
        _max: usize,
        emit: &mut impl FnMut(Tag, Ready),
    ) -> io::Result<()> {
        let timespec = super::timespec_millis(timeout);
        let mut left = rustix::event::poll(&mut self.fds, timespec.as_ref())?;
        for entry in &self.fds {
            if left == 0 {
                break;
            }
            let revents = entry.revents();
            if !revents.is_empty() {
                left -= 1;
                emit(Tag::fd(raw_fd(entry)), super::ready_from_poll(revents));
            }
        }
        Ok(())
    }
}

/// The array entry for a registered descriptor.
fn entry(fd: RawFd, interest: Interest) -> PollFd<'static> {
    // SAFETY: the descriptor stays registered, hence open, until
    // `unregister` drops this entry (the Selector's contract: unregister
    // before close). If a caller breaks it, poll(2) answers POLLNVAL.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    PollFd::from_borrowed_fd(fd, flags(interest))
}

fn raw_fd(entry: &PollFd<'_>) -> RawFd {
    use std::os::fd::AsFd;
    entry.as_fd().as_raw_fd()
}
