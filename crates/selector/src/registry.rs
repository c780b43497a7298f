//! [`Registry`]: change a selector's registrations from any thread, and the
//! state it shares with the [`Selector`]: the descriptor table (one mutex),
//! and the changes the selecting thread must still apply.
//!
//! How a change made through a `Registry` reaches the kernel:
//! - epoll: directly, with `epoll_ctl` on the shared epoll descriptor, so it
//!   takes effect in a wait already under way (regular files, which epoll
//!   refuses, take the queued path below);
//! - poll, select and kqueue: queued, and the selecting thread is woken
//!   through an internal eventfd or pipe; it applies the queue to its
//!   backend and waits again with the time that remains.
//!
//! The misuse rules are the facade's, checked here under the lock for both
//! callers, so a `Registry` gives the same errors as the `Selector`.

use crate::backend::{dispatch, Sys};
use crate::sys::{self, waker::WakerFd, Backend, Reg, Tag};
use crate::{BackendKind, Interest, Mode, Token};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

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
}

/// One change for a backend, by descriptor number.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Change {
    Register(RawFd, Reg),
    Modify(RawFd, Reg),
    Unregister(RawFd),
}

/// The table and the queue, behind the one lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Slot by descriptor number; dense, since the kernel hands out the
    /// lowest free numbers.
    table: Vec<Option<Slot>>,
    count: usize,
    /// Changes made through a `Registry` that the backend has not seen.
    pending: Vec<Change>,
}

/// What the [`Selector`](crate::Selector) and its registries share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) kind: BackendKind,
    state: Mutex<State>,
    /// Set when `pending` is not empty: the selecting thread checks this
    /// flag, not the lock, before each wait.
    dirty: AtomicBool,
    /// Wakes the selecting thread; made by the first `registry()` call and
    /// registered in the backend under [`Tag::INTERNAL`].
    pub(crate) wake: OnceLock<WakerFd>,
    /// The epoll descriptor, for changes made directly from any thread.
    #[cfg(has_epoll)]
    epoll: Option<Arc<std::os::fd::OwnedFd>>,
    /// Set when the selector is dropped: registries then refuse changes.
    closed: AtomicBool,
}

#[inline]
fn table_index(fd: RawFd) -> io::Result<usize> {
    usize::try_from(fd).map_err(|_| sys::invalid_fd(fd))
}

