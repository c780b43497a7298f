//! [`Collect`]: what the facade does with each readiness a backend reports
//! before the caller sees it.

use crate::registry::Shared;
use crate::sys::{waker::WakerFd, Ready, Tag};
use crate::table::State;
use crate::{Event, Events, Token};
use std::sync::{Arc, MutexGuard};

/// Turns a backend's reports into [`Event`]s: drains the wake descriptor and
/// any waker reported, and looks up tokens too large to pack in the table.
pub(crate) struct Collect<'a> {
    shared: &'a Shared,
    wakers: &'a [(Token, Arc<WakerFd>)],
    events: &'a mut Events,
    /// Locked once, at the first event that needs it.
    table: Option<MutexGuard<'a, State>>,
    /// Whether the selector's own wake descriptor was reported.
    pub(crate) woken: bool,
}

impl<'a> Collect<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        wakers: &'a [(Token, Arc<WakerFd>)],
        events: &'a mut Events,
    ) -> Collect<'a> {
        Collect {
            shared,
            wakers,
            events,
            table: None,
            woken: false,
        }
    }

    pub(crate) fn add(&mut self, tag: Tag, ready: Ready) {
        if tag == Tag::INTERNAL {
            if let Some(w) = self.shared.wake.get() {
                w.drain();
            }
            self.woken = true;
            return;
        }
        let (token, interest) = match tag.unpack() {
            Ok(registration) => registration,
            Err(fd) => {
                let shared = self.shared;
                let state = self.table.get_or_insert_with(|| shared.lock());
                match state.slot(fd) {
                    Ok(Some(s)) => (s.registration.token, s.registration.interest),
                    _ => return, // raced with unregister; not ours any more
                }
            }
        };
        for (waker_token, w) in self.wakers {
            if *waker_token == token {
                w.drain();
            }
        }
        self.events.push(Event::new(token, ready.filter(interest)));
    }
}
