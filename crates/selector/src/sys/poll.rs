//! poll(2). One `pollfd` per armed registration in a dense array, so each
//! wait costs time in proportion to the number registered. No descriptor
//! limit.
//!
//! A descriptor closed behind the selector's back comes back as `POLLNVAL`,
//! reported as an error event until it is unregistered. poll(2) has no
//! oneshot mode: a oneshot registration that was reported leaves the array
//! (poll would still report errors and hangups for an entry asking for
//! nothing) until `modify` puts it back. Edge-triggered is not offered.

use super::Ready;
use super::{Backend, Reg, Tag};
use crate::Mode;
use rustix::event::PollFd;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

/// Not registered.
const NONE: u32 = u32::MAX;
/// Registered oneshot, reported, and out of the array until modified.
const DISARMED: u32 = u32::MAX - 1;

#[derive(Debug, Default)]
pub(crate) struct Poll {
    /// The array handed to poll(2), in no particular order.
    fds: Vec<PollFd<'static>>,
    /// Whether each entry of `fds` is oneshot.
    oneshot: Vec<bool>,
    /// The tag of each entry of `fds`, reported with its events.
    tags: Vec<Tag>,
    /// How many entries of `fds` are oneshot; level-only sets skip the check.
    oneshots: usize,
    /// Descriptor number -> position in `fds`, `NONE` or `DISARMED`.
    index: Vec<u32>,
    /// Oneshot descriptors reported by this wait; capacity reused.
    fired: Vec<RawFd>,
}

impl Poll {
    /// The tag `fd` is registered with, while it is armed.
    #[cfg(feature = "faults")]
    pub(crate) fn tag_of(&self, fd: RawFd) -> Option<Tag> {
        self.tags.get(self.slot(fd) as usize).copied()
    }

    fn slot(&self, fd: RawFd) -> u32 {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.index.get(i).copied())
            .unwrap_or(NONE)
    }

    fn push(&mut self, fd: RawFd, reg: Reg) {
        let slot = fd as usize;
        if self.index.len() <= slot {
            self.index.resize(slot + 1, NONE);
        }
        self.index[slot] = self.fds.len() as u32;
        self.fds.push(entry(fd, reg));
        let oneshot = reg.mode == Mode::Oneshot;
        self.oneshot.push(oneshot);
        self.tags.push(reg.tag);
        self.oneshots += usize::from(oneshot);
    }

    /// Takes entry `i` out of the array, keeping the index right.
    fn remove(&mut self, i: usize) {
        self.fds.swap_remove(i);
        self.tags.swap_remove(i);
        self.oneshots -= usize::from(self.oneshot.swap_remove(i));
        if let Some(moved) = self.fds.get(i) {
            self.index[raw_fd(moved) as usize] = i as u32;
        }
    }
}

impl Backend for Poll {
    fn create() -> io::Result<Self> {
        Ok(Poll::default())
    }

    fn register(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()> {
        self.push(fd.as_raw_fd(), reg);
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        match self.slot(raw) {
            NONE => Err(io::ErrorKind::NotFound.into()),
            DISARMED => {
                self.push(raw, reg);
                Ok(())
            }
            i => {
                let i = i as usize;
                let oneshot = reg.mode == Mode::Oneshot;
                self.oneshots = self.oneshots + usize::from(oneshot) - usize::from(self.oneshot[i]);
                self.oneshot[i] = oneshot;
                self.tags[i] = reg.tag;
                self.fds[i] = entry(raw, reg);
                Ok(())
            }
        }
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        let slot = self.slot(fd);
        if slot == NONE {
            return Err(io::ErrorKind::NotFound.into());
        }
        self.index[fd as usize] = NONE;
        if slot != DISARMED {
            self.remove(slot as usize);
        }
        Ok(())
    }

    fn select(
        &mut self,
        timeout: Option<Duration>,
        _max: usize,
        emit: &mut impl FnMut(Tag, Ready),
    ) -> io::Result<()> {
        let timespec = super::timespec(timeout);
        let mut left = rustix::event::poll(&mut self.fds, timespec.as_ref())?;
        let any_oneshot = self.oneshots > 0;
        self.fired.clear();
        for (i, entry) in self.fds.iter().enumerate() {
            if left == 0 {
                break;
            }
            let revents = entry.revents();
            if !revents.is_empty() {
                left -= 1;
                let fd = raw_fd(entry);
                if any_oneshot && self.oneshot[i] {
                    self.fired.push(fd);
                }
                emit(self.tags[i], super::ready_from_poll(revents));
            }
        }
        for k in 0..self.fired.len() {
            let fd = self.fired[k];
            let i = self.slot(fd) as usize;
            self.remove(i);
            self.index[fd as usize] = DISARMED;
        }
        Ok(())
    }
}

/// The array entry for a registered descriptor.
fn entry(fd: RawFd, reg: Reg) -> PollFd<'static> {
    // SAFETY: the descriptor stays registered, hence open, until
    // `unregister` drops this entry (the Selector's contract: unregister
    // before close). If a caller breaks it, poll(2) answers POLLNVAL.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    PollFd::from_borrowed_fd(fd, super::poll_flags(reg.interest))
}

fn raw_fd(entry: &PollFd<'_>) -> RawFd {
    use std::os::fd::AsFd;
    entry.as_fd().as_raw_fd()
}
