//! [`Selector`]: the `selectors.BaseSelector` idea over interchangeable
//! backends, with the bookkeeping done once, above them.

use crate::backend::{dispatch, Sys};
use crate::event::Ready;
use crate::sys::{self, Backend, Reg};
use crate::{BackendKind, Event, Events, Interest, Mode, Token, Waker};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a descriptor is registered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The caller's token, handed back with each event.
    pub token: Token,
    /// What the descriptor is watched for.
    pub interest: Interest,
}

/// A registration's slot in the facade's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    registration: Registration,
    mode: Mode,
}

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
    /// Registration by descriptor number; dense, since the kernel hands out
    /// the lowest free numbers.
    table: Vec<Option<Slot>>,
    count: usize,
    /// The wakers' descriptors, each drained whenever it is reported.
    pub(crate) wakers: Vec<(Token, Arc<sys::waker::WakerFd>)>,
}

// A selector is built on one thread and run on another (one per worker).
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Selector>();
    assert_send::<Waker>();
};

fn table_index(fd: RawFd) -> io::Result<usize> {
    usize::try_from(fd)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid fd {fd}")))
}

fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("fd {fd} is not registered"),
    )
}

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
            sys,
            kind,
            table: Vec::new(),
            count: 0,
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
        let fd = fd.as_fd();
        let raw = fd.as_raw_fd();
        let i = table_index(raw)?;
        self.kind.check(interest, mode)?;
        if let Some(Some(_)) = self.table.get(i) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {raw} is already registered"),
            ));
        }
        // poll and select would only notice a bad descriptor at the next wait;
        // check now so every backend refuses it here, the same way.
        if !self.kind.checks_descriptors() && !sys::is_open(raw) {
            return Err(closed(raw));
        }
        let reg = Reg {
            interest,
            mode,
            tag: sys::Tag::pack(raw, token, interest),
        };
        dispatch!(&mut self.sys, b => b.register(fd, reg)).map_err(|e| closed_if_ebadf(raw, e))?;
        if self.table.len() <= i {
            self.table.resize(i + 1, None);
        }
        let registration = Registration { token, interest };
        self.table[i] = Some(Slot { registration, mode });
        self.count += 1;
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
        let fd = fd.as_fd();
        let mode = self.slot(fd.as_raw_fd())?.map_or(Mode::Level, |s| s.mode);
        self.modify_with(fd, token, interest, mode)
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
        let fd = fd.as_fd();
        let raw = fd.as_raw_fd();
        let slot = self.slot(raw)?;
        let old = slot.ok_or_else(|| not_registered(raw))?;
        self.kind.check(interest, mode)?;
        let new = Slot {
            registration: Registration { token, interest },
            mode,
        };
        // A level registration that stays the same needs no kernel call; any
        // other change does (a new token too: epoll carries it in the
        // kernel), and so does re-arming a oneshot or edge registration.
        let call = old != new || mode != Mode::Level;
        // epoll_ctl notices a closed descriptor itself; poll and select, or
        // no call at all, would not, so ask, as register does.
        let kernel_checks = self.kind.checks_descriptors() && call;
        if !kernel_checks && !sys::is_open(raw) {
            return Err(closed(raw));
        }
        if call {
            let reg = Reg {
                interest,
                mode,
                tag: sys::Tag::pack(raw, token, interest),
            };
            dispatch!(&mut self.sys, b => b.modify(fd, reg))
                .map_err(|e| closed_if_ebadf(raw, e))?;
        }
        self.table[raw as usize] = Some(new);
        for (waker_token, w) in &mut self.wakers {
            if w.fd().as_raw_fd() == raw {
                *waker_token = token;
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
        let old = self.slot(raw)?.ok_or_else(|| not_registered(raw))?;
        dispatch!(&mut self.sys, b => b.unregister(raw))?;
        self.table[raw as usize] = None;
        self.count -= 1;
        self.wakers.retain(|(_, w)| w.fd().as_raw_fd() != raw);
        Ok(old.registration)
    }

    /// The registration of `fd`, if any (Python's `get_key`).
    pub fn registration<F: AsRawFd + ?Sized>(&self, fd: &F) -> Option<Registration> {
        self.slot(fd.as_raw_fd())
            .ok()
            .flatten()
            .map(|s| s.registration)
    }

    /// The mode `fd` is registered in, if it is registered.
    pub fn mode<F: AsRawFd + ?Sized>(&self, fd: &F) -> Option<Mode> {
        self.slot(fd.as_raw_fd()).ok().flatten().map(|s| s.mode)
    }

    /// How many descriptors are registered.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Close the selector and its kernel object, forgetting every
    /// registration (Python's `close`). The same as dropping it; the
    /// registered descriptors themselves stay open, as they belong to the
    /// caller.
    pub fn close(self) {
        drop(self);
    }

    /// Wait until a registered descriptor is ready or `timeout` passes, and
    /// fill `events` with what is ready.
    ///
    /// `None` waits forever; zero only looks. Timeouts round up to the
    /// backend's resolution (1 ms). A timeout leaves `events` empty; it is not
    /// an error. A signal interrupting the wait (`EINTR`) is retried with the
    /// time that remains (PEP 475's rule): deliver signals to the loop through
    /// a [`Waker`] or a self-pipe registered here, not through `EINTR`.
    ///
    /// # Errors
    ///
    /// The kernel's error from the wait (`EINVAL`, `ENOMEM`).
    pub fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // Only a wait that can be cut short needs the clock: zero retries as
        // zero, and none as none.
        let deadline = match timeout {
            Some(t) if !t.is_zero() => Instant::now().checked_add(t),
            _ => None,
        };
        let mut remaining = timeout;
        let table = &self.table;
        let wakers = &self.wakers[..];
        let max = events.capacity();
        let mut emit = |tag: sys::Tag, ready: Ready| {
            let (token, interest) = match tag.unpack() {
                Ok(registration) => registration,
                Err(fd) => match table.get(fd as usize) {
                    Some(Some(s)) => (s.registration.token, s.registration.interest),
                    _ => return, // raced with unregister; not ours any more
                },
            };
            for (waker_token, w) in wakers {
                if *waker_token == token {
                    w.drain();
                }
            }
            events.push(Event::new(token, filter(ready, interest)));
        };
        loop {
            match dispatch!(&mut self.sys, b => b.select(remaining, max, &mut emit)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if let Some(deadline) = deadline {
                        remaining = Some(deadline.saturating_duration_since(Instant::now()));
                    }
                }
                result => return result,
            }
        }
    }

    fn slot(&self, fd: RawFd) -> io::Result<Option<Slot>> {
        let i = table_index(fd)?;
        Ok(self.table.get(i).copied().flatten())
    }
}

