//! How a connection ends badly, and what it says: failures counted as
//! errors or mismatches, each with its fault (kind, stream offset), stalls
//! looked for while the load runs, and what the drain left owed.

use super::{Link, Streams};
use crate::fault::Kind;
use crate::net::describe;
use crate::plan::DRAIN;
use std::io::{self, Read};

/// Why a connection was closed early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// The server closed it while echoes were owed.
    Closed,
    /// A read or write failed.
    Io,
    /// The connection was reset (a kind of `Io`, reported as a fault).
    Reset,
    /// The echo differed from what was sent at this stream offset
    /// (counted as a mismatch).
    Mismatch(u64),
}

impl Streams<'_> {
    /// Close connection `i` after a failure and count it; a mismatch is
    /// counted by the caller, and is not also an error or "unserved".
    pub(super) fn fail(&mut self, i: usize, why: Failure, msg: String) {
        let id = self.conns[i].id;
        let addr = self.core.cfg.targets[self.core.cfg.target_of(id)].clone();
        let recvd = self.conns[i].recvd;
        let stats = self.core.stats_of(id);
        match why {
            Failure::Closed => {
                stats.errors.closed += 1;
                stats.faults.event(Kind::Closed, id, recvd, None, true);
            }
            Failure::Io => stats.errors.io += 1,
            Failure::Reset => {
                stats.errors.io += 1;
                stats.faults.event(Kind::Reset, id, recvd, None, true);
            }
            Failure::Mismatch(at) => {
                stats.mismatches += 1;
                stats.faults.event(Kind::Corrupted, id, at, None, true);
            }
        }
        stats.note(|| format!("connection {id} to {addr}: {msg}"));
        if matches!(why, Failure::Mismatch(_)) {
            self.conns[i].served = true;
        }
        self.close(i);
    }

    /// A read or write failed with `e`. A reset is a fault of its own: the
    /// bytes the server echoed before it are read first, so that its
    /// offset is where the echo stopped.
    pub(super) fn io_failure(&mut self, i: usize, e: &io::Error, what: &str) {
        let msg = format!("{what}: {}", describe(e));
        let reset = matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        );
        if !reset {
            return self.fail(i, Failure::Io, msg);
        }
        for _ in 0..64 {
            let Link::Open(stream) = &mut self.conns[i].link else {
                return;
            };
            match stream.read(&mut self.rbuf) {
                Ok(n) if n > 0 => {
                    if let Err((m, at)) = self.consume(i, n) {
                        return self.fail(i, Failure::Mismatch(at), m);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => break,
            }
        }
        self.fail(i, Failure::Reset, msg)
    }

    /// Report connections whose echo has not moved for `--stall-after`
    /// while bytes are owed (once per stall).
    pub(super) fn stalls(&mut self, now: u64) {
        let after = crate::plan::ns(self.core.cfg.stall_after);
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            let owed = matches!(c.link, Link::Open(_)) && c.recvd < c.sent;
            if c.health.stall_begins(now, owed, after) {
                let (id, at) = (c.id, c.recvd);
                let stats = self.core.stats_of(id);
                stats.faults.event(Kind::Stalled, id, at, None, false);
            }
        }
    }

    /// Count what the drain did not bring back, and connections the window
    /// never served; then close everything.
    pub(super) fn finish(&mut self) {
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let open = matches!(c.link, Link::Open(_));
            let (id, health) = (c.id, c.health);
            if let Some((at, delay)) = health.delayed() {
                let us = (delay as f64 / 100.0).round() / 10.0;
                let faults = &mut self.core.stats_of(id).faults;
                faults.event(Kind::Delayed, id, at, Some(us), false);
            }
            let c = &self.conns[i];
            let addr = &self.core.cfg.targets[self.core.cfg.target_of(id)];
            if open && c.recvd < c.sent {
                let owed = c.sent - c.recvd;
                let secs = DRAIN.as_secs();
                let msg = format!("connection {id} to {addr}: {owed} echoed bytes still missing {secs} s after the run (short read)");
                let stats = self.core.stats_of(id);
                stats.errors.short += 1;
                stats
                    .faults
                    .count(Kind::Stalled, 0, u64::from(health.stalled));
                stats.note(|| msg);
            } else if open && c.expecting && !c.served {
                let msg = format!("connection {id} to {addr}: no echo during the measured window");
                let stats = self.core.stats_of(id);
                stats.errors.unserved += 1;
                stats
                    .faults
                    .count(Kind::Stalled, 0, u64::from(health.stalled));
                stats.note(|| msg);
            }
            self.close(i);
        }
    }
}
