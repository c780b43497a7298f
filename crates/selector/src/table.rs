//! The descriptor table: descriptor number → registration, the misuse rules
//! checked in one place for the selector and its registries alike
//! (`plan_*`), the record of what a backend accepted (`commit`), and the
//! queue of changes a `Registry` left for the selecting thread.

use crate::backend::{dispatch, Sys};
use crate::sys::{self, Backend, Change, Reg, Tag};
use crate::{BackendKind, Interest, Mode, Token, Unsupported};
use std::io;
use std::os::fd::RawFd;

/// What a descriptor is registered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The caller's token, handed back with each event.
    pub token: Token,
    /// What the descriptor is watched for.
    pub interest: Interest,
}

/// A registration's slot in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) registration: Registration,
    pub(crate) mode: Mode,
    /// Registered with exclusive wakeups (epoll's `EPOLLEXCLUSIVE`).
    pub(crate) exclusive: bool,
}

impl Slot {
    pub(crate) fn new(registration: Registration, mode: Mode, exclusive: bool) -> Slot {
        Slot {
            registration,
            mode,
            exclusive,
        }
    }
}

/// The table and the queue, behind the one lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Slot by descriptor number; dense, since the kernel hands out the
    /// lowest free numbers.
    table: Vec<Option<Slot>>,
    count: usize,
    /// Changes made through a `Registry` that the backend has not seen.
    pub(crate) pending: Vec<Change>,
}

#[inline]
fn table_index(fd: RawFd) -> io::Result<usize> {
    usize::try_from(fd).map_err(|_| sys::invalid_fd(fd))
}

#[cold]
pub(crate) fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("fd {fd} is not registered"),
    )
}

#[cold]
pub(crate) fn closed(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("fd {fd} is not an open file descriptor"),
    )
}

/// The kernel's EBADF means `fd` is closed: say so, as [`closed`] does.
pub(crate) fn closed_if_ebadf(fd: RawFd, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(rustix::io::Errno::BADF.raw_os_error()) {
        closed(fd)
    } else {
        e
    }
}

