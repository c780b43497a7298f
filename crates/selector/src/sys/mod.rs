//! The backends: one file per readiness syscall, one contract for all.
//!
//! Every backend provides five operations:
//!
//! - **create** a kernel object (or an empty table) to hold registrations;
//! - **register** an open descriptor with an interest (readable, writable,
//!   priority, or a union) and a mode (level, oneshot, edge) that the facade
//!   has checked the backend supports;
//! - **modify** the interest of a registered descriptor in place, which also
//!   re-arms a oneshot registration;
//! - **unregister** a descriptor, which may already be closed: a backend must
//!   then forget it quietly, because the caller's close came first;
//! - **select**: wait up to a timeout (`None` = forever, zero = just look) and
//!   report each ready descriptor once, as raw readiness bits.
//!
//! Two more are optional, and a backend without them says so: **select
//! into records**, a wait into a [`Records`] buffer the backend owns, for a
//! kernel whose records can be read as they are (epoll), and a **direct**
//! handle through which other threads change registrations in the kernel
//! while a wait is under way (epoll again).
//!
//! Readiness is level-triggered by default, as with the tutorial's
//! `select.select`: a descriptor is reported on every call for as long as it
//! stays ready. Oneshot is the kernel's where it has it (epoll, kqueue) and
//! the backend's own bookkeeping elsewhere (poll, select: a reported
//! descriptor leaves the set until modified). Backends report what the
//! kernel said — readable, writable, priority, read closed, error, hangup —
//! as [`Ready`] bits, and leave the rest to the facade (`Selector`), which
//! owns the descriptor table, rejects misuse (double registration, unknown
//! descriptors) in one place, filters by interest, maps reports to tokens,
//! and retries `EINTR`. A backend names each report by the [`Tag`] the
//! facade gave the registration, which it keeps without reading it.
//!
//! The layers run one way: this module and its backends use only the value
//! types below the facade (`Interest`, `Mode`, `Token`) and the OS; nothing
//! here names a facade type, and every `unsafe` block of the crate is here.

use crate::{Interest, Mode};
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

#[cfg(has_epoll)]
pub(crate) mod epoll;
#[cfg(feature = "faults")]
pub(crate) mod faults;
#[cfg(has_kqueue)]
pub(crate) mod kqueue;
pub(crate) mod poll;
mod ready;
mod records;
pub(crate) mod select;
mod tag;
pub(crate) mod waker;

pub(crate) use ready::Ready;
pub(crate) use records::{Records, RecordsIter};
pub(crate) use tag::Tag;

