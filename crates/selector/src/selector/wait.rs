//! [`Selector::select`]: one wait, retried on `EINTR`, on a registry's wake
//! and on an early return, until something is ready or the time is up.

use super::Selector;
use crate::backend::dispatch;
use crate::collect::Collect;
use crate::registry::Table;
use crate::sys::Backend;
use crate::Events;
use std::io;
use std::time::{Duration, Instant};

impl Selector {
    /// Wait until a registered descriptor is ready or `timeout` passes, and
    /// fill `events` with what is ready.
    ///
    /// `None` waits forever; zero only looks. A timeout is kept to the
    /// backend's precision (nanoseconds asked of epoll on Linux 5.11+, poll,
    /// select and kqueue; whole milliseconds, rounded up, from epoll on older
    /// kernels) and the call never returns before it has passed unless
    /// something is ready; the kernel's timer slack (50 µs by default on
    /// Linux) comes on top. A timeout leaves `events` empty; it is not an
    /// error. A signal interrupting the wait (`EINTR`) is retried with the
    /// time that remains (PEP 475's rule): deliver signals to the loop through
    /// a [`Waker`](crate::Waker) or a self-pipe registered here, not through `EINTR`.
    ///
    /// # Errors
    ///
    /// The kernel's error from the wait (`EINVAL`, `ENOMEM`).
    pub fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // Only a wait that can be cut short needs the clock: zero retries as
        // zero, and none as none.
        let deadline = match timeout {
            Some(t) if !t.is_zero() => Instant::now().checked_add(t),
            _ => None,
        };
        let mut remaining = timeout;
        let max = events.capacity();
        loop {
            if let Table::Shared(shared) = &self.table {
                if shared.take_dirty() {
                    shared.lock().apply_pending(&mut self.sys)?;
                }
            }
            match self.wait_once(events, remaining, max) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Woken only to apply a registry's change, or back before the
                // deadline with nothing (a kernel may round down): wait again.
                Ok(woken)
                    if events.is_empty()
                        && remaining != Some(Duration::ZERO)
                        && (woken || deadline.is_some_and(|d| Instant::now() < d)) => {}
                result => return result.map(|_| ()),
            }
            if let Some(deadline) = deadline {
                remaining = Some(deadline.saturating_duration_since(Instant::now()));
            }
        }
    }

    /// One wait of the backend, its events left in `events`; whether the
    /// selector's own wake descriptor (a registry's change) was among them.
    fn wait_once(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
        max: usize,
    ) -> io::Result<bool> {
        // A backend with its own records (epoll) leaves them as they are,
        // decoded as the caller iterates, unless one of them needs the facade.
        let records = events.records_mut();
        if dispatch!(&mut self.sys, b => b.select_records(timeout, max, records))? {
            if self.wakers.is_empty() && records.all_registrations() {
                return Ok(false);
            }
            // A wake, a waker or a token too large to pack: every record
            // through the facade, in order; the buffer goes back emptied.
            let mut records = std::mem::take(records);
            let mut collect = Collect::new(&self.table, &self.wakers, events);
            for (tag, ready) in records.iter() {
                collect.add(tag, ready);
            }
            let woken = collect.woken;
            drop(collect);
            records.clear();
            *events.records_mut() = records;
            return Ok(woken);
        }
        let mut collect = Collect::new(&self.table, &self.wakers, events);
        dispatch!(&mut self.sys, b => b.select(timeout, max, &mut |tag, ready| {
            collect.add(tag, ready);
        }))?;
        Ok(collect.woken)
    }
}
