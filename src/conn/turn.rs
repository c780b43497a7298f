//! What a connection and its loop say to each other: the loop hands a
//! connection a [`Turn`] and lends it the worker's [`Io`]; the connection
//! answers with an [`Outcome`], whose [`Step`] the loop carries out.

use std::time::Instant;

use selector::Interest;

use crate::budget::Budget;
use crate::config::Config;
use crate::splice::PipePool;
use crate::stats::Counters;

/// What the loop must do with a connection after it has handled an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Leave the registration as it is.
    Keep,
    /// Register this interest instead (register again, if it was parked),
    /// then call [`super::Connection::watching`].
    Watch(Interest),
    /// Unregister but keep it: the memory budget stops its reading and it
    /// holds nothing to send, so there is no event to wait for. The loop
    /// hands it [`Turn::Recheck`] now and then.
    Park,
    /// Unregister and drop it.
    Close,
}

/// Why the loop hands a connection a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// The selector reported it.
    Ready { readable: bool, writable: bool },
    /// The memory budget may have room again.
    Recheck,
    /// Server shutdown: echo what the kernel has already received, then
    /// finish.
    Drain,
    /// A deadline it asked for ([`Outcome::wake_at`]) has come: bytes a
    /// fault held may go now.
    Timer,
}

/// What a turn came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub step: Step,
    /// Bytes moved either way (for the idle timer: a slow reader still
    /// draining its echo is not idle, even while its reads are paused).
    pub moved: bool,
    /// The memory budget began to stop its reading in this turn.
    pub starved: bool,
    /// Hand it [`Turn::Timer`] at this instant (a fault holds bytes until
    /// then); `None` when it needs no new timer.
    pub wake_at: Option<Instant>,
}

/// What a connection borrows from its loop while it handles one event.
#[derive(Debug)]
pub struct Io<'a> {
    /// The loop's read buffer, shared by all its connections.
    pub buf: &'a mut [u8],
    pub counters: &'a mut Counters,
    /// The loop's pipes for the zero-copy path.
    pub pipes: &'a mut PipePool,
    /// `--zero-copy`, `--max-pending` and `--trace` are read there.
    pub cfg: &'a Config,
    /// When the loop woke up.
    pub now: Instant,
    /// `--max-memory`, shared by every worker.
    pub budget: &'a Budget,
}