/// The contract above, in types.
pub(crate) trait Backend: Sized {
    /// An empty backend.
    fn create() -> io::Result<Self>;
    /// Start watching `fd`, which the facade has checked is not registered.
    /// A backend that can keep a word per registration in the kernel keeps
    /// `tag` and reports it; the others report [`Tag::fd`].
    fn register(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()>;
    /// Change the interest, mode and tag of a registered `fd`, re-arming it.
    fn modify(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()>;
    /// Stop watching `fd`; it may already be closed.
    fn unregister(&mut self, fd: RawFd) -> io::Result<()>;
    /// Wait once (no `EINTR` retry) and call `emit` once per ready descriptor,
    /// at most `max` times where the kernel allows a bound.
    fn select(
        &mut self,
        timeout: Option<Duration>,
        max: usize,
        emit: &mut impl FnMut(Tag, Ready),
    ) -> io::Result<()>;
    /// Wait once into `records`, the backend's own buffer, for up to `max`
    /// records: `Ok(true)`. `Ok(false)`, having waited for nothing, when the
    /// backend has no such buffer or cannot use it now; the caller then
    /// calls [`select`](Backend::select).
    fn select_records(
        &mut self,
        timeout: Option<Duration>,
        max: usize,
        records: &mut Records,
    ) -> io::Result<bool> {
        let _ = (timeout, max, records);
        Ok(false)
    }
    /// A handle through which other threads change registrations straight
    /// in the kernel, while this backend waits; `None` (the default) when
    /// changes must be queued for the selecting thread.
    fn direct(&self) -> Option<Direct> {
        None
    }
}

/// Changes registrations from any thread without the backend (epoll:
/// epoll_ctl on the shared descriptor, which a wait under way sees).
#[derive(Debug)]
pub(crate) struct Direct {
    #[cfg(has_epoll)]
    pub(super) epoll: std::sync::Arc<std::os::fd::OwnedFd>,
}

impl Direct {
    /// Applies `change`: `Ok(false)` when it must go through the backend
    /// after all (a regular file, which only a backend's side list holds).
    pub(crate) fn apply(&self, change: Change) -> io::Result<bool> {
        #[cfg(has_epoll)]
        return epoll::apply_direct(&self.epoll, change);
        #[cfg(not(has_epoll))]
        {
            let _ = change;
            Ok(false)
        }
    }
}

/// One change for a backend, by descriptor number: what the facade queues
/// for the selecting thread, or hands epoll directly from another thread.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Change {
    Register(RawFd, Reg),
    Modify(RawFd, Reg),
    Unregister(RawFd),
}

/// What the facade hands a backend for one registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reg {
    pub(crate) interest: Interest,
    pub(crate) mode: Mode,
    /// Wake one waiter, not all (epoll's `EPOLLEXCLUSIVE`); the facade
    /// sends it only to a backend that has it, and never with oneshot.
    pub(crate) exclusive: bool,
    pub(crate) tag: Tag,
}

/// A timeout in whole milliseconds for epoll_wait(2) where epoll_pwait2 is
/// missing, `-1` for none. Rounded *up*: a 0.3 ms timeout must not become a
/// zero-timeout busy spin, nor return before its time, so anything below
/// the resolution waits one full millisecond.
#[cfg(test)]
pub(crate) fn timeout_millis(timeout: Option<Duration>) -> i32 {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    }
}

/// The timeout as the `Timespec` ppoll, pselect6, epoll_pwait2 and kevent
/// take (`None` = forever), to the nanosecond: the kernel then sleeps at
/// least that long. A duration past the largest `Timespec` waits as long as
/// one can.
pub(crate) fn timespec(timeout: Option<Duration>) -> Option<rustix::event::Timespec> {
    timeout.map(|t| rustix::event::Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    })
}

/// Descriptors epoll and kqueue cannot watch (regular files), which select
/// and poll report ready for whatever is asked: kept on a side list and
/// reported on every call — once, for oneshot and edge registrations, until
/// modified.
#[cfg(any(has_epoll, has_kqueue))]
#[derive(Debug, Default)]
pub(crate) struct AlwaysReady {
    /// Descriptor, registration, and whether it is armed.
    entries: Vec<(RawFd, Reg, bool)>,
}

#[cfg(any(has_epoll, has_kqueue))]
impl AlwaysReady {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn register(&mut self, fd: RawFd, reg: Reg) {
        self.entries.push((fd, reg, true));
    }

    /// Whether `fd` is here; if so, it takes `reg` and is armed again.
    pub(crate) fn modify(&mut self, fd: RawFd, reg: Reg) -> bool {
        let entry = self.entries.iter_mut().find(|(f, _, _)| *f == fd);
        entry.map(|entry| *entry = (fd, reg, true)).is_some()
    }

    /// Whether `fd` was here.
    pub(crate) fn unregister(&mut self, fd: RawFd) -> bool {
        let i = self.entries.iter().position(|(f, _, _)| *f == fd);
        i.map(|i| self.entries.swap_remove(i)).is_some()
    }

    /// Whether a wait must not sleep: something here will be reported.
    pub(crate) fn any_armed(&self) -> bool {
        self.entries.iter().any(|&(_, _, armed)| armed)
    }

