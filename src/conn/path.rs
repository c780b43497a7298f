//! Which path a connection's bytes take, copy or splice. The byte-order
//! rule (a move happens only when nothing is held, so no byte overtakes
//! another; overflow stays behind what is held) is [`crate::splice::Outbox`]'s;
//! this file only decides when to ask for a move.

use tracing::info;

use super::{Connection, Io};
use crate::splice::{Streak, ZeroCopy};

impl Connection {
    /// `--zero-copy auto`: change path once the reads argue for it.
    pub(super) fn adapt(&mut self, n: usize, io: &mut Io) {
        let splicing = self.outbox.is_splicing();
        let argues = self.streak.argues_after(n, splicing);
        if io.cfg.zero_copy == ZeroCopy::Auto && argues && self.pending() == 0 {
            self.switch_path(!splicing, io);
        }
    }

    /// Move to the zero-copy path (if a pipe can be had) or back to the
    /// copy path; [`crate::splice::Outbox`] says when a move may happen.
    pub(super) fn switch_path(&mut self, splice: bool, io: &mut Io) {
        self.streak = Streak::default();
        if splice && self.faults.is_some() {
            return; // faults see every byte: the copy path
        }
        let moved = match splice {
            true => self.outbox.splice(io.pipes),
            false => self.outbox.unsplice(io.pipes, io.now),
        };
        if moved && io.cfg.trace {
            let path = if splice {
                "to zero-copy (splice)"
            } else {
                "back to copying"
            };
            info!(target: "trace", peer = %self.peer, "{} moves {path}", self.peer);
        }
    }
}
