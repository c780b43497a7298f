//! [`Selector`]: the `selectors.BaseSelector` idea over interchangeable
//! backends, with the bookkeeping done once, above them. Waiting is in
//! `wait.rs`.

mod wait;

use crate::backend::{dispatch, Sys};
use crate::registry::{Shared, Table};
use crate::sys::{self, Backend, Reg, Tag};
use crate::table::{self, Registration, Slot, State};
use crate::{BackendKind, Events, Interest, Mode, Registry, Token, Waker};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;

/// Waits on many descriptors at once and reports which are ready.
///
/// Level-triggered on every backend unless a registration asks for another
/// [`Mode`]: a descriptor is reported by each [`select`](Selector::select)
/// for as long as it stays ready. Descriptors
/// must be unregistered before they are closed; see
/// [`unregister`](Selector::unregister) for what happens otherwise.
///
/// # Examples
///
/// ```
/// use selector::{Events, Interest, Selector, Token};
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let (mut a, b) = UnixStream::pair()?;
/// let mut selector = Selector::new()?;
/// selector.register(&b, Token(7), Interest::READABLE)?;
///
/// a.write_all(b"ping")?;
/// let mut events = Events::with_capacity(64);
/// selector.select(&mut events, Some(Duration::from_secs(1)))?;
/// let event = events.iter().next().expect("b is readable");
/// assert_eq!(event.token(), Token(7));
/// assert!(event.is_readable());
/// selector.unregister(&b)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Selector {
    sys: Sys,
    kind: BackendKind,
    /// The descriptor table (and, once shared, the registries' queued
    /// changes).
    table: Table,
    /// The wakers' descriptors, each drained whenever it is reported.
    pub(crate) wakers: Vec<(Token, Arc<sys::waker::WakerFd>)>,
}

impl Drop for Selector {
    fn drop(&mut self) {
        if let Table::Shared(shared) = &self.table {
            shared.close();
        }
    }
}

// A selector is built on one thread and run on another (one per worker),
// and its events buffer goes with it.
const _: () = {
    const fn assert_send<T: Send>() {}
    const fn assert_sync<T: Send + Sync>() {}
    const fn assert_shared<T: Send + Sync + Clone>() {}
    assert_send::<Selector>();
    assert_send::<Waker>();
    assert_sync::<Events>();
    assert_shared::<Registry>();
};

impl Selector {
    /// A selector on the best backend for this OS.
    ///
    /// # Errors
    ///
    /// When the kernel refuses a new epoll instance (descriptor limits).
    pub fn new() -> io::Result<Selector> {
        Selector::with_backend(BackendKind::Auto)
    }

    /// A selector on the named backend.
    ///
    /// # Errors
    ///
    /// `Unsupported` for epoll where the OS has none; otherwise the kernel's
    /// error creating the backend.
    pub fn with_backend(kind: BackendKind) -> io::Result<Selector> {
        let kind = kind.resolve();
        Ok(Selector::from_sys(Sys::create(kind)?, kind))
    }

    fn from_sys(sys: Sys, kind: BackendKind) -> Selector {
        Selector {
            table: Table::Own(State::default()),
            sys,
            kind,
            wakers: Vec::new(),
        }
    }

    /// A selector whose backend is poll(2) with faults injected as `plan`
    /// says: for testing a program's event loop without timing luck.
    /// Reports itself as [`BackendKind::Poll`].
    ///
    /// # Errors
    ///
    /// As [`Selector::with_backend`].
    #[cfg(feature = "faults")]
    pub fn with_faults(plan: crate::FaultPlan) -> io::Result<Selector> {
        let sys = Sys::Faulty(sys::faults::Faulty::new(plan)?);
        Ok(Selector::from_sys(sys, BackendKind::Poll))
    }

    /// The backend in use (never `Auto`).
    pub fn backend(&self) -> BackendKind {
        self.kind
    }

    /// Whether registrations in `mode` work on this selector's backend:
    /// level and oneshot everywhere, edge-triggered on epoll and kqueue.
    pub fn supports(&self, mode: Mode) -> bool {
        self.kind.supports(mode)
    }

