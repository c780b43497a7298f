//! [`Collect`]: what the facade does with each readiness a backend reports
//! before the caller sees it.

use crate::registry::Table;
use crate::sys::{waker::WakerFd, Ready, Tag};
use crate::table::State;
use crate::{Event, Events, Token};
use std::sync::{Arc, MutexGuard};

/// Turns a backend's reports into [`Event`]s: drains the wake descriptor and
/// any waker reported, and looks up tokens too large to pack in the table.
pub(crate) struct Collect<'a> {
    table: &'a Table,
    wakers: &'a [(Token, Arc<WakerFd>)],
    events: &'a mut Events,
    /// A shared table, locked once, at the first event that needs it.
    locked: Option<MutexGuard<'a, State>>,
    /// Whether the selector's own wake descriptor was reported.
    pub(crate) woken: bool,
}

impl<'a> Collect<'a> {
    pub(crate) fn new(
        table: &'a Table,
        wakers: &'a [(Token, Arc<WakerFd>)],
        events: &'a mut Events,
    ) -> Collect<'a> {
        Collect {
            table,
            wakers,
            events,
            locked: None,
            woken: false,
        }
    }

    pub(crate) fn add(&mut self, tag: Tag, ready: Ready) {
        if tag == Tag::INTERNAL {
            if let Table::Shared(shared) = self.table {
                shared.wake.drain();
            }
            self.woken = true;
            return;
        }
        let (token, interest) = match tag.unpack() {
            Ok(registration) => registration,
            Err(fd) => {
                let slot = match self.table {
                    Table::Own(state) => state.slot(fd),
                    Table::Shared(shared) => {
                        self.locked.get_or_insert_with(|| shared.lock()).slot(fd)
                    }
                };
                match slot {
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
