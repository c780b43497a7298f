//! Wait on many file descriptors at once and learn which are ready: the
//! ideas of Python's `select` and `selectors` modules, in Rust.
//!
//! Three ways in:
//!
//! - [`select()`]: the `select.select(rlist, wlist, xlist, timeout)` shape.
//!   Hand it three lists of anything with a file descriptor (sockets, pipes,
//!   files, stdin, a child's stdout) and get back references to the ones
//!   that are ready. No `FD_SETSIZE` limit.
//! - [`Selector`]: register descriptors once with an [`Interest`] and a
//!   [`Token`], then call [`Selector::select`] in a loop. Four
//!   interchangeable backends — epoll(7), kqueue(2), poll(2), select(2) —
//!   chosen at run time by [`BackendKind`], level-triggered by default, with
//!   oneshot and edge-triggered [`Mode`]s per registration.
//! - [`KeySelector`]: Python's `selectors` API — any data per registration,
//!   handed back with each ready key; no tokens to keep.
//!
//! # An echo loop: accept, register, read, end of file, unregister
//!
//! ```no_run
//! use selector::{Events, Interest, Selector, Token};
//! use std::collections::HashMap;
//! use std::io::{ErrorKind, Read, Write};
//! use std::net::{TcpListener, TcpStream};
//!
//! const SERVER: Token = Token(0);
//! let listener = TcpListener::bind("127.0.0.1:10000")?;
//! listener.set_nonblocking(true)?;
//!
//! let mut selector = Selector::new()?; // epoll on Linux, kqueue on the BSDs
//! selector.register(&listener, SERVER, Interest::READABLE)?;
//! let mut clients: HashMap<Token, TcpStream> = HashMap::new();
//! let mut next = 1;
//! let mut events = Events::with_capacity(1024);
//! loop {
//!     selector.select(&mut events, None)?; // wait for the next event
//!     for event in &events {
//!         if event.token() == SERVER {
//!             // A readable listener has a connection waiting: accept it
//!             // and register it, with a token of its own.
//!             let (stream, peer) = match listener.accept() {
//!                 Ok(accepted) => accepted,
//!                 Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
//!                 Err(e) => return Err(e),
//!             };
//!             stream.set_nonblocking(true)?;
//!             let token = Token(next);
//!             next += 1;
//!             selector.register(&stream, token, Interest::READABLE)?;
//!             clients.insert(token, stream);
//!             println!("new connection from {peer}");
//!             continue;
//!         }
//!         let Some(stream) = clients.get_mut(&event.token()) else { continue };
//!         let mut buf = [0; 4096];
//!         let done = match stream.read(&mut buf) {
//!             Ok(0) => true, // end of file: the client is gone
//!             // (A real server queues what write_all cannot send now.)
//!             Ok(n) => stream.write_all(&buf[..n]).is_err(),
//!             Err(e) if e.kind() == ErrorKind::WouldBlock => false,
//!             Err(_) => true,
//!         };
//!         if done {
//!             // Unregister before close: dropping the stream closes it.
//!             selector.unregister(&*stream)?;
//!             clients.remove(&event.token());
//!         }
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Runnable tutorials: `examples/select_echo.rs` (the Python tutorial's
//! server on [`select()`], line for line) and `examples/selectors_echo.rs`
//! (the same server on [`KeySelector`]); `cargo run -p fdselector --example
//! select_echo`, then `nc localhost 10000`.
//!
//! # Rules every backend follows
//!
//! - Level-triggered unless a registration asks for [`Mode::Oneshot`] or
//!   [`Mode::Edge`]; a mode a backend lacks is a typed [`Unsupported`]
//!   error, never another mode.
//! - Misuse is a typed [`std::io::Error`], the same on every backend and
//!   through a [`Registry`]: `AlreadyExists` for a second registration,
//!   `NotFound` to modify or unregister an unknown descriptor, `InvalidInput`
//!   for a closed one. "No interest" cannot be expressed.
//! - Regular files are always ready (epoll and kqueue cannot watch them;
//!   their backends report them ready on every call, as select and poll do).
//! - Unregister before close. A descriptor closed while registered is
//!   reported as an error event by select and poll until unregistered; epoll
//!   forgets it silently.
//! - `EINTR` is retried with the remaining time; a timeout is an empty
//!   result, not an error. Wake a blocked loop with a [`Waker`].
//! - Every descriptor the library creates (epoll, kqueue, eventfd, pipe) is
//!   close-on-exec, so programs it starts inherit none of them.
//!
//! # Threads and `fork`
//!
//! A [`Selector`] is `Send`; one thread selects, and any thread may change
//! its registrations through a [`Registry`] or wake it with a [`Waker`].
//!
//! After `fork(2)` the child shares the parent's epoll instance (a change
//! made by either is seen by both) and the wakers' eventfds or pipes, but
//! not a kqueue (the BSDs and macOS do not inherit one), and poll's and
//! select's tables are the child's own copies. Do not use a selector on
//! both sides of a fork: in the child, drop it (or `exec`, which closes its
//! descriptors) and make a new one.

#![deny(missing_docs)]

mod backend;
mod collect;
mod event;
mod interest;
mod keys;
mod mode;
mod registry;
pub mod select;
mod selector;
#[cfg(feature = "faults")]
mod sim;
mod sys;
mod table;
mod token;
mod unsupported;
mod waker;

pub use backend::BackendKind;
pub use event::{Event, Events, EventsIter};
pub use interest::Interest;
pub use keys::{KeySelector, Selected, SelectorKey};
pub use mode::Mode;
pub use registry::Registry;
pub use select::select;
pub use selector::Selector;
pub use table::Registration;
pub use token::Token;
pub use unsupported::Unsupported;
pub use waker::Waker;

#[cfg(feature = "faults")]
pub use sim::ShortIo;
#[cfg(feature = "faults")]
pub use sys::faults::{Fault, FaultPlan, Rng};

/// The crate README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
