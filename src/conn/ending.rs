//! How a connection ends when it does not simply close: the shutdown drain
//! (echo what the kernel had received when the signal came, nothing more)
//! and the linger after our FIN (read and discard until the peer closes, so
//! that closing resets nothing under its last reads).

use tracing::debug;

use super::{Closed, Connection, Io, Phase, Step};
use crate::stream::would_block;

impl Connection {
    /// Server shutdown: read no more than the kernel holds now.
    pub(super) fn drain(&mut self, io: &mut Io) -> Step {
        if self.lift_faults(io).is_err() {
            return Step::Close;
        }
        if self.phase == Phase::Open {
            let budget = rustix::io::ioctl_fionread(&self.stream).unwrap_or(0);
            self.phase = Phase::Draining;
            self.drain_budget = u32::try_from(budget).unwrap_or(u32::MAX);
        }
        self.settle(io)
    }

    /// Lingering: read and discard what the kernel holds now and the end of
    /// file behind it, if it has come (so a peer that has closed is read to
    /// its end in one turn, and closing then resets nothing). `Ok(None)` at
    /// the end of file.
    pub(super) fn discard(&mut self, io: &mut Io) -> Result<Option<usize>, Closed> {
        let mut left = rustix::io::ioctl_fionread(&self.stream).unwrap_or(0) as usize + 1;
        while left > 0 {
            match self.stream.read(io.buf) {
                Ok(0) => return Ok(None),
                Ok(n) => left = left.saturating_sub(n),
                Err(e) if would_block(&e) => break,
                Err(e) => {
                    debug!(peer = %self.peer, error = %e, "read failed");
                    return Err(Closed);
                }
            }
        }
        Ok(Some(0))
    }

    /// Everything echoed and nothing more to read: send FIN. Close now if
    /// the peer has closed its side; else linger, reading and discarding
    /// (by copying) until the peer closes or the shutdown deadline. Closing
    /// earlier would answer the peer's next bytes (or those unread now) with
    /// RST, which destroys the echo still in the send buffer and fails the
    /// peer's reads and writes. Returns whether it lingers.
    pub(super) fn finish(&mut self, io: &mut Io) -> bool {
        if self.phase == Phase::ReadClosed || self.stream.shutdown_write().is_err() {
            return false;
        }
        self.switch_path(false, io);
        self.phase = Phase::Lingering;
        true
    }
}
