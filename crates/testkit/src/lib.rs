//! Helpers the workspace's integration tests share (a dev-dependency of echo-server and
//! echo-bench), so each thing is written once:
//!
//! - [`Spawned`] runs a server binary, keeps its stdout lines and stderr in memory, and
//!   [`Spawned::wait_listening`] waits for its `listening KIND ADDR` lines, parsed into
//!   [`Listeners`];
//! - [`proc`] reads a process's descriptors, memory and CPU time from `/proc`;
//! - [`wait_for`] and [`wait_until`] poll with a deadline.
//!
//! Every wait here is bounded. Linux only (`/proc`), like the tests that use it.

pub mod listening;
pub mod proc;
mod spawned;

pub use listening::Listeners;
pub use spawned::{run_to_end, strip_ansi, Spawned};

use std::thread;
use std::time::{Duration, Instant};

/// Polls `f` every 10 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || cond().then_some(())).is_some()
}