#[cold]
fn not_registered(fd: RawFd) -> io::Error {
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
        let new = Slot {
            registration,
            mode: mode.unwrap_or(old.mode),
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
        tag: Tag::pack(fd, token, interest),
    }
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

impl Shared {
    pub(crate) fn new(kind: BackendKind, sys: &Sys) -> Shared {
        let _ = sys;
        Shared {
            kind,
            state: Mutex::new(State::default()),
            dirty: AtomicBool::new(false),
            wake: OnceLock::new(),
            #[cfg(has_epoll)]
            epoll: match sys {
                Sys::Epoll(epoll) => Some(epoll.shared_fd()),
                _ => None,
            },
            closed: AtomicBool::new(false),
        }
    }

    /// The state, whoever panicked while holding it (the table is updated
    /// only after the backend accepted a change, so it stays consistent).
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a `Registry` queued changes since the last call.
    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.load(Ordering::Relaxed) && self.dirty.swap(false, Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Applies a change from another thread: to epoll directly when it
    /// can, else queued for the selecting thread. Whether to wake it.
    fn apply_remote(&self, state: &mut State, change: Change) -> io::Result<bool> {
        #[cfg(has_epoll)]
        if let Some(epoll) = &self.epoll {
            if sys::epoll::apply_direct(epoll, change)? {
                return Ok(false);
            }
        }
        state.pending.push(change);
        self.dirty.store(true, Ordering::Release);
        Ok(true)
    }
}

/// Changes a [`Selector`](crate::Selector)'s registrations from any thread,
/// also while another thread is blocked in its `select`: the change takes
/// effect for that wait.
///
/// Made by [`Selector::registry`](crate::Selector::registry); `Clone`,
/// `Send` and `Sync`. The same misuse errors as the selector's own methods.
/// An event already collected by a wait may still name a registration that
/// another thread removed meanwhile; tokens are the caller's to check.
///
/// On epoll a change reaches the kernel before the call returns, and so do
/// its errors. On poll, select and kqueue (and for regular files on epoll)
/// the selecting thread applies it; the misuse checks are made here, at the
/// call, but a kernel error in applying it (kqueue's `ENOMEM`) is returned
/// by that thread's next selector call instead.
///
/// # Examples
///
/// ```
/// use selector::{Events, Interest, Selector, Token};
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let mut selector = Selector::new()?;
/// let registry = selector.registry()?;
/// let (mut a, b) = UnixStream::pair()?;
/// let helper = std::thread::spawn(move || -> std::io::Result<UnixStream> {
///     // While the main thread waits below.
///     std::thread::sleep(Duration::from_millis(50));
///     registry.register(&b, Token(9), Interest::READABLE)?;
///     Ok(b)
/// });
/// a.write_all(b"x")?;
/// let mut events = Events::with_capacity(8);
/// selector.select(&mut events, Some(Duration::from_secs(10)))?;
/// assert_eq!(events.iter().next().map(|e| e.token()), Some(Token(9)));
/// let b = helper.join().expect("no panic")?;
/// selector.unregister(&b)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Registry {
    shared: Arc<Shared>,
}

impl Registry {
    pub(crate) fn new(shared: Arc<Shared>) -> Registry {
        Registry { shared }
    }

    /// As [`Selector::register`](crate::Selector::register).
    ///
    /// # Errors
    ///
    /// As [`Selector::register`](crate::Selector::register), and `Other`
    /// once the selector is closed.
    pub fn register(&self, fd: impl AsFd, token: Token, interest: Interest) -> io::Result<()> {
        self.register_with(fd, token, interest, Mode::Level)
    }

    /// As [`Selector::register_with`](crate::Selector::register_with).
    ///
    /// # Errors
    ///
    /// As [`Registry::register`].
    pub fn register_with(
        &self,
        fd: impl AsFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        let fd = fd.as_fd().as_raw_fd();
        let slot = Slot {
            registration: Registration { token, interest },
            mode,
        };
        self.change(fd, |state, kernel_checks| {
            let change = state.plan_register(self.shared.kind, fd, slot, kernel_checks)?;
            Ok((Some(change), Some(slot)))
        })
    }

    /// As [`Selector::modify`](crate::Selector::modify).
    ///
    /// # Errors
    ///
    /// As [`Selector::modify`](crate::Selector::modify), and `Other` once the
    /// selector is closed.
    pub fn modify(&self, fd: impl AsFd, token: Token, interest: Interest) -> io::Result<()> {
        self.modify_inner(fd, token, interest, None)
    }

    /// As [`Selector::modify_with`](crate::Selector::modify_with).
    ///
    /// # Errors
    ///
    /// As [`Registry::modify`].
    pub fn modify_with(
        &self,
        fd: impl AsFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        self.modify_inner(fd, token, interest, Some(mode))
    }

    fn modify_inner(
        &self,
        fd: impl AsFd,
        token: Token,
        interest: Interest,
        mode: Option<Mode>,
    ) -> io::Result<()> {
        let fd = fd.as_fd().as_raw_fd();
        let registration = Registration { token, interest };
        self.change(fd, |state, kernel_checks| {
            let (change, slot) =
                state.plan_modify(self.shared.kind, fd, registration, mode, kernel_checks)?;
            Ok((change, Some(slot)))
        })
    }

    /// As [`Selector::unregister`](crate::Selector::unregister).
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` is not registered, `Other` once the selector is
    /// closed.
    pub fn unregister<F: AsRawFd + ?Sized>(&self, fd: &F) -> io::Result<Registration> {
        let fd = fd.as_raw_fd();
        let mut old = None;
        self.change(fd, |state, _| {
            let (change, slot) = state.plan_unregister(fd)?;
            old = Some(slot.registration);
            Ok((Some(change), None))
        })?;
        old.ok_or_else(|| not_registered(fd))
    }

    /// Plans a change under the lock, applies it, records it, and wakes the
    /// selecting thread if it must apply it itself.
    fn change(
        &self,
        fd: RawFd,
        plan: impl FnOnce(&State, bool) -> io::Result<(Option<Change>, Option<Slot>)>,
    ) -> io::Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(io::Error::other("the selector is closed"));
        }
        let wake = {
            let mut state = self.shared.lock();
            // Only epoll's direct calls see the descriptor now.
            let kernel_checks = cfg!(has_epoll) && self.shared.kind == BackendKind::Epoll;
            let (change, slot) = plan(&state, kernel_checks)?;
            let wake = match change {
                Some(change) => self
                    .shared
                    .apply_remote(&mut state, change)
                    .map_err(|e| closed_if_ebadf(fd, e))?,
                None => false,
            };
            state.commit(fd, slot);
            wake
        };
        if wake {
            if let Some(w) = self.shared.wake.get() {
                w.wake()?;
            }
        }
        Ok(())
    }
}
