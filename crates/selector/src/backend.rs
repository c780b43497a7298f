//! The list of backends, in one place: [`BackendKind`] (names, parsing,
//! what each supports) and the enum that dispatches to the backend structs
//! in `sys/`. A new backend touches this file and adds its own in `sys/`.

use crate::sys::{self, Backend};
use crate::{Interest, Mode, Unsupported};
use std::fmt;
use std::io;
use std::str::FromStr;

/// Which readiness syscall a [`Selector`](crate::Selector) uses.
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

/// Every backend with its name and whether this OS has it: the one list
/// that `NAMES`, `Display` and `FromStr` read.
const ALL: [(BackendKind, &str, bool); 5] = [
    (BackendKind::Auto, "auto", true),
    (BackendKind::Epoll, "epoll", cfg!(has_epoll)),
    (BackendKind::Kqueue, "kqueue", cfg!(has_kqueue)),
    (BackendKind::Poll, "poll", true),
    (BackendKind::Select, "select", true),
];

const fn available() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < ALL.len() {
        if ALL[i].2 {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn names() -> [&'static str; available()] {
    let mut names = [""; available()];
    let (mut i, mut n) = (0, 0);
    while i < ALL.len() {
        if ALL[i].2 {
            names[n] = ALL[i].1;
            n += 1;
        }
        i += 1;
    }
    names
}

const fn concrete() -> [BackendKind; available() - 1] {
    let mut kinds = [BackendKind::Poll; available() - 1];
    let (mut i, mut n) = (0, 0);
    while i < ALL.len() {
        if ALL[i].2 && !matches!(ALL[i].0, BackendKind::Auto) {
            kinds[n] = ALL[i].0;
            n += 1;
        }
        i += 1;
    }
    kinds
}

impl BackendKind {
    /// Every name [`FromStr`] accepts on this OS, for help texts.
    pub const NAMES: [&'static str; available()] = names();

    /// Every concrete backend this OS has (all but `Auto`), best first:
    /// what a test or benchmark runs on each backend.
    pub const CONCRETE: [BackendKind; available() - 1] = concrete();

    /// The concrete backend `Auto` stands for on this OS; others are themselves.
    pub fn resolve(self) -> BackendKind {
        match self {
            BackendKind::Auto if cfg!(has_epoll) => BackendKind::Epoll,
            BackendKind::Auto if cfg!(has_kqueue) => BackendKind::Kqueue,
            BackendKind::Auto => BackendKind::Poll,
            other => other,
        }
    }

    /// Whether this backend can register in `mode` (`Auto` as resolved).
    /// Level and oneshot work everywhere (poll and select emulate oneshot);
    /// edge-triggered needs epoll or kqueue.
    pub fn supports(self, mode: Mode) -> bool {
        match mode {
            Mode::Level | Mode::Oneshot => true,
            Mode::Edge => matches!(self.resolve(), BackendKind::Epoll | BackendKind::Kqueue),
        }
    }

    /// Whether this backend can watch for `interest` (`Auto` as resolved):
    /// all but kqueue, which has no portable urgent-data filter, watch for
    /// [`Interest::PRIORITY`].
    pub fn supports_interest(self, interest: Interest) -> bool {
        !(interest.is_priority() && self.resolve() == BackendKind::Kqueue)
    }

    /// Whether this backend can register with exclusive wakeups (`Auto` as
    /// resolved): epoll only (`EPOLLEXCLUSIVE`, Linux 4.5+).
    pub fn supports_exclusive(self) -> bool {
        self.resolve() == BackendKind::Epoll
    }

    /// `Ok` when [`supports`](Self::supports) and
    /// [`supports_interest`](Self::supports_interest) say so, else the
    /// typed reason.
    #[inline]
    pub(crate) fn check(self, interest: Interest, mode: Mode) -> Result<(), Unsupported> {
        if !self.supports(mode) {
            return Err(Unsupported::Mode(self, mode));
        }
        if !self.supports_interest(interest) {
            return Err(Unsupported::Priority(self));
        }
        Ok(())
    }

    /// Whether the kernel itself refuses a closed descriptor when this
    /// backend registers it (epoll_ctl and kevent do; poll and select only
    /// notice at the next wait).
    pub(crate) fn checks_descriptors(self) -> bool {
        matches!(self, BackendKind::Epoll | BackendKind::Kqueue)
    }

    fn name(self) -> &'static str {
        ALL.iter()
            .find(|(kind, _, _)| *kind == self)
            .map_or("?", |(_, name, _)| name)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = BackendKind::NAMES.join(", ");
        match ALL.iter().find(|(_, name, _)| *name == s) {
            Some((kind, _, true)) => Ok(*kind),
            Some(_) => Err(format!(
                "the {s} backend does not exist on this OS; expected one of: {expected}"
            )),
            None => Err(format!(
                "unknown backend {s:?}; expected one of: {expected}"
            )),
        }
    }
}

/// Dispatch over the backend structs: no `dyn`, each backend in its file.
#[derive(Debug)]
pub(crate) enum Sys {
    #[cfg(has_epoll)]
    Epoll(sys::epoll::Epoll),
    Poll(sys::poll::Poll),
    Select(sys::select::Select),
    #[cfg(has_kqueue)]
    Kqueue(sys::kqueue::Kqueue),
    #[cfg(feature = "faults")]
    Faulty(sys::faults::Faulty),
}

/// `dispatch!(sys, b => b.op(...))`: the same call on whichever backend.
macro_rules! dispatch {
    ($sys:expr, $b:ident => $body:expr) => {
        match $sys {
            #[cfg(has_epoll)]
            $crate::backend::Sys::Epoll($b) => $body,
            $crate::backend::Sys::Poll($b) => $body,
            $crate::backend::Sys::Select($b) => $body,
            #[cfg(has_kqueue)]
            $crate::backend::Sys::Kqueue($b) => $body,
            #[cfg(feature = "faults")]
            $crate::backend::Sys::Faulty($b) => $body,
        }
    };
}
pub(crate) use dispatch;

impl Sys {
    /// The backend `kind` names (resolved already).
    pub(crate) fn create(kind: BackendKind) -> io::Result<Sys> {
        let unsupported = |os: &str| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the {kind} backend exists only on {os}"),
            )
        };
        Ok(match kind {
            #[cfg(has_epoll)]
            BackendKind::Epoll => Sys::Epoll(sys::epoll::Epoll::create()?),
            #[cfg(has_kqueue)]
            BackendKind::Kqueue => Sys::Kqueue(sys::kqueue::Kqueue::create()?),
            #[cfg(not(has_epoll))]
            BackendKind::Epoll => return Err(unsupported("Linux")),
            #[cfg(not(has_kqueue))]
            BackendKind::Kqueue => return Err(unsupported("macOS and the BSDs")),
            BackendKind::Poll | BackendKind::Auto => Sys::Poll(sys::poll::Poll::create()?),
            BackendKind::Select => Sys::Select(sys::select::Select::create()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in BackendKind::NAMES {
            let kind: BackendKind = name.parse().expect("listed names parse");
            assert_eq!(kind.to_string(), name);
        }
        assert!("nope".parse::<BackendKind>().is_err());
    }

    #[test]
    fn edge_needs_a_kernel_that_has_it() {
        assert!(!BackendKind::Poll.supports(Mode::Edge));
        assert!(!BackendKind::Select.supports(Mode::Edge));
        assert!(BackendKind::Epoll.supports(Mode::Edge));
        for kind in [BackendKind::Poll, BackendKind::Select, BackendKind::Epoll] {
            assert!(kind.supports(Mode::Level) && kind.supports(Mode::Oneshot));
        }
    }
}
