//! `--max-memory`: one byte count for everything the server holds for its
//! clients, across all workers.
//!
//! Whatever holds client data (a connection's out-queue, its fixed state, a
//! kernel pipe on a zero-copy path) keeps a [`Holding`] and reports its size
//! through it; the [`Budget`] adds them up. Before taking more, a holder asks
//! [`Budget::may_grow`]. Data already in hand is never refused (it is
//! counted with [`Holding::set`] even past the limit); a holder that may not
//! grow stops reading instead, and TCP flow control slows its client down.
//! The overshoot is at most one read per worker at a time, because each
//! read is checked against the total just before it is made.
//!
//! The rule for who stops: below seven eighths of the limit anyone may grow;
//! in the last eighth only holders under an even share (limit / holders)
//! may, so the connections holding the most stop first and light,
//! interactive clients keep going; at the limit nobody grows.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The server-wide count, shared by every worker.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    holders: AtomicUsize,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: AtomicUsize::new(0),
            holders: AtomicUsize::new(0),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes counted now.
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    /// Whether a holder that has `held` bytes may take `more`.
    pub fn may_grow(&self, held: usize, more: usize) -> bool {
        let after = self.used().saturating_add(more);
        if after <= self.limit - self.limit / 8 {
            return true;
        }
        if after > self.limit {
            return false;
        }
        let share = self.limit / self.holders.load(Relaxed).max(1);
        held.saturating_add(more) <= share
    }

    /// Take `n` bytes if they fit under the limit (for memory not yet
    /// allocated, such as a pipe about to be filled).
    pub fn try_reserve(&self, n: usize) -> bool {
        self.used
            .fetch_update(Relaxed, Relaxed, |used| {
                used.checked_add(n).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    /// Count `n` bytes already taken.
    fn charge(&self, n: usize) {
        self.used.fetch_add(n, Relaxed);
    }

    /// Give back `n` bytes counted earlier.
    pub fn release(&self, n: usize) {
        self.used.fetch_sub(n, Relaxed);
    }
}

/// What one holder (a connection) has counted in the budget. Every change
/// goes through [`Holding::set`], and [`Holding::close`] gives it all back,
/// so the total never drifts from the sum of the holdings.
#[derive(Debug, Default)]
pub struct Holding {
    held: usize,
    open: bool,
}

impl Holding {
    /// A new holder, counted among those that share the last eighth.
    pub fn open(budget: &Budget) -> Holding {
        budget.holders.fetch_add(1, Relaxed);
        Holding {
            held: 0,
            open: true,
        }
    }

    pub fn held(&self) -> usize {
        self.held
    }

    /// The holder now holds `bytes`: count the difference. Returns the
    /// change, for the statistics.
    pub fn set(&mut self, budget: &Budget, bytes: usize) -> isize {
        let before = self.held;
        self.held = bytes;
        if bytes > before {
            budget.charge(bytes - before);
            (bytes - before) as isize
        } else {
            budget.release(before - bytes);
            -((before - bytes) as isize)
        }
    }

    /// The holder is gone: give everything back. Returns what it held.
    pub fn close(&mut self, budget: &Budget) -> usize {
        let held = std::mem::take(&mut self.held);
        budget.release(held);
        if std::mem::take(&mut self.open) {
            budget.holders.fetch_sub(1, Relaxed);
        }
        held
    }
}

/// The default `--max-memory`: a quarter of physical memory (MemTotal in
/// /proc/meminfo), or 1 GiB where that cannot be read. A quarter leaves the
/// kernel room for the socket buffers behind the same clients.
pub fn default_limit() -> usize {
    const FALLBACK: usize = 1 << 30;
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let kib: usize = info
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()?;
            Some(kib.saturating_mul(1024) / 4)
        })
        .filter(|&b| b > 0)
        .unwrap_or(FALLBACK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heaviest_stop_first_and_nobody_passes_the_limit() {
        let budget = Budget::new(800);
        let mut heavy = Holding::open(&budget);
        let light = Holding::open(&budget);
        assert!(budget.may_grow(heavy.held(), 700));
        heavy.set(&budget, 700);
        // In the last eighth (701..=800): the even share is 400.
        assert!(
            !budget.may_grow(heavy.held(), 50),
            "the heavy one holds more than its share"
        );
        assert!(
            budget.may_grow(light.held(), 50),
            "the light one may still grow"
        );
        assert!(
            !budget.may_grow(light.held(), 101),
            "nobody passes the limit"
        );
        assert!(!budget.try_reserve(101));
        assert!(budget.try_reserve(100));
        budget.release(100);
        heavy.set(&budget, 100);
        assert!(
            budget.may_grow(heavy.held(), 50),
            "it drained: it may read again"
        );
        assert_eq!(heavy.close(&budget), 100);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn default_is_positive() {
        assert!(default_limit() > 0);
    }
}