    /// Start watching `fd` for `interest`, level-triggered; events carry
    /// `token`.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if `fd` is registered, `InvalidInput` if it is not an
    /// open descriptor, `Unsupported` ([`Unsupported`](crate::Unsupported)
    /// inside) for priority interest on kqueue, or the kernel's error
    /// (epoll: `ENOMEM`, `ENOSPC`).
    pub fn register(&mut self, fd: impl AsFd, token: Token, interest: Interest) -> io::Result<()> {
        self.register_with(fd, token, interest, Mode::Level)
    }

    /// Start watching `fd` for `interest` in `mode`; events carry `token`.
    ///
    /// # Errors
    ///
    /// As [`register`](Selector::register), and `Unsupported` with an
    /// [`Unsupported`](crate::Unsupported) inside if the backend has no such
    /// mode (see [`supports`](Selector::supports)); never another mode
    /// instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use selector::{Events, Interest, Mode, Selector, Token};
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    ///
    /// let (mut a, b) = UnixStream::pair()?;
    /// let mut selector = Selector::new()?;
    /// selector.register_with(&b, Token(1), Interest::READABLE, Mode::Oneshot)?;
    /// a.write_all(b"once")?;
    /// let mut events = Events::with_capacity(8);
    /// selector.select(&mut events, Some(Duration::from_secs(1)))?;
    /// assert_eq!(events.len(), 1);
    /// // Still readable, but disarmed until modified.
    /// selector.select(&mut events, Some(Duration::ZERO))?;
    /// assert!(events.is_empty());
    /// selector.modify(&b, Token(1), Interest::READABLE)?; // re-armed
    /// selector.select(&mut events, Some(Duration::ZERO))?;
    /// assert_eq!(events.len(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn register_with(
        &mut self,
        fd: impl AsFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        let registration = Registration { token, interest };
        self.register_slot(fd.as_fd().as_raw_fd(), Slot::new(registration, mode, false))
    }

    /// Start watching `fd` for `interest` in `mode` with *exclusive
    /// wakeups*: when several selectors (one per thread) watch the same
    /// descriptor — a listening socket shared by workers — each readiness
    /// wakes one of those waiting, not all of them (epoll's
    /// `EPOLLEXCLUSIVE`, Linux 4.5+). Events carry `token`.
    ///
    /// epoll's rules hold: level or edge mode, not oneshot; readable and
    /// writable interest only (so a shut-down peer shows as readable, never
    /// as read closed); and no [`modify`](Selector::modify) afterwards —
    /// unregister and register again instead.
    ///
    /// # Errors
    ///
    /// `Unsupported` with [`Unsupported::Exclusive`](crate::Unsupported)
    /// inside on a backend other than epoll (see
    /// [`BackendKind::supports_exclusive`]); `InvalidInput` for oneshot or
    /// priority interest; otherwise as
    /// [`register_with`](Selector::register_with). A later `modify` of this
    /// registration fails with `InvalidInput` and leaves it as it was.
    pub fn register_exclusive(
        &mut self,
        fd: impl AsFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        let registration = Registration { token, interest };
        self.register_slot(fd.as_fd().as_raw_fd(), Slot::new(registration, mode, true))
    }

    fn register_slot(&mut self, raw: std::os::fd::RawFd, slot: Slot) -> io::Result<()> {
        let mut state = self.table.lock();
        state.apply_pending(&mut self.sys)?;
        let change = state.plan_register(self.kind, raw, slot, self.kind.checks_descriptors())?;
        table::apply(&mut self.sys, change)?;
        state.commit(raw, Some(slot));
        Ok(())
    }

    /// Change what a registered `fd` is watched for, and its token, in place;
    /// its mode stays. Re-arms a oneshot registration.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` is not registered, `InvalidInput` if it was closed
    /// behind the selector's back, `Unsupported` as for
    /// [`register`](Selector::register); the kernel's error otherwise. After
    /// an error the registration is left as it was.
    pub fn modify(&mut self, fd: impl AsFd, token: Token, interest: Interest) -> io::Result<()> {
        self.modify_inner(fd, Registration { token, interest }, None)
    }

    /// Change a registration's token, interest and mode in place, re-arming
    /// it.
    ///
    /// # Errors
    ///
    /// As [`modify`](Selector::modify), and `Unsupported` as for
    /// [`register_with`](Selector::register_with).
    pub fn modify_with(
        &mut self,
        fd: impl AsFd,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> io::Result<()> {
        self.modify_inner(fd, Registration { token, interest }, Some(mode))
    }

    fn modify_inner(
        &mut self,
        fd: impl AsFd,
        registration: Registration,
        mode: Option<Mode>,
    ) -> io::Result<()> {
        let raw = fd.as_fd().as_raw_fd();
        let mut state = self.table.lock();
        state.apply_pending(&mut self.sys)?;
        let checks = self.kind.checks_descriptors();
        let (change, slot) = state.plan_modify(self.kind, raw, registration, mode, checks)?;
        if let Some(change) = change {
            table::apply(&mut self.sys, change)?;
        }
        state.commit(raw, Some(slot));
        drop(state);
        for (waker_token, w) in &mut self.wakers {
            if w.fd().as_raw_fd() == raw {
                *waker_token = registration.token;
            }
        }
        Ok(())
    }

    /// Stop watching `fd` and return its registration.
    ///
    /// Takes anything with a descriptor number, so a descriptor that was
    /// closed first (against the rule) can still be forgotten: pass the old
    /// number. Until then, select and poll report such a descriptor as an
    /// error event; epoll drops it silently once every duplicate is closed.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` is not registered.
    pub fn unregister<F: AsRawFd + ?Sized>(&mut self, fd: &F) -> io::Result<Registration> {
        let raw = fd.as_raw_fd();
        let mut state = self.table.lock();
        state.apply_pending(&mut self.sys)?;
        let (change, old) = state.plan_unregister(raw)?;
        table::apply(&mut self.sys, change)?;
        state.commit(raw, None);
        drop(state);
        if !self.wakers.is_empty() {
            self.wakers.retain(|(_, w)| w.fd().as_raw_fd() != raw);
        }
        Ok(old.registration)
    }

    /// A handle that registers, modifies and unregisters from any thread,
    /// also while this selector waits in [`select`](Selector::select).
    ///
    /// The first call makes the selector's internal wake descriptor (an
    /// eventfd or pipe, not counted in [`len`](Selector::len)).
    ///
    /// # Errors
    ///
    /// The kernel's error creating or registering that descriptor.
    pub fn registry(&mut self) -> io::Result<Registry> {
        if let Table::Own(state) = &mut self.table {
            let wake = sys::waker::WakerFd::new()?;
            let reg = Reg {
                interest: Interest::READABLE,
                mode: Mode::Level,
                exclusive: false,
                tag: Tag::INTERNAL,
            };
            dispatch!(&mut self.sys, b => b.register(wake.fd(), reg))?;
            let state = std::mem::take(state);
            let shared = Shared::new(self.kind, &self.sys, state, wake);
            self.table = Table::Shared(Arc::new(shared));
        }
        match &self.table {
            Table::Shared(shared) => Ok(Registry::new(Arc::clone(shared))),
            Table::Own(_) => unreachable!("shared just above"),
        }
    }

    /// The registration of `fd`, if any (Python's `get_key`).
    pub fn registration<F: AsRawFd + ?Sized>(&self, fd: &F) -> Option<Registration> {
        self.slot(fd).map(|s| s.registration)
    }

    /// The mode `fd` is registered in, if it is registered.
    pub fn mode<F: AsRawFd + ?Sized>(&self, fd: &F) -> Option<Mode> {
        self.slot(fd).map(|s| s.mode)
    }

    fn slot<F: AsRawFd + ?Sized>(&self, fd: &F) -> Option<Slot> {
        self.table
            .read(|state| state.slot(fd.as_raw_fd()).ok().flatten())
    }

    /// How many descriptors are registered.
    pub fn len(&self) -> usize {
        self.table.read(State::len)
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Close the selector and its kernel object, forgetting every
    /// registration (Python's `close`). The same as dropping it; the
    /// registered descriptors themselves stay open, as they belong to the
    /// caller.
    pub fn close(self) {
        drop(self);
    }
}