    pub(crate) fn emit(&mut self, emit: &mut impl FnMut(Tag, Ready)) {
        for (_, reg, armed) in &mut self.entries {
            if !*armed {
                continue;
            }
            let mut ready = Ready::default();
            if reg.interest.is_readable() {
                ready.insert(Ready::READABLE);
            }
            if reg.interest.is_writable() {
                ready.insert(Ready::WRITABLE);
            }
            *armed = reg.mode == Mode::Level;
            emit(reg.tag, ready);
        }
    }
}

/// The poll(2) events for `interest`. Read interest also asks for
/// `POLLRDHUP` where the kernel has it, to tell a half-closed peer.
pub(crate) fn poll_flags(interest: Interest) -> rustix::event::PollFlags {
    use rustix::event::PollFlags;
    let mut flags = PollFlags::empty();
    if interest.is_readable() {
        flags |= PollFlags::IN | RDHUP;
    }
    if interest.is_writable() {
        flags |= PollFlags::OUT;
    }
    if interest.is_priority() {
        flags |= PollFlags::PRI;
    }
    flags
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) const RDHUP: rustix::event::PollFlags = rustix::event::PollFlags::RDHUP;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) const RDHUP: rustix::event::PollFlags = rustix::event::PollFlags::empty();

/// Readiness bits from poll(2)'s `revents`.
pub(crate) fn ready_from_poll(revents: rustix::event::PollFlags) -> Ready {
    use rustix::event::PollFlags;
    let mut ready = Ready::default();
    if revents.contains(PollFlags::IN) {
        ready.insert(Ready::READABLE);
    }
    if !RDHUP.is_empty() && revents.contains(RDHUP) {
        ready.insert(Ready::READABLE);
        ready.insert(Ready::READ_CLOSED);
    }
    if revents.contains(PollFlags::PRI) {
        ready.insert(Ready::PRIORITY);
    }
    if revents.contains(PollFlags::OUT) {
        ready.insert(Ready::WRITABLE);
    }
    if revents.intersects(PollFlags::ERR | PollFlags::NVAL) {
        ready.insert(Ready::ERROR);
    }
    if revents.contains(PollFlags::HUP) {
        ready.insert(Ready::HANGUP);
    }
    ready
}

/// The error for a negative descriptor number.
#[cold]
pub(crate) fn invalid_fd(fd: RawFd) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("invalid fd {fd}"))
}

/// `fd` as a borrowed descriptor, for the facade's calls that name a
/// registration by number ([`KeySelector`](crate::KeySelector) keys).
///
/// # Errors
///
/// `InvalidInput` for a negative number, which no descriptor has.
#[inline]
pub(crate) fn borrow_number(fd: RawFd) -> io::Result<BorrowedFd<'static>> {
    if fd < 0 {
        return Err(invalid_fd(fd));
    }
    // SAFETY: not -1 (checked). The borrow is only handed to the selector's
    // register and modify, which check the descriptor is open (poll, select)
    // or pass it to epoll_ctl / kevent, which answer EBADF for a closed one;
    // nothing is read or written through it, and the caller drops it at
    // once.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Whether `fd` names an open descriptor.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags; on a closed fd the
    // kernel answers EBADF, which is the point of asking.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(borrowed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespecs_keep_the_nanoseconds() {
        assert_eq!(timespec(None), None);
        let ts = timespec(Some(Duration::new(3, 200_001))).expect("finite");
        assert_eq!((ts.tv_sec, ts.tv_nsec), (3, 200_001));
        let ts = timespec(Some(Duration::MAX)).expect("finite");
        assert_eq!(ts.tv_sec, i64::MAX);
    }

    #[test]
    fn timeouts_round_up_to_the_millisecond() {
        assert_eq!(timeout_millis(None), -1);
        assert_eq!(timeout_millis(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_millis(Some(Duration::from_micros(300))), 1);
        assert_eq!(timeout_millis(Some(Duration::from_micros(1001))), 2);
        assert_eq!(timeout_millis(Some(Duration::from_secs(3))), 3000);
        assert_eq!(
            timeout_millis(Some(Duration::from_secs(u64::MAX))),
            i32::MAX
        );
    }
}
