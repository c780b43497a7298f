//! `--max-memory`: one byte count for everything the server holds for its
//! clients, across all workers.
//!
//! Whatever holds client data (a connection: its state, its out-queue, the
//! bytes in its kernel pipe on the zero-copy path) [joins](Budget::join) the
//! budget, reports every change with [`Budget::charge`] and
//! [`Budget::release`], and [leaves](Budget::leave) with what it still
//! holds. Before taking more, a holder asks [`Budget::may_grow`]. Data
//! already in hand is never refused (it is charged even past the limit); a
//! holder that may not grow stops reading instead, and TCP flow control
//! slows its client down. Each read is checked against the total just
//! before it is made, for as much as it could add (a queue's buffer may
//! double), so workers can overshoot the limit only by reading at the same
//! moment: by at most one such growth each.
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

    /// Whether a holder that has `held()` bytes may take `more` (asked
    /// only in the last eighth).
    pub fn may_grow(&self, held: impl FnOnce() -> usize, more: usize) -> bool {
        let after = self.used().saturating_add(more);
        if after <= self.limit - self.limit / 8 {
            return true;
        }
        if after > self.limit {
            return false;
        }
        let share = self.limit / self.holders.load(Relaxed).max(1);
        held().saturating_add(more) <= share
    }

    /// Count `n` bytes already taken: data in hand is never refused.
    pub fn charge(&self, n: usize) {
        self.used.fetch_add(n, Relaxed);
    }

    /// A new holder (a connection) that takes `n` bytes to begin with; it
    /// shares the last eighth with the others.
    pub fn join(&self, n: usize) {
        self.holders.fetch_add(1, Relaxed);
        self.charge(n);
    }

    /// A holder is gone, and with it the `n` bytes it held.
    pub fn leave(&self, n: usize) {
        self.holders.fetch_sub(1, Relaxed);
        self.release(n);
    }

    /// Give back `n` bytes counted earlier.
    pub fn release(&self, n: usize) {
        self.used.fetch_sub(n, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heaviest_stop_first_and_nobody_passes_the_limit() {
        let budget = Budget::new(800);
        budget.join(0); // heavy
        budget.join(0); // light
        assert!(budget.may_grow(|| 0, 700));
        budget.charge(700);
        // In the last eighth (701..=800): the even share is 400.
        assert!(
            !budget.may_grow(|| 700, 50),
            "the heavy one holds more than its share"
        );
        assert!(budget.may_grow(|| 0, 50), "the light one may still grow");
        assert!(!budget.may_grow(|| 0, 101), "nobody passes the limit");
        budget.release(600);
        assert!(budget.may_grow(|| 100, 50), "it drained: it may read again");
        budget.leave(100);
        budget.leave(0);
        assert_eq!(budget.used(), 0);
    }
}
