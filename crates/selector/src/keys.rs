//! [`KeySelector`]: Python's `selectors` API — data per key, no tokens.

use crate::{sys, BackendKind, Event, Events, Interest, Selector, Token};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// One registration of a [`KeySelector`]: Python's `SelectorKey` (`fd`,
/// `events`, `data`).
#[derive(Debug)]
pub struct SelectorKey<T> {
    fd: RawFd,
    interest: Interest,
    data: T,
}

impl<T> SelectorKey<T> {
    /// The registered descriptor's number.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// What the descriptor is watched for (Python's `events`).
    pub fn interest(&self) -> Interest {
        self.interest
    }

    /// The data given at registration.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// The data given at registration, to change.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

/// Python's `selectors.DefaultSelector` in Rust: register a descriptor with
/// any data `T`, and `select` hands back each ready key with its event. The
/// descriptor number is the token, so there is no token bookkeeping.
///
/// Level-triggered, on any backend ([`KeySelector::with_backend`]). The
/// data may own the descriptor (register with `&stream.as_raw_fd()` and move
/// the stream into the data); [`unregister`](KeySelector::unregister) hands
/// it back, so it is closed after it is unregistered.
///
/// # Examples
///
/// ```
/// use selector::{Interest, KeySelector};
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let (mut a, b) = UnixStream::pair()?;
/// let mut selector = KeySelector::new()?;
/// // The data owns the stream; the key is found by its number.
/// let fd = b.as_raw_fd();
/// selector.register(&fd, Interest::READABLE, ("b", b))?;
/// a.write_all(b"ping")?;
/// for (key, event) in selector.select(Some(Duration::from_secs(1)))? {
///     assert_eq!(key.data().0, "b");
///     assert!(event.is_readable());
/// }
/// let (name, b) = selector.unregister(&fd)?; // then close
/// drop(b);
/// assert_eq!(name, "b");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct KeySelector<T> {
    selector: Selector,
    /// Key by descriptor number (dense, as descriptor numbers are).
    keys: Vec<Option<SelectorKey<T>>>,
    events: Events,
}

impl<T> fmt::Debug for KeySelector<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySelector")
            .field("selector", &self.selector)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

fn unknown(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("fd {fd} is not registered"),
    )
}

impl<T> KeySelector<T> {
    /// A key selector on the best backend for this OS.
    ///
    /// # Errors
    ///
    /// As [`Selector::new`].
    pub fn new() -> io::Result<KeySelector<T>> {
        KeySelector::with_backend(BackendKind::Auto)
    }

    /// A key selector on the named backend.
    ///
    /// # Errors
    ///
    /// As [`Selector::with_backend`].
    pub fn with_backend(kind: BackendKind) -> io::Result<KeySelector<T>> {
        KeySelector::from_selector(Selector::with_backend(kind)?)
    }

    /// A key selector over `selector` (one made with
    /// `Selector::with_faults`, say), which must have no registrations yet.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `selector` already has registrations, which would
    /// have no keys.
    pub fn from_selector(selector: Selector) -> io::Result<KeySelector<T>> {
        if !selector.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a KeySelector needs a selector with no registrations",
            ));
        }
        Ok(KeySelector {
            selector,
            keys: Vec::new(),
            events: Events::with_capacity(256),
        })
    }

    /// The selector underneath (its backend, its registrations).
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// Start watching `fd` for `interest`, keeping `data` with it; returns
    /// the new key.
    ///
    /// # Errors
    ///
    /// As [`Selector::register`]; `data` is dropped.
    pub fn register<F: AsRawFd + ?Sized>(
        &mut self,
        fd: &F,
        interest: Interest,
        data: T,
    ) -> io::Result<&SelectorKey<T>> {
        let raw = fd.as_raw_fd();
        let borrowed = sys::borrow_number(raw)?;
        self.selector
            .register(borrowed, Token(raw as usize), interest)?;
        let i = raw as usize;
        if self.keys.len() <= i {
            self.keys.resize_with(i + 1, || None);
        }
        let key = self.keys[i].insert(SelectorKey {
            fd: raw,
            interest,
            data,
        });
        Ok(key)
    }

    /// Change what `fd` is watched for; its data stays.
    ///
    /// # Errors
    ///
    /// As [`Selector::modify`].
    pub fn modify<F: AsRawFd + ?Sized>(
        &mut self,
        fd: &F,
        interest: Interest,
    ) -> io::Result<&SelectorKey<T>> {
        let raw = fd.as_raw_fd();
        if self.get_key(&raw).is_none() {
            return Err(unknown(raw));
        }
        let borrowed = sys::borrow_number(raw)?;
        self.selector
            .modify(borrowed, Token(raw as usize), interest)?;
        let key = self.keys[raw as usize]
            .as_mut()
            .ok_or_else(|| unknown(raw))?;
        key.interest = interest;
        Ok(key)
    }

    /// Stop watching `fd` and hand its data back (close the descriptor
    /// after this, not before).
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` is not registered.
    pub fn unregister<F: AsRawFd + ?Sized>(&mut self, fd: &F) -> io::Result<T> {
        let raw = fd.as_raw_fd();
        if self.get_key(&raw).is_none() {
            return Err(unknown(raw));
        }
        self.selector.unregister(&raw)?;
        let key = self.keys[raw as usize].take().ok_or_else(|| unknown(raw))?;
        Ok(key.data)
    }

    /// The key of `fd`, if registered (Python's `get_key`, without the
    /// `KeyError`).
    pub fn get_key<F: AsRawFd + ?Sized>(&self, fd: &F) -> Option<&SelectorKey<T>> {
        let i = usize::try_from(fd.as_raw_fd()).ok()?;
        self.keys.get(i)?.as_ref()
    }

    /// The key of `fd`, to change its data.
    pub fn get_key_mut<F: AsRawFd + ?Sized>(&mut self, fd: &F) -> Option<&mut SelectorKey<T>> {
        let i = usize::try_from(fd.as_raw_fd()).ok()?;
        self.keys.get_mut(i)?.as_mut()
    }

    /// Every key, in descriptor order (Python's `get_map()`).
    pub fn keys(&self) -> impl Iterator<Item = &SelectorKey<T>> {
        self.keys.iter().flatten()
    }

    /// How many descriptors are registered.
    pub fn len(&self) -> usize {
        self.selector.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.selector.is_empty()
    }

    /// Wait as [`Selector::select`] does, then yield each ready key with
    /// what it is ready for (Python's `select()` list of `(key, events)`).
    ///
    /// The pairs borrow the selector: to change registrations while
    /// handling them, copy out `key.fd()` and the (`Copy`) event first.
    ///
    /// # Errors
    ///
    /// As [`Selector::select`].
    pub fn select(&mut self, timeout: Option<Duration>) -> io::Result<Selected<'_, T>> {
        self.selector.select(&mut self.events, timeout)?;
        Ok(Selected {
            events: self.events.iter(),
            keys: &self.keys,
        })
    }
}

/// The ready keys of one [`KeySelector::select`], each with its event.
#[derive(Debug)]
pub struct Selected<'a, T> {
    events: crate::EventsIter<'a>,
    keys: &'a [Option<SelectorKey<T>>],
}

impl<'a, T> Iterator for Selected<'a, T> {
    type Item = (&'a SelectorKey<T>, Event);

    fn next(&mut self) -> Option<Self::Item> {
        for event in self.events.by_ref() {
            if let Some(Some(key)) = self.keys.get(event.token().0) {
                return Some((key, event));
            }
        }
        None
    }
}
