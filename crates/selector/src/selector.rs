//! [`Selector`]: the `selectors.BaseSelector` idea over interchangeable
//! backends, with the bookkeeping done once, above them.

use crate::event::Ready;
use crate::sys::{self, Backend};
use crate::{Event, Events, Interest, Token};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which readiness syscall a [`Selector`] uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The best this OS has: epoll on Linux, kqueue on macOS and the BSDs,
    /// poll elsewhere (like Python's `DefaultSelector`).
    #[default]
    Auto,
    /// epoll(7): cost follows the number of ready descriptors. Linux only.
    Epoll,
    /// poll(2): cost follows the number registered.
    Poll,
    /// select(2): cost follows the highest descriptor number.
    Select,
    /// kqueue(2): cost follows the number of ready descriptors. macOS and
    /// the BSDs only.
    Kqueue,
}

impl BackendKind {
    /// Every name [`FromStr`] accepts on this OS, for help texts.
    #[cfg(has_epoll)]
    pub const NAMES: [&'static str; 4] = ["auto", "epoll", "poll", "select"];
    /// Every name [`FromStr`] accepts on this OS, for help texts.
    #[cfg(has_kqueue)]
    pub const NAMES: [&'static str; 4] = ["auto", "kqueue", "poll", "select"];
    /// Every name [`FromStr`] accepts on this OS, for help texts.
    #[cfg(not(any(has_epoll, has_kqueue)))]
    pub const NAMES: [&'static str; 3] = ["auto", "poll", "select"];

    /// Whether the kernel itself refuses a closed descriptor when this
    /// backend registers it (epoll_ctl and kevent do; poll and select only
    /// notice at the next wait).
    fn checks_descriptors(self) -> bool {
        matches!(self, BackendKind::Epoll | BackendKind::Kqueue)
    }

    /// The concrete backend `Auto` stands for on this OS; others are themselves.
    pub fn resolve(self) -> BackendKind {
        match self {
            #[cfg(has_epoll)]
            BackendKind::Auto => BackendKind::Epoll,
            #[cfg(has_kqueue)]
            BackendKind::Auto => BackendKind::Kqueue,
            #[cfg(not(any(has_epoll, has_kqueue)))]
            BackendKind::Auto => BackendKind::Poll,
            other => other,
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Auto => "auto",
            BackendKind::Epoll => "epoll",
            BackendKind::Poll => "poll",
            BackendKind::Select => "select",
            BackendKind::Kqueue => "kqueue",
        })
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let kind = match s {
            "auto" => BackendKind::Auto,
            "epoll" => BackendKind::Epoll,
            "poll" => BackendKind::Poll,
            "select" => BackendKind::Select,
            "kqueue" => BackendKind::Kqueue,
            other => {
                return Err(format!(
                    "unknown backend {other:?}; expected one of: {}",
                    BackendKind::NAMES.join(", ")
                ))
            }
        };
        if !BackendKind::NAMES.contains(&s) {
            return Err(format!(
                "the {s} backend does not exist on this OS; expected one of: {}",
                BackendKind::NAMES.join(", ")
            ));
        }
        Ok(kind)
    }
}

/// Dispatch over the backend structs: no `dyn`, each backend in its file.
#[derive(Debug)]
enum Sys {
    #[cfg(has_epoll)]
    Epoll(sys::epoll::Epoll),
    Poll(sys::poll::Poll),
    Select(sys::select::Select),
    #[cfg(has_kqueue)]
    Kqueue(sys::kqueue::Kqueue),
    #[cfg(feature = "faults")]
    Faulty(sys::faults::Faulty),
}

macro_rules! dispatch {
    ($sys:expr, $b:ident => $body:expr) => {
        match $sys {
            #[cfg(has_epoll)]
            Sys::Epoll($b) => $body,
            Sys::Poll($b) => $body,
            Sys::Select($b) => $body,
            #[cfg(has_kqueue)]
            Sys::Kqueue($b) => $body,
            #[cfg(feature = "faults")]
            Sys::Faulty($b) => $body,
        }
    };
}

/// What a descriptor is registered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The caller's token, handed back with each event.
    pub token: Token,
    /// What the descriptor is watched for.
    pub interest: Interest,
}

/// Waits on many descriptors at once and reports which are ready.
///
/// Level-triggered on every backend: a descriptor is reported by each
/// [`select`](Selector::select) for as long as it stays ready. Descriptors
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
    table: Vec<Option<Registration>>,
    count: usize,
    /// The waker's descriptor, drained whenever it is reported.
    waker: Option<(Token, Arc<sys::waker::WakerFd>)>,
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
        let sys = match kind {
            #[cfg(has_epoll)]
            BackendKind::Epoll => Sys::Epoll(sys::epoll::Epoll::create()?),
            #[cfg(has_kqueue)]
            BackendKind::Kqueue => Sys::Kqueue(sys::kqueue::Kqueue::create()?),
            #[cfg(not(has_epoll))]
            BackendKind::Epoll => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the epoll backend exists only on Linux",
                ))
            }
            #[cfg(not(has_kqueue))]
            BackendKind::Kqueue => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the kqueue backend exists only on macOS and the BSDs",
                ))
            }
            BackendKind::Poll | BackendKind::Auto => Sys::Poll(sys::poll::Poll::create()?),
            BackendKind::Select => Sys::Select(sys::select::Select::create()?),
        };
        Ok(Selector::from_sys(sys, kind))
    }

    fn from_sys(sys: Sys, kind: BackendKind) -> Selector {
        Selector {
            sys,
            kind,
            table: Vec::new(),
            count: 0,
            waker: None,
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

    /// Start watching `fd` for `interest`; events carry `token`.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if `fd` is registered, `InvalidInput` if it is not an
    /// open descriptor, or the kernel's error (epoll: `ENOMEM`, `ENOSPC`).
    pub fn register(&mut self, fd: impl AsFd, token: Token, interest: Interest) -> io::Result<()> {
        let fd = fd.as_fd();
        let raw = fd.as_raw_fd();
        let i = table_index(raw)?;
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
        let tag = sys::Tag::pack(raw, token, interest);
        dispatch!(&mut self.sys, b => b.register(fd, interest, tag))
            .map_err(|e| closed_if_ebadf(raw, e))?;
        if self.table.len() <= i {
            self.table.resize(i + 1, None);
        }
        self.table[i] = Some(Registration { token, interest });
        self.count += 1;
        Ok(())
    }

    /// Change what a registered `fd` is watched for, and its token, in place.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` is not registered, `InvalidInput` if it was closed
    /// behind the selector's back; the kernel's error otherwise. After an
    /// error the registration is left as it was.
    pub fn modify(&mut self, fd: impl AsFd, token: Token, interest: Interest) -> io::Result<()> {
        let fd = fd.as_fd();
        let raw = fd.as_raw_fd();
        let slot = self.slot(raw)?;
        let old = slot.ok_or_else(|| not_registered(raw))?;
        // epoll_ctl notices a closed descriptor itself; poll and select, or
        // a change of token alone, would not, so ask, as register does.
        let new = Registration { token, interest };
        let kernel_checks = self.kind.checks_descriptors() && old != new;
        if !kernel_checks && !sys::is_open(raw) {
            return Err(closed(raw));
        }
        if old != new {
            // A new token matters too: epoll carries it in the kernel.
            let tag = sys::Tag::pack(raw, token, interest);
            dispatch!(&mut self.sys, b => b.modify(fd, interest, tag))
                .map_err(|e| closed_if_ebadf(raw, e))?;
        }
        self.table[raw as usize] = Some(new);
        if let Some((waker_token, w)) = &mut self.waker {
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
        if self
            .waker
            .as_ref()
            .is_some_and(|(_, w)| w.fd().as_raw_fd() == raw)
        {
            self.waker = None;
        }
        Ok(old)
    }

    /// The registration of `fd`, if any (Python's `get_key`).
    pub fn registration<F: AsRawFd + ?Sized>(&self, fd: &F) -> Option<Registration> {
        self.slot(fd.as_raw_fd()).ok().flatten()
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
        let waker = self.waker.as_ref().map(|(token, fd)| (*token, &**fd));
        let max = events.capacity();
        let mut emit = |tag: sys::Tag, ready: Ready| {
            let (token, interest) = match tag.unpack() {
                Ok(registration) => registration,
                Err(fd) => match table.get(fd as usize) {
                    Some(Some(r)) => (r.token, r.interest),
                    _ => return, // raced with unregister; not ours any more
                },
            };
            if let Some((waker_token, w)) = waker {
                if waker_token == token {
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

    fn slot(&self, fd: RawFd) -> io::Result<Option<Registration>> {
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
/// then reports it, as select(2) does); readable and writable only as asked.
fn filter(mut ready: Ready, interest: Interest) -> Ready {
    if ready.contains(Ready::ERROR) {
        ready.insert(Ready::READABLE);
        ready.insert(Ready::WRITABLE);
    }
    if ready.contains(Ready::HANGUP) {
        ready.insert(Ready::READABLE);
    }
    let mut out = Ready::default();
    if interest.is_readable() && ready.contains(Ready::READABLE) {
        out.insert(Ready::READABLE);
    }
    if interest.is_writable() && ready.contains(Ready::WRITABLE) {
        out.insert(Ready::WRITABLE);
    }
    for bit in [Ready::ERROR, Ready::HANGUP] {
        if ready.contains(bit) {
            out.insert(bit);
        }
    }
    out
}

/// Wakes a [`Selector`] blocked in `select` from another thread, or from a
/// signal handler's thread through signal-hook.
///
/// Each `wake` makes the selector report one event with the waker's token
/// (wakes before it is reported coalesce). Clones share one descriptor.
///
/// # Examples
///
/// ```
/// use selector::{Events, Selector, Token, Waker};
///
/// let mut selector = Selector::new()?;
/// let waker = Waker::new(&mut selector, Token(0))?;
/// let remote = waker.clone();
/// std::thread::spawn(move || remote.wake()).join().unwrap()?;
///
/// let mut events = Events::with_capacity(8);
/// selector.select(&mut events, None)?;
/// assert_eq!(events.iter().next().map(|e| e.token()), Some(Token(0)));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Waker {
    fd: Arc<sys::waker::WakerFd>,
}

impl Waker {
    /// A waker registered in `selector` under `token`.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if the selector has a waker; the kernel's error
    /// creating the eventfd or pipe.
    pub fn new(selector: &mut Selector, token: Token) -> io::Result<Waker> {
        if selector.waker.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "this selector already has a waker",
            ));
        }
        let fd = Arc::new(sys::waker::WakerFd::new()?);
        selector.register(fd.fd(), token, Interest::READABLE)?;
        selector.waker = Some((token, Arc::clone(&fd)));
        Ok(Waker { fd })
    }

    /// Make the selector's current or next `select` return.
    ///
    /// # Errors
    ///
    /// The kernel's error writing the eventfd or pipe (not "full": a full
    /// one already has a wake pending).
    pub fn wake(&self) -> io::Result<()> {
        self.fd.wake()
    }
}