fn closed(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("fd {fd} is not an open file descriptor"),
    )
}

/// The kernel's EBADF means `fd` is closed: say so, as [`closed`] does.
fn closed_if_ebadf(fd: RawFd, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(rustix::io::Errno::BADF.raw_os_error()) {
        closed(fd)
    } else {
        e
    }
}

/// The one place readiness gets its meaning (see [`Event`]): an error makes
/// a descriptor readable and writable, a hangup readable (the read or write
/// then reports it, as select(2) does); readable, writable and priority only
/// as asked. A hangup closes both directions; an error, writing.
fn filter(mut ready: Ready, interest: Interest) -> Ready {
    if ready.contains(Ready::ERROR) {
        ready.insert(Ready::READABLE);
        ready.insert(Ready::WRITABLE);
        ready.insert(Ready::WRITE_CLOSED);
    }
    if ready.contains(Ready::HANGUP) {
        ready.insert(Ready::READABLE);
        ready.insert(Ready::READ_CLOSED);
        ready.insert(Ready::WRITE_CLOSED);
    }
    let mut out = Ready::default();
    if interest.is_readable() && ready.contains(Ready::READABLE) {
        out.insert(Ready::READABLE);
    }
    if interest.is_writable() && ready.contains(Ready::WRITABLE) {
        out.insert(Ready::WRITABLE);
    }
    if interest.is_priority() && ready.contains(Ready::PRIORITY) {
        out.insert(Ready::PRIORITY);
    }
    for bit in [
        Ready::ERROR,
        Ready::HANGUP,
        Ready::READ_CLOSED,
        Ready::WRITE_CLOSED,
    ] {
        if ready.contains(bit) {
            out.insert(bit);
        }
    }
    out
}
