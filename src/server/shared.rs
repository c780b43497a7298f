//! What every worker shares: the shutdown flags, the connection count, the
//! per-IP cap, the memory budget, the wakers and the published counters.
//! Used by the workers, `main` (start and join) and the metrics endpoint.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, OnceLock};

use selector::Waker;
use tracing::warn;

use crate::budget::Budget;
use crate::fault::Faults;
use crate::limits::{PerIp, Tally};
use crate::stats::Published;

/// State shared by all workers. Touched on accept, close and shutdown only.
#[derive(Debug)]
pub struct Shared {
    pub shutdown: AtomicBool,
    /// A second signal: every loop stops at once, without draining.
    pub abort: AtomicBool,
    pub open: AtomicUsize,
    /// Workers whose loop has not ended; worker 0 ends last, so it can
    /// still see a second signal while the others drain.
    pub running: AtomicUsize,
    pub serial: AtomicU64,
    pub per_ip: PerIp,
    /// Connections waiting for a PROXY header, per TCP peer
    /// (`--max-pending-headers-per-ip`).
    pub pending_headers: Tally,
    /// `--max-memory`: what every worker holds for its clients.
    pub budget: Budget,
    /// One per worker, in worker order; set once, before any loop runs.
    pub wakers: OnceLock<Vec<Waker>>,
    pub published: Vec<Published>,
    /// `--fault`: the faults in force (replaceable at run time) and the seed.
    pub faults: Arc<Faults>,
}

impl Shared {
    pub fn new(workers: usize, max_per_ip: Option<u32>, budget: Budget) -> Shared {
        Shared {
            shutdown: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            running: AtomicUsize::new(workers),
            serial: AtomicU64::new(0),
            per_ip: PerIp::new(max_per_ip),
            pending_headers: Tally::default(),
            budget,
            wakers: OnceLock::new(),
            published: (0..workers).map(|_| Published::default()).collect(),
            faults: Arc::new(Faults::new(Vec::new(), 0)),
        }
    }

    /// Count accepts per listener, named as in `names[worker][listener]`.
    pub fn with_listener_names(mut self, names: Vec<Vec<String>>) -> Shared {
        self.published = names.into_iter().map(Published::with_listeners).collect();
        self
    }

    /// The faults in force at startup (`--fault`, `--fault-seed`).
    pub fn with_faults(mut self, faults: Arc<Faults>) -> Shared {
        self.faults = faults;
        self
    }

    /// Wake every worker, so each looks at the shared flags.
    pub fn wake_all(&self) {
        for waker in self.wakers.get().into_iter().flatten() {
            wake(waker);
        }
    }

    /// Wake one worker (worker 0 waits for the others to end).
    pub fn wake(&self, worker: usize) {
        if let Some(waker) = self.wakers.get().and_then(|w| w.get(worker)) {
            wake(waker);
        }
    }
}

fn wake(waker: &Waker) {
    if let Err(e) = waker.wake() {
        warn!(error = %e, "cannot wake a worker");
    }
}