impl State {
    #[inline]
    pub(crate) fn slot(&self, fd: RawFd) -> io::Result<Option<Slot>> {
        let i = table_index(fd)?;
        Ok(self.table.get(i).copied().flatten())
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    #[inline]
    fn set(&mut self, fd: RawFd, slot: Option<Slot>) {
        let i = fd as usize;
        if self.table.len() <= i {
            self.table.resize(i + 1, None);
        }
        let was = std::mem::replace(&mut self.table[i], slot).is_some();
        self.count = self.count + usize::from(slot.is_some()) - usize::from(was);
    }

    /// Checks a registration against the rules and says what the backend
    /// must do; `kernel_checks` when the backend's own call will refuse a
    /// closed descriptor.
    #[inline]
    pub(crate) fn plan_register(
        &self,
        kind: BackendKind,
        fd: RawFd,
        slot: Slot,
        kernel_checks: bool,
    ) -> io::Result<Change> {
        if self.slot(fd)?.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already registered"),
            ));
        }
        kind.check(slot.registration.interest, slot.mode)?;
        if slot.exclusive {
            check_exclusive(kind, fd, slot)?;
        }
        // poll and select would only notice a bad descriptor at the next
        // wait; check now so every backend refuses it here, the same way.
        if !kernel_checks && !sys::is_open(fd) {
            return Err(closed(fd));
        }
        Ok(Change::Register(fd, reg(fd, slot)))
    }

    /// As [`plan_register`](State::plan_register), for a modification;
    /// `None` when the backend need not hear of it. `mode` `None` keeps the
    /// registration's mode.
    #[inline]
    pub(crate) fn plan_modify(
        &self,
        kind: BackendKind,
        fd: RawFd,
        registration: Registration,
        mode: Option<Mode>,
        kernel_checks: bool,
    ) -> io::Result<(Option<Change>, Slot)> {
        let old = self.slot(fd)?.ok_or_else(|| not_registered(fd))?;
        if old.exclusive {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "fd {fd} is registered with exclusive wakeups, which epoll \
                     cannot modify: unregister it and register it again"
                ),
            ));
        }
        let new = Slot {
            registration,
            mode: mode.unwrap_or(old.mode),
            exclusive: false,
        };
        kind.check(registration.interest, new.mode)?;
        // A level registration that stays the same needs no kernel call; any
        // other change does (a new token too: epoll carries it in the
        // kernel), and so does re-arming a oneshot or edge registration.
        let call = old != new || new.mode != Mode::Level;
        // The kernel notices a closed descriptor itself; poll and select, or
        // no call at all, would not, so ask, as register does.
        let kernel_will_check = kernel_checks && call;
        if !kernel_will_check && !sys::is_open(fd) {
            return Err(closed(fd));
        }
        Ok((call.then_some(Change::Modify(fd, reg(fd, new))), new))
    }

    #[inline]
    pub(crate) fn plan_unregister(&self, fd: RawFd) -> io::Result<(Change, Slot)> {
        let old = self.slot(fd)?.ok_or_else(|| not_registered(fd))?;
        Ok((Change::Unregister(fd), old))
    }

    /// Records what the backend accepted: `fd`'s new slot, or none.
    #[inline]
    pub(crate) fn commit(&mut self, fd: RawFd, slot: Option<Slot>) {
        self.set(fd, slot);
    }

    /// Hands the queued changes to the backend, in order. All are applied;
    /// the first error is returned.
    #[inline]
    pub(crate) fn apply_pending(&mut self, sys: &mut Sys) -> io::Result<()> {
        if self.pending.is_empty() {
            // Every call of the selector's own starts here: keep it a test.
            return Ok(());
        }
        self.apply_pending_slow(sys)
    }

    #[cold]
    fn apply_pending_slow(&mut self, sys: &mut Sys) -> io::Result<()> {
        let mut first = Ok(());
        for change in self.pending.drain(..) {
            let result = apply(sys, change);
            if first.is_ok() {
                first = result.map_err(|e| {
                    io::Error::new(e.kind(), format!("a change made through a Registry: {e}"))
                });
            }
        }
        first
    }
}

#[inline]
fn reg(fd: RawFd, slot: Slot) -> Reg {
    let Registration { token, interest } = slot.registration;
    Reg {
        interest,
        mode: slot.mode,
        exclusive: slot.exclusive,
        tag: Tag::pack(fd, token, interest),
    }
}

/// epoll's rules for `EPOLLEXCLUSIVE`, checked before the kernel's EINVAL
/// could say less: epoll only, not oneshot, and readable / writable interest
/// only.
#[cold]
fn check_exclusive(kind: BackendKind, fd: RawFd, slot: Slot) -> io::Result<()> {
    if !kind.supports_exclusive() {
        return Err(Unsupported::Exclusive(kind).into());
    }
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd}: exclusive wakeups {why}"),
        ))
    };
    if slot.mode == Mode::Oneshot {
        return refuse("cannot be oneshot (epoll refuses EPOLLEXCLUSIVE with EPOLLONESHOT)");
    }
    if slot.registration.interest.is_priority() {
        return refuse("take readable and writable interest only, not priority");
    }
    Ok(())
}

/// Hands one change to the backend.
#[inline]
pub(crate) fn apply(sys: &mut Sys, change: Change) -> io::Result<()> {
    match change {
        Change::Register(fd, reg) => {
            let borrowed = sys::borrow_number(fd)?;
            dispatch!(sys, b => b.register(borrowed, reg)).map_err(|e| closed_if_ebadf(fd, e))
        }
        Change::Modify(fd, reg) => {
            let borrowed = sys::borrow_number(fd)?;
            dispatch!(sys, b => b.modify(borrowed, reg)).map_err(|e| closed_if_ebadf(fd, e))
        }
        Change::Unregister(fd) => dispatch!(sys, b => b.unregister(fd)),
    }
}
