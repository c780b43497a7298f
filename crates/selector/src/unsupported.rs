//! The error for a mode (or interest) a backend cannot honour.

use crate::{BackendKind, Mode};
use std::fmt;

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
    /// The backend cannot wake one waiter only (exclusive wakeups are
    /// epoll's `EPOLLEXCLUSIVE`).
    Exclusive(BackendKind),
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
            Unsupported::Exclusive(kind) => {
                write!(f, "the {kind} backend has no exclusive wakeups")
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
