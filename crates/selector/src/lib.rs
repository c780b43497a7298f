//! Wait on many file descriptors at once and learn which are ready: the
//! ideas of Python's `select` and `selectors` modules, in Rust.
//!
//! Two ways in:
//!
//! - [`select()`]: the `select.select(rlist, wlist, xlist, timeout)` shape.
//!   Hand it three lists of anything with a file descriptor (sockets, pipes,
//!   files, stdin, a child's stdout) and get back references to the ones
//!   that are ready. No `FD_SETSIZE` limit.
//! - [`Selector`]: the `selectors` idea. Register descriptors once with an
//!   [`Interest`] and a [`Token`], then call [`Selector::select`] in a loop.
//!   Three interchangeable backends — select(2), poll(2), epoll(7) — chosen
//!   at run time by [`BackendKind`], with identical, level-triggered
//!   behaviour.
//!
//! # A loop in a few lines
//!
//! ```no_run
//! use selector::{Events, Interest, Selector, Token};
//! use std::net::TcpListener;
//!
//! let listener = TcpListener::bind("127.0.0.1:10000")?;
//! listener.set_nonblocking(true)?;
//!
//! let mut selector = Selector::new()?; // epoll on Linux
//! selector.register(&listener, Token(0), Interest::READABLE)?;
//! let mut events = Events::with_capacity(1024);
//! loop {
//!     selector.select(&mut events, None)?; // waiting for the next event
//!     for event in &events {
//!         if event.token() == Token(0) && event.is_readable() {
//!             let (stream, peer) = listener.accept()?;
//!             println!("new connection from {peer}");
//!             # drop(stream);
//!         }
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Rules every backend follows
//!
//! - Level-triggered: ready descriptors are reported on every call until the
//!   condition is consumed.
//! - Misuse is a typed [`std::io::Error`], the same on every backend:
//!   `AlreadyExists` for a second registration, `NotFound` to modify or
//!   unregister an unknown descriptor, `InvalidInput` for a closed one.
//!   "No interest" cannot be expressed.
//! - Regular files are always ready (epoll cannot watch them; its backend
//!   reports them ready on every call, as select and poll do).
//! - Unregister before close. A descriptor closed while registered is
//!   reported as an error event by select and poll until unregistered; epoll
//!   forgets it silently.
//! - `EINTR` is retried with the remaining time; a timeout is an empty
//!   result, not an error. Wake a blocked loop with a [`Waker`].

#![deny(missing_docs)]

mod backend;
mod event;
mod interest;
mod keys;
mod mode;
mod registry;
pub mod select;
mod selector;
mod sys;
mod token;
mod waker;

pub use backend::BackendKind;
pub use event::{Event, Events};
pub use interest::Interest;
pub use keys::{KeySelector, Selected, SelectorKey};
pub use mode::{Mode, Unsupported};
pub use registry::{Registration, Registry};
pub use select::select;
pub use selector::Selector;
pub use token::Token;
pub use waker::Waker;

#[cfg(feature = "faults")]
pub use sys::faults::{Fault, FaultPlan};

/// The crate README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
