//! [`Registry`]: change a selector's registrations from any thread, and the
//! state it shares with the [`Selector`]: the descriptor table (behind one
//! mutex) and the changes the selecting thread must still apply.
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
use crate::sys::{waker::WakerFd, Backend, Change, Direct};
use crate::table::{closed_if_ebadf, not_registered, Registration, Slot, State};
use crate::{BackendKind, Interest, Mode, Token};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The selector's descriptor table: its own, locked by nothing, until it
/// makes a [`Registry`]; then shared with the registries behind their mutex.
#[derive(Debug)]
pub(crate) enum Table {
    Own(State),
    Shared(Arc<Shared>),
}

impl Table {
    /// The table, locked if it is shared.
    #[inline]
    pub(crate) fn lock(&mut self) -> TableGuard<'_> {
        match self {
            Table::Own(state) => TableGuard::Own(state),
            Table::Shared(shared) => TableGuard::Locked(shared.lock()),
        }
    }

    /// `f` on the table, to read it.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        match self {
            Table::Own(state) => f(state),
            Table::Shared(shared) => f(&shared.lock()),
        }
    }
}

/// The table while the selector changes it: borrowed, or locked.
pub(crate) enum TableGuard<'a> {
    Own(&'a mut State),
    Locked(MutexGuard<'a, State>),
}

impl std::ops::Deref for TableGuard<'_> {
    type Target = State;

    #[inline]
    fn deref(&self) -> &State {
        match self {
            TableGuard::Own(state) => state,
            TableGuard::Locked(guard) => guard,
        }
    }
}

impl std::ops::DerefMut for TableGuard<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut State {
        match self {
            TableGuard::Own(state) => state,
            TableGuard::Locked(guard) => guard,
        }
    }
}

/// What the [`Selector`](crate::Selector) and its registries share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) kind: BackendKind,
    state: Mutex<State>,
    /// Set when `pending` is not empty: the selecting thread checks this
    /// flag, not the lock, before each wait.
    dirty: AtomicBool,
    /// Wakes the selecting thread; registered in the backend under
    /// `Tag::INTERNAL` by the `registry()` call that made this.
    pub(crate) wake: WakerFd,
    /// The backend's handle for changes made directly from any thread
    /// (epoll's descriptor), if it has one.
    direct: Option<Direct>,
    /// Set when the selector is dropped: registries then refuse changes.
    closed: AtomicBool,
}

impl Shared {
    pub(crate) fn new(kind: BackendKind, sys: &Sys, state: State, wake: WakerFd) -> Shared {
        Shared {
            kind,
            state: Mutex::new(state),
            dirty: AtomicBool::new(false),
            wake,
            direct: dispatch!(sys, b => b.direct()),
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
        if let Some(direct) = &self.direct {
            if direct.apply(change)? {
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
        let registration = Registration { token, interest };
        self.register_slot(fd.as_fd().as_raw_fd(), Slot::new(registration, mode, false))
    }

    /// As [`Selector::register_exclusive`](crate::Selector::register_exclusive).
    ///
    /// # Errors
    ///
    /// As [`Selector::register_exclusive`](crate::Selector::register_exclusive),
    /// and `Other` once the selector is closed.
    pub fn register_exclusive(
        &self,
        fd: impl AsFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        let registration = Registration { token, interest };
        self.register_slot(fd.as_fd().as_raw_fd(), Slot::new(registration, mode, true))
    }

    fn register_slot(&self, fd: RawFd, slot: Slot) -> io::Result<()> {
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
            // Only a direct change (epoll's) shows the kernel the descriptor now.
            let kernel_checks = self.shared.direct.is_some();
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
            self.shared.wake.wake()?;
        }
        Ok(())
    }
}
