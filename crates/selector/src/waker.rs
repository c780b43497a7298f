//! [`Waker`]: wakes a selector blocked in `select` from another thread.

use crate::sys::waker::WakerFd;
use crate::{Interest, Selector, Token};
use std::io;
use std::sync::Arc;

/// Wakes a [`Selector`] blocked in `select` from another thread, or from a
/// signal handler's thread through signal-hook.
///
/// Each `wake` makes the selector report one event with the waker's token.
/// Wakes coalesce: however many come before the selector reports the waker,
/// it reports one event. Clones share one descriptor; a selector may have
/// any number of wakers, each with its own token and descriptor (an eventfd
/// on Linux, a pipe elsewhere, close-on-exec either way).
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
    fd: Arc<WakerFd>,
}

impl Waker {
    /// A waker registered in `selector` under `token`.
    ///
    /// # Errors
    ///
    /// The kernel's error creating the eventfd or pipe, or registering it.
    pub fn new(selector: &mut Selector, token: Token) -> io::Result<Waker> {
        let fd = Arc::new(WakerFd::new()?);
        selector.register(fd.fd(), token, Interest::READABLE)?;
        selector.wakers.push((token, Arc::clone(&fd)));
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
