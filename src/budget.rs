//! `--max-memory`: one byte count for everything the server holds for its
//! clients, across all workers.
//!
//! Whatever holds client data (a connection: its state, its out-queue, the
//! bytes in its kernel pipe on the zero-copy path) reports every change
//! with [`Budget::charge`] and [`Budget::release`], and whether it holds
//! bytes for its peer with [`Budget::holding`]. Before taking more, a
//! holder asks [`Budget::may_grow`]. Data already in hand is never refused
//! (it is charged even past the limit); a holder that may not grow stops
//! reading instead, and TCP flow control slows its client down. Each read
//! is checked against the total just before it is made, for as much as it
//! could add (a queue's buffer may double), so workers can overshoot the
//! limit only by reading at the same moment: by at most one such growth
//! each.
//!
//! The rule for who stops: below three quarters of the limit anyone may
//! grow; up to seven eighths only holders under an even share of that
//! (seven eighths of the limit / the connections holding bytes for their
//! peer; idle ones do not count), so the connections holding the most stop
//! first; past it nobody grows. The last eighth is kept for the
//! [floor](Budget::floor): a connection that holds nothing for its peer may
//! always read that much, so interactive clients keep going however many
//! connections hold what they may. The floor is an even split of that
//! eighth over `--max-connections`, less the bookkeeping of holding it (at
//! least [`MIN_FLOOR`], at most [`MAX_FLOOR`] bytes), so the total holds
//! within the limit whenever the floor is not raised to its minimum.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The smallest floor: a read of this much echoes a typical request in one
/// turn even with very many connections allowed (the limit may then be
/// passed by up to this much per connection holding nothing).
pub const MIN_FLOOR: usize = 256;
/// The largest floor: more would not make an interactive client faster.
pub const MAX_FLOOR: usize = 4 * 1024;
/// What holding a floor's bytes costs besides the bytes (the box the
/// out-queue lives in), at most.
const FLOOR_BOOKKEEPING: usize = 128;

/// The server-wide count, shared by every worker.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    floor: usize,
    used: AtomicUsize,
    /// Connections holding bytes for their peer.
    holders: AtomicUsize,
}

impl Budget {
    /// A budget of `limit` bytes for at most `max_connections` at once.
    pub fn new(limit: usize, max_connections: usize) -> Budget {
        Budget {
            limit,
            floor: (limit / 8 / max_connections.max(1))
                .saturating_sub(FLOOR_BOOKKEEPING)
                .clamp(MIN_FLOOR, MAX_FLOOR),
            used: AtomicUsize::new(0),
            holders: AtomicUsize::new(0),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes a connection that holds nothing for its peer may always read.
    pub fn floor(&self) -> usize {
        self.floor
    }

    /// Bytes counted now.
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    /// Whether a holder that has `held()` bytes may take `more` (asked
    /// only past three quarters).
    #[inline]
    pub fn may_grow(&self, held: impl FnOnce() -> usize, more: usize) -> bool {
        let after = self.used().saturating_add(more);
        let reserve = self.limit / 8;
        if after <= self.limit - 2 * reserve {
            return true;
        }
        if after > self.limit - reserve {
            return false;
        }
        let share = (self.limit - reserve) / self.holders.load(Relaxed).max(1);
        held().saturating_add(more) <= share
    }

    /// Count `n` bytes already taken: data in hand is never refused.
    pub fn charge(&self, n: usize) {
        self.used.fetch_add(n, Relaxed);
    }

    /// A connection began (`true`) or stopped holding bytes for its peer:
    /// those that do share the room between three quarters and seven
    /// eighths.
    pub fn holding(&self, holds: bool) {
        match holds {
            true => self.holders.fetch_add(1, Relaxed),
            false => self.holders.fetch_sub(1, Relaxed),
        };
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
        let budget = Budget::new(800, 1);
        budget.holding(true); // heavy
        budget.holding(true); // light
        assert!(budget.may_grow(|| 0, 600));
        budget.charge(600);
        // Between three quarters (600) and seven eighths (700): the even
        // share is 350.
        assert!(
            !budget.may_grow(|| 600, 50),
            "the heavy one holds more than its share"
        );
        assert!(budget.may_grow(|| 0, 50), "the light one may still grow");
        assert!(
            !budget.may_grow(|| 0, 101),
            "nobody grows into the last eighth"
        );
        budget.release(500);
        assert!(budget.may_grow(|| 100, 50), "it drained: it may read again");
        budget.release(100);
        budget.holding(false);
        budget.holding(false);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn idle_connections_do_not_shrink_the_share() {
        let budget = Budget::new(8000, 1000);
        budget.holding(true);
        budget.charge(6500);
        // Only the one holder counts, however many connections are open.
        assert!(budget.may_grow(|| 6500, 100));
    }

    #[test]
    fn the_floor_is_the_last_eighth_split_over_the_connections() {
        assert_eq!(Budget::new(64 << 20, 2048).floor(), 4096 - 128);
        assert_eq!(Budget::new(4 << 20, 1000).floor(), 524 - 128);
        assert_eq!(Budget::new(64 << 20, 1 << 20).floor(), MIN_FLOOR);
        assert_eq!(Budget::new(1 << 30, 10).floor(), MAX_FLOOR);
    }
}
