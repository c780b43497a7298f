//! Readiness reported by [`Selector::select`](crate::Selector::select).

use crate::sys::{Ready, Records, RecordsIter};
use crate::Token;
use std::fmt;

/// One ready registration: the caller's [`Token`] and what the descriptor is
/// ready for.
///
/// The meaning is the same on every backend (level-triggered, as select(2)):
/// - *readable*: a read would not block — data, end of file, or a pending
///   error or hangup (the read then reports it). Only with read interest.
/// - *writable*: a write would not block — buffer space or a pending error.
///   Only with write interest.
/// - *error*: an error is pending on the descriptor, or it is no longer open.
///   Reported whatever the interest.
/// - *hangup*: the peer is gone in both directions (or the pipe's other end
///   closed). Reported whatever the interest.
/// - *priority*: urgent data is pending (TCP out-of-band data). Only with
///   [`Interest::PRIORITY`](crate::Interest::PRIORITY).
/// - *read closed*: reading reaches end of file now — the peer shut down its
///   writing side (`EPOLLRDHUP`/`POLLRDHUP`, asked for with read interest) or
///   hung up.
/// - *write closed*: writing fails now — the peer hung up or an error is
///   pending (a pipe whose reader closed, a reset connection).
///
/// What each backend can tell for the last two is in `docs/selector.md`:
/// epoll and poll report both; select(2) reports them for the descriptors
/// it finds ready; kqueue reports read closed from `EV_EOF` on the read
/// filter and write closed from `EV_EOF` on the write filter.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Event {
    token: Token,
    ready: Ready,
}

impl Event {
    pub(crate) const fn new(token: Token, ready: Ready) -> Event {
        Event { token, ready }
    }

    /// The token given at registration.
    pub const fn token(&self) -> Token {
        self.token
    }

    /// A read would not block (data, end of file, or a pending error).
    pub const fn is_readable(&self) -> bool {
        self.ready.contains(Ready::READABLE)
    }

    /// A write would not block.
    pub const fn is_writable(&self) -> bool {
        self.ready.contains(Ready::WRITABLE)
    }

    /// An error is pending, or the descriptor was closed behind the selector.
    pub const fn is_error(&self) -> bool {
        self.ready.contains(Ready::ERROR)
    }

    /// The peer hung up in both directions.
    pub const fn is_hangup(&self) -> bool {
        self.ready.contains(Ready::HANGUP)
    }

    /// Urgent data is pending: TCP out-of-band data (`MSG_OOB`), read with
    /// `recv(MSG_OOB)`. Only with [`Interest::PRIORITY`](crate::Interest::PRIORITY).
    pub const fn is_priority(&self) -> bool {
        self.ready.contains(Ready::PRIORITY)
    }

    /// The read direction is closed: a read returns end of file once the
    /// pending bytes are read (the peer shut down writing, or hung up).
    pub const fn is_read_closed(&self) -> bool {
        self.ready.contains(Ready::READ_CLOSED)
    }

    /// The write direction is closed: a write fails (the peer hung up, or
    /// an error such as `EPIPE` or a reset is pending).
    pub const fn is_write_closed(&self) -> bool {
        self.ready.contains(Ready::WRITE_CLOSED)
    }

    /// The tutorial's "exceptional condition": error or hangup.
    pub const fn is_error_or_hangup(&self) -> bool {
        self.is_error() || self.is_hangup()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("token", &self.token)
            .field("readable", &self.is_readable())
            .field("writable", &self.is_writable())
            .field("error", &self.is_error())
            .field("hangup", &self.is_hangup())
            .field("priority", &self.is_priority())
            .field("read_closed", &self.is_read_closed())
            .field("write_closed", &self.is_write_closed())
            .finish()
    }
}

/// A reusable buffer of events, filled by each
/// [`Selector::select`](crate::Selector::select) call.
///
/// Its capacity is kept between calls, so a steady-state loop does not
/// allocate. With epoll the capacity also bounds how many events one call
/// returns (the kernel hands the rest out next time, round-robin); select and
/// poll report every ready descriptor, growing the buffer if they must.
///
/// On epoll the buffer usually holds the kernel's own records, as
/// `epoll_wait` wrote them, and each [`Event`] is decoded as the iteration
/// reaches it: the wait itself only checks that every record names its
/// registration.
#[derive(Default)]
pub struct Events {
    /// Events the facade built (poll, select, kqueue, and epoll waits that
    /// needed its table or drained a waker).
    list: Vec<Event>,
    /// A backend's own records, each naming a packed registration (the
    /// selector checks that before it leaves them here). Empty when `list`
    /// is used.
    records: Records,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Events {
    /// An empty buffer with room for `capacity` events (at least one).
    pub fn with_capacity(capacity: usize) -> Events {
        Events {
            list: Vec::with_capacity(capacity.max(1)),
            // Sized by the first wait into it, so other backends never pay.
            records: Records::default(),
        }
    }

    /// Events from the last `select`, in the order the backend reported them.
    pub fn iter(&self) -> EventsIter<'_> {
        EventsIter {
            list: self.list.iter(),
            records: self.records.iter(),
        }
    }

    /// How many events the last `select` reported.
    pub fn len(&self) -> usize {
        self.list.len() + self.records.len()
    }

    /// Whether the last `select` timed out (or was woken with nothing ready).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many events fit without growing.
    pub fn capacity(&self) -> usize {
        self.list.capacity()
    }

    /// Forget the events (capacity stays).
    pub fn clear(&mut self) {
        self.list.clear();
        self.records.clear();
    }

    pub(crate) fn push(&mut self, event: Event) {
        self.list.push(event);
    }

    /// The buffer a backend waits its own records into.
    pub(crate) fn records_mut(&mut self) -> &mut Records {
        &mut self.records
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = Event;
    type IntoIter = EventsIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The events of one [`Events`], in order; made by [`Events::iter`].
#[derive(Clone)]
pub struct EventsIter<'a> {
    list: std::slice::Iter<'a, Event>,
    records: RecordsIter<'a>,
}

impl fmt::Debug for EventsIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

impl Iterator for EventsIter<'_> {
    type Item = Event;

    #[inline]
    fn next(&mut self) -> Option<Event> {
        // One of the two is empty: a backend's records or the facade's events.
        if let Some((tag, ready)) = self.records.next() {
            let (token, interest) = tag.registration();
            return Some(Event::new(token, ready.filter_bits(interest)));
        }
        self.list.next().copied()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for EventsIter<'_> {
    fn len(&self) -> usize {
        self.list.len() + self.records.len()
    }
}

impl std::iter::FusedIterator for EventsIter<'_> {}
