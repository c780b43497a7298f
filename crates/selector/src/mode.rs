//! How a registration reports readiness over time, and the error for a mode
//! (or interest) a backend cannot honour.

use crate::BackendKind;
use std::fmt;

/// When a registration is reported, chosen per registration with
/// [`Selector::register_with`](crate::Selector::register_with).
///
/// | mode | reported | epoll | kqueue | poll, select |
/// |---|---|---|---|---|
/// | `Level` | on every `select` while ready | yes | yes | yes |
/// | `Oneshot` | once, then disarmed until `modify` | `EPOLLONESHOT` | `EV_ONESHOT` | emulated by the backend |
/// | `Edge` | when readiness changes (new data, new space) | `EPOLLET` | `EV_CLEAR` | `Unsupported` |
///
/// A mode a backend lacks is refused with an [`Unsupported`] error, never
/// replaced by another; ask first with
/// [`Selector::supports`](crate::Selector::supports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Level-triggered, like `select.select`: reported on every call while
    /// the condition holds. The default, and what
    /// [`Selector::register`](crate::Selector::register) uses.
    #[default]
    Level,
    /// Reported by one `select`, then disarmed (nothing more is reported,
    /// not even errors) until [`Selector::modify`](crate::Selector::modify)
    /// re-arms it. On kqueue each direction is a filter of its own, so
    /// with both interests each direction fires once.
    Oneshot,
    /// Edge-triggered: reported when the descriptor *becomes* ready (more
    /// data arrives, space opens up); the caller must read or write until
    /// `WouldBlock` before waiting again. epoll and kqueue only.
    Edge,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Level => "level-triggered",
            Mode::Oneshot => "oneshot",
            Mode::Edge => "edge-triggered",
        })
    }
}

/// What a backend was asked for and cannot do; the error inside an
/// [`std::io::Error`] of kind `Unsupported`.
///
/// # Examples
///
/// ```
/// use selector::{BackendKind, Interest, Mode, Selector, Token, Unsupported};
/// use std::os::unix::net::UnixStream;
///
/// let (a, _b) = UnixStream::pair()?;
/// let mut selector = Selector::with_backend(BackendKind::Poll)?;
/// let err = selector
///     .register_with(&a, Token(1), Interest::READABLE, Mode::Edge)
///     .unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
/// let why = err.get_ref().and_then(|e| e.downcast_ref::<Unsupported>());
/// assert_eq!(why, Some(&Unsupported::Mode(BackendKind::Poll, Mode::Edge)));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unsupported {
    /// The backend has no such mode.
    Mode(BackendKind, Mode),
    /// The backend cannot watch for urgent data ([`Interest::PRIORITY`](crate::Interest::PRIORITY)).
    Priority(BackendKind),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::Mode(kind, mode) => {
                write!(f, "the {kind} backend has no {mode} mode")
            }
            Unsupported::Priority(kind) => {
                write!(f, "the {kind} backend cannot watch for priority data")
            }
        }
    }
}

impl std::error::Error for Unsupported {}

impl From<Unsupported> for std::io::Error {
    fn from(e: Unsupported) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::Unsupported, e)
    }
}
