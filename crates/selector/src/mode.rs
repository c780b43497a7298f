//! How a registration reports readiness over time.

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
/// A mode a backend lacks is refused with an [`Unsupported`](crate::Unsupported) error, never
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
